"""The pages directory every document tool reads and writes, and the files in it.

A pages directory (``ingest``'s ``--output-dir``) is an extract dataset whose pages may lack a
``target``::

    PAGES/data.jsonl      every page: {"id", "image", "doc_id", "page", "source", ["target"]}
    PAGES/images/         the page images, named after the page id
    PAGES/labels.jsonl    pages the teacher labelled and the checks accepted
    PAGES/review.jsonl    pages to check by hand: the teacher's answer as "target", and "reason"
    PAGES/reviewed.jsonl  pages accepted from review.jsonl by merge_review
    PAGES/dropped.jsonl   pages removed from review.jsonl by merge_review ("drop": true)
    PAGES/teacher/        the teacher's resumable request log (predictions.jsonl, run.json)

Every row of every file has the shape of ``data.jsonl`` (images relative to ``PAGES``), so each
file is itself readable by :func:`eval.tasks.extract.load_extract`. A page's id is
``<first 16 hex digits of doc_id>-p<page>``; ``doc_id`` is the SHA-256 of the source file's bytes
(or the image's, for a page that came without a document).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eval.core.records import DatasetRowError, iter_jsonl
from eval.tasks.extract.reader import ExtractRecord

__all__ = [
    "DATA_FILE",
    "DROPPED_FILE",
    "LABELS_FILE",
    "REVIEWED_FILE",
    "REVIEW_FILE",
    "TEACHER_DIR",
    "append_jsonl",
    "copy_file",
    "file_sha256",
    "page_id",
    "read_rows",
    "record_row",
]

DATA_FILE = "data.jsonl"
LABELS_FILE = "labels.jsonl"
REVIEW_FILE = "review.jsonl"
REVIEWED_FILE = "reviewed.jsonl"
DROPPED_FILE = "dropped.jsonl"
TEACHER_DIR = "teacher"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (a document's ``doc_id``).

    Args:
        path (str | Path): the file.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def page_id(doc_id: str, page: int) -> str:
    """The id of page ``page`` of document ``doc_id``.

    Args:
        doc_id (str): the document's id.
        page (int): 1-based page number.

    Returns:
        str: ``<first 16 characters of doc_id>-p<page>``.
    """
    return f"{doc_id[:16]}-p{page}"


def read_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The rows of a JSONL file, with their ``file:line`` (none if the file does not exist).

    Args:
        path (Path): the file.

    Returns:
        list[tuple[str, dict[str, Any]]]: ``(file:line, row)`` in file order.

    Raises:
        DatasetRowError: for a line that is not a JSON object (names ``file:line``).
    """
    if not path.is_file():
        return []
    rows = []
    for where, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise DatasetRowError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rows.append((where, row))
    return rows


def record_row(record: ExtractRecord, root: Path, target: Any = None) -> dict[str, Any]:
    """A record as a row of a pages file (image relative to ``root``).

    Args:
        record (ExtractRecord): the page.
        root (Path): the directory the row's file lives in.
        target (Any): the target to write (default: the record's).

    Returns:
        dict[str, Any]: ``id``, ``image``, ``doc_id``, ``page``, the record's other keys, ``target``.
    """
    row: dict[str, Any] = {
        "id": record.id,
        "image": os.path.relpath(record.image, root.resolve()),
        "doc_id": record.doc_id,
        "page": record.page,
        **record.extra,
    }
    value = record.target if target is None else target
    if value is not None:
        row["target"] = value
    return row


def _dumps(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def append_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Append rows to a JSONL file (UTF-8, non-ASCII kept), flushed to the OS.

    Args:
        path (Path): the file (created with its parents).
        rows (Iterable[Mapping[str, Any]]): the rows.

    Returns:
        int: rows written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(_dumps(row))
            n += 1
    return n


def copy_file(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` when possible (same file system), else copy it.

    Args:
        src (Path): the existing file.
        dest (Path): the new path (parents created; an existing file is replaced).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
