"""The two kinds of split a task reads, and the row-level checks every task shares. No torch.

* :class:`ArrowSplit`: one split of a prepared dataset (a ``datasets`` ``save_to_disk``
  directory, e.g. the W-2 data), read with :func:`load_arrow_split`.
* :class:`RecordSplit`: validated records read from a JSONL file (:mod:`eval.core.records`).

Rows are addressed by their index in the split, which is the stable id every evaluator writes
to its results. Images are read undecoded, then checked row by row by the image policy of
:mod:`eval.core.images` (size limit, complete decode) in :func:`read_image_bytes`: an unusable
image is reported for its row (an input error) instead of failing the whole load, and a usable
one goes to the server as stored (re-encoded only when it has transparency or a format servers
may not take).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "ArrowSplit",
    "DatasetError",
    "InputError",
    "SENDABLE_FORMATS",
    "RecordSplit",
    "load_arrow_split",
    "load_saved_split",
    "parse_json_column",
    "read_image_bytes",
    "read_records",
    "record_image",
]


class DatasetError(ValueError):
    """The dataset directory cannot be used at all (the message names the path)."""


class InputError(ValueError):
    """One row cannot be evaluated (the message names the row and the column)."""


class ArrowSplit:
    """One split of a prepared dataset, read lazily.

    Args:
        path (Path): the split directory (``DIR/test``).
        dataset (Any): the loaded ``datasets.Dataset`` with undecoded images.
        image_column (Optional[str]): name of the image column, if any.
    """

    def __init__(self, path: Path, dataset: Any, image_column: Optional[str]) -> None:
        self.path = path
        self._dataset = dataset
        self.image_column = image_column
        self._sha256: Optional[str] = None

    def __len__(self) -> int:
        return len(self._dataset)

    @property
    def columns(self) -> list[str]:
        """list[str]: column names."""
        return list(self._dataset.column_names)

    def row(self, index: int) -> dict[str, Any]:
        """Read one row; the image column holds ``{"bytes": ..., "path": ...}``.

        Args:
            index (int): row index in the split.

        Returns:
            dict[str, Any]: the row's columns.
        """
        return dict(self._dataset[index])

    def sha256(self) -> str:
        """Stable content hash of the split: sha256 over its Arrow data files, in name order.

        Returns:
            str: hex digest.
        """
        if self._sha256 is None:
            digest = hashlib.sha256()
            for file in sorted(self.path.glob("*.arrow")):
                digest.update(file.name.encode())
                with file.open("rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
            self._sha256 = digest.hexdigest()
        return self._sha256


def load_saved_split(path: str | Path) -> Any:
    """Load one split directory written by ``Dataset.save_to_disk``, or say in one line what is wrong.

    Checked before loading: the directory and ``state.json`` exist, ``state.json`` (and
    ``dataset_info.json``) are valid JSON, the split has data files and each listed file is
    there. A file that does not load names itself (a copy cut short, a full disk). A split
    with no rows is an error too: nothing can be evaluated or trained on.

    Args:
        path (str | Path): the split directory, e.g. ``data/w2/test``.

    Returns:
        datasets.Dataset: the split (images as stored in the features).

    Raises:
        DatasetError: if the directory cannot be used; the message is one line naming the
            directory or the file at fault.
    """
    import datasets  # deferred: ~1 s to import, and only needed once a run starts

    split_dir = Path(path)
    if not split_dir.is_dir():
        raise DatasetError(
            f"{split_dir}: no such dataset directory (hub names are not fetched; prepare it first)"
        )
    state_file = split_dir / "state.json"
    if not state_file.is_file():
        raise DatasetError(f"{split_dir}: not a dataset saved with save_to_disk (no state.json)")
    state = _read_json(state_file)
    info_file = split_dir / "dataset_info.json"
    if info_file.is_file():
        _read_json(info_file)
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and isinstance(f.get("filename"), str) for f in files
    ):
        raise DatasetError(
            f"{state_file}: no list of data files ('_data_files'); not written by save_to_disk"
        )
    if not files:
        raise DatasetError(f"{split_dir}: the split is empty (saved from 0 rows)")
    for entry in files:
        if not (split_dir / entry["filename"]).is_file():
            raise DatasetError(f"{split_dir / entry['filename']}: missing (listed in state.json)")
    try:
        ds = datasets.load_from_disk(str(split_dir))
    except Exception as exc:  # datasets and pyarrow raise many types for corrupt data
        raise DatasetError(_load_failure(split_dir, [f["filename"] for f in files], exc)) from exc
    if not isinstance(ds, datasets.Dataset):
        raise DatasetError(f"{split_dir}: not a single split")
    if len(ds) == 0:
        raise DatasetError(f"{split_dir}: the split is empty (saved from 0 rows)")
    return ds


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise DatasetError(f"{file}: not valid JSON ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _load_failure(split_dir: Path, names: Sequence[str], exc: BaseException) -> str:
    """The one-line reason a split failed to load: the first data file Arrow cannot read, if any."""
    import pyarrow as pa

    for name in names:
        file = split_dir / name
        try:
            with pa.memory_map(str(file)) as source:
                pa.ipc.open_stream(source).read_all()
        except Exception as file_exc:  # pyarrow raises ArrowInvalid, OSError, ...
            return f"{file}: cannot read the Arrow data, truncated or corrupt ({_one_line(file_exc)})"
    return f"{split_dir}: cannot load dataset: {_one_line(exc)}"


def load_arrow_split(path: str | Path) -> ArrowSplit:
    """Open a split saved with ``Dataset.save_to_disk`` (checked by :func:`load_saved_split`).

    Args:
        path (str | Path): the split directory, e.g. ``data/w2/test``.

    Returns:
        ArrowSplit: the split, images undecoded.

    Raises:
        DatasetError: if the path is missing, is a ``DatasetDict`` (names its splits), is not
            a saved dataset, is empty or corrupt (names the file).
    """
    import datasets

    split_dir = Path(path)
    if (split_dir / "dataset_dict.json").is_file():
        names = _read_json(split_dir / "dataset_dict.json")
        names = names.get("splits", []) if isinstance(names, dict) else []
        raise DatasetError(
            f"{split_dir} holds several splits ({', '.join(map(str, names))}); "
            f"pass one of them, e.g. {split_dir / 'test'}"
        )
    ds = load_saved_split(split_dir)
    image_column = next(
        (name for name, feat in ds.features.items() if isinstance(feat, datasets.Image)), None
    )
    if image_column is not None:
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    return ArrowSplit(split_dir, ds, image_column)


#: Image formats sent as stored; any other format is re-encoded as PNG.
SENDABLE_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}


def read_image_bytes(value: Any, row_id: int, column: str = "image") -> tuple[bytes, str]:
    """Get the image to send for a row, checked by the image policy (:mod:`eval.core.images`).

    The image must be within the size limit and decode completely. It is sent as stored when
    it is a PNG, JPEG, WebP or GIF without transparency. Otherwise it is re-encoded as PNG: an
    image with transparency is composited on white (:func:`eval.core.images.to_rgb`, after its
    EXIF orientation is applied), so every server sees the pixels training sees, whatever its
    own conversion does; another format is converted the same way.

    Args:
        value (Any): an undecoded HF image (``{"bytes", "path"}``), raw ``bytes`` or a PIL image.
        row_id (int): the row, for error messages.
        column (str): the column, for error messages.

    Returns:
        tuple[bytes, str]: the encoded image and its MIME type.

    Raises:
        InputError: if there is no image, or it is not usable (too large, does not decode);
            the message names the row and the column.
    """
    from PIL import Image, ImageOps

    from eval.core.images import ImageError, check_size, decode_image, has_transparency, to_rgb

    data: Optional[bytes] = None
    try:
        if isinstance(value, Image.Image):
            check_size(*value.size)
            image = value
        else:
            if isinstance(value, (bytes, bytearray)):
                data = bytes(value)
            elif isinstance(value, Mapping):
                if value.get("bytes"):
                    data = value["bytes"]
                elif value.get("path"):
                    try:
                        data = Path(value["path"]).read_bytes()
                    except OSError as exc:
                        raise InputError(
                            f"row {row_id}: column {column!r}: cannot read {value['path']}: {exc}"
                        ) from exc
            if not data:
                raise InputError(f"row {row_id}: column {column!r}: no image")
            image = decode_image(data)
    except ImageError as exc:
        raise InputError(f"row {row_id}: column {column!r}: {exc}") from None
    mime = SENDABLE_FORMATS.get(image.format or "")
    if data is not None and mime is not None and not has_transparency(image):
        return data, mime
    buf = io.BytesIO()
    to_rgb(ImageOps.exif_transpose(image)).save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def parse_json_column(value: Any, row_id: int, column: str) -> Any:
    """Decode a JSON string column.

    Args:
        value (Any): the cell (a JSON string; an already-decoded dict/list passes through).
        row_id (int): the row, for error messages.
        column (str): the column, for error messages.

    Returns:
        Any: the decoded value.

    Raises:
        InputError: if the cell is not valid JSON; the message names the row and column.
    """
    if isinstance(value, (dict, list)):
        return value
    if not isinstance(value, (str, bytes)):
        raise InputError(
            f"row {row_id}: column {column!r}: expected a JSON string, got {type(value).__name__}"
        )
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InputError(f"row {row_id}: column {column!r}: not valid JSON: {exc}") from exc


class RecordSplit:
    """Validated task records (:class:`eval.core.records.Loaded`), addressed by index.

    Args:
        loaded (Loaded[Any]): what a task's record reader returned.
    """

    def __init__(self, loaded: Any) -> None:
        self.loaded = loaded
        self.path: Path = loaded.source
        self.records: Sequence[Any] = loaded.records
        self._sha256: Optional[str] = None

    def __len__(self) -> int:
        return len(self.records)

    def row(self, index: int) -> Any:
        """The record at ``index``.

        Args:
            index (int): position in the dataset.

        Returns:
            Any: the record.
        """
        return self.records[index]

    def sha256(self) -> str:
        """Content hash: the JSONL file (if any), then each record's id, image name and bytes.

        Returns:
            str: hex digest.
        """
        if self._sha256 is None:
            digest = hashlib.sha256()
            if self.path.is_file():
                digest.update(self.path.read_bytes())
            for record in self.records:
                digest.update(str(record.id).encode() + b"\0" + record.image.name.encode() + b"\0")
                try:
                    digest.update(record.image.read_bytes())
                except OSError:
                    digest.update(b"<unreadable>")
            self._sha256 = digest.hexdigest()
        return self._sha256


def record_image(record: Any, row_id: int) -> tuple[bytes, str]:
    """Read a record's image file as stored, checking that it decodes.

    Args:
        record (Any): a record with an ``image`` path.
        row_id (int): its index, for messages.

    Returns:
        tuple[bytes, str]: the encoded bytes and the MIME type.

    Raises:
        InputError: if the file cannot be read or does not decode (names the row).
    """
    return read_image_bytes({"bytes": None, "path": str(record.image)}, row_id, "image")


def read_records(reader: Callable[..., Any], path: str | Path, *args: Any, **kwargs: Any) -> RecordSplit:
    """Read a task's JSONL records into a split, every problem as one :class:`DatasetError`.

    Args:
        reader (Callable[..., Any]): a task reader (``eval/tasks/<task>/reader.py``) returning
            :class:`~eval.core.records.Loaded`.
        path (str | Path): what ``--dataset`` names.
        *args (Any): more positional arguments for the reader.
        **kwargs (Any): keyword arguments for the reader.

    Returns:
        RecordSplit: the records.

    Raises:
        DatasetError: on a bad row, a missing file or an empty dataset (names file and line).
    """
    from eval.core.records import DatasetRowError

    try:
        loaded = reader(path, *args, **kwargs)
    except (DatasetRowError, FileNotFoundError, ValueError) as exc:
        raise DatasetError(str(exc)) from exc
    if not loaded.records:
        raise DatasetError(f"{loaded.source}: no records")
    return RecordSplit(loaded)
