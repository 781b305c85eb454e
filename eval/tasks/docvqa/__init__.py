"""The document-VQA task: one prompt per question, a short text answer.

The definition lives in :mod:`eval.tasks.docvqa.answers`, the row reader in
:mod:`eval.tasks.docvqa.reader` (both re-exported here); the metrics are in
:mod:`eval.tasks.docvqa.metrics`, the evaluator's side in :mod:`eval.tasks.docvqa.task`.
"""

from eval.tasks.docvqa.answers import ANSWER_KEY, json_schema, parse_answer, prompt, target_text
from eval.tasks.docvqa.reader import DocVQARecord, load_docvqa

__all__ = [
    "ANSWER_KEY",
    "DocVQARecord",
    "json_schema",
    "load_docvqa",
    "parse_answer",
    "prompt",
    "target_text",
]
