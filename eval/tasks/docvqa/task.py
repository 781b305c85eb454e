"""The DocVQA task for the evaluator and the training recipes: ``python -m eval.docvqa``.

Example::

    python -m eval.docvqa --server_url http://127.0.0.1:8001/v1 --model 11B-lora-docvqa \\
        --dataset data/docvqa/test

Each question is sent as the prompt of :mod:`eval.tasks.docvqa.answers` after the page image.
Metrics (:mod:`eval.tasks.docvqa.metrics`): ANLS (tau = 0.5, best over the gold answers;
answers lowercased, stripped, whitespace collapsed) and exact match. A failed request scores
as the empty answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.core.report import pct
from eval.core.splits import RecordSplit, read_records, record_image
from eval.core.task import Response, Sample, Task
from eval.tasks.docvqa.answers import MAX_ANSWER_CHARS, json_schema, parse_answer, prompt, target_text
from eval.tasks.docvqa.metrics import TAU, anls, exact_match
from eval.tasks.docvqa.reader import DocVQARecord, load_docvqa

__all__ = ["DocVQATask", "TASK"]


class DocVQATask(Task):
    """Questions about a page, short text answers (see :class:`eval.core.task.Task`)."""

    name = "docvqa"
    description = (
        "Score document question answering (ANLS, exact match) by a vision model served with an "
        "OpenAI-compatible API."
    )
    dataset_help = "a JSONL file (image, question, answers) or a directory holding data.jsonl"
    headline_metric = "anls"

    def load(self, path: str | Path) -> RecordSplit:
        """Read the questions with :func:`~eval.tasks.docvqa.reader.load_docvqa`.

        Raises:
            DatasetError: on a bad row or an empty dataset (names file and line).
        """
        return read_records(load_docvqa, path)

    def sample(self, row: DocVQARecord, index: int) -> Sample:
        """The page image, the question prompt and ``{"record_id", "answers"}``.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        data, mime = record_image(row, index)
        target = {"record_id": row.id, "answers": list(row.answers)}
        return Sample(id=index, image=data, mime=mime, prompt=prompt(row.question), target=target)

    def answer(self, target: Mapping[str, Any]) -> str:
        """The first gold answer."""
        return target_text(target["answers"])

    def json_schema(self) -> dict[str, Any]:
        """``{"answer": "..."}``."""
        return json_schema()

    def max_answer_chars(self, max_string_chars: int) -> Optional[int]:
        """``{"answer": ...}`` with an answer of up to :data:`~eval.tasks.docvqa.answers.MAX_ANSWER_CHARS`
        characters (or ``max_string_chars``, if larger)."""
        from eval.core.schema_bounds import json_text_bound

        return json_text_bound(json_schema(), max(max_string_chars, MAX_ANSWER_CHARS))

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """ANLS and exact match of one answer (a failed request is the empty answer).

        Returns:
            dict[str, Any]: ``record_id``, ``answers``, ``pred``, ``anls``, ``exact_match``,
            ``failure`` (``"truncated"`` when cut by the token limit).
        """
        pred = parse_answer(response.content if response.answered else None)
        golds = sample.target["answers"]
        truncated = response.answered and response.finish_reason == "length"
        return {
            "record_id": sample.target["record_id"],
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
            (f"ANLS (tau {metrics['tau']:g})", pct(metrics["anls"])),
            ("exact match", pct(metrics["exact_match"])),
        ]

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """ANLS and exact match as bars."""
        return {"docvqa": {"ANLS": metrics["anls"], "exact match": metrics["exact_match"]}}


TASK = DocVQATask
