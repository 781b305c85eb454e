"""Metrics for the evaluators: shared normalisation and serving statistics, and per-task scores."""

from eval.metrics.classify import ClassifyScores, plot_confusion, score_classification, write_confusion_csv
from eval.metrics.common import EMPTY, normalize_text, normalize_value, percentile, serving_stats, to_cents
from eval.metrics.detect import (
    DetectScores,
    ImageResult,
    aggregate_detection,
    iou,
    match_boxes,
    score_detection,
)
from eval.metrics.docvqa import DocVQAScores, anls, exact_match, score_docvqa
from eval.metrics.w2 import aggregate_w2, field_kind, schema_error, score_w2, values_match

__all__ = [
    "EMPTY",
    "normalize_text",
    "normalize_value",
    "percentile",
    "serving_stats",
    "to_cents",
    "ClassifyScores",
    "DetectScores",
    "DocVQAScores",
    "ImageResult",
    "aggregate_detection",
    "anls",
    "exact_match",
    "iou",
    "match_boxes",
    "plot_confusion",
    "score_classification",
    "score_detection",
    "score_docvqa",
    "write_confusion_csv",
    "aggregate_w2",
    "field_kind",
    "schema_error",
    "score_w2",
    "values_match",
]
