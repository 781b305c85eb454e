"""W-2 form extraction evaluator: ``python -m eval.w2`` against any OpenAI-compatible server.

Example::

    python -m eval.w2 --server_url http://127.0.0.1:8001/v1 --model 11B-full --structured \\
        --dataset data/w2/test --output_dir out/eval_w2

The request is built from :mod:`eval.tasks.w2` (the prompt and schema training uses, image
before text); the metrics are in :mod:`eval.metrics.w2`; flags, files and exit statuses in
:mod:`eval.cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from eval.client import data_url, response_format
from eval.data import DatasetError, InputError, Split, parse_json_column, read_image_bytes
from eval.metrics.w2 import aggregate_w2, score_w2
from eval.runner import Example, Response
from eval.tasks import openai_user_content
from eval.tasks.w2 import PROMPT, json_schema

__all__ = ["W2Task", "make_adapter", "main"]

DESCRIPTION = (
    "Score W-2 field extraction by a vision model served with an OpenAI-compatible API "
    "(vLLM, transformers serve, hosted APIs). Flags follow llama-cookbook's evaluate.py."
)


class W2Task:
    """The W-2 task adapter (see :class:`eval.runner.TaskAdapter`).

    Args:
        image_column (str): the split's image column.
        target_column (str): the ground-truth column (JSON string of the flat record, or of
            ``{"gt_parse": {...}}`` as in the original hub dataset).
    """

    name = "w2"

    def __init__(self, image_column: str = "image", target_column: str = "ground_truth") -> None:
        self.image_column = image_column
        self.target_column = target_column

    def prepare(self, row: Mapping[str, Any], row_id: int) -> Example:
        """Build the request content (image, then the prompt) and the ground truth.

        Args:
            row (Mapping[str, Any]): a dataset row.
            row_id (int): its index.

        Returns:
            Example: content and flat ground-truth dict.

        Raises:
            InputError: if the ground truth is not a JSON object or the image does not decode.
        """
        gt = parse_json_column(row.get(self.target_column), row_id, self.target_column)
        if isinstance(gt, dict) and set(gt) == {"gt_parse"}:
            gt = gt["gt_parse"]
        if not isinstance(gt, dict) or not gt:
            raise InputError(f"row {row_id}: column {self.target_column!r}: expected a non-empty JSON object")
        data, mime = read_image_bytes(row.get(self.image_column), row_id, self.image_column)
        return Example(id=row_id, content=openai_user_content(data_url(data, mime), PROMPT), target=gt)

    def response_format(self) -> Optional[dict[str, Any]]:
        """``response_format`` with the W2Form schema, strict."""
        return response_format("W2Form", json_schema(), strict=True)

    def score(self, example: Example, response: Response) -> dict[str, Any]:
        """Score one reply with :func:`eval.metrics.w2.score_w2`."""
        return score_w2(
            example.target, response.content, answered=response.answered, finish_reason=response.finish_reason
        )

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Aggregate with :func:`eval.metrics.w2.aggregate_w2`."""
        return aggregate_w2(scores)

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headline metrics and the five weakest fields."""

        def pct(x: Optional[float]) -> str:
            return "n/a" if x is None else f"{100 * x:.2f} %"

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


def make_adapter(args: argparse.Namespace, split: Split) -> W2Task:
    """Check the split's columns and build the adapter.

    Args:
        args (argparse.Namespace): parsed arguments (unused; part of the factory signature).
        split (Split): the split.

    Returns:
        W2Task: the adapter.

    Raises:
        DatasetError: if the image or ground-truth column is missing.
    """
    del args
    missing = [c for c in ("image", "ground_truth") if c not in split.columns]
    if missing:
        raise DatasetError(
            f"{split.path}: missing column(s) {', '.join(missing)} (have {', '.join(split.columns)})"
        )
    if split.image_column != "image":
        raise DatasetError(f"{split.path}: column 'image' is not an Image feature")
    if "input" in split.columns and len(split) and split.row(0).get("input") != PROMPT:
        print(
            f"warning: {split.path}: row 0's 'input' differs from the W-2 prompt the evaluator sends "
            f"({PROMPT!r}); the model may have been trained on another prompt",
            file=sys.stderr,
        )
    return W2Task()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the W-2 evaluator.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    from eval.cli import main_for_task

    return main_for_task("w2", DESCRIPTION, make_adapter, argv)


if __name__ == "__main__":
    sys.exit(main())
