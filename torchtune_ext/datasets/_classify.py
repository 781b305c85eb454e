"""The classification dataset builder: image + label list -> ``{"label": "<label>"}``.

Rows are read with the task's own reader (:mod:`eval.tasks.classify.reader`), the prompt and
target come from its definition (:mod:`eval.tasks.classify.labels`), so training and
``python -m eval.classify`` see the same rows, prompt and answers.
"""

from __future__ import annotations

from functools import partial
from typing import Optional, cast

from torchtune.modules.transforms import Transform

from eval.tasks import classify
from eval.tasks.classify import ClassifyRecord, find_labels_file, load_classify
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, no_packing

__all__ = ["ClassifyDataset", "classify_dataset"]


class ClassifyDataset(ImageTaskDataset[ClassifyRecord]):
    """Classification dataset; :attr:`labels` is the label set its prompt lists."""

    labels: classify.LabelSet


def _classify_example(prompt: str, record: ClassifyRecord) -> Example:
    return Example(record.image, prompt, classify.target_json(record.label))


def classify_dataset(
    model_transform: Transform,
    *,
    source: str,
    labels: Optional[str] = None,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
    packed: bool = False,
) -> ClassifyDataset:
    """Classification SFT dataset: image + label list -> ``{"label": "<label>"}``.

    Args:
        model_transform (Transform): the model transform (passed first by the recipe).
        source (str): a JSONL file (``image``, ``label``), a directory holding ``data.jsonl``,
            or a folder tree ``<label>/<image>``.
        labels (Optional[str]): labels file (one per line, aliases after ``|``). Default: a
            ``labels.txt`` in ``source`` or its parent, else the distinct labels found. The
            prompt lists these labels, so train and evaluation must use the same file.
        skip_invalid (bool): drop bad rows and rows whose image is not usable (counted and
            logged) instead of raising; no usable row left is still an error.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ClassifyDataset: the dataset; ``.labels`` holds the label set.

    Raises:
        DatasetRowError: on a bad row, naming file and line, or an unusable image, naming
            file and record id (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    no_packing(packed)
    labels_path = labels if labels is not None else find_labels_file(source)
    loaded = load_classify(source, labels_path, skip_invalid=skip_invalid, limit=limit)
    ds = ClassifyDataset(
        loaded.records,
        partial(_classify_example, classify.prompt(loaded.labels)),
        model_transform,
        skipped=loaded.skipped,
        source=str(loaded.source),
        skip_invalid=skip_invalid,
    )
    ds.labels = cast(classify.LabelSet, loaded.labels)  # always set by load_classify
    return ds
