"""The extract dataset builder: page image + the schema's prompt -> the gold object as JSON.

Rows are read with the task's own reader (:mod:`eval.tasks.extract.reader`, targets validated
against the schema), the prompt and the answer text come from :class:`eval.tasks.extract.task.ExtractTask`,
so training, the teacher and ``python -m eval.extract`` ask and answer the same way.
"""

from __future__ import annotations

from typing import Optional

from torchtune.modules.transforms import Transform

from eval.tasks.extract import load_extract
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, no_packing

__all__ = ["extract_dataset"]


def _example(example: Example) -> Example:
    return example


def extract_dataset(
    model_transform: Transform,
    *,
    source: str,
    schema: str,
    prompt_file: Optional[str] = None,
    skip_invalid: bool = False,
    limit: Optional[int] = None,
    packed: bool = False,
) -> ImageTaskDataset[Example]:
    """Extraction SFT dataset: page image + prompt -> the target object as JSON (keys in schema order).

    Args:
        model_transform (Transform): the model transform (passed first by the recipe).
        source (str): a JSONL file (``image``, ``target``, ``doc_id``, ``page``) or a directory
            holding ``data.jsonl`` (what ``torchtune_ext.data.documents.split`` writes).
        schema (str): the JSON Schema file (``DATA/schema.json`` beside the splits).
        prompt_file (Optional[str]): a prompt file instead of the prompt generated from the
            schema; evaluate with the same one.
        skip_invalid (bool): drop bad rows (counted and logged) instead of raising.
        limit (Optional[int]): use at most this many examples.
        packed (bool): unsupported for multimodal data, as in torchtune's ``vqa_dataset``.

    Returns:
        ImageTaskDataset[Example]: the dataset.

    Raises:
        DatasetRowError: on a bad row, naming file and line (unless ``skip_invalid``).
        ValueError: if ``packed`` is True, or the schema or prompt file is unusable.
    """
    no_packing(packed)
    task = ExtractTask(schema, prompt_file)
    loaded = load_extract(source, task.schema, skip_invalid=skip_invalid, limit=limit)
    # answers are rendered here, once: the examples hold only paths and text (workers pickle them)
    examples = [
        Example(record.image, task.instruction(), task.answer(task.sample_target(record)))
        for record in loaded.records
    ]
    return ImageTaskDataset(
        examples, _example, model_transform, skipped=loaded.skipped, source=str(loaded.source)
    )
