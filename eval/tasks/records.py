"""Reading classification, detection and DocVQA datasets into validated records.

One reader per task, used by the torchtune dataset builders and the ``eval.<task>`` CLIs
alike, so both see the same rows and the same errors. No torch here.

On-disk layout (what ``python -m torchtune_ext.data.make_task_data`` and the importers write):
a JSONL file, one object per line, image paths relative to the JSONL file's directory. A
directory argument means ``DIR/data.jsonl``; for classification a directory without
``data.jsonl`` is read as a folder tree ``DIR/<label>/<image>``.

Row fields:

* classification: ``image``, ``label`` (``id`` optional);
* detection: ``image``, ``boxes`` (list of ``[x1, y1, x2, y2]``), optional ``box_format``
  (``pixel`` | ``normalized`` | ``grid``; the reader's default otherwise), optional
  ``width``/``height`` (read from the image header when a pixel row lacks them). Boxes are
  relative to the image as displayed (EXIF orientation applied, see :func:`open_upright`);
* DocVQA: ``image``, ``question``, ``answers`` (list of strings, or one string).

A bad row raises :class:`DatasetRowError` naming ``file:line``; with ``skip_invalid=True``
it is skipped and reported in :attr:`Loaded.skipped` instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Optional, TypeVar

from eval.tasks import detect
from eval.tasks.classify import LabelSet, load_labels

__all__ = [
    "DATA_FILE",
    "IMAGE_SUFFIXES",
    "DatasetRowError",
    "ClassifyRecord",
    "DetectRecord",
    "DocVQARecord",
    "Loaded",
    "LABELS_FILE",
    "find_labels_file",
    "iter_jsonl",
    "open_upright",
    "upright_size",
    "load_classify",
    "load_detect",
    "load_docvqa",
]

#: File name of the JSONL inside a dataset split directory.
DATA_FILE = "data.jsonl"
#: Name of the labels file the generators and importers write next to the splits.
LABELS_FILE = "labels.txt"
#: Image files a classification folder tree may hold.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})

R = TypeVar("R")


class DatasetRowError(ValueError):
    """A dataset row is invalid; the message starts with ``file:line:``."""


@dataclass(frozen=True)
class ClassifyRecord:
    """One classification example.

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        label (str): canonical label.
    """

    id: str
    image: Path
    label: str


@dataclass(frozen=True)
class DetectRecord:
    """One detection example (boxes already on the 0-1000 grid).

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        boxes (tuple[detect.Box, ...]): ground-truth grid boxes (may be empty).
    """

    id: str
    image: Path
    boxes: tuple[detect.Box, ...]


@dataclass(frozen=True)
class DocVQARecord:
    """One DocVQA question.

    Attributes:
        id (str): unique id within the dataset.
        image (Path): absolute image path.
        question (str): the question.
        answers (tuple[str, ...]): gold answers (at least one).
    """

    id: str
    image: Path
    question: str
    answers: tuple[str, ...]


@dataclass
class Loaded(Generic[R]):
    """Records read from a dataset plus what was skipped.

    Attributes:
        records (list[R]): valid records in file order.
        source (Path): the file or folder read.
        skipped (list[str]): one ``file:line: reason`` per skipped row.
        labels (Optional[LabelSet]): the label set (classification only).
    """

    records: list[R]
    source: Path
    skipped: list[str] = field(default_factory=list)
    labels: Optional[LabelSet] = None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)


def _resolve(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    return path


def find_labels_file(source: str | Path) -> Optional[Path]:
    """Find the labels file that belongs to a classification dataset.

    Looks for ``labels.txt`` in the dataset directory (the JSONL's directory for a file),
    then in its parent (the layout ``OUT/labels.txt`` + ``OUT/<split>/``).

    Args:
        source (str | Path): the dataset path given to :func:`load_classify`.

    Returns:
        Optional[Path]: the file, or None.
    """
    path = Path(source).expanduser()
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / LABELS_FILE, folder.parent / LABELS_FILE):
        if candidate.is_file():
            return candidate
    return None


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``("file:line", object)`` for each non-blank line of a JSONL file.

    Args:
        path (Path): the JSONL file.

    Yields:
        tuple[str, Any]: the location and the decoded object.

    Raises:
        DatasetRowError: on a line that is not valid JSON.
    """
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetRowError(f"{where}: not valid JSON ({e.msg})") from e


#: EXIF orientations that swap width and height (transposed or rotated by 90 degrees).
_SWAPS_AXES = frozenset({5, 6, 7, 8})


def open_upright(path: str | Path) -> Any:
    """Open an image as it is displayed: decoded, EXIF orientation applied, RGB.

    This is what ``datasets.Image`` decoding and the servers' image loaders show the model, so
    training, box conversion and overlays all use the same orientation.

    Args:
        path (str | Path): the image file.

    Returns:
        PIL.Image.Image: the upright RGB image.
    """
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im)
        return upright.convert("RGB")


def upright_size(path: str | Path) -> tuple[int, int]:
    """Width and height of an image as displayed (EXIF orientation applied), from its header.

    Args:
        path (str | Path): the image file.

    Returns:
        tuple[int, int]: ``(width, height)``.
    """
    from PIL import ExifTags, Image

    with Image.open(path) as im:
        width, height = im.size
        if im.getexif().get(ExifTags.Base.Orientation) in _SWAPS_AXES:
            return height, width
        return width, height


