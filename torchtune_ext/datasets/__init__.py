"""Dataset builders for torchtune configs (``_component_: torchtune_ext.datasets.<builder>``).

Every builder takes the model transform as its first positional argument.
"""

from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, image_task_messages
from torchtune_ext.datasets._synthetic_w2 import (
    SyntheticW2Dataset,
    SyntheticW2Transform,
    synthetic_w2_dataset,
    synthetic_w2_transform,
)
from torchtune_ext.datasets._tasks import ClassifyDataset, classify_dataset, detect_dataset, docvqa_dataset
from torchtune_ext.datasets._w2 import W2DataError, W2Dataset, W2ToMessages, parse_ground_truth, w2_dataset

__all__ = [
    "ClassifyDataset",
    "Example",
    "ImageTaskDataset",
    "SyntheticW2Dataset",
    "SyntheticW2Transform",
    "W2DataError",
    "W2Dataset",
    "W2ToMessages",
    "classify_dataset",
    "detect_dataset",
    "docvqa_dataset",
    "image_task_messages",
    "parse_ground_truth",
    "synthetic_w2_dataset",
    "synthetic_w2_transform",
    "w2_dataset",
]
