"""Document VQA evaluator: ``python -m eval.docvqa`` against any OpenAI-compatible server.

Example::

    python -m eval.docvqa --server_url http://127.0.0.1:8001/v1 --model 11B-lora-docvqa \\
        --dataset data/docvqa/test

Each question is sent as the prompt of :mod:`eval.tasks.docvqa` after the page image. Metrics
(:mod:`eval.metrics.docvqa`): ANLS (tau = 0.5, best over the gold answers; answers lowercased,
stripped, whitespace collapsed) and exact match. A failed request scores as the empty answer.
Retries, ``--resume``, the JSONL log and the report come from the shared runner (:mod:`eval.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from eval.client import data_url, response_format
from eval.metrics.docvqa import TAU, anls, exact_match
from eval.record_tasks import build_task_parser, load_records, record_image, run_record_task
from eval.runner import Example, Response
from eval.tasks import openai_user_content
from eval.tasks.docvqa import json_schema, parse_answer, prompt
from eval.tasks.records import load_docvqa

__all__ = ["DocVQATask", "main"]

DESCRIPTION = (
    "Score document question answering (ANLS, exact match) by a vision model served with an "
    "OpenAI-compatible API."
)


DATASET_HELP = "a JSONL file (image, question, answers) or a directory holding data.jsonl"


class DocVQATask:
    """The DocVQA task adapter (see :class:`eval.runner.TaskAdapter`)."""

    name = "docvqa"

    def prepare(self, row: Mapping[str, Any], row_id: int) -> Example:
        """Build the request (page image, then the question prompt) and keep the gold answers.

        Args:
            row (Mapping[str, Any]): ``{"record": DocVQARecord}``.
            row_id (int): its index.

        Returns:
            Example: content and target ``{"record_id", "answers"}``.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        record = row["record"]
        data, mime = record_image(record, row_id)
        content = openai_user_content(data_url(data, mime), prompt(record.question))
        return Example(
            id=row_id, content=content, target={"record_id": record.id, "answers": list(record.answers)}
        )

    def response_format(self) -> Optional[dict[str, Any]]:
        """``response_format`` for ``{"answer": "..."}``, strict."""
        return response_format("DocVQAAnswer", json_schema(), strict=True)

    def score(self, example: Example, response: Response) -> dict[str, Any]:
        """ANLS and exact match of one answer.

        Args:
            example (Example): the example.
            response (Response): the server's reply (or failure: the empty answer).

        Returns:
            dict[str, Any]: ``record_id``, ``answers``, ``pred``, ``anls``, ``exact_match``,
            ``failure`` (``"truncated"`` when cut by the token limit).
        """
        pred = parse_answer(response.content if response.answered else None)
        golds = example.target["answers"]
        truncated = response.answered and response.finish_reason == "length"
        return {
            "record_id": example.target["record_id"],
            "answers": golds,
            "pred": pred,
            "anls": anls(pred, golds, TAU),
            "exact_match": exact_match(pred, golds),
            "failure": "truncated" if truncated else None,
        }

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Mean ANLS and exact-match rate."""
        n = len(scores)
        return {
            "n": n,
            "anls": sum(s["anls"] for s in scores) / n if n else 0.0,
            "exact_match": sum(bool(s["exact_match"]) for s in scores) / n if n else 0.0,
            "tau": TAU,
        }

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """ANLS and exact match."""
        return [
            (f"ANLS (tau {metrics['tau']:g})", f"{100 * metrics['anls']:.2f} %"),
            ("exact match", f"{100 * metrics['exact_match']:.2f} %"),
        ]

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """ANLS and exact match as bars."""
        return {"docvqa": {"ANLS": metrics["anls"], "exact match": metrics["exact_match"]}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the DocVQA evaluator.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    args = build_task_parser("docvqa", DESCRIPTION, DATASET_HELP).parse_args(argv)
    load = load_records(load_docvqa, ("id", "image", "question", "answers"))
    return run_record_task("docvqa", args, DocVQATask(), load)


if __name__ == "__main__":
    sys.exit(main())
