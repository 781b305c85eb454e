"""The W-2 dataset for torchtune recipes: one user turn (image, then the prompt), one answer.

Reads a ``save_to_disk`` directory (the output of :mod:`torchtune_ext.data.prepare_w2`,
or the generator's raw output) and builds, per row::

    Message(role="user", content=[image, PROMPT] in CONTENT_ORDER, masked=True)
    Message(role="assistant", content=target_json(ground truth), masked=False)

then applies the model transform and sets ``labels`` exactly as torchtune's ``SFTDataset``
does (``CROSS_ENTROPY_IGNORE_IDX`` where masked), so the loss covers only the answer
turn. Tokens, labels and image tiles are identical to torchtune's stock ``vqa_dataset``
over the prepared columns; the prompt and target serialisation come from
:mod:`eval.tasks.w2`, the one definition evaluation also uses.

Ground truth is parsed and checked against ``W2Form`` once, when the dataset is built;
images are checked then too, by the image policy the evaluator also applies
(:mod:`eval.core.images`: within the size limit, decodes completely), so a row that cannot be
trained on is found before the first step, and ``skip_invalid`` can skip it. Samples are
decoded again in ``__getitem__``, with transparency composited on white (the colour rule).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from PIL import ExifTags, ImageOps
from PIL import Image as PILImage
from torch.utils.data import Dataset
from torchtune.datasets._sft import SFTTransform
from torchtune.modules.transforms import Transform

from eval.core.images import ImageError, decode_image, has_transparency, to_rgb
from eval.core.splits import DatasetError, load_saved_split
from eval.tasks.w2 import PROMPT, GroundTruthError, target_json
from eval.tasks.w2 import parse_ground_truth as eval_parse_ground_truth
from torchtune_ext.datasets._image_task import image_task_messages

__all__ = ["W2DataError", "W2Dataset", "W2ToMessages", "w2_dataset", "parse_ground_truth"]

log = logging.getLogger(__name__)


class W2DataError(ValueError):
    """A row or directory the W-2 dataset cannot use; the message names split, row and problem."""


class W2ToMessages(Transform):
    """Turn ``{"image": PIL image, "target": answer}`` into the two torchtune messages.

    The user turn holds the image and :data:`eval.tasks.w2.PROMPT` in
    :data:`eval.tasks.CONTENT_ORDER` and is masked; the assistant turn holds the target and
    is not, so only the answer is learned.
    """

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Build the messages.

        Args:
            sample (Mapping[str, Any]): ``image`` (PIL image) and ``target`` (str).

        Returns:
            dict[str, Any]: ``{"messages": [user, assistant]}``.
        """
        return {"messages": image_task_messages(sample["image"], PROMPT, sample["target"])}


def parse_ground_truth(value: Any) -> dict[str, Any]:
    """Parse one ``ground_truth`` cell with :func:`eval.tasks.w2.parse_ground_truth` (the evaluator's check).

    Args:
        value (Any): a JSON string, or an already-parsed mapping (flat or ``{"gt_parse": ...}``).

    Returns:
        dict[str, Any]: the flat record, values as stored (``"None"`` stays a string).

    Raises:
        W2DataError: if the cell is missing, not valid JSON, not an object, or does not
            match ``W2Form`` (the message names the key and why).
    """
    try:
        return eval_parse_ground_truth(value)
    except GroundTruthError as e:
        raise W2DataError(f"ground_truth {e}") from None


def _check_image(cell: Any) -> None:
    """Check an undecoded HF Image cell by the image policy (size limit, complete decode)."""
    if cell is None or (cell.get("bytes") is None and not cell.get("path")):
        raise W2DataError("image is missing")
    data, path = cell.get("bytes"), cell.get("path")
    if data is None and not os.path.exists(path):
        raise W2DataError(f"image file {path} does not exist")
    try:
        decode_image(data if data is not None else path).close()
    except ImageError as e:
        raise W2DataError(str(e)) from None


