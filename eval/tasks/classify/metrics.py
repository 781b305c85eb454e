"""Classification metrics: accuracy, macro-F1, the "invalid" bucket, the confusion matrix.

Definitions (all over the scored records):

* ``accuracy`` = correct / records; an invalid answer (not a label after canonicalisation,
  or a failed request) is wrong.
* ``invalid_rate`` = invalid answers / records.
* Per label ``L``: precision = (true ``L`` predicted ``L``) / (predicted ``L``), recall =
  (true ``L`` predicted ``L``) / (true ``L``), F1 their harmonic mean; 0 when undefined.
* ``macro_f1`` = mean F1 over the labels that occur as ground truth or as a valid prediction.
  "invalid" is not a class: it never enters the average, it lowers recall of the true class.
* The confusion matrix has one row per label (ground truth, label-file order) and one column
  per label plus a last ``invalid`` column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.tasks.classify.labels import INVALID, LabelSet

__all__ = ["ClassifyScores", "score_classification", "write_confusion_csv", "plot_confusion"]


@dataclass(frozen=True)
class ClassifyScores:
    """Classification results.

    Attributes:
        labels (tuple[str, ...]): the label order of the matrix rows and columns.
        n (int): number of records.
        correct (int): records whose prediction equals the ground truth.
        invalid (int): records whose answer is not a label.
        accuracy (float): correct / n.
        invalid_rate (float): invalid / n.
        macro_f1 (float): mean F1 over labels seen as ground truth or valid prediction.
        per_label (dict[str, dict[str, float]]): precision, recall, f1, support per label.
        confusion (tuple[tuple[int, ...], ...]): rows = true label, columns = labels + invalid.
    """

    labels: tuple[str, ...]
    n: int
    correct: int
    invalid: int
    accuracy: float
    invalid_rate: float
    macro_f1: float
    per_label: dict[str, dict[str, float]]
    confusion: tuple[tuple[int, ...], ...]

    def as_dict(self) -> dict[str, Any]:
        """Return the scores as a JSON-ready dict (matrix included).

        Returns:
            dict[str, Any]: metrics, per-label table and confusion matrix.
        """
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "invalid_rate": self.invalid_rate,
            "correct": self.correct,
            "invalid": self.invalid,
            "per_label": self.per_label,
            "confusion": {
                "rows": list(self.labels),
                "columns": [*self.labels, INVALID],
                "counts": [list(r) for r in self.confusion],
            },
        }


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def score_classification(
    golds: Sequence[str], preds: Sequence[Optional[str]], labels: LabelSet
) -> ClassifyScores:
    """Score canonical predictions against ground-truth labels.

    Args:
        golds (Sequence[str]): ground-truth labels (each must be in ``labels``).
        preds (Sequence[Optional[str]]): canonical predicted labels; None or a string outside
            ``labels`` counts as invalid.
        labels (LabelSet): the closed label set.

    Returns:
        ClassifyScores: all metrics.

    Raises:
        ValueError: if the lengths differ or a ground-truth label is not in the set.
    """
    if len(golds) != len(preds):
        raise ValueError(f"{len(golds)} ground-truth labels but {len(preds)} predictions")
    index = {label: i for i, label in enumerate(labels.labels)}
    k = len(labels.labels)
    matrix = [[0] * (k + 1) for _ in range(k)]
    for i, (gold, pred) in enumerate(zip(golds, preds, strict=True)):
        if gold not in index:
            raise ValueError(f"record {i}: ground-truth label {gold!r} is not in the label set")
        col = index.get(pred, k) if pred is not None else k
        matrix[index[gold]][col] += 1
    n = len(golds)
    correct = sum(matrix[i][i] for i in range(k))
    invalid = sum(row[k] for row in matrix)
    per_label: dict[str, dict[str, float]] = {}
    f1s: list[float] = []
    for i, label in enumerate(labels.labels):
        support = sum(matrix[i])
        predicted = sum(matrix[r][i] for r in range(k))
        precision = _ratio(matrix[i][i], predicted)
        recall = _ratio(matrix[i][i], support)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support or predicted:
            f1s.append(f1)
    return ClassifyScores(
        labels=labels.labels,
        n=n,
        correct=correct,
        invalid=invalid,
        accuracy=_ratio(correct, n),
        invalid_rate=_ratio(invalid, n),
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        per_label=per_label,
        confusion=tuple(tuple(row) for row in matrix),
    )


def write_confusion_csv(scores: ClassifyScores, path: str | Path) -> Path:
    """Write the confusion matrix as CSV: header ``true\\pred,<labels...>,invalid``.

    Args:
        scores (ClassifyScores): the scores.
        path (str | Path): output file.

    Returns:
        Path: the written file.
    """
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\pred", *scores.labels, INVALID])
        for label, row in zip(scores.labels, scores.confusion, strict=True):
            writer.writerow([label, *row])
    return path


def plot_confusion(scores: ClassifyScores, path: str | Path, title: str = "Confusion matrix") -> Path:
    """Draw the confusion matrix as a PNG (matplotlib, Agg backend).

    Args:
        scores (ClassifyScores): the scores.
        path (str | Path): output ``.png``.
        title (str): figure title.

    Returns:
        Path: the written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    columns = [*scores.labels, INVALID]
    size = max(4.0, 0.45 * len(columns) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    try:
        ax.imshow(scores.confusion, cmap="Blues", aspect="auto")
        ax.set_xticks(range(len(columns)), labels=columns, rotation=60, ha="right")
        ax.set_yticks(range(len(scores.labels)), labels=scores.labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} (accuracy {scores.accuracy:.1%}, n={scores.n})")
        peak = max((max(r) for r in scores.confusion), default=0)
        for i, row in enumerate(scores.confusion):
            for j, count in enumerate(row):
                if count:
                    ax.text(
                        j,
                        i,
                        str(count),
                        ha="center",
                        va="center",
                        color="white" if count > peak / 2 else "black",
                        fontsize=8,
                    )
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path
