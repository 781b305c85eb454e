"""A map-style SFT dataset over validated task records: one image, one prompt, one answer.

Each example becomes a user turn (image and prompt, in ``eval.tasks.CONTENT_ORDER``, masked
out of the loss) and an assistant turn (the answer): only the assistant turn's tokens (its
header, the answer, ``<|eot_id|>``) carry labels, as in torchtune's ``vqa_dataset``. Tokenized
by the model transform through torchtune's :class:`~torchtune.datasets.SFTTransform`, so the
output keys (``tokens``, ``labels``, ``mask``, ``encoder_input``, ``encoder_mask``) are what
torchtune's collates and recipes expect.

Every image is checked when the dataset is built, by the image policy the evaluator also
applies (:mod:`eval.core.images`: within the size limit, decodes completely), so a 0-byte,
truncated or non-image file stops the build with one line naming the file and the record (or
is skipped with ``skip_invalid``) instead of failing mid-run. An image shared by several
records is checked once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PIL import Image
from torch.utils.data import Dataset
from torchtune.data import Message
from torchtune.datasets._sft import SFTTransform
from torchtune.modules.transforms import Transform

from eval.core.images import ImageError, decode_image
from eval.core.records import DatasetRowError, open_upright
from eval.tasks import CONTENT_ORDER

__all__ = ["Example", "ImageTaskDataset", "image_task_messages", "no_packing"]

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class Example:
    """What one training example shows the model.

    Attributes:
        image (Path): the image file.
        prompt (str): the task prompt for this example.
        answer (str): the target the model learns (the only tokens in the loss).
    """

    image: Path
    prompt: str
    answer: str


def image_task_messages(image: Image.Image, prompt: str, answer: str) -> list[Message]:
    """User turn (image and prompt in ``CONTENT_ORDER``, masked) + assistant turn (answer).

    Args:
        image (Image.Image): the decoded image.
        prompt (str): the prompt.
        answer (str): the answer.

    Returns:
        list[Message]: the two messages.
    """
    parts = {"image": {"type": "image", "content": image}, "text": {"type": "text", "content": prompt}}
    return [
        Message(role="user", content=[parts[kind] for kind in CONTENT_ORDER], masked=True),
        Message(role="assistant", content=answer, masked=False),
    ]


class _ToMessages(Transform):
    """Record -> {"messages": ...}; a class rather than a closure so worker processes can pickle it."""

    def __init__(self, to_example: Callable[[Any], Example], source: str) -> None:
        self._to_example = to_example
        self._source = source

    def __call__(self, record: Any) -> dict[str, Any]:
        example = self._to_example(record)
        try:
            image = open_upright(example.image)  # EXIF orientation applied, as the servers do
        except ImageError as e:  # passed the check when built: the file changed since
            rid = getattr(record, "id", "?")
            raise DatasetRowError(f"{self._source}: id {rid}: image {example.image}: {e}") from e
        return {"messages": image_task_messages(image, example.prompt, example.answer)}


class ImageTaskDataset(Dataset, Generic[R]):
    """Map-style dataset of single-image SFT examples built from task records.

    Args:
        records (Sequence[R]): validated records (``eval/tasks/<task>/reader.py``).
        to_example (Callable[[R], Example]): how a record is shown to the model; raises
            :class:`~eval.core.images.ImageError` for a record whose image is known to be unusable.
        model_transform (Transform): e.g. ``llama3_2_vision_transform(...)``.
        skipped (Sequence[str]): ``file:line: reason`` of rows the reader dropped (``skip_invalid``).
        source (str): where the records came from (for messages).
        skip_invalid (bool): skip records whose image is not usable (counted with ``skipped``)
            instead of raising.

    Raises:
        DatasetRowError: for a record whose image is not usable, naming the source, the record
            id, the file and why (unless ``skip_invalid``).
        ValueError: if no record is left (the message counts the skipped rows and shows the first).

    ``__getitem__`` raises :class:`~eval.core.records.DatasetRowError` the same way for an
    image that no longer decodes.
    """

    def __init__(
        self,
        records: Sequence[R],
        to_example: Callable[[R], Example],
        model_transform: Transform,
        *,
        skipped: Sequence[str] = (),
        source: str = "",
        skip_invalid: bool = False,
    ) -> None:
        usable, skipped = _usable_records(records, to_example, source, list(skipped), skip_invalid)
        if not usable:
            first = f"; first: {skipped[0]}" if skipped else ""
            raise ValueError(f"{source}: no usable examples ({len(skipped)} invalid rows skipped){first}")
        self._records = usable
        self._transform = SFTTransform(
            message_transform=_ToMessages(to_example, source), model_transform=model_transform
        )
        self.skipped: tuple[str, ...] = tuple(skipped)
        if skipped:
            log.warning("%s: skipped %d invalid row(s); first: %s", source, len(skipped), skipped[0])

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._transform(self._records[index])


def _usable_records(
    records: Sequence[R],
    to_example: Callable[[R], Example],
    source: str,
    skipped: list[str],
    skip_invalid: bool,
) -> tuple[list[R], list[str]]:
    """Keep the records whose image is usable; the others raise, or are added to ``skipped``."""
    problems: dict[Path, str | None] = {}
    usable: list[R] = []
    for record in records:
        rid = getattr(record, "id", "?")
        try:
            image = to_example(record).image
            if image not in problems:
                try:
                    decode_image(image).close()
                    problems[image] = None
                except ImageError as e:
                    problems[image] = str(e)
            if problems[image] is not None:
                raise ImageError(problems[image])
        except ImageError as e:
            message = f"{source}: id {rid}: image {getattr(record, 'image', '?')}: {e}"
            if not skip_invalid:
                raise DatasetRowError(message) from None
            skipped.append(message)
            continue
        usable.append(record)
    return usable, skipped


def no_packing(packed: bool) -> None:
    """Refuse ``packed=True``, as torchtune's ``vqa_dataset`` does for multimodal data.

    Args:
        packed (bool): the builder's ``packed`` argument.

    Raises:
        ValueError: if it is True.
    """
    if packed:
        raise ValueError("Multimodal datasets don't support packing yet.")
