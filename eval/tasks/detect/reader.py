"""Read a detection dataset: JSONL rows ``image``, ``boxes`` (list of ``[x1, y1, x2, y2]``),
optional ``box_format`` (``pixel`` | ``normalized`` | ``grid``; the reader's default
otherwise), optional ``width``/``height`` (read from the image header when a pixel row lacks
them). Boxes are relative to the image as displayed (EXIF orientation applied, see
:func:`eval.core.records.open_upright`) and are converted to the task's 0-1000 grid.

A pixel row whose image cannot be measured (not an image, or over the size limit of
:mod:`eval.core.images`) does not fail the read: its record carries the reason in
``image_error``, so the evaluator reports that row as an input error and the training builder
rejects or skips it, as for any other unusable image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.core.images import ImageError
from eval.core.records import (
    DatasetRowError,
    Loaded,
    image_path,
    read_jsonl,
    resolve_jsonl,
    row_id,
    upright_size,
)
from eval.tasks.detect import boxes as detect

__all__ = ["DetectRecord", "load_detect"]


@dataclass(frozen=True)
class DetectRecord:
    """One detection example (boxes already on the 0-1000 grid).

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        boxes (tuple[detect.Box, ...]): ground-truth grid boxes (may be empty; empty when
            ``image_error`` is set).
        image_error (Optional[str]): why the image cannot be used, when measuring it failed.
    """

    id: str
    image: Path
    boxes: tuple[detect.Box, ...]
    image_error: Optional[str] = None


def load_detect(
    path: str | Path,
    *,
    box_format: str = "pixel",
    skip_invalid: bool = False,
    limit: Optional[int] = None,
) -> Loaded[DetectRecord]:
    """Read a detection dataset and convert its boxes to the grid convention.

    Args:
        path (str | Path): a JSONL file or a directory holding ``data.jsonl``.
        box_format (str): format of rows without ``box_format``: ``pixel``, ``normalized``
            or ``grid``.
        skip_invalid (bool): skip bad rows instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        Loaded[DetectRecord]: records with grid boxes.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
        ValueError: on an unknown ``box_format``.
    """
    if box_format not in detect.BOX_FORMATS:
        raise ValueError(f"unknown box_format {box_format!r}; expected one of {detect.BOX_FORMATS}")
    source = resolve_jsonl(path)

    def parse(row: dict[str, Any], root: Path, where: str) -> DetectRecord:
        rid = row_id(row, where)
        image = image_path(row, root, where)
        fmt = row.get("box_format", box_format)
        if fmt not in detect.BOX_FORMATS:
            raise DatasetRowError(f"{where}: box_format {fmt!r} is not one of {detect.BOX_FORMATS}")
        boxes = row.get("boxes")
        if not isinstance(boxes, list):
            raise DatasetRowError(f"{where}: 'boxes' must be a list of [x1, y1, x2, y2]")
        width, height = row.get("width"), row.get("height")
        if fmt == "pixel" and boxes and not (isinstance(width, int) and isinstance(height, int)):
            try:
                width, height = upright_size(image)  # header only; no decode
            except ImageError as e:
                return DetectRecord(rid, image, (), image_error=str(e))
        grid = []
        for i, box in enumerate(boxes):
            try:
                grid.append(detect.to_grid(box, fmt, width, height))
            except detect.BoxError as e:
                raise DatasetRowError(f"{where}: box {i}: {e}") from e
        return DetectRecord(rid, image, tuple(grid))

    records, skipped = read_jsonl(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped)
