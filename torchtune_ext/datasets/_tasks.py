"""torchtune dataset builders for the classification, detection and DocVQA tasks.

Each builder reads its task's JSONL (or, for classification, a ``label/image`` folder tree)
with the same reader the ``eval.<task>`` CLIs use, and renders the prompt and target from the
one task definition in ``eval.tasks``. Use them as ``dataset._component_`` in a config; the
recipe passes the model transform as the first argument::

    dataset:
      _component_: torchtune_ext.datasets.detect_dataset
      source: data/detect/train
"""

from __future__ import annotations

from functools import partial
from typing import Optional, cast

from torchtune.modules.transforms import Transform

from eval.tasks import classify, detect, docvqa
from eval.tasks.records import (
    ClassifyRecord,
    DetectRecord,
    DocVQARecord,
    find_labels_file,
    load_classify,
    load_detect,
    load_docvqa,
)
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset

__all__ = ["ClassifyDataset", "classify_dataset", "detect_dataset", "docvqa_dataset"]


class ClassifyDataset(ImageTaskDataset[ClassifyRecord]):
    """Classification dataset; :attr:`labels` is the label set its prompt lists."""

    labels: classify.LabelSet


def _no_packing(packed: bool) -> None:
    if packed:
        raise ValueError("Multimodal datasets don't support packing yet.")


def _classify_example(prompt: str, record: ClassifyRecord) -> Example:
    return Example(record.image, prompt, classify.target_json(record.label))


def _detect_example(prompt: str, record: DetectRecord) -> Example:
    return Example(record.image, prompt, detect.target_json(record.boxes))


def _docvqa_example(record: DocVQARecord) -> Example:
    return Example(record.image, docvqa.prompt(record.question), docvqa.target_text(record.answers))


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
        skip_invalid (bool): drop bad rows (counted and logged) instead of raising.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ClassifyDataset: the dataset; ``.labels`` holds the label set.

    Raises:
        DatasetRowError: on a bad row, naming file and line (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    _no_packing(packed)
    labels_path = labels if labels is not None else find_labels_file(source)
    loaded = load_classify(source, labels_path, skip_invalid=skip_invalid, limit=limit)
    ds = ClassifyDataset(
        loaded.records,
        partial(_classify_example, classify.prompt(loaded.labels)),
        model_transform,
        skipped=loaded.skipped,
        source=str(loaded.source),
    )
    ds.labels = cast(classify.LabelSet, loaded.labels)  # always set by load_classify
    return ds


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
        skip_invalid (bool): drop bad rows (counted and logged) instead of raising.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ImageTaskDataset[DetectRecord]: the dataset.

    Raises:
        DatasetRowError: on a bad row, naming file and line (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    _no_packing(packed)
    loaded = load_detect(source, box_format=box_format, skip_invalid=skip_invalid, limit=limit)
    return ImageTaskDataset(
        loaded.records,
        partial(_detect_example, detect.prompt(object_name)),
        model_transform,
        skipped=loaded.skipped,
        source=str(loaded.source),
    )


def docvqa_dataset(
    model_transform: Transform,
    *,
    source: str,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
    packed: bool = False,
) -> ImageTaskDataset[DocVQARecord]:
    """DocVQA SFT dataset: image + question -> the first gold answer.

    Args:
        model_transform (Transform): the model transform (passed first by the recipe).
        source (str): a JSONL file (``image``, ``question``, ``answers``) or a directory
            holding ``data.jsonl``.
        skip_invalid (bool): drop bad rows (counted and logged) instead of raising.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ImageTaskDataset[DocVQARecord]: the dataset.

    Raises:
        DatasetRowError: on a bad row, naming file and line (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    _no_packing(packed)
    loaded = load_docvqa(source, skip_invalid=skip_invalid, limit=limit)
    return ImageTaskDataset(
        loaded.records, _docvqa_example, model_transform, skipped=loaded.skipped, source=str(loaded.source)
    )
