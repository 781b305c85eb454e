"""Synthetic business documents with question/answer pairs, for the DocVQA task.

Each page is an invoice, purchase order or receipt with a title and labelled fields
(company, number, date, contact, phone, total) placed at varying positions; each page yields
``questions_per_page`` questions about its fields. Gold answers are the text as printed, plus
a common variant for amounts and phone numbers (DocVQA also lists several accepted answers).
Output layout (read by ``eval.tasks.docvqa.reader.load_docvqa``)::

    OUT/<split>/images/<nnnnn>.png
    OUT/<split>/data.jsonl   {"id", "image", "question", "answers": [...]}
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

from eval.core.records import write_jsonl
from torchtune_ext.data.synth import add_split_arguments, write_splits
from torchtune_ext.data.synth.drawing import font, split_seed

__all__ = ["generate_docvqa"]

_COMPANIES = (
    "Northwind Traders",
    "Blue Harbor Ltd",
    "Quantum Paper Co",
    "Redwood Supplies",
    "Atlas Foods",
    "Silverline Tools",
    "Maple & Pine",
    "Orion Logistics",
)
_PEOPLE = (
    "Ada Moreno",
    "Ben Okafor",
    "Chloe Tan",
    "Dmitri Ivanov",
    "Elena Rossi",
    "Farid Haddad",
    "Grace Liu",
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_DOCS = {"INVOICE": "invoice number", "PURCHASE ORDER": "order number", "RECEIPT": "receipt number"}


def _fields(rng: random.Random, doc: str) -> dict[str, tuple[str, str, list[str]]]:
    """key -> (printed label, printed value, accepted answers)."""
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1995, 2024)
    date = rng.choice(
        (
            f"{_MONTHS[month - 1]} {day}, {year}",
            f"{day:02d}/{month:02d}/{year}",
            f"{year}-{month:02d}-{day:02d}",
        )
    )
    total = f"{rng.randint(10, 99999) / 100 * rng.choice((1, 10, 100)):,.2f}"
    phone = f"{rng.randint(200, 989)}-{rng.randint(200, 989)}-{rng.randint(1000, 9999)}"
    number = f"{doc[:2]}-{rng.randint(10000, 99999)}"
    company = rng.choice(_COMPANIES)
    return {
        "company": ("From:", company, [company]),
        "number": ("No.:", number, [number]),
        "date": ("Date:", date, [date]),
        "contact": ("Contact:", (person := rng.choice(_PEOPLE)), [person]),
        "phone": ("Phone:", phone, [phone, phone.replace("-", " ")]),
        "total": ("Total:", f"${total}", [f"${total}", total]),
    }


def _questions(doc: str) -> dict[str, str]:
    return {
        "company": "Which company issued this document?",
        "number": f"What is the {_DOCS[doc]}?",
        "date": "What is the date on the document?",
        "contact": "Who is the contact person?",
        "phone": "What is the phone number?",
        "total": "What is the total amount?",
    }


def _page(rng: random.Random, width: int, height: int) -> tuple[Image.Image, str, dict]:
    doc = rng.choice(tuple(_DOCS))
    fields = _fields(rng, doc)
    shade = rng.randint(240, 255)
    img = Image.new("RGB", (width, height), (shade, shade, shade - rng.randint(0, 10)))
    draw = ImageDraw.Draw(img)
    title = font(width // 12)
    draw.text((rng.randint(10, width // 4), rng.randint(8, height // 16)), doc, fill=(0, 0, 0), font=title)
    body = font(max(10, width // 26))
    line_h = body.size * 1.6
    y = height * rng.uniform(0.14, 0.2)
    x_label = rng.randint(10, width // 8)
    x_value = x_label + int(width * rng.uniform(0.22, 0.3))
    order = list(fields)
    rng.shuffle(order)
    for key in order:
        label, value, _ = fields[key]
        draw.text((x_label, y), label, fill=(60, 60, 60), font=body)
        draw.text((x_value, y), value, fill=(0, 0, 0), font=body)
        y += line_h * rng.uniform(1.0, 1.5)
    y += line_h / 2
    draw.line((x_label, y, width - x_label, y), fill=(0, 0, 0), width=1)
    for _ in range(rng.randint(2, 4)):  # filler item lines
        y += line_h
        if y > height - line_h:
            break
        item = f"Item {rng.randint(100, 999)}  x{rng.randint(1, 9)}"
        draw.text((x_label, y), item, fill=(40, 40, 40), font=body)
    return img, doc, fields


def generate_docvqa(
    output_dir: str | Path,
    *,
    train: int = 24,
    test: int = 8,
    seed: int = 0,
    questions_per_page: int = 2,
    width: int = 384,
    height: int = 512,
) -> Path:
    """Write a synthetic DocVQA dataset (layout in the module docstring).

    Args:
        output_dir (str | Path): output directory (created).
        train (int): pages in ``train`` (each gives ``questions_per_page`` rows).
        test (int): pages in ``test``.
        seed (int): dataset seed; the same seed gives byte-identical files.
        questions_per_page (int): questions per page, 1 to 6.
        width (int): page width in pixels.
        height (int): page height in pixels.

    Returns:
        Path: ``output_dir``.

    Raises:
        ValueError: if ``questions_per_page`` is out of range.
    """
    if not 1 <= questions_per_page <= 6:
        raise ValueError(f"questions_per_page must be in [1, 6], got {questions_per_page}")
    out = Path(output_dir)
    for split, count in (("train", train), ("test", test)):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            rng = split_seed(seed, split, i)
            img, doc, fields = _page(rng, width, height)
            rel = f"images/{i:05d}.png"
            img.save(out / split / rel)
            questions = _questions(doc)
            for k, key in enumerate(rng.sample(sorted(fields), questions_per_page)):
                rows.append(
                    {
                        "id": f"{split}-{i:05d}-{k}",
                        "image": rel,
                        "question": questions[key],
                        "answers": fields[key][2],
                    }
                )
        write_jsonl(out / split / "data.jsonl", rows)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The generator's flags.

    Args:
        p (argparse.ArgumentParser): the subcommand's parser.
    """
    p.description = "Document pages with question/answer pairs, for the DocVQA task."
    add_split_arguments(p, train=24, test=8)
    p.add_argument("--questions-per-page", type=int, default=2, help="questions per page, 1-6 (default: 2)")


def run(args: argparse.Namespace) -> int:
    """Write the dataset the parsed flags describe.

    Args:
        args (argparse.Namespace): from :func:`add_arguments`.

    Returns:
        int: exit status (0 ok, 2 bad input, with ``error: ...`` on stderr).
    """
    return write_splits(args, generate_docvqa, questions_per_page=args.questions_per_page)
