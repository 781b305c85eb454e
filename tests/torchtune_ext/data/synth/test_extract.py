"""Synthetic invoices: byte-identical for a seed, one label per PDF page, Arabic text, valid labels."""

import json
from pathlib import Path

import pypdfium2 as pdfium

from eval.tasks.extract import load_schema
from torchtune_ext.data.synth.__main__ import main as synth_main
from torchtune_ext.data.synth.extract import default_font, generate_extract


def test_invoices_are_deterministic_and_labelled_per_page(tmp_path: Path) -> None:
    a = generate_extract(tmp_path / "a", documents=5, seed=2)
    assert (
        synth_main(["extract", "--output-dir", str(tmp_path / "b"), "--documents", "5", "--seed", "2"]) == 0
    )
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    schema = load_schema(a / "schema.json")
    arabic = False
    for pdf in sorted((a / "pdfs").glob("*.pdf")):
        targets = json.loads((a / "labels" / f"{pdf.stem}.json").read_text(encoding="utf-8"))
        doc = pdfium.PdfDocument(str(pdf))
        assert len(doc) == len(targets)
        text = "".join(doc[k].get_textpage().get_text_range() for k in range(len(doc)))
        doc.close()
        assert targets[0]["invoice_number"] in text
        for k, target in enumerate(targets):
            assert schema.errors(target) == []
            assert (target["total"] is None) == (k < len(targets) - 1)  # the total is on the last page
        arabic |= any("\u0600" <= ch <= "\u06ff" for ch in json.dumps(targets, ensure_ascii=False))
    assert arabic
    assert default_font().is_file()


def test_multi_page_invoices_exist(tmp_path: Path) -> None:
    out = generate_extract(tmp_path, documents=6, seed=0)
    pages = [len(json.loads(p.read_text(encoding="utf-8"))) for p in (out / "labels").glob("*.json")]
    assert max(pages) >= 2
