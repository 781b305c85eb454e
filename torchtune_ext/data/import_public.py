"""Import the public datasets of the reference recipes into the task layouts, from local copies.

Nothing is downloaded unless ``--source`` is a hub name already in the Hugging Face cache
(``datasets.load_dataset`` then reads the cache; set ``HF_HUB_OFFLINE=1`` to be sure).
``--source`` may be a ``save_to_disk`` directory, a directory of parquet files as cloned from
the hub (``data/<split>-*.parquet`` or ``<config>/<split>/*.parquet``), or a hub name.

Layouts read:

* ``stanford-cars`` (HF ``Paulescu/stanford_cars``): ``image`` plus a label column (default
  ``label``; a ``ClassLabel`` integer is turned into its name; ``--label-column maker`` gives
  the car-maker task of the LFM2-VL recipe). Written as the classification folder tree +
  ``data.jsonl`` + ``labels.txt``.
* ``openfoodfacts`` (HF ``openfoodfacts/nutrition-table-detection``): ``image_id``, ``image``,
  ``width``, ``height``, ``objects`` = {``bbox``: list of ``[y_min, x_min, y_max, x_max]``
  normalised to [0, 1], ``category_name``}. Written as detection JSONL with
  ``box_format: normalized`` and ``[x_min, y_min, x_max, y_max]`` boxes.
* ``docvqa`` (HF ``nielsr/docvqa_1200_examples``): ``id``, ``image``, ``query`` (a struct of
  languages, or a string), ``answers`` (list of strings). Written as DocVQA JSONL.

Image bytes are copied as stored (no re-encoding). Usage::

    python -m torchtune_ext.data.import_public stanford-cars --source ~/stanford_cars \\
        --output-dir data/cars --label-column maker
    python -m torchtune_ext.data.import_public openfoodfacts --source ~/nutrition-table-detection \\
        --output-dir data/off --splits train val
    python -m torchtune_ext.data.import_public docvqa --source ~/docvqa_1200_examples --output-dir data/docvqa
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from eval.core.records import write_jsonl

__all__ = [
    "PublicImportError",
    "load_split",
    "import_stanford_cars",
    "import_openfoodfacts",
    "import_docvqa",
    "main",
]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class PublicImportError(ValueError):
    """The source does not have the expected layout; the message names the split/row/column."""


def _safe(name: str) -> str:
    return _SAFE.sub("_", name).strip("._") or "x"


def load_split(source: str | Path, split: str) -> Any:
    """Load one split of a local copy (or cached hub dataset) as a ``datasets.Dataset``.

    Args:
        source (str | Path): a ``save_to_disk`` directory, a directory of parquet files, or a
            hub name.
        split (str): split name.

    Returns:
        datasets.Dataset: the split.

    Raises:
        PublicImportError: if the split cannot be found.
    """
    import datasets

    path = Path(source).expanduser()
    if not path.exists():
        text = str(source)
        if text.startswith(("/", ".", "~")) or text.count("/") != 1:
            raise PublicImportError(f"{source}: no such directory (and not an owner/name hub id)")
        try:
            return datasets.load_dataset(str(source), split=split)
        except Exception as e:  # noqa: BLE001 - surface any loader failure as one line
            raise PublicImportError(f"{source}: not a local path, nor in the HF cache ({e})") from e
    if (path / "dataset_dict.json").exists():
        dd = datasets.load_from_disk(str(path))
        if split not in dd:
            raise PublicImportError(f"{path}: no split {split!r} (has {sorted(dd)})")
        return dd[split]
    if (path / "state.json").exists():
        return datasets.load_from_disk(str(path))
    files = sorted(
        str(p)
        for p in path.rglob("*.parquet")
        if p.name.startswith(f"{split}-") or p.name.startswith(f"{split}.") or p.parent.name == split
    )
    if not files:
        raise PublicImportError(f"{path}: no parquet files for split {split!r} (expected {split}-*.parquet)")
    return datasets.load_dataset("parquet", data_files=files, split="train")


def _require(ds: Any, split: str, columns: Sequence[str]) -> None:
    for col in columns:
        if col not in ds.column_names:
            raise PublicImportError(f"split {split!r}: no column {col!r} (columns: {ds.column_names})")


def _raw_images(ds: Any) -> Any:
    import datasets

    if "image" not in ds.column_names:
        raise PublicImportError(f"no 'image' column (columns: {ds.column_names})")
    return ds.cast_column("image", datasets.Image(decode=False))


def _save_image(value: Any, dest_stem: Path, where: str) -> Path:
    """Write an undecoded HF image value ({bytes, path}) keeping its encoding."""
    data = value.get("bytes") if isinstance(value, dict) else None
    if data is None and isinstance(value, dict) and value.get("path"):
        data = Path(value["path"]).read_bytes()
    if not data:
        raise PublicImportError(f"{where}: image has neither bytes nor a readable path")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "PNG").lower()
    except Exception as e:  # noqa: BLE001 - PIL raises several types for bad data
        raise PublicImportError(f"{where}: image bytes are not a readable image ({e})") from e
    dest = dest_stem.with_suffix("." + {"jpeg": "jpg"}.get(fmt, fmt))
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return dest


def _each(
    source: str | Path, splits: Sequence[str], limit: Optional[int], fn: Callable[[str, Any], None]
) -> None:
    for split in splits:
        ds = _raw_images(load_split(source, split))
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        fn(split, ds)


def import_stanford_cars(
    source: str | Path,
    output_dir: str | Path,
    *,
    splits: Sequence[str] = ("train", "test"),
    label_column: str = "label",
    limit: Optional[int] = None,
) -> Path:
    """Import a Stanford-Cars-style classification dataset (image + label column).

    Args:
        source (str | Path): local copy or cached hub name.
        output_dir (str | Path): output directory.
        splits (Sequence[str]): splits to import.
        label_column (str): column holding the label (string or ``ClassLabel``).
        limit (Optional[int]): at most this many rows per split.

    Returns:
        Path: ``output_dir`` (with ``labels.txt``, ``<split>/data.jsonl`` and the folder tree).

    Raises:
        PublicImportError: on a missing column, split or unreadable image.
    """
    out = Path(output_dir)
    seen: list[str] = []

    def run(split: str, ds: Any) -> None:
        _require(ds, split, (label_column,))
        feature = ds.features[label_column]
        names = getattr(feature, "names", None)
        for name in names or []:
            if name not in seen:
                seen.append(name)
        rows = []
        for i, row in enumerate(ds):
            where = f"{source} [{split}] row {i}"
            raw = row[label_column]
            label = names[raw] if names is not None and isinstance(raw, int) else raw
            if not isinstance(label, str) or not label.strip():
                raise PublicImportError(f"{where}: {label_column} {raw!r} is not a non-empty string")
            label = label.strip()
            if label not in seen:
                seen.append(label)
            dest = _save_image(row["image"], out / split / _safe(label) / f"{i:06d}", where)
            rows.append(
                {"id": f"{split}-{i:06d}", "image": str(dest.relative_to(out / split)), "label": label}
            )
        write_jsonl(out / split / "data.jsonl", rows)

    _each(source, splits, limit, run)
    (out / "labels.txt").write_text("".join(f"{label}\n" for label in sorted(seen)), encoding="utf-8")
    return out


def import_openfoodfacts(
    source: str | Path,
    output_dir: str | Path,
    *,
    splits: Sequence[str] = ("train", "val"),
    category: str = "nutrition-table",
    limit: Optional[int] = None,
) -> Path:
    """Import the OpenFoodFacts nutrition-table detection layout.

    Args:
        source (str | Path): local copy or cached hub name.
        output_dir (str | Path): output directory.
        splits (Sequence[str]): splits to import (the hub dataset has ``train`` and ``val``).
        category (str): keep boxes of this ``category_name``.
        limit (Optional[int]): at most this many rows per split.

    Returns:
        Path: ``output_dir`` (``<split>/data.jsonl`` + ``<split>/images``).

    Raises:
        PublicImportError: on a missing column, a malformed box or an unreadable image.
    """
    out = Path(output_dir)

    def run(split: str, ds: Any) -> None:
        _require(ds, split, ("objects",))
        rows = []
        for i, row in enumerate(ds):
            where = f"{source} [{split}] row {i}"
            objects = row["objects"] or {}
            bboxes, names = objects.get("bbox") or [], objects.get("category_name") or []
            if names and len(names) != len(bboxes):
                raise PublicImportError(f"{where}: {len(bboxes)} boxes but {len(names)} category names")
            boxes = []
            for j, bbox in enumerate(bboxes):
                if names and names[j] != category:
                    continue
                if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                    raise PublicImportError(f"{where}: box {j} is not [y_min, x_min, y_max, x_max]: {bbox!r}")
                y_min, x_min, y_max, x_max = bbox
                boxes.append([x_min, y_min, x_max, y_max])
            rid = _safe(str(row.get("image_id") or f"{split}-{i:06d}"))
            dest = _save_image(row["image"], out / split / "images" / rid, where)
            record = {
                "id": rid,
                "image": str(dest.relative_to(out / split)),
                "box_format": "normalized",
                "boxes": boxes,
            }
            for key in ("width", "height"):
                if isinstance(row.get(key), int):
                    record[key] = row[key]
            rows.append(record)
        write_jsonl(out / split / "data.jsonl", rows)

    _each(source, splits, limit, run)
    return out


def import_docvqa(
    source: str | Path,
    output_dir: str | Path,
    *,
    splits: Sequence[str] = ("train", "test"),
    language: str = "en",
    limit: Optional[int] = None,
) -> Path:
    """Import the ``nielsr/docvqa_1200_examples`` layout.

    Args:
        source (str | Path): local copy or cached hub name.
        output_dir (str | Path): output directory.
        splits (Sequence[str]): splits to import.
        language (str): which ``query`` language to take when ``query`` is a struct.
        limit (Optional[int]): at most this many rows per split.

    Returns:
        Path: ``output_dir`` (``<split>/data.jsonl`` + ``<split>/images``).

    Raises:
        PublicImportError: on a missing column, question or answer, or an unreadable image.
    """
    out = Path(output_dir)

    def run(split: str, ds: Any) -> None:
        _require(ds, split, ("query", "answers"))
        rows = []
        for i, row in enumerate(ds):
            where = f"{source} [{split}] row {i}"
            query = row["query"]
            question = query.get(language) if isinstance(query, dict) else query
            if not isinstance(question, str) or not question.strip():
                raise PublicImportError(f"{where}: no {language!r} question in 'query'")
            answers = [a for a in (row["answers"] or []) if isinstance(a, str) and a.strip()]
            if not answers:
                raise PublicImportError(f"{where}: 'answers' has no non-empty answer")
            rid = _safe(str(row.get("id") or f"{split}-{i:06d}"))
            dest = _save_image(row["image"], out / split / "images" / f"{i:06d}", where)
            rows.append(
                {
                    "id": rid,
                    "image": str(dest.relative_to(out / split)),
                    "question": question.strip(),
                    "answers": answers,
                }
            )
        write_jsonl(out / split / "data.jsonl", rows)

    _each(source, splits, limit, run)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 on success, 2 on bad input).
    """
    parser = argparse.ArgumentParser(
        prog="python -m torchtune_ext.data.import_public",
        description="Convert a local copy of a public dataset into the task layout (no downloads).",
    )
    sub = parser.add_subparsers(dest="layout", required=True, metavar="LAYOUT")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--source", required=True, help="save_to_disk dir, parquet dir, or cached hub name")
    common.add_argument("--output-dir", type=Path, required=True, help="directory to write")
    common.add_argument("--limit", type=int, default=None, help="at most N rows per split")
    cars = sub.add_parser("stanford-cars", parents=[common], help="Paulescu/stanford_cars (classification)")
    cars.add_argument("--splits", nargs="+", default=["train", "test"])
    cars.add_argument(
        "--label-column", default="label", help="label column (default: label; maker for makers)"
    )
    off = sub.add_parser("openfoodfacts", parents=[common], help="openfoodfacts/nutrition-table-detection")
    off.add_argument("--splits", nargs="+", default=["train", "val"])
    off.add_argument("--category", default="nutrition-table", help="category_name to keep")
    dv = sub.add_parser("docvqa", parents=[common], help="nielsr/docvqa_1200_examples")
    dv.add_argument("--splits", nargs="+", default=["train", "test"])
    dv.add_argument("--language", default="en", help="query language (default: en)")
    args = parser.parse_args(argv)
    try:
        if args.layout == "stanford-cars":
            import_stanford_cars(
                args.source,
                args.output_dir,
                splits=args.splits,
                label_column=args.label_column,
                limit=args.limit,
            )
        elif args.layout == "openfoodfacts":
            import_openfoodfacts(
                args.source, args.output_dir, splits=args.splits, category=args.category, limit=args.limit
            )
        else:
            import_docvqa(
                args.source, args.output_dir, splits=args.splits, language=args.language, limit=args.limit
            )
    except (PublicImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split in args.splits:
        path = args.output_dir / split / "data.jsonl"
        with path.open(encoding="utf-8") as f:
            print(f"wrote {sum(1 for _ in f)} rows to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
