"""The document-VQA task: one prompt per question, a short text answer.

Training (``torchtune_ext.datasets.docvqa_dataset``) and evaluation (``python -m eval.docvqa``)
both import from here.

* **Prompt**: :func:`prompt` wraps the question in the one instruction.
* **Answer**: the plain answer text; with several gold answers the model learns the first
  (the DocVQA authors' advice for single-answer training, :func:`target_text`).
* **Reading a prediction** (:func:`parse_answer`): the response with code fences removed;
  a JSON object with an ``answer`` string, or a JSON string, is unwrapped. Scoring
  normalises further (see :mod:`eval.tasks.docvqa.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Optional

from eval.core.replies import strip_code_fences

__all__ = ["ANSWER_KEY", "MAX_ANSWER_CHARS", "prompt", "json_schema", "target_text", "parse_answer"]

#: Key of the answer object under ``--structured``.
ANSWER_KEY = "answer"
#: Longest answer the token budget allows for: answers are copied from the page (a name, a
#: date, an amount, at most an address or a sentence), far below this.
MAX_ANSWER_CHARS = 256

_PROMPT_TEMPLATE = (
    "Answer the question using the text in this document. Reply with the answer only, copied "
    "exactly as it appears on the page.\nQuestion: {question}"
)


def prompt(question: str) -> str:
    """The one DocVQA instruction for a question, sent after the image.

    Args:
        question (str): the question.

    Returns:
        str: the prompt.
    """
    return _PROMPT_TEMPLATE.format(question=question.strip())


def json_schema() -> dict[str, Any]:
    """JSON schema for ``--structured``: ``{"answer": "<text>"}``.

    Returns:
        dict[str, Any]: the object schema.
    """
    return {
        "title": "DocVQAAnswer",
        "type": "object",
        "properties": {ANSWER_KEY: {"type": "string"}},
        "required": [ANSWER_KEY],
        "additionalProperties": False,
    }


def target_text(answers: Sequence[str]) -> str:
    """The answer the model learns for a question.

    Args:
        answers (Sequence[str]): the gold answers (at least one).

    Returns:
        str: the first gold answer, stripped.

    Raises:
        ValueError: if there is no non-empty answer.
    """
    if isinstance(answers, str) or not answers or not str(answers[0]).strip():
        raise ValueError(f"expected a non-empty list of answers, got {answers!r}")
    return str(answers[0]).strip()


def parse_answer(text: Optional[str]) -> str:
    """Read the answer text from a response.

    Args:
        text (Optional[str]): the response content (None for a failed request).

    Returns:
        str: the answer ("" for a failed request).
    """
    if text is None:
        return ""
    body = strip_code_fences(text)
    if body[:1] in ("{", '"'):
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and isinstance(value.get(ANSWER_KEY), str):
            return value[ANSWER_KEY].strip()
        if isinstance(value, str):
            return value.strip()
    return body
