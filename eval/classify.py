"""Image-classification evaluator: ``python -m eval.classify`` against any OpenAI-compatible server.

Example::

    python -m eval.classify --server_url http://127.0.0.1:8001/v1 --model 11B-lora-cars \\
        --dataset data/cars/test --labels data/cars/labels.txt --structured

The request is the prompt of :mod:`eval.tasks.classify` (it lists every label) after the
image; ``--structured`` sends a JSON schema whose ``label`` is an ``enum`` of the labels, so a
server that enforces ``response_format`` can only answer with a label. Free-form answers are
canonicalised (case, whitespace, aliases from the labels file); anything else is "invalid".
Metrics (:mod:`eval.metrics.classify`): accuracy, macro-F1, invalid rate, per-label
precision/recall/F1, and the confusion matrix, also written as ``confusion_matrix.csv`` and
``confusion_matrix.png`` in ``--output_dir``. Retries, ``--resume``, the JSONL log and the
report come from the shared runner (:mod:`eval.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.client import data_url, response_format
from eval.metrics.classify import ClassifyScores, plot_confusion, score_classification, write_confusion_csv
from eval.record_tasks import RecordSplit, build_task_parser, load_records, record_image, run_record_task
from eval.runner import Example, Response
from eval.tasks import openai_user_content
from eval.tasks.classify import LabelSet, LabelsFileError, json_schema, load_labels, parse_label, prompt
from eval.tasks.records import load_classify

__all__ = ["ClassifyTask", "main"]

DESCRIPTION = (
    "Score image classification over a closed label set by a vision model served with an "
    "OpenAI-compatible API."
)
CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"


DATASET_HELP = "a JSONL file (image, label), a directory holding data.jsonl, or a folder tree <label>/<image>"


class ClassifyTask:
    """The classification task adapter (see :class:`eval.runner.TaskAdapter`).

    Args:
        labels (LabelSet): the closed label set (the prompt lists it, in order).
    """

    name = "classify"

    def __init__(self, labels: LabelSet) -> None:
        self.labels = labels
        self.prompt = prompt(labels)

    def prepare(self, row: Mapping[str, Any], row_id: int) -> Example:
        """Build the request (image, then the prompt) and keep the gold label.

        Args:
            row (Mapping[str, Any]): ``{"record": ClassifyRecord}``.
            row_id (int): its index.

        Returns:
            Example: content and target ``{"record_id", "label"}``.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        record = row["record"]
        data, mime = record_image(record, row_id)
        content = openai_user_content(data_url(data, mime), self.prompt)
        return Example(id=row_id, content=content, target={"record_id": record.id, "label": record.label})

    def response_format(self) -> Optional[dict[str, Any]]:
        """``response_format`` with the label ``enum`` schema, strict."""
        return response_format("Classification", json_schema(self.labels), strict=True)

    def score(self, example: Example, response: Response) -> dict[str, Any]:
        """Canonicalise the answer; a failed request or a non-label answer is invalid.

        Args:
            example (Example): the example.
            response (Response): the server's reply (or failure).

        Returns:
            dict[str, Any]: ``record_id``, ``gold``, ``pred`` (None = invalid), ``correct``,
            ``parsed``, ``failure`` (``"truncated"`` when cut by the token limit).
        """
        pred = parse_label(response.content, self.labels) if response.answered else None
        truncated = response.answered and response.finish_reason == "length" and pred is None
        return {
            "record_id": example.target["record_id"],
            "gold": example.target["label"],
            "pred": pred,
            "correct": pred == example.target["label"],
            "parsed": pred is not None,
            "failure": "truncated" if truncated else None,
        }

    def scores_of(self, scores: Sequence[Mapping[str, Any]]) -> ClassifyScores:
        """Recompute the metrics object from stored per-example scores.

        Args:
            scores (Sequence[Mapping[str, Any]]): one per scored example.

        Returns:
            ClassifyScores: the metrics.
        """
        preds = [s["pred"] if s.get("pred") in self.labels else None for s in scores]
        return score_classification([s["gold"] for s in scores], preds, self.labels)

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Accuracy, macro-F1, invalid rate, per-label table and confusion matrix."""
        return self.scores_of(scores).as_dict()

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headline metrics and the three weakest labels by recall."""

        def pct(x: float) -> str:
            return f"{100 * x:.2f} %"

        rows = [
            ("accuracy", pct(metrics["accuracy"])),
            ("macro-F1", pct(metrics["macro_f1"])),
            ("invalid answers", f"{pct(metrics['invalid_rate'])} ({metrics['invalid']})"),
        ]
        seen = [(k, v) for k, v in metrics["per_label"].items() if v["support"]]
        for label, v in sorted(seen, key=lambda kv: (kv[1]["recall"], kv[0]))[:3]:
            rows.append((f"  weakest: {label}", f"recall {pct(v['recall'])} of {v['support']}"))
        return rows

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """Per-label recall and precision."""
        per = metrics["per_label"]
        return {
            "recall": {k: v["recall"] for k, v in per.items()},
            "precision": {k: v["precision"] for k, v in per.items()},
        }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the classification evaluator.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    parser = build_task_parser("classify", DESCRIPTION, DATASET_HELP)
    parser.add_argument(
        "--labels",
        required=True,
        help="labels file: one label per line, aliases after '|' (or a JSON list / {label: [aliases]})",
    )
    args = parser.parse_args(argv)
    try:
        labels = load_labels(args.labels)
    except (LabelsFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    adapter = ClassifyTask(labels)

    def confusion(
        out: Path, split: RecordSplit, scores: list[tuple[int, Mapping[str, Any]]]
    ) -> dict[str, str]:
        del split
        metrics = adapter.scores_of([s for _, s in scores])
        write_confusion_csv(metrics, out / CONFUSION_CSV)
        plot_confusion(metrics, out / CONFUSION_PNG, title=f"classify: {args.model}")
        print(f"confusion matrix: {out / CONFUSION_CSV}, {out / CONFUSION_PNG}")
        return {"confusion_csv": CONFUSION_CSV, "confusion_png": CONFUSION_PNG}

    context = {"labels": list(labels.labels), "aliases": dict(labels.aliases)}
    load = load_records(load_classify, ("id", "image", "label"), context, labels=labels)
    return run_record_task("classify", args, adapter, load, after=confusion)


if __name__ == "__main__":
    sys.exit(main())
