"""The detection task for the evaluator and the training recipes: ``python -m eval.detect``.

Example::

    python -m eval.detect --server_url http://127.0.0.1:8001/v1 --model 11B-lora-off \\
        --dataset data/off/val --overlays 8

The request is the prompt of :mod:`eval.tasks.detect.boxes` after the image; answers are read
with its tolerant parser and the box convention (integer ``[x1, y1, x2, y2]`` on a 0-1000 grid
of the original image). Metrics (:mod:`eval.tasks.detect.metrics`): greedy one-to-one matching
at IoU >= ``--iou_threshold`` (0.5), precision / recall / F1, mean IoU of matches, mean best
IoU per ground-truth box, parse rate; an unparsable answer counts its ground truth as misses.
``--overlays N`` draws the N worst images (lowest F1, then lowest mean best IoU) with true
boxes in green and predictions in red into ``--output_dir/overlays``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.core.report import pct
from eval.core.splits import InputError, RecordSplit, read_records, record_image
from eval.core.task import Response, Sample, Task
from eval.tasks.detect.boxes import BOX_FORMATS, DEFAULT_OBJECT, json_schema, parse_boxes, prompt, target_json
from eval.tasks.detect.metrics import DetectScores, ImageResult, aggregate_detection, score_detection
from eval.tasks.detect.overlays import draw_overlay
from eval.tasks.detect.reader import DetectRecord, load_detect

__all__ = ["DetectTask", "TASK"]

OVERLAY_DIR = "overlays"


class DetectTask(Task):
    """Single-class detection on a 0-1000 grid (see :class:`eval.core.task.Task`).

    Scores store the parsed predictions and the ground truth, so :meth:`aggregate` recomputes
    the matching from the log (the same numbers after ``--resume``).

    Args:
        object_name (str): the object named in the prompt.
        box_format (str): format of dataset rows that do not declare ``box_format``.
        iou_threshold (float): IoU of a match, in (0, 1].
        overlays (int): how many of the worst images :meth:`write_extras` draws.

    Raises:
        ValueError: for a threshold outside (0, 1] or an unknown box format.
    """

    name = "detect"
    description = (
        "Score single-class object detection (boxes on a 0-1000 grid) by a vision model served with an "
        "OpenAI-compatible API."
    )
    dataset_help = (
        "a JSONL file (image, boxes[, box_format, width, height]) or a directory holding data.jsonl"
    )
    headline_metric = "f1"

    def __init__(
        self,
        object_name: str = DEFAULT_OBJECT,
        box_format: str = "pixel",
        iou_threshold: float = 0.5,
        overlays: int = 0,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"--iou_threshold must be in (0, 1], got {iou_threshold}")
        if box_format not in BOX_FORMATS:
            raise ValueError(f"unknown box_format {box_format!r}; expected one of {BOX_FORMATS}")
        self.object_name = object_name
        self.prompt = prompt(object_name)
        self.box_format = box_format
        self.iou_threshold = iou_threshold
        self.overlays = overlays

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--box_format``, ``--object_name``, ``--iou_threshold``, ``--overlays``."""
        group = parser.add_argument_group("detection")
        group.add_argument(
            "--box_format",
            "--box-format",
            choices=BOX_FORMATS,
            default="pixel",
            help="format of dataset rows that do not declare box_format",
        )
        group.add_argument(
            "--object_name", "--object-name", default=DEFAULT_OBJECT, help="object named in the prompt"
        )
        group.add_argument(
            "--iou_threshold", "--iou-threshold", type=float, default=0.5, help="IoU of a match"
        )
        group.add_argument(
            "--overlays", type=int, default=0, help="draw the N worst images with true and predicted boxes"
        )

    def options(self) -> dict[str, Any]:
        """The prompt and the default box format (both change what the rows mean)."""
        return {"prompt": self.prompt, "box_format": self.box_format}

    def load(self, path: str | Path) -> RecordSplit:
        """Read the records with :func:`~eval.tasks.detect.reader.load_detect`.

        Raises:
            DatasetError: on a bad row or an empty dataset (names file and line).
        """
        return read_records(load_detect, path, box_format=self.box_format)

    def sample(self, row: DetectRecord, index: int) -> Sample:
        """The image, the prompt and ``{"record_id", "boxes"}`` (grid boxes).

        Raises:
            InputError: if the image is not usable (unreadable, too large, does not decode).
        """
        if row.image_error is not None:
            raise InputError(f"row {index}: column 'image': {row.image_error}")
        data, mime = record_image(row, index)
        target = {"record_id": row.id, "boxes": [list(b) for b in row.boxes]}
        return Sample(id=index, image=data, mime=mime, prompt=self.prompt, target=target)

    def answer(self, target: Mapping[str, Any]) -> str:
        """``{"boxes": [[x1, y1, x2, y2], ...]}``, sorted."""
        return target_json(tuple(b) for b in target["boxes"])

    def instruction(self) -> str:
        """The prompt naming the object."""
        return self.prompt

    def json_schema(self) -> dict[str, Any]:
        """The boxes schema."""
        return json_schema()

    def score(self, sample: Sample, response: Response) -> dict[str, Any]:
        """Parse the boxes; store them with the ground truth.

        Returns:
            dict[str, Any]: ``record_id``, ``gt``, ``pred`` (None = unparsable), ``parsed``,
            ``failure`` (``"truncated"`` / ``"invalid_json"`` for an unparsable answer), and this
            image's ``tp``/``fp``/``fn`` at the run's threshold (for reading the log).
        """
        pred = parse_boxes(response.content) if response.answered else None
        gt = [tuple(b) for b in sample.target["boxes"]]
        result = score_detection(pred, gt, self.iou_threshold)
        failure = None
        if response.answered and pred is None:
            failure = "truncated" if response.finish_reason == "length" else "invalid_json"
        return {
            "record_id": sample.target["record_id"],
            "gt": sample.target["boxes"],
            "pred": None if pred is None else [list(b) for b in pred],
            "parsed": pred is not None,
            "failure": failure,
            "tp": result.tp,
            "fp": result.fp,
            "fn": result.fn,
        }

    def results_of(self, scores: Sequence[Mapping[str, Any]]) -> list[ImageResult]:
        """Re-match every stored score at this task's threshold.

        Args:
            scores (Sequence[Mapping[str, Any]]): one per scored image.

        Returns:
            list[ImageResult]: per-image results.
        """

        def boxes(value: Any) -> Optional[list[tuple[int, ...]]]:
            return None if value is None else [tuple(b) for b in value]

        return [score_detection(boxes(s["pred"]), boxes(s["gt"]) or [], self.iou_threshold) for s in scores]

    def aggregate(self, scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Precision, recall, F1 at the threshold, mean IoU of matches, mean best IoU, parse rate."""
        metrics: DetectScores = aggregate_detection(self.results_of(scores), self.iou_threshold)
        return metrics.as_dict()

    def summary_rows(self, metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Headline metrics."""

        def num(x: Optional[float]) -> str:
            return "n/a" if x is None else f"{x:.3f}"

        t = metrics["threshold"]
        return [
            (f"F1@{t:g}", pct(metrics["f1"])),
            (f"precision@{t:g} / recall@{t:g}", f"{pct(metrics['precision'])} / {pct(metrics['recall'])}"),
            ("mean IoU of matches", num(metrics["mean_iou"])),
            ("mean best IoU per true box", num(metrics["mean_best_iou"])),
            ("TP / FP / FN", f"{metrics['tp']} / {metrics['fp']} / {metrics['fn']}"),
            ("parse rate", pct(metrics["parse_rate"])),
        ]

    def chart_series(self, metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        """The headline rates as bars."""
        t = metrics["threshold"]
        bars = {f"F1@{t:g}": metrics["f1"], "precision": metrics["precision"], "recall": metrics["recall"]}
        for key, label in (("mean_iou", "mean IoU (matches)"), ("mean_best_iou", "mean best IoU")):
            if metrics[key] is not None:
                bars[label] = metrics[key]
        bars["parse rate"] = metrics["parse_rate"]
        return {"detection": bars}

    def write_extras(
        self, out: Path, split: Any, scored: Sequence[tuple[int, Mapping[str, Any]]], title: str
    ) -> dict[str, str]:
        """With ``overlays`` > 0: draw the worst images into ``out/overlays``."""
        if self.overlays <= 0:
            return {}
        results = self.results_of([s for _, s in scored])
        ranked = sorted(
            zip(scored, results, strict=True),
            key=lambda sr: (sr[1].f1, sum(sr[1].best_ious) / max(1, len(sr[1].best_ious)), sr[0][0]),
        )
        folder = out / OVERLAY_DIR
        for (row_id, score), result in ranked[: self.overlays]:
            record = split.row(row_id)
            draw_overlay(
                record.image,
                score["gt"],
                score["pred"],
                folder / f"{row_id:06d}.png",
                f"{record.id}: F1 {result.f1:.2f}, TP {result.tp} FP {result.fp} FN {result.fn}",
            )
        print(f"overlays of the {min(self.overlays, len(ranked))} worst images: {folder}")
        return {"overlays": OVERLAY_DIR}


TASK = DetectTask
