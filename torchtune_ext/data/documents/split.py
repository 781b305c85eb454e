"""``python -m torchtune_ext.data.documents.split``: labelled pages -> train / validation / test, by document.

Usage::

    python -m torchtune_ext.data.documents.split --pages PAGES --schema invoice.schema.json \\
        --output-dir data/invoices --test 0.2 --validation 0.1 --seed 0

Which split a document goes to depends only on the seed and its ``doc_id``: the first 8 bytes
of ``sha256("<seed>:<doc_id>")`` read as a number in [0, 1) go to ``test`` below ``--test``, to
``validation`` below ``--test + --validation``, else to ``train``. So all pages of a document
land in the same split, the split is the same on every machine, and adding documents later
moves none of the documents already there (each is placed by its own hash). The shares are
met on average, not exactly, for few documents.

Labelled pages are those of ``PAGES/data.jsonl`` with a ``target``, ``labels.jsonl`` (the
teacher's, accepted) and ``reviewed.jsonl`` (from the review queue); a later file wins for the
same page. Pages still in ``review.jsonl``, unlabelled pages and targets that do not match the
schema are left out and counted (the latter named on one line each). Written::

    OUT/<split>/data.jsonl + OUT/<split>/images/   (the extract dataset layout)
    OUT/schema.json                                (a copy of --schema: what the splits were checked with)
    OUT/split.json                                 (seed, shares, pages and documents per split)

Splitting an existing ``OUT`` again with another seed or other shares is refused (it would move
documents between train and test) unless ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, write_jsonl
from eval.tasks.extract import ExtractSchema, load_schema, parse_extract_row
from eval.tasks.extract.schema import SchemaFileError
from torchtune_ext.data.documents.pages import (
    DATA_FILE,
    LABELS_FILE,
    REVIEW_FILE,
    REVIEWED_FILE,
    copy_file,
    read_rows,
    record_row,
)

__all__ = ["SPLITS", "SplitReport", "assign_split", "main", "split_documents"]

#: Split names, in the order their shares are laid on [0, 1).
SPLITS = ("test", "validation", "train")
SPLIT_FILE = "split.json"


@dataclass
class SplitReport:
    """What a split run wrote.

    Attributes:
        pages (dict[str, int]): pages per split.
        documents (dict[str, int]): documents per split.
        unlabelled (int): pages without a label.
        in_review (int): pages waiting in ``review.jsonl``.
        invalid (list[str]): one line per target that does not match the schema.
    """

    pages: dict[str, int] = field(default_factory=dict)
    documents: dict[str, int] = field(default_factory=dict)
    unlabelled: int = 0
    in_review: int = 0
    invalid: list[str] = field(default_factory=list)


def assign_split(doc_id: str, seed: int, test: float, validation: float) -> str:
    """The split of a document (rule in the module docstring).

    Args:
        doc_id (str): the document's id.
        seed (int): the split seed.
        test (float): share of documents in ``test``.
        validation (float): share of documents in ``validation``.

    Returns:
        str: ``train``, ``validation`` or ``test``.
    """
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return "test"
    if u < test + validation:
        return "validation"
    return "train"


def _labelled(pages: Path, schema: ExtractSchema, report: SplitReport) -> dict[str, Any]:
    """Page id -> record with its label, the later file winning; counts what is left out."""
    records: dict[str, Any] = {}
    unlabelled: set[str] = set()
    for name in (DATA_FILE, LABELS_FILE, REVIEWED_FILE):
        for where, row in read_rows(pages / name):
            try:
                record = parse_extract_row(row, pages, where, schema, require_target=False)
            except DatasetRowError as exc:
                report.invalid.append(str(exc))
                records.pop(str(row.get("id")), None)
                continue
            if record.target is None:
                unlabelled.add(record.id)
            else:
                records[record.id] = record
                unlabelled.discard(record.id)
    in_review = {str(row.get("id")) for _, row in read_rows(pages / REVIEW_FILE)}
    report.in_review = len(in_review - set(records))
    report.unlabelled = len(unlabelled - set(records) - in_review)
    return records


def split_documents(
    pages: str | Path,
    schema: str | Path,
    output_dir: str | Path,
    *,
    test: float = 0.2,
    validation: float = 0.0,
    seed: int = 0,
    force: bool = False,
) -> SplitReport:
    """Split the labelled pages of a pages directory by document (rules in the module docstring).

    Args:
        pages (str | Path): the pages directory.
        schema (str | Path): the schema file (targets are checked; copied to the output).
        output_dir (str | Path): the dataset directory to write.
        test (float): share of documents in ``test``.
        validation (float): share of documents in ``validation``.
        seed (int): the split seed.
        force (bool): re-split an output that was split with another seed or shares.

    Returns:
        SplitReport: counts per split and what was left out.

    Raises:
        ValueError: for shares outside [0, 1] (or summing above 1), or a refused re-split.
        SchemaFileError: if the schema file is unusable.
    """
    if not (0 <= test <= 1 and 0 <= validation <= 1 and test + validation <= 1):
        raise ValueError("--test and --validation must be within [0, 1] and sum to at most 1")
    pages, out = Path(pages), Path(output_dir)
    if not (pages / DATA_FILE).is_file():
        raise ValueError(f"{pages}: not a pages directory (no {DATA_FILE}; run ingest first)")
    settings = {"seed": seed, "test": test, "validation": validation}
    previous = out / SPLIT_FILE
    if previous.is_file() and not force:
        before = json.loads(previous.read_text(encoding="utf-8")).get("settings")
        if before != settings:
            raise ValueError(
                f"{out} was split with {before}; splitting it with {settings} would move documents between "
                "splits (test pages into training): use another --output-dir, or --force"
            )
    loaded = load_schema(schema)
    report = SplitReport()
    records = _labelled(pages, loaded, report)
    by_split: dict[str, list[Any]] = {name: [] for name in SPLITS}
    shares = {"test": test, "validation": validation, "train": 1 - test - validation}
    for record in records.values():
        by_split[assign_split(record.doc_id, seed, test, validation)].append(record)
    for name, chosen in by_split.items():
        root = out / name
        if root.is_dir():
            shutil.rmtree(root / "images", ignore_errors=True)
        rows = []
        for record in sorted(chosen, key=lambda r: (r.doc_id, r.page)):
            dest = root / "images" / f"{record.id}{record.image.suffix.lower()}"
            copy_file(record.image, dest)
            rows.append({**record_row(record, root), "image": f"images/{dest.name}"})
        if rows or root.is_dir() or shares[name] > 0:  # an empty split with a share still gets its file
            write_jsonl(root / DATA_FILE, rows)
        report.pages[name] = len(rows)
        report.documents[name] = len({r.doc_id for r in chosen})
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(loaded.source, out / "schema.json")
    summary = {"settings": settings, "pages": report.pages, "documents": report.documents}
    previous.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return report


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Split from the command line.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 ok, 1 when some targets did not match the schema, 2 for bad input.
    """
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.documents.split",
        description="Split labelled pages into train/validation/test by document (stable, seeded).",
    )
    p.add_argument("--pages", type=Path, required=True, help="the pages directory (ingest's output)")
    p.add_argument("--schema", type=Path, required=True, help="the JSON Schema file (targets are checked)")
    p.add_argument("--output-dir", type=Path, required=True, help="dataset directory to write")
    p.add_argument("--test", type=float, default=0.2, help="share of documents in test (default: 0.2)")
    p.add_argument(
        "--validation", type=float, default=0.0, help="share of documents in validation (default: 0)"
    )
    p.add_argument("--seed", type=int, default=0, help="split seed (default: 0)")
    p.add_argument("--force", action="store_true", help="re-split an output made with another seed or shares")
    args = p.parse_args(argv)
    try:
        report = split_documents(
            args.pages,
            args.schema,
            args.output_dir,
            test=args.test,
            validation=args.validation,
            seed=args.seed,
            force=args.force,
        )
    except (ValueError, SchemaFileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.invalid:
        print(f"left out: {line}", file=sys.stderr)
    shown = ", ".join(
        f"{name} {report.pages[name]} pages / {report.documents[name]} documents" for name in SPLITS
    )
    print(f"wrote {args.output_dir}: {shown}")
    if report.in_review or report.unlabelled:
        print(
            f"not included: {report.in_review} pages in {REVIEW_FILE}, {report.unlabelled} unlabelled pages"
        )
    return 1 if report.invalid else 0


if __name__ == "__main__":
    sys.exit(main())
