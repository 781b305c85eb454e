"""The detection dataset builder: image -> ``{"boxes": [[x1, y1, x2, y2], ...]}`` on the 0-1000 grid.

Rows are read with the task's own reader (:mod:`eval.tasks.detect.reader`), the prompt and
target come from its definition (:mod:`eval.tasks.detect.boxes`).
"""

from __future__ import annotations

from functools import partial
from typing import Optional

from torchtune.modules.transforms import Transform

from eval.core.images import ImageError
from eval.tasks import detect
from eval.tasks.detect import DetectRecord, load_detect
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, no_packing

__all__ = ["detect_dataset"]


def _detect_example(prompt: str, record: DetectRecord) -> Example:
    if record.image_error is not None:  # the reader could not measure the image for pixel boxes
        raise ImageError(record.image_error)
    return Example(record.image, prompt, detect.target_json(record.boxes))


def detect_dataset(
    model_transform: Transform,
    *,
    source: str,
    box_format: str = "pixel",
    object_name: str = detect.DEFAULT_OBJECT,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
    packed: bool = False,
) -> ImageTaskDataset[DetectRecord]:
    """Detection SFT dataset: image -> ``{"boxes": [[x1, y1, x2, y2], ...]}`` on the 0-1000 grid.

    Args:
        model_transform (Transform): the model transform (passed first by the recipe).
        source (str): a JSONL file (``image``, ``boxes``, optional ``box_format``, ``width``,
            ``height``) or a directory holding ``data.jsonl``.
        box_format (str): format of rows that do not declare one: ``pixel``, ``normalized``
            or ``grid``.
        object_name (str): the object named in the prompt.
        skip_invalid (bool): drop bad rows and rows whose image is not usable (counted and
            logged) instead of raising; no usable row left is still an error.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ImageTaskDataset[DetectRecord]: the dataset.

    Raises:
        DatasetRowError: on a bad row, naming file and line, or an unusable image, naming
            file and record id (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    no_packing(packed)
    loaded = load_detect(source, box_format=box_format, skip_invalid=skip_invalid, limit=limit)
    return ImageTaskDataset(
        loaded.records,
        partial(_detect_example, detect.prompt(object_name)),
        model_transform,
        skipped=loaded.skipped,
        source=str(loaded.source),
        skip_invalid=skip_invalid,
    )
