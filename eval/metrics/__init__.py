"""Metrics for the evaluators: shared normalisation and serving statistics, and per-task scores."""

from eval.metrics.common import EMPTY, normalize_text, normalize_value, percentile, serving_stats, to_cents
from eval.metrics.w2 import aggregate_w2, field_kind, schema_error, score_w2, values_match

__all__ = [
    "EMPTY",
    "normalize_text",
    "normalize_value",
    "percentile",
    "serving_stats",
    "to_cents",
    "aggregate_w2",
    "field_kind",
    "schema_error",
    "score_w2",
    "values_match",
]
