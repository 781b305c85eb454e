"""Synthetic multi-page PDF invoices with per-page labels, for the extract task and its document tools.

Each invoice has a sender (some Arabic, right to left), an invoice number, a date, a currency
and item lines with quantity, unit price and line total, split over one or more pages; the last
page shows the total and, for some, a note. Text is set with DejaVu Sans (the copy matplotlib
ships; ``--font`` picks another TTF) and shaped with HarfBuzz (fpdf2's text shaping), so Arabic
letters are joined and ordered right to left as a reader sees them. Output layout::

    OUT/schema.json                 the invoice page schema (x-compare annotations included)
    OUT/rules.json                  example labelling rules (regex, product of quantity and price)
    OUT/pdfs/invoice-<nnnn>.pdf     the invoices
    OUT/labels/invoice-<nnnn>.json  per-page targets, one object per page (what each page shows)

``python -m torchtune_ext.data.documents.ingest OUT/pdfs --labels OUT/labels --output-dir PAGES``
makes labelled pages of them; without ``--labels`` the pages are left for the teacher. The same
seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

__all__ = ["RULES", "SCHEMA_FILE", "default_font", "generate_extract", "invoice"]

#: The invoice page schema shipped with the generator.
SCHEMA_FILE = Path(__file__).with_name("invoice_schema.json")
#: Example rules for the teacher's checks (see torchtune_ext/data/documents/README.md).
RULES: dict[str, dict[str, Any]] = {
    "invoice_number": {"required": True, "regex": "^INV-[0-9]{6}$"},
    "date": {"required": True},
    "items[].quantity": {"min": 1},
    "items[].total": {"product_of": ["quantity", "unit_price"], "tolerance": 0.01},
}
#: Item lines per page.
ITEMS_PER_PAGE = 5

_SENDERS_LATIN = (
    ("Northwind Traders", "12 Harbour Road, Leeds"),
    ("Atlas Office Supply", "400 Market Street, Denver"),
    ("Blue Harbor Ltd", "7 Quay Lane, Cork"),
)
_SENDERS_ARABIC = (
    ("شركة النور للتجارة", "شارع الملك فهد، الرياض"),
    ("مؤسسة الأمل للمقاولات", "حي الصفا، جدة"),
    ("مكتبة دار المعرفة", "شارع الجامعة، عمّان"),
)
_ITEMS_LATIN = ("Printer paper A4", "Ballpoint pens", "Stapler", "Toner cartridge", "Desk lamp", "USB cable")
_ITEMS_ARABIC = ("أقلام حبر", "ورق طباعة", "دباسة", "حبر طابعة", "مصباح مكتب", "ملفات")
_NOTES_LATIN = ("Payment due within 30 days.", "Thank you for your business.")
_NOTES_ARABIC = ("يرجى الدفع خلال ثلاثين يوما.", "شكرا لتعاملكم معنا.")
_FIXED_DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def default_font() -> Path:
    """DejaVu Sans as matplotlib ships it (a dependency): Latin and Arabic glyphs, no system fonts.

    Returns:
        Path: the TTF file.
    """
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def invoice(rng: random.Random, arabic: bool) -> dict[str, Any]:
    """The data of one invoice (all pages).

    Args:
        rng (random.Random): the random source.
        arabic (bool): Arabic sender, items and note.

    Returns:
        dict[str, Any]: ``invoice_number``, ``date``, ``currency``, ``sender``, ``items``,
        ``total``, ``notes``.
    """
    name, address = rng.choice(_SENDERS_ARABIC if arabic else _SENDERS_LATIN)
    tax_id = f"{rng.randint(100, 999)}-{rng.randint(100000, 999999)}" if rng.random() < 0.7 else None
    items = []
    for _ in range(rng.randint(2, 2 * ITEMS_PER_PAGE)):
        quantity = rng.randint(1, 20)
        unit_price = rng.randint(50, 20000) / 100
        items.append(
            {
                "description": rng.choice(_ITEMS_ARABIC if arabic and rng.random() < 0.7 else _ITEMS_LATIN),
                "quantity": quantity,
                "unit_price": unit_price,
                "total": round(quantity * unit_price, 2),
            }
        )
    day = datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randint(0, 700))
    note = rng.choice(_NOTES_ARABIC if arabic else _NOTES_LATIN) if rng.random() < 0.6 else None
    return {
        "invoice_number": f"INV-{rng.randint(0, 999999):06d}",
        "date": day.isoformat(),
        "currency": rng.choice(("SAR", "AED") if arabic else ("USD", "EUR")),
        "sender": {"name": name, "address": address, "tax_id": tax_id},
        "items": items,
        "total": round(sum(i["total"] for i in items), 2),
        "notes": note,
    }


def page_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """What each page of an invoice shows: the header, its item lines, the total on the last page.

    Args:
        data (dict[str, Any]): from :func:`invoice`.

    Returns:
        list[dict[str, Any]]: one target per page.
    """
    chunks = [data["items"][k : k + ITEMS_PER_PAGE] for k in range(0, len(data["items"]), ITEMS_PER_PAGE)]
    out = []
    for k, chunk in enumerate(chunks):
        last = k == len(chunks) - 1
        out.append(
            {
                "invoice_number": data["invoice_number"],
                "date": data["date"],
                "currency": data["currency"],
                "sender": dict(data["sender"]),
                "items": [dict(item) for item in chunk],
                "total": data["total"] if last else None,
                "notes": data["notes"] if last else None,
            }
        )
    return out


def _render(data: dict[str, Any], targets: list[dict[str, Any]], font: Path, path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(format=(148, 210))  # A5 in mm
    pdf.set_creation_date(_FIXED_DATE)
    pdf.set_producer("torchtune-ext synthetic invoices")
    pdf.set_auto_page_break(False)
    pdf.add_font("body", "", str(font))
    pdf.set_text_shaping(True)  # HarfBuzz: Arabic joined and right to left
    width = 148 - 2 * 10
    for k, target in enumerate(targets, start=1):
        pdf.add_page()
        pdf.set_font("body", size=15)
        pdf.cell(width, 9, "INVOICE", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("body", size=9)
        sender = data["sender"]
        for text in (
            sender["name"],
            sender["address"],
            f"Tax ID: {sender['tax_id']}" if sender["tax_id"] else "",
        ):
            pdf.cell(width, 5, text, align="R" if _is_arabic(text) else "L", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        for label, value in (
            ("Invoice no.", data["invoice_number"]),
            ("Date", data["date"]),
            ("Currency", data["currency"]),
        ):
            pdf.cell(30, 5, label)
            pdf.cell(width - 30, 5, value, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        columns = ((62, "Description", "L"), (18, "Qty", "R"), (24, "Unit price", "R"), (24, "Total", "R"))
        for w, head, align in columns:
            pdf.cell(w, 6, head, border="B", align=align)
        pdf.ln()
        for item in target["items"]:
            values = (
                item["description"],
                str(item["quantity"]),
                f"{item['unit_price']:.2f}",
                f"{item['total']:.2f}",
            )
            for (w, _, align), value in zip(columns, values, strict=True):
                pdf.cell(w, 6, value, align="R" if _is_arabic(value) else align)
            pdf.ln()
        pdf.ln(2)
        if target["total"] is not None:
            pdf.set_font("body", size=11)
            pdf.cell(104, 7, "Total", align="R")
            pdf.cell(24, 7, f"{target['total']:.2f}", align="R", new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("body", size=9)
        if target["notes"]:
            pdf.ln(3)
            pdf.cell(width, 5, target["notes"], align="R" if _is_arabic(target["notes"]) else "L")
        pdf.set_y(-14)
        pdf.cell(width, 5, f"Page {k} of {len(targets)}", align="C")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def _is_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def generate_extract(
    output_dir: str | Path,
    *,
    documents: int = 8,
    seed: int = 0,
    arabic_share: float = 0.5,
    font: Optional[str | Path] = None,
) -> Path:
    """Write synthetic invoices (layout in the module docstring).

    Args:
        output_dir (str | Path): output directory (created).
        documents (int): invoices to write.
        seed (int): dataset seed; the same seed gives byte-identical files.
        arabic_share (float): share of invoices with an Arabic sender, items and note.
        font (Optional[str | Path]): a TTF with Latin and Arabic glyphs (default: :func:`default_font`).

    Returns:
        Path: ``output_dir``.

    Raises:
        ValueError: if ``documents`` is negative or ``arabic_share`` is outside [0, 1].
        FileNotFoundError: if the font does not exist.
    """
    if documents < 0 or not 0 <= arabic_share <= 1:
        raise ValueError("documents must be >= 0 and arabic_share within [0, 1]")
    font_path = Path(font) if font is not None else default_font()
    if not font_path.is_file():
        raise FileNotFoundError(f"font not found: {font_path}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCHEMA_FILE, out / "schema.json")
    (out / "rules.json").write_text(json.dumps(RULES, indent=2) + "\n", encoding="utf-8")
    for i in range(documents):
        rng = random.Random(f"{seed}/invoice/{i}")
        data = invoice(rng, arabic=rng.random() < arabic_share)
        targets = page_targets(data)
        _render(data, targets, font_path, out / "pdfs" / f"invoice-{i:04d}.pdf")
        label = out / "labels" / f"invoice-{i:04d}.json"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(json.dumps(targets, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The generator's flags.

    Args:
        p (argparse.ArgumentParser): the subcommand's parser.
    """
    p.description = "Multi-page PDF invoices (some Arabic) with per-page labels, for the extract task."
    p.add_argument("--output-dir", type=Path, required=True, help="directory to write (created)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.add_argument("--documents", type=int, default=8, help="invoices to write (default: 8)")
    p.add_argument("--arabic-share", type=float, default=0.5, help="share of Arabic invoices (default: 0.5)")
    p.add_argument(
        "--font", type=Path, default=None, help="TTF with Latin and Arabic glyphs (default: DejaVu Sans)"
    )


def run(args: argparse.Namespace) -> int:
    """Write the invoices the parsed flags describe.

    Args:
        args (argparse.Namespace): from :func:`add_arguments`.

    Returns:
        int: exit status (0 ok, 2 bad input, with ``error: ...`` on stderr).
    """
    try:
        out = generate_extract(
            args.output_dir,
            documents=args.documents,
            seed=args.seed,
            arabic_share=args.arabic_share,
            font=args.font,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pages = sum(len(json.loads(p.read_text(encoding="utf-8"))) for p in (out / "labels").glob("*.json"))
    print(f"wrote {args.documents} invoices ({pages} pages) to {out / 'pdfs'}, labels to {out / 'labels'}")
    return 0
