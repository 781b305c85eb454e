"""The W-2 task for the evaluator and the training recipes: ``python -m eval.w2``.

Example::

    python -m eval.w2 --server_url http://127.0.0.1:8001/v1 --model 11B-full --structured \\
        --dataset data/w2/test --output_dir out/eval_w2

A split is a prepared ``save_to_disk`` directory (columns ``image`` and ``ground_truth``; see
``torchtune_ext.data.prepare_w2``). The request is built from :mod:`eval.tasks.w2.schema` (the
prompt and schema training uses, image before text); the metrics are in
:mod:`eval.tasks.w2.metrics`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.core.report import pct
from eval.core.splits import (
    ArrowSplit,
    DatasetError,
    InputError,
    load_arrow_split,
    read_image_bytes,
)
from eval.core.task import Response, Sample, Task
from eval.tasks.w2.ground_truth import GroundTruthError, parse_ground_truth
from eval.tasks.w2.metrics import aggregate_w2, score_w2
from eval.tasks.w2.schema import PROMPT, json_schema, target_json

__all__ = ["W2Task", "TASK"]


class W2Task(Task):
    """W-2 field extraction (see :class:`eval.core.task.Task`).

    Args:
        image_column (str): the split's image column.
        target_column (str): the ground-truth column (JSON string of the flat record, or of
            ``{"gt_parse": {...}}`` as in the original hub dataset; see
            :mod:`eval.tasks.w2.ground_truth`).
    """

    name = "w2"
    description = (
        "Score W-2 field extraction by a vision model served with an OpenAI-compatible API "
        "(vLLM, transformers serve, hosted APIs). Flags follow llama-cookbook's evaluate.py."
    )
    dataset_help = "a prepared split directory (save_to_disk), e.g. DIR/test"
    headline_metric = "accuracy"

    def __init__(self, image_column: str = "image", target_column: str = "ground_truth") -> None:
        self.image_column = image_column
        self.target_column = target_column

    def load(self, path: str | Path) -> ArrowSplit:
        """Open a prepared split and check its columns.

        Args:
            path (str | Path): the split directory.

        Returns:
            ArrowSplit: the split, images undecoded.

        Raises:
            DatasetError: if the directory is not a split, or the image or ground-truth column
                is missing.
        """
        split = load_arrow_split(path)
        missing = [c for c in (self.image_column, self.target_column) if c not in split.columns]
        if missing:
            raise DatasetError(
                f"{split.path}: missing column(s) {', '.join(missing)} (have {', '.join(split.columns)})"
            )
        if split.image_column != self.image_column:
            raise DatasetError(f"{split.path}: column {self.image_column!r} is not an Image feature")
        if "input" in split.columns and len(split) and split.row(0).get("input") != PROMPT:
            print(
                f"warning: {split.path}: row 0's 'input' differs from the W-2 prompt the evaluator sends "
                f"({PROMPT!r}); the model may have been trained on another prompt",
                file=sys.stderr,
            )
        return split

    def sample(self, row: Mapping[str, Any], index: int) -> Sample:
        """The image, the prompt and the flat ground truth of a row.

        Args:
            row (Mapping[str, Any]): a split row.
            index (int): its index.

        Returns:
            Sample: image, :data:`~eval.tasks.w2.schema.PROMPT` and the ground-truth dict.

        Raises:
            InputError: if the ground truth is not a usable W-2 record
                (:func:`~eval.tasks.w2.ground_truth.parse_ground_truth`, the check training
                applies: it names the missing, unknown or mistyped key) or the image is not
                usable; the message names the row and the column.
        """
        try:
            gt = parse_ground_truth(row.get(self.target_column))
        except GroundTruthError as exc:
            raise InputError(f"row {index}: column {self.target_column!r}: {exc}") from None
        data, mime = read_image_bytes(row.get(self.image_column), index, self.image_column)
        return Sample(id=index, image=data, mime=mime, prompt=PROMPT, target=gt)

    def answer(self, target: Mapping[str, Any]) -> str:
        """The canonical JSON of a ground truth (:func:`~eval.tasks.w2.schema.target_json`)."""
        return target_json(target)

    def instruction(self) -> str:
        """The one W-2 prompt."""
        return PROMPT

    def json_schema(self) -> dict[str, Any]:
        """The ``W2Form`` schema."""
        return json_schema()

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Score one reply with :func:`eval.tasks.w2.metrics.score_w2`."""
        return score_w2(
            sample.target, response.content, answered=response.answered, finish_reason=response.finish_reason
        )

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Aggregate with :func:`eval.tasks.w2.metrics.aggregate_w2`."""
        return aggregate_w2(scores)

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headline metrics and the five weakest fields."""
        rows = [
            ("accuracy (normalised)", pct(metrics["accuracy"])),
            ("accuracy_strict (reference)", pct(metrics["accuracy_strict"])),
            (
                "exact match (normalised / strict)",
                f"{pct(metrics['exact_match'])} / {pct(metrics['exact_match_strict'])}",
            ),
            ("JSON parse rate", pct(metrics["json_parse_rate"])),
            ("schema-valid rate", pct(metrics["schema_valid_rate"])),
        ]
        worst = sorted(metrics["per_field_accuracy"].items(), key=lambda kv: (kv[1], kv[0]))[:5]
        rows += [(f"  weakest: {name}", pct(acc)) for name, acc in worst]
        return rows

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """Per-field accuracy, normalised and strict."""
        return {
            "normalised": dict(metrics["per_field_accuracy"]),
            "strict (reference)": dict(metrics["per_field_accuracy_strict"]),
        }


TASK = W2Task
