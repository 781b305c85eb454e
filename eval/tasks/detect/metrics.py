"""Detection metrics: one-to-one matching at IoU >= 0.5, precision / recall / F1, mean IoU.

Boxes are on the task's 0-1000 grid (``eval.tasks.detect``); a box's area is
``(x2 - x1) * (y2 - y1)`` (continuous, no +1), so a degenerate box has area 0 and IoU 0.

**Matching** (per image, greedy, one-to-one): every (prediction, ground truth) pair with
IoU >= threshold is a candidate; candidates are taken in order of decreasing IoU, and a pair
is kept if neither box is matched yet. **Ties** (equal IoU) go to the earlier prediction in
the model's output order, then to the earlier ground-truth box. A duplicate prediction of an
already matched object is therefore a false positive.

**Counts** (summed over images): TP = matched pairs, FP = unmatched predictions, FN =
unmatched ground truth. An unparsable response has no predictions: all its ground truth are
misses (FN), it adds no FP.

* ``precision`` = TP / (TP + FP), ``recall`` = TP / (TP + FN), ``f1`` = 2PR / (P + R). With an
  empty denominator: precision is 1 if there is also nothing missed (FN = 0), else 0; recall
  is 1 if there is also nothing false (FP = 0), else 0 (empty vs empty is perfect).
* ``mean_iou`` = mean IoU of the matched pairs (None when there is no match).
* ``mean_best_iou`` = mean over ground-truth boxes of the best IoU any prediction of the same
  image reaches (0 for unparsable or empty answers): localisation quality without a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from eval.tasks.detect.boxes import Box

__all__ = ["iou", "match_boxes", "ImageResult", "DetectScores", "score_detection", "aggregate_detection"]


def _area(b: Sequence[int]) -> int:
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes.

    Args:
        a (Sequence[int]): first box.
        b (Sequence[int]): second box.

    Returns:
        float: IoU in [0, 1]; 0 if the union is empty.
    """
    inter = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(
    preds: Sequence[Box], gts: Sequence[Box], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching (see the module docstring for the tie rule).

    Args:
        preds (Sequence[Box]): predicted boxes in output order.
        gts (Sequence[Box]): ground-truth boxes.
        threshold (float): minimum IoU of a match.

    Returns:
        list[tuple[int, int, float]]: ``(prediction index, ground-truth index, IoU)`` per match,
        in the order they were taken.
    """
    candidates = [
        (v, p, g) for p, pb in enumerate(preds) for g, gb in enumerate(gts) if (v := iou(pb, gb)) >= threshold
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_p: set[int] = set()
    used_g: set[int] = set()
    matches: list[tuple[int, int, float]] = []
    for v, p, g in candidates:
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
            matches.append((p, g, v))
    return matches


@dataclass(frozen=True)
class ImageResult:
    """Matching outcome for one image.

    Attributes:
        parsed (bool): whether the response could be read as boxes.
        tp (int): matched predictions.
        fp (int): unmatched predictions.
        fn (int): unmatched ground-truth boxes.
        match_ious (tuple[float, ...]): IoU of each match.
        best_ious (tuple[float, ...]): per ground-truth box, the best IoU of any prediction.
    """

    parsed: bool
    tp: int
    fp: int
    fn: int
    match_ious: tuple[float, ...]
    best_ious: tuple[float, ...]

    @property
    def f1(self) -> float:
        """Per-image F1 with the same empty-denominator rules as :class:`DetectScores`."""
        return _prf(self.tp, self.fp, self.fn)[2]

    def as_dict(self) -> dict[str, Any]:
        """Return the per-image counts as a JSON-ready dict.

        Returns:
            dict[str, Any]: parsed, tp, fp, fn, match_ious, best_ious, f1.
        """
        return {
            "parsed": self.parsed,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "match_ious": list(self.match_ious),
            "best_ious": list(self.best_ious),
            "f1": self.f1,
        }


def score_detection(
    preds: Optional[Sequence[Box]], gts: Sequence[Box], threshold: float = 0.5
) -> ImageResult:
    """Match one image's predictions against its ground truth.

    Args:
        preds (Optional[Sequence[Box]]): parsed predictions, or None if unparsable.
        gts (Sequence[Box]): ground-truth boxes.
        threshold (float): IoU threshold of a match.

    Returns:
        ImageResult: the counts and IoUs.
    """
    parsed = preds is not None
    preds = list(preds or [])
    matches = match_boxes(preds, gts, threshold)
    best = tuple(max((iou(p, g) for p in preds), default=0.0) for g in gts)
    return ImageResult(
        parsed=parsed,
        tp=len(matches),
        fp=len(preds) - len(matches),
        fn=len(gts) - len(matches),
        match_ious=tuple(v for _, _, v in matches),
        best_ious=best,
    )


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else (1.0 if fp == 0 else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass(frozen=True)
class DetectScores:
    """Dataset-level detection metrics (see the module docstring).

    Attributes:
        n (int): images scored.
        parse_rate (float): share of responses read as boxes.
        tp (int): true positives.
        fp (int): false positives.
        fn (int): false negatives.
        precision (float): TP / (TP + FP).
        recall (float): TP / (TP + FN).
        f1 (float): harmonic mean of precision and recall.
        mean_iou (Optional[float]): mean IoU of the matches.
        mean_best_iou (Optional[float]): mean best IoU per ground-truth box (None without any).
        threshold (float): IoU threshold used.
    """

    n: int
    parse_rate: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    mean_iou: Optional[float]
    mean_best_iou: Optional[float]
    threshold: float

    def as_dict(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict.

        Returns:
            dict[str, Any]: every attribute.
        """
        return dict(self.__dict__)


def aggregate_detection(results: Sequence[ImageResult], threshold: float = 0.5) -> DetectScores:
    """Sum per-image results into dataset metrics.

    Args:
        results (Sequence[ImageResult]): one per image.
        threshold (float): the IoU threshold the results were matched with (reported).

    Returns:
        DetectScores: the metrics.
    """
    tp = sum(r.tp for r in results)
    fp = sum(r.fp for r in results)
    fn = sum(r.fn for r in results)
    precision, recall, f1 = _prf(tp, fp, fn)
    matched = [v for r in results for v in r.match_ious]
    best = [v for r in results for v in r.best_ious]
    n = len(results)
    return DetectScores(
        n=n,
        parse_rate=sum(r.parsed for r in results) / n if n else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
        precision=precision,
        recall=recall,
        f1=f1,
        mean_iou=sum(matched) / len(matched) if matched else None,
        mean_best_iou=sum(best) / len(best) if best else None,
        threshold=threshold,
    )
