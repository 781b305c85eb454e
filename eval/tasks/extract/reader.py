"""Read an extraction dataset: JSONL rows ``image``, ``target``, ``doc_id``, ``page``.

Each row is one page::

    {"id": "3f2a9c1e4b7d0a11-p2", "image": "images/3f2a9c1e4b7d0a11-p2.png",
     "doc_id": "3f2a9c1e4b7d0a11...", "page": 2, "target": {"invoice_number": "INV-000123", ...}}

* ``image``: path relative to the JSONL file's directory (or absolute);
* ``target``: the gold object; it must validate against the task's schema (the error names the
  row and the first failing path). Pages without a target are read only where a tool asks for
  them (``require_target=False``, the teacher's input);
* ``doc_id``: the document the page belongs to (the data tools write the SHA-256 of the source
  file); default: the row's id. Splits never put pages of one ``doc_id`` in two splits;
* ``page``: 1-based page number in the document; default 1;
* ``id``: unique; default: the line number.

Other keys (e.g. ``source``) are kept in :attr:`ExtractRecord.extra` and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from eval.core.records import DatasetRowError, Loaded, image_path, read_jsonl, resolve_jsonl, row_id
from eval.tasks.extract.schema import ExtractSchema

__all__ = ["ExtractRecord", "load_extract", "parse_extract_row"]

_KNOWN = frozenset({"id", "image", "target", "doc_id", "page"})


@dataclass(frozen=True)
class ExtractRecord:
    """One page of an extraction dataset.

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        target (Optional[dict[str, Any]]): the gold object (None for an unlabelled page).
        doc_id (str): the document the page belongs to.
        page (int): 1-based page number in that document.
        extra (dict[str, Any]): the row's other keys, as read.
    """

    id: str
    image: Path
    target: Optional[dict[str, Any]]
    doc_id: str
    page: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def parse_extract_row(
    row: dict[str, Any], root: Path, where: str, schema: Optional[ExtractSchema], require_target: bool = True
) -> ExtractRecord:
    """Validate one row into a record.

    Args:
        row (dict[str, Any]): the decoded row.
        root (Path): the directory image paths are relative to.
        where (str): ``file:line`` for messages.
        schema (Optional[ExtractSchema]): targets are validated against it (None: not checked).
        require_target (bool): a row without ``target`` is an error.

    Returns:
        ExtractRecord: the record.

    Raises:
        DatasetRowError: naming ``file:line`` and the key at fault.
    """
    rid = row_id(row, where)
    image = image_path(row, root, where)
    target = row.get("target")
    if target is None:
        if require_target:
            raise DatasetRowError(f"{where}: 'target' is missing (the gold object of the page)")
    elif not isinstance(target, dict):
        raise DatasetRowError(f"{where}: 'target' must be a JSON object, got {type(target).__name__}")
    elif schema is not None:
        errors = schema.errors(target, limit=1)
        if errors:
            raise DatasetRowError(f"{where}: 'target' does not match the schema {schema.source}: {errors[0]}")
    doc_id = row.get("doc_id", rid)
    if not isinstance(doc_id, str) or not doc_id:
        raise DatasetRowError(f"{where}: 'doc_id' must be a non-empty string")
    page = row.get("page", 1)
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        raise DatasetRowError(f"{where}: 'page' must be an integer >= 1, got {page!r}")
    extra = {k: v for k, v in row.items() if k not in _KNOWN}
    return ExtractRecord(rid, image, target, doc_id, page, extra)


def load_extract(
    path: str | Path,
    schema: Optional[ExtractSchema],
    *,
    require_target: bool = True,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
) -> Loaded[ExtractRecord]:
    """Read an extraction dataset (layout in the module docstring).

    Args:
        path (str | Path): a JSONL file or a directory holding ``data.jsonl``.
        schema (Optional[ExtractSchema]): the task's schema (targets are validated against it).
        require_target (bool): rows must have a ``target``.
        skip_invalid (bool): skip bad rows (listed in ``skipped``) instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        Loaded[ExtractRecord]: the pages.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
        FileNotFoundError: if the dataset does not exist.
    """
    source = resolve_jsonl(path)

    def parse(row: dict[str, Any], root: Path, where: str) -> ExtractRecord:
        return parse_extract_row(row, root, where, schema, require_target)

    records, skipped = read_jsonl(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped)
