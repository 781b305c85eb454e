"""The single-class detection task: one box convention, one prompt, one answer format.

The definition lives in :mod:`eval.tasks.detect.boxes`, the row reader in
:mod:`eval.tasks.detect.reader` (both re-exported here); the metrics are in
:mod:`eval.tasks.detect.metrics`, the evaluator's side in :mod:`eval.tasks.detect.task`.
"""

from eval.tasks.detect.boxes import (
    BOX_FORMATS,
    BOXES_KEY,
    DEFAULT_OBJECT,
    GRID,
    Box,
    BoxError,
    json_schema,
    parse_boxes,
    prompt,
    target_json,
    to_grid,
)
from eval.tasks.detect.reader import DetectRecord, load_detect

__all__ = [
    "BOXES_KEY",
    "BOX_FORMATS",
    "DEFAULT_OBJECT",
    "GRID",
    "Box",
    "BoxError",
    "DetectRecord",
    "json_schema",
    "load_detect",
    "parse_boxes",
    "prompt",
    "target_json",
    "to_grid",
]