class _ImageCells:
    """Undecoded HF ``Image`` cells of one column, read straight from the Arrow table.

    Decoding repeats what ``datasets.Image.decode_example`` does for embedded bytes or a local
    file (open, load, EXIF orientation, the feature's mode) without HF's per-row formatting,
    under the image policy (:mod:`eval.core.images`); an image with transparency becomes RGB
    by its colour rule (composited on white) before the feature's mode is applied.
    """

    def __init__(self, ds: Any, column: str) -> None:
        if getattr(ds, "_indices", None) is not None:  # not from save_to_disk, which flattens
            ds = ds.flatten_indices(keep_in_memory=True)
        self._mode = ds.features[column].mode
        self._arrow = ds.data.column(column)

    def iter_rows(self, batch: int = 256) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """Yield ``(row, cell)`` for every row, in order, a slice of ``batch`` rows at a time."""
        row = 0
        for chunk in self._arrow.chunks:
            for offset in range(0, len(chunk), batch):
                for cell in chunk.slice(offset, batch).to_pylist():
                    yield row, cell
                    row += 1

    def decode(self, row: int) -> PILImage.Image:
        """Decode the image of ``row``.

        Raises:
            W2DataError: if the cell is empty.
            ImageError: if the image is not usable (too large, does not decode).
        """
        cell = self._arrow[row].as_py()
        if cell is None or (cell.get("bytes") is None and not cell.get("path")):
            raise W2DataError("image is missing")
        data = cell.get("bytes")
        image = decode_image(data if data is not None else cell["path"])
        if image.getexif().get(ExifTags.Base.Orientation) is not None:
            image = ImageOps.exif_transpose(image)
        if has_transparency(image):  # any other mode becomes RGB in the transform, by the same rule
            image = to_rgb(image)
        if self._mode and image.mode != self._mode:
            image = image.convert(self._mode)
        return image


def _load_split(data_dir: str | Path, split: str):  # -> datasets.Dataset
    """Load ``split`` of a ``DatasetDict`` directory (only that split is read), or a single-split directory."""
    path = Path(data_dir)
    if not path.is_dir():
        raise W2DataError(f"W-2 data directory {path} does not exist")
    index = path / "dataset_dict.json"
    try:
        if index.is_file():
            names = _split_names(index)
            if split not in names:
                raise W2DataError(f"{path} has no split {split!r}; it has {', '.join(names) or 'none'}")
            return load_saved_split(path / split)
        return load_saved_split(path)
    except DatasetError as e:  # one line naming the directory or the file at fault
        raise W2DataError(str(e)) from None


def _split_names(index: Path) -> list[str]:
    try:
        names = json.loads(index.read_text(encoding="utf-8")).get("splits")
    except (OSError, ValueError, AttributeError) as e:  # UnicodeDecodeError is a ValueError
        raise W2DataError(f"{index}: not valid JSON ({' '.join(str(e).split())})") from None
    if not isinstance(names, list):
        raise W2DataError(f"{index}: no list of splits ('splits')")
    return [str(n) for n in names]


