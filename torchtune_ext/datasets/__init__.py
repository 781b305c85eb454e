"""torchtune dataset builders (first positional argument: the model transform)."""

from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, image_task_messages
from torchtune_ext.datasets._tasks import classify_dataset, detect_dataset, docvqa_dataset

__all__ = [
    "Example",
    "ImageTaskDataset",
    "classify_dataset",
    "detect_dataset",
    "docvqa_dataset",
    "image_task_messages",
]
