"""``python -m torchtune_ext.data.documents.merge_review``: take the edited review queue back.

Usage::

    python -m torchtune_ext.data.documents.merge_review --pages PAGES --schema invoice.schema.json \\
        --rules rules.json

Edit ``PAGES/review.jsonl`` first: correct each row's ``target`` (the teacher's answer, or null),
or set ``"drop": true`` for a page that should not be used. Then every row is checked again,
against the schema and the rules, like a teacher's answer:

* valid rows move to ``PAGES/reviewed.jsonl`` (``"labelled_by": "review"``; ``reason`` and
  ``reply`` removed) and are used by ``split``;
* ``"drop": true`` rows move to ``PAGES/dropped.jsonl`` and are never asked or used again;
* the rest stay in ``review.jsonl`` with the new ``reason`` (``no target yet`` for a null target).

A row that is not valid JSON stops the merge with the line named, before anything changes.
Exit status 0 (also when rows remain; the count is printed), 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, write_jsonl
from eval.tasks.extract import load_schema
from eval.tasks.extract.schema import SchemaFileError
from torchtune_ext.data.documents.label import check_label
from torchtune_ext.data.documents.pages import (
    DROPPED_FILE,
    REVIEW_FILE,
    REVIEWED_FILE,
    append_jsonl,
    read_rows,
)
from torchtune_ext.data.documents.rules import RulesFileError, load_rules

__all__ = ["MergeReport", "main", "merge_review"]

_REVIEW_ONLY = ("reason", "reply", "drop")


@dataclass(frozen=True)
class MergeReport:
    """What a merge did.

    Attributes:
        accepted (int): rows moved to ``reviewed.jsonl``.
        dropped (int): rows moved to ``dropped.jsonl``.
        remaining (int): rows left in ``review.jsonl``.
    """

    accepted: int
    dropped: int
    remaining: int


def merge_review(pages: str | Path, schema: str | Path, rules: Optional[str | Path] = None) -> MergeReport:
    """Check the review queue again and move what is done (rules in the module docstring).

    Args:
        pages (str | Path): the pages directory.
        schema (str | Path): the schema file.
        rules (Optional[str | Path]): the rules file, if any.

    Returns:
        MergeReport: counts.

    Raises:
        DatasetRowError: if a row of ``review.jsonl`` is not a JSON object (names the line).
        SchemaFileError: if the schema is unusable.
        RulesFileError: if the rules are unusable.
    """
    pages = Path(pages)
    loaded = load_schema(schema)
    checks = load_rules(rules, loaded) if rules is not None else None
    reviewed: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    remaining: list[dict[str, Any]] = []
    for _, row in read_rows(pages / REVIEW_FILE):
        if row.get("drop") is True:
            dropped.append(row)
            continue
        target = row.get("target")
        reason = "no target yet" if target is None else check_label(loaded, checks, target)
        if reason is None:
            clean = {k: v for k, v in row.items() if k not in _REVIEW_ONLY}
            reviewed.append({**clean, "labelled_by": "review"})
        else:
            remaining.append({**row, "reason": reason})
    append_jsonl(pages / REVIEWED_FILE, reviewed)
    append_jsonl(pages / DROPPED_FILE, dropped)
    write_jsonl(pages / REVIEW_FILE, remaining)
    return MergeReport(len(reviewed), len(dropped), len(remaining))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Merge from the command line.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 ok, 2 bad input.
    """
    p = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.documents.merge_review",
        description="Check edited review.jsonl rows again; move valid ones to reviewed.jsonl.",
    )
    p.add_argument("--pages", type=Path, required=True, help="the pages directory")
    p.add_argument("--schema", type=Path, required=True, help="the JSON Schema file")
    p.add_argument("--rules", type=Path, default=None, help="the rules file the teacher was checked with")
    args = p.parse_args(argv)
    try:
        report = merge_review(args.pages, args.schema, args.rules)
    except (DatasetRowError, SchemaFileError, RulesFileError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{report.accepted} pages accepted ({args.pages / REVIEWED_FILE}), {report.dropped} dropped, "
        f"{report.remaining} still in {args.pages / REVIEW_FILE}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
