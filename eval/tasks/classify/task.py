"""The classification task for the evaluator and the training recipes: ``python -m eval.classify``.

Example::

    python -m eval.classify --server_url http://127.0.0.1:8001/v1 --model 11B-lora-cars \\
        --dataset data/cars/test --labels data/cars/labels.txt --structured

The request is the prompt of :mod:`eval.tasks.classify.labels` (it lists every label) after
the image; ``--structured`` sends a JSON schema whose ``label`` is an ``enum`` of the labels,
so a server that enforces ``response_format`` can only answer with a label. Free-form answers
are canonicalised (case, whitespace, aliases from the labels file); anything else is
"invalid". Metrics (:mod:`eval.tasks.classify.metrics`): accuracy, macro-F1, invalid rate,
per-label precision/recall/F1, and the confusion matrix, also written as
``confusion_matrix.csv`` and ``confusion_matrix.png`` in ``--output_dir``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.core.report import pct
from eval.core.splits import RecordSplit, read_records, record_image
from eval.core.task import Response, Sample, Task
from eval.tasks.classify.labels import LabelSet, json_schema, load_labels, parse_label, prompt, target_json
from eval.tasks.classify.metrics import (
    ClassifyScores,
    plot_confusion,
    score_classification,
    write_confusion_csv,
)
from eval.tasks.classify.reader import ClassifyRecord, load_classify

__all__ = ["ClassifyTask", "TASK"]

CONFUSION_CSV = "confusion_matrix.csv"
CONFUSION_PNG = "confusion_matrix.png"


class ClassifyTask(Task):
    """Classification over a closed label set (see :class:`eval.core.task.Task`).

    Args:
        labels (str | Path | LabelSet | None): the labels file (one label per line, aliases
            after ``|``; or a JSON list / ``{label: [aliases]}``), or a label set. The prompt
            lists the labels in this order.

    Raises:
        ValueError: if no labels are given, or the labels file is malformed.
        OSError: if the labels file cannot be read.
    """

    name = "classify"
    description = (
        "Score image classification over a closed label set by a vision model served with an "
        "OpenAI-compatible API."
    )
    dataset_help = (
        "a JSONL file (image, label), a directory holding data.jsonl, or a folder tree <label>/<image>"
    )
    headline_metric = "accuracy"

    def __init__(self, labels: str | Path | LabelSet | None = None) -> None:
        if labels is None:
            raise ValueError("the classify task needs a labels file (--labels, or the labels option)")
        self.labels = labels if isinstance(labels, LabelSet) else load_labels(labels)
        self.prompt = prompt(self.labels)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--labels``."""
        parser.add_argument(
            "--labels",
            default=None,
            help="labels file (required): one label per line, aliases after '|' "
            "(or a JSON list / {label: [aliases]})",
        )

    def options(self) -> dict[str, Any]:
        """The labels and aliases (a changed label set changes the prompt)."""
        return {"labels": list(self.labels.labels), "aliases": dict(self.labels.aliases)}

    def load(self, path: str | Path) -> RecordSplit:
        """Read the records with :func:`~eval.tasks.classify.reader.load_classify`.

        Args:
            path (str | Path): a JSONL file, a directory holding ``data.jsonl``, or a folder tree.

        Returns:
            RecordSplit: the records.

        Raises:
            DatasetError: on a bad row or an empty dataset (names file and line).
        """
        return read_records(load_classify, path, self.labels)

    def sample(self, row: ClassifyRecord, index: int) -> Sample:
        """The image, the label prompt and ``{"record_id", "label"}``.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        data, mime = record_image(row, index)
        target = {"record_id": row.id, "label": row.label}
        return Sample(id=index, image=data, mime=mime, prompt=self.prompt, target=target)

    def answer(self, target: Mapping[str, Any]) -> str:
        """``{"label": "<label>"}``."""
        return target_json(target["label"])

    def instruction(self) -> str:
        """The prompt listing the labels."""
        return self.prompt

    def json_schema(self) -> dict[str, Any]:
        """The answer object with ``label`` an ``enum`` of the labels."""
        return json_schema(self.labels)

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Canonicalise the answer; a failed request or a non-label answer is invalid.

        Returns:
            dict[str, Any]: ``record_id``, ``gold``, ``pred`` (None = invalid), ``correct``,
            ``parsed``, ``failure`` (``"truncated"`` when cut by the token limit).
        """
        pred = parse_label(response.content, self.labels) if response.answered else None
        truncated = response.answered and response.finish_reason == "length" and pred is None
        return {
            "record_id": sample.target["record_id"],
            "gold": sample.target["label"],
            "pred": pred,
            "correct": pred == sample.target["label"],
            "parsed": pred is not None,
            "failure": "truncated" if truncated else None,
        }

    def scores_of(self, scores: Sequence[Mapping[str, Any]]) -> ClassifyScores:
        """Recompute the metrics object from stored per-sample scores.

        Args:
            scores (Sequence[Mapping[str, Any]]): one per scored sample.

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

    def write_extras(
        self, out: Path, split: Any, scored: Sequence[tuple[int, Mapping[str, Any]]], title: str
    ) -> dict[str, str]:
        """The confusion matrix as CSV and PNG."""
        del split
        metrics = self.scores_of([s for _, s in scored])
        write_confusion_csv(metrics, out / CONFUSION_CSV)
        plot_confusion(metrics, out / CONFUSION_PNG, title=title)
        print(f"confusion matrix: {out / CONFUSION_CSV}, {out / CONFUSION_PNG}")
        return {"confusion_csv": CONFUSION_CSV, "confusion_png": CONFUSION_PNG}


TASK = ClassifyTask
