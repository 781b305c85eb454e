"""Read a classification dataset: JSONL rows ``image``, ``label`` (``id`` optional), or a
folder tree ``DIR/<label>/<image>`` (a directory without ``data.jsonl``).

Labels are canonicalised with the label set (:mod:`eval.tasks.classify.labels`); a row whose
label is not in the set is invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.core.records import (
    DATA_FILE,
    IMAGE_SUFFIXES,
    DatasetRowError,
    Loaded,
    image_path,
    iter_jsonl,
    read_jsonl,
    resolve_jsonl,
    row_id,
)
from eval.tasks.classify.labels import LabelSet, load_labels

__all__ = ["LABELS_FILE", "ClassifyRecord", "find_labels_file", "load_classify"]


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


#: Name of the labels file the generators and importers write next to the splits.
LABELS_FILE = "labels.txt"


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
    source = resolve_jsonl(source)
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
        return ClassifyRecord(row_id(row, where), image_path(row, root, where), label)

    records, skipped = read_jsonl(source, parse, skip_invalid, limit)
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
