"""JSONL record files, the layout every task but W-2 reads: one JSON object per line.

Image paths are relative to the JSONL file's directory; a directory argument means
``DIR/data.jsonl``. Each task's reader (``eval/tasks/<task>/reader.py``) parses its own row
fields with :func:`read_jsonl`, so the torchtune dataset builders and the evaluators see the
same rows and the same errors. No torch here.

A bad row raises :class:`DatasetRowError` naming ``file:line``; with ``skip_invalid=True``
it is skipped and reported in :attr:`Loaded.skipped` instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

__all__ = [
    "DATA_FILE",
    "IMAGE_SUFFIXES",
    "DatasetRowError",
    "Loaded",
    "decode_utf8",
    "image_path",
    "iter_jsonl",
    "open_upright",
    "read_jsonl",
    "resolve_jsonl",
    "row_id",
    "write_jsonl",
    "upright_size",
]

#: File name of the JSONL inside a dataset split directory.
DATA_FILE = "data.jsonl"
#: Image files a folder tree may hold.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})

R = TypeVar("R")


class DatasetRowError(ValueError):
    """A dataset row is invalid; the message starts with ``file:line:``."""


@dataclass
class Loaded(Generic[R]):
    """Records read from a dataset plus what was skipped.

    Attributes:
        records (list[R]): valid records in file order.
        source (Path): the file or folder read.
        skipped (list[str]): one ``file:line: reason`` per skipped row.
        labels (Optional[Any]): the label set (classification only).
    """

    records: list[R]
    source: Path
    skipped: list[str] = field(default_factory=list)
    labels: Optional[Any] = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)


def resolve_jsonl(path: str | Path) -> Path:
    """The JSONL file a dataset argument names (a directory means ``DIR/data.jsonl``).

    Args:
        path (str | Path): a JSONL file or a directory.

    Returns:
        Path: the file.

    Raises:
        FileNotFoundError: if it does not exist.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return path


def decode_utf8(data: bytes, path: Path, first_line: int = 1) -> str:
    """Decode UTF-8 text read from ``path``, or name the line and the byte that is not UTF-8.

    A leading byte-order mark is dropped.

    Args:
        data (bytes): the bytes (a whole file, or one line of it).
        path (Path): the file, for the message.
        first_line (int): the line number ``data`` starts at.

    Returns:
        str: the text.

    Raises:
        DatasetRowError: ``"FILE:LINE: not UTF-8 text (byte 0xff at column N)"``.
    """
    try:
        return data.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as e:
        bom = 3 if first_line == 1 and data.startswith(b"\xef\xbb\xbf") else 0
        start = e.start + bom
        line = first_line + data.count(b"\n", 0, start)
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise DatasetRowError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[start]:02x} at column {column})"
        ) from None


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``("file:line", object)`` for each non-blank line of a JSONL file.

    Args:
        path (Path): the JSONL file (UTF-8; a byte-order mark is allowed).

    Yields:
        tuple[str, Any]: the location and the decoded object.

    Raises:
        DatasetRowError: on a line that is not UTF-8 or not valid JSON.
    """
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = decode_utf8(raw, path, lineno)
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetRowError(f"{where}: not valid JSON ({e.msg})") from e


#: EXIF orientations that swap width and height (transposed or rotated by 90 degrees).
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def open_upright(source: bytes | str | Path) -> Any:
    """Open an image as it is displayed: decoded, EXIF orientation applied, RGB by the colour rule.

    This is what ``datasets.Image`` decoding and the servers' image loaders show the model, so
    training, box conversion and overlays all use the same orientation; transparency is
    composited on white (:func:`eval.core.images.to_rgb`), as the servers' image processors do.

    Args:
        source (bytes | str | Path): the image file, or its encoded bytes.

    Returns:
        PIL.Image.Image: the upright RGB image.

    Raises:
        eval.core.images.ImageError: if the image is not usable (too large, does not decode).
    """
    from PIL import ImageOps

    from eval.core.images import decode_image, to_rgb

    with decode_image(source if isinstance(source, (bytes, bytearray)) else Path(source)) as im:
        return to_rgb(ImageOps.exif_transpose(im))


def upright_size(path: str | Path) -> tuple[int, int]:
    """Width and height of an image as displayed (EXIF orientation applied), from its header.

    Args:
        path (str | Path): the image file.

    Returns:
        tuple[int, int]: ``(width, height)``.

    Raises:
        eval.core.images.ImageError: if the file is not an image or is over the size limit.
    """
    from PIL import ExifTags

    from eval.core.images import open_image

    with open_image(Path(path)) as im:
        width, height = im.size
        if im.getexif().get(ExifTags.Base.Orientation) in _SWAPS_AXES:
            return height, width
        return width, height


def image_path(row: dict[str, Any], root: Path, where: str) -> Path:
    """The row's ``image`` path, resolved against ``root``; it must exist.

    Args:
        row (dict[str, Any]): the row.
        root (Path): the JSONL file's directory.
        where (str): ``file:line`` for messages.

    Returns:
        Path: the absolute image path.

    Raises:
        DatasetRowError: if ``image`` is missing or the file does not exist.
    """
    value = row.get("image")
    if not isinstance(value, str) or not value:
        raise DatasetRowError(f"{where}: 'image' must be a relative or absolute file path")
    path = (root / value).resolve()
    if not path.is_file():
        raise DatasetRowError(f"{where}: image not found: {path}")
    return path


def row_id(row: dict[str, Any], where: str) -> str:
    """The row's ``id`` (default: its line number) as a string.

    Args:
        row (dict[str, Any]): the row.
        where (str): ``file:line``.

    Returns:
        str: the id.

    Raises:
        DatasetRowError: if ``id`` is not a string or integer.
    """
    value = row.get("id", where.rsplit(":", 1)[1])  # default: the line number
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise DatasetRowError(f"{where}: 'id' must be a string or integer")
    return str(value)


def read_jsonl(
    path: Path,
    parse: Callable[[dict[str, Any], Path, str], R],
    skip_invalid: bool = False,
    limit: Optional[int] = None,
) -> tuple[list[R], list[str]]:
    """Parse every row of a JSONL file into a record; ids must be unique.

    Args:
        path (Path): the JSONL file.
        parse (Callable[[dict[str, Any], Path, str], R]): ``(row, root, where) -> record``;
            raises :class:`DatasetRowError` for a bad row. Records need an ``id``.
        skip_invalid (bool): skip bad rows (their messages are returned) instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        tuple[list[R], list[str]]: the records, and one ``file:line: reason`` per skipped row.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
    """
    records: list[R] = []
    skipped: list[str] = []
    seen: set[str] = set()
    root = path.parent
    for where, row in iter_jsonl(path):
        if limit is not None and len(records) >= limit:
            break
        try:
            if not isinstance(row, dict):
                raise DatasetRowError(f"{where}: expected a JSON object, got {type(row).__name__}")
            record = parse(row, root, where)
            if record.id in seen:
                raise DatasetRowError(f"{where}: duplicate id {record.id!r}")
            seen.add(record.id)
            records.append(record)
        except DatasetRowError as e:
            if not skip_invalid:
                raise
            skipped.append(str(e))
    return records, skipped


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as a JSONL file (UTF-8, non-ASCII kept) in one step: a temporary file renamed over it.

    Args:
        path (str | Path): the file (parents created).
        rows (Iterable[Mapping[str, Any]]): the rows.

    Returns:
        int: number of rows written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
