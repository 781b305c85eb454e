"""torchtune dataset builders (``_component_: torchtune_ext.datasets.<builder>`` in a config).

Every builder takes the model transform as its first positional argument, reads its task's
layout with the task's own reader, and renders prompts and targets from the one task
definition in :mod:`eval.tasks`.
"""

from torchtune_ext.datasets._classify import ClassifyDataset, classify_dataset
from torchtune_ext.datasets._detect import detect_dataset
from torchtune_ext.datasets._docvqa import docvqa_dataset
from torchtune_ext.datasets._extract import extract_dataset
from torchtune_ext.datasets._image_task import Example, ImageTaskDataset, image_task_messages
from torchtune_ext.datasets._w2 import W2DataError, W2Dataset, W2ToMessages, parse_ground_truth, w2_dataset

__all__ = [
    "ClassifyDataset",
    "Example",
    "ImageTaskDataset",
    "W2DataError",
    "W2Dataset",
    "W2ToMessages",
    "classify_dataset",
    "detect_dataset",
    "docvqa_dataset",
    "extract_dataset",
    "image_task_messages",
    "parse_ground_truth",
    "w2_dataset",
]
