"""The image-classification task: a closed label set, one prompt, one answer format.

The definition lives in :mod:`eval.tasks.classify.labels`, the row reader in
:mod:`eval.tasks.classify.reader` (both re-exported here); the metrics are in
:mod:`eval.tasks.classify.metrics`, the evaluator's side in :mod:`eval.tasks.classify.task`.
"""

from eval.tasks.classify.labels import (
    INVALID,
    LABEL_KEY,
    LabelSet,
    LabelsFileError,
    json_schema,
    load_labels,
    normalize_label,
    parse_label,
    prompt,
    target_json,
)
from eval.tasks.classify.reader import LABELS_FILE, ClassifyRecord, find_labels_file, load_classify

__all__ = [
    "INVALID",
    "LABELS_FILE",
    "LABEL_KEY",
    "ClassifyRecord",
    "LabelSet",
    "LabelsFileError",
    "find_labels_file",
    "json_schema",
    "load_classify",
    "load_labels",
    "normalize_label",
    "parse_label",
    "prompt",
    "target_json",
]