class W2Dataset(Dataset):
    """Map-style dataset of tokenized W-2 samples for torchtune recipes.

    Args:
        model_transform (Transform): the model transform, e.g. ``llama3_2_vision_transform``;
            it must return ``tokens`` and ``mask`` (and, for vision, ``encoder_input`` and
            ``encoder_mask``).
        data_dir (str | Path): a ``save_to_disk`` directory: a ``DatasetDict`` (then
            ``split`` picks the subdirectory) or a single split.
        split (str): split of a ``DatasetDict`` directory.
        skip_invalid (bool): skip bad rows (and log their count once) instead of raising; a
            split left with no row is still an error.
        filter_fn (Callable[[dict], bool] | None): keep only rows for which this returns True;
            it sees the raw row (decoded image, ground-truth string), like ``SFTDataset``'s.
        image_column (str): column of HF ``Image`` cells.
        ground_truth_column (str): column of ground-truth JSON (flat or ``gt_parse``-wrapped).

    Raises:
        W2DataError: missing directory, split or column; a bad row when ``skip_invalid`` is
            False; no usable row (the message says how many were skipped, and the first reasons).
    """

    def __init__(
        self,
        model_transform: Transform,
        *,
        data_dir: str | Path,
        split: str = "train",
        skip_invalid: bool = False,
        filter_fn: Callable[[dict[str, Any]], bool] | None = None,
        image_column: str = "image",
        ground_truth_column: str = "ground_truth",
    ) -> None:
        import datasets

        ds = _load_split(data_dir, split)
        where = f"{data_dir} split {split}"
        for col in (image_column, ground_truth_column):
            if col not in ds.column_names:
                raise W2DataError(f"{where} has no column {col!r}; it has {ds.column_names}")
        if not isinstance(ds.features[image_column], datasets.Image):
            raise W2DataError(
                f"{where} column {image_column!r} is {ds.features[image_column]}, expected datasets.Image"
            )
        keep: list[int] | range = range(len(ds))
        if filter_fn is not None:
            keep = [i for i in keep if filter_fn(ds[i])]
        wanted = set(keep)

        truths = ds.select_columns([ground_truth_column])[:][ground_truth_column]
        self._cells = _ImageCells(ds, image_column)
        problems: dict[int, str] = {}
        for i, cell in self._cells.iter_rows():
            if i in wanted:
                try:
                    _check_image(cell)
                except W2DataError as e:
                    problems[i] = str(e)
        self.skipped: list[tuple[int, str]] = []
        self._rows: list[int] = []
        self._targets: list[str] = []
        for i in keep:
            try:
                if i in problems:
                    raise W2DataError(problems[i])
                target = target_json(parse_ground_truth(truths[i]))
            except W2DataError as e:
                if not skip_invalid:
                    raise W2DataError(f"{where} row {i}: {e}") from None
                self.skipped.append((i, str(e)))
                continue
            self._rows.append(i)
            self._targets.append(target)
        if not self._rows:
            if self.skipped:  # _load_split refuses a split with no rows, so something was left out
                first = "; ".join(f"row {row}: {problem}" for row, problem in self.skipped[:3])
                why = f"all {len(self.skipped)} rows were skipped (skip_invalid); first: {first}"
            else:
                why = f"filter_fn kept none of {len(ds)} rows"
            raise W2DataError(f"{where}: no usable rows: {why}")
        if self.skipped:
            first_row, first_problem = self.skipped[0]
            log.warning(
                "w2_dataset: skipped %d of %d rows of %s (skip_invalid); first: row %d: %s",
                len(self.skipped), len(keep), where, first_row, first_problem,
            )  # fmt: skip
        self._where = where
        self._prepare = SFTTransform(message_transform=W2ToMessages(), model_transform=model_transform)

    def __len__(self) -> int:
        return len(self._rows)

    def row_index(self, index: int) -> int:
        """Row number in the source split of sample ``index`` (skipped rows left out).

        Args:
            index (int): position in this dataset.

        Returns:
            int: row in the split on disk.
        """
        return self._rows[index]

    def target(self, index: int) -> str:
        """The answer sample ``index`` is trained on (``target_json`` of its ground truth).

        Args:
            index (int): position in this dataset.

        Returns:
            str: the canonical JSON answer.
        """
        return self._targets[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self._rows[index]
        try:
            image = self._cells.decode(row)
        except ImageError as e:  # passed the upfront check: the data changed since
            raise W2DataError(f"{self._where} row {row}: {e}") from e
        return self._prepare({"image": image, "target": self._targets[index]})


def w2_dataset(
    model_transform: Transform,
    *,
    data_dir: str,
    split: str = "train",
    skip_invalid: bool = False,
    filter_fn: Callable[[dict[str, Any]], bool] | None = None,
    image_column: str = "image",
    ground_truth_column: str = "ground_truth",
    packed: bool = False,
) -> W2Dataset:
    """Builder of the W-2 dataset, for ``dataset: _component_: torchtune_ext.datasets.w2_dataset``.

    Args:
        model_transform (Transform): the model transform (torchtune recipes pass it first).
        data_dir (str): ``save_to_disk`` directory, e.g. the output of ``prepare_w2``.
        split (str): ``train``, ``validation`` or ``test``.
        skip_invalid (bool): skip and count bad rows instead of raising.
        filter_fn (Callable[[dict], bool] | None): keep only rows for which this is True.
        image_column (str): column of HF ``Image`` cells.
        ground_truth_column (str): column of ground-truth JSON.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        W2Dataset: the dataset.

    Raises:
        ValueError: if ``packed`` is True.
        W2DataError: see :class:`W2Dataset`.

    Example:
        .. code-block:: yaml

            dataset:
              _component_: torchtune_ext.datasets.w2_dataset
              data_dir: fake_w2_us_tax_form_dataset_train30_test70
              split: train
    """
    if packed:
        raise ValueError("Multimodal datasets don't support packing yet.")
    return W2Dataset(
        model_transform,
        data_dir=data_dir,
        split=split,
        skip_invalid=skip_invalid,
        filter_fn=filter_fn,
        image_column=image_column,
        ground_truth_column=ground_truth_column,
    )
