"""The W-2 extraction task (the reference recipe's): one schema, one prompt, one target format.

The definition lives in :mod:`eval.tasks.w2.schema` and is re-exported here, with the one
ground-truth validation (:mod:`eval.tasks.w2.ground_truth`); the metrics are in
:mod:`eval.tasks.w2.metrics`, the evaluator's side in :mod:`eval.tasks.w2.task`.
"""

from eval.tasks.w2.ground_truth import GroundTruthError, parse_ground_truth
from eval.tasks.w2.schema import (
    FIELDS,
    ID_LAYOUTS,
    ID_NUMBER_FIELDS,
    INT_FIELDS,
    MONEY_FIELDS,
    PROMPT,
    W2Form,
    json_schema,
    target_json,
)

__all__ = [
    "FIELDS",
    "GroundTruthError",
    "ID_LAYOUTS",
    "ID_NUMBER_FIELDS",
    "INT_FIELDS",
    "MONEY_FIELDS",
    "PROMPT",
    "W2Form",
    "json_schema",
    "parse_ground_truth",
    "target_json",
]