def _image(row: dict[str, Any], root: Path, where: str) -> Path:
    value = row.get("image")
    if not isinstance(value, str) or not value:
        raise DatasetRowError(f"{where}: 'image' must be a relative or absolute file path")
    path = (root / value).resolve()
    if not path.is_file():
        raise DatasetRowError(f"{where}: image not found: {path}")
    return path


def _row_id(row: dict[str, Any], where: str) -> str:
    value = row.get("id", where.rsplit(":", 1)[1])  # default: the line number
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise DatasetRowError(f"{where}: 'id' must be a string or integer")
    return str(value)


def _read(
    path: Path, parse: Any, skip_invalid: bool, limit: Optional[int] = None
) -> tuple[list[Any], list[str]]:
    records: list[Any] = []
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


def _labels_for(labels: LabelSet | str | Path | Sequence[str] | None, found: Sequence[str]) -> LabelSet:
    if isinstance(labels, LabelSet):
        return labels
    if isinstance(labels, (str, Path)):
        return load_labels(labels)
    if labels is not None:
        return LabelSet(tuple(labels))
    return LabelSet(tuple(sorted(set(found))))


def load_classify(
    path: str | Path,
    labels: LabelSet | str | Path | Sequence[str] | None = None,
    *,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
) -> Loaded[ClassifyRecord]:
    """Read a classification dataset (JSONL, or a ``label/image`` folder tree).

    Args:
        path (str | Path): a JSONL file, a directory holding ``data.jsonl``, or a folder tree.
        labels (LabelSet | str | Path | Sequence[str] | None): the label set or a labels file;
            None takes the sorted distinct labels (folder names) found.
        skip_invalid (bool): skip bad rows instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        Loaded[ClassifyRecord]: records with canonical labels, and the label set.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
        FileNotFoundError: if the dataset does not exist.
    """
    source = Path(path).expanduser()
    if source.is_dir() and not (source / DATA_FILE).exists():
        return _load_classify_tree(source, labels, skip_invalid, limit)
    source = _resolve(source)
    raw_labels: list[str] = []
    if labels is None:
        for _, row in iter_jsonl(source):
            if isinstance(row, dict) and isinstance(row.get("label"), str):
                raw_labels.append(row["label"])
    label_set = _labels_for(labels, raw_labels)

    def parse(row: dict[str, Any], root: Path, where: str) -> ClassifyRecord:
        raw = row.get("label")
        if not isinstance(raw, str):
            raise DatasetRowError(f"{where}: 'label' must be a string")
        label = label_set.canonical(raw)
        if label is None:
            raise DatasetRowError(f"{where}: label {raw!r} is not in the label set")
        return ClassifyRecord(_row_id(row, where), _image(row, root, where), label)

    records, skipped = _read(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped, label_set)


def _load_classify_tree(
    root: Path, labels: LabelSet | str | Path | Sequence[str] | None, skip_invalid: bool, limit: Optional[int]
) -> Loaded[ClassifyRecord]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise FileNotFoundError(f"{root}: neither {DATA_FILE} nor label folders")
    label_set = _labels_for(labels, [p.name for p in folders])
    records: list[ClassifyRecord] = []
    skipped: list[str] = []
    for folder in folders:
        label = label_set.canonical(folder.name)
        if label is None:
            message = f"{folder}: folder name {folder.name!r} is not in the label set"
            if not skip_invalid:
                raise DatasetRowError(message)
            skipped.append(message)
            continue
        for image in sorted(folder.iterdir()):
            if image.suffix.lower() in IMAGE_SUFFIXES and image.is_file():
                records.append(ClassifyRecord(f"{folder.name}/{image.name}", image.resolve(), label))
    if limit is not None:
        records = records[:limit]
    return Loaded(records, root, skipped, label_set)


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
    source = _resolve(path)

    def parse(row: dict[str, Any], root: Path, where: str) -> DetectRecord:
        rid = _row_id(row, where)
        image = _image(row, root, where)
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
            except OSError as e:
                raise DatasetRowError(f"{where}: image {image} is not readable ({e})") from e
        grid = []
        for i, box in enumerate(boxes):
            try:
                grid.append(detect.to_grid(box, fmt, width, height))
            except detect.BoxError as e:
                raise DatasetRowError(f"{where}: box {i}: {e}") from e
        return DetectRecord(rid, image, tuple(grid))

    records, skipped = _read(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped)


def load_docvqa(
    path: str | Path, *, skip_invalid: bool = False, limit: Optional[int] = None
) -> Loaded[DocVQARecord]:
    """Read a DocVQA dataset (``image``, ``question``, ``answers``).

    Args:
        path (str | Path): a JSONL file or a directory holding ``data.jsonl``.
        skip_invalid (bool): skip bad rows instead of raising.
        limit (Optional[int]): keep at most this many records.

    Returns:
        Loaded[DocVQARecord]: the questions.

    Raises:
        DatasetRowError: on a bad row (unless ``skip_invalid``).
    """
    source = _resolve(path)

    def parse(row: dict[str, Any], root: Path, where: str) -> DocVQARecord:
        rid = _row_id(row, where)
        image = _image(row, root, where)
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DatasetRowError(f"{where}: 'question' must be a non-empty string")
        answers = row.get("answers")
        if isinstance(answers, str):
            answers = [answers]
        if (
            not isinstance(answers, list)
            or not answers
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            raise DatasetRowError(f"{where}: 'answers' must be a non-empty list of non-empty strings")
        return DocVQARecord(rid, image, question.strip(), tuple(a.strip() for a in answers))

    records, skipped = _read(source, parse, skip_invalid, limit)
    return Loaded(records, source, skipped)
