"""The DocVQA dataset builder: page image + question -> the first gold answer.

Rows are read with the task's own reader (:mod:`eval.tasks.docvqa.reader`), the prompt and
target come from its definition (:mod:`eval.tasks.docvqa.answers`).
"""

from __future__ import annotations

from typing import Optional

from torchtune.modules.transforms import Transform

from eval.tasks import docvqa
from eval.tasks.docvqa import DocVQARecord, load_docvqa
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, no_packing

__all__ = ["docvqa_dataset"]


def _docvqa_example(record: DocVQARecord) -> Example:
    return Example(record.image, docvqa.prompt(record.question), docvqa.target_text(record.answers))


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
        skip_invalid (bool): drop bad rows and rows whose image is not usable (counted and
            logged) instead of raising; no usable row left is still an error.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ImageTaskDataset[DocVQARecord]: the dataset.

    Raises:
        DatasetRowError: on a bad row, naming file and line, or an unusable image, naming
            file and record id (unless ``skip_invalid``).
        ValueError: if ``packed`` is True.
    """
    no_packing(packed)
    loaded = load_docvqa(source, skip_invalid=skip_invalid, limit=limit)
    return ImageTaskDataset(
        loaded.records,
        _docvqa_example,
        model_transform,
        skipped=loaded.skipped,
        source=str(loaded.source),
        skip_invalid=skip_invalid,
    )
