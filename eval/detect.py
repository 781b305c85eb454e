"""Detection evaluator: ``python -m eval.detect`` against any OpenAI-compatible server.

Example::

    python -m eval.detect --server_url http://127.0.0.1:8001/v1 --model 11B-lora-off \\
        --dataset data/off/val --overlays 8

The request is the prompt of :mod:`eval.tasks.detect` after the image; answers are read with
its tolerant parser and the box convention (integer ``[x1, y1, x2, y2]`` on a 0-1000 grid of
the original image). Metrics (:mod:`eval.metrics.detect`): greedy one-to-one matching at
IoU >= ``--iou_threshold`` (0.5), precision / recall / F1, mean IoU of matches, mean best IoU
per ground-truth box, parse rate; an unparsable answer counts its ground truth as misses.
``--overlays N`` draws the N worst images (lowest F1, then lowest mean best IoU) with true
boxes in green and predictions in red into ``--output_dir/overlays``. Retries, ``--resume``,
the JSONL log and the report come from the shared runner (:mod:`eval.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from eval.client import data_url, response_format
from eval.metrics.detect import DetectScores, ImageResult, aggregate_detection, score_detection
from eval.record_tasks import RecordSplit, build_task_parser, load_records, record_image, run_record_task
from eval.runner import Example, Response
from eval.tasks import openai_user_content
from eval.tasks.detect import BOX_FORMATS, DEFAULT_OBJECT, GRID, json_schema, parse_boxes, prompt
from eval.tasks.records import load_detect, open_upright

__all__ = ["DetectTask", "draw_overlay", "main"]

DESCRIPTION = (
    "Score single-class object detection (boxes on a 0-1000 grid) by a vision model served with an "
    "OpenAI-compatible API."
)
OVERLAY_DIR = "overlays"


DATASET_HELP = "a JSONL file (image, boxes[, box_format, width, height]) or a directory holding data.jsonl"


class DetectTask:
    """The detection task adapter (see :class:`eval.runner.TaskAdapter`).

    Scores store the parsed predictions and the ground truth, so :meth:`aggregate` recomputes
    the matching from the log (the same numbers after ``--resume``).

    Args:
        object_name (str): the object named in the prompt.
        iou_threshold (float): IoU of a match.
    """

    name = "detect"

    def __init__(self, object_name: str = DEFAULT_OBJECT, iou_threshold: float = 0.5) -> None:
        self.prompt = prompt(object_name)
        self.iou_threshold = iou_threshold

    def prepare(self, row: Mapping[str, Any], row_id: int) -> Example:
        """Build the request (image, then the prompt) and keep the ground-truth grid boxes.

        Args:
            row (Mapping[str, Any]): ``{"record": DetectRecord}``.
            row_id (int): its index.

        Returns:
            Example: content and target ``{"record_id", "boxes"}``.

        Raises:
            InputError: if the image cannot be read or does not decode.
        """
        record = row["record"]
        data, mime = record_image(record, row_id)
        content = openai_user_content(data_url(data, mime), self.prompt)
        return Example(
            id=row_id,
            content=content,
            target={"record_id": record.id, "boxes": [list(b) for b in record.boxes]},
        )

    def response_format(self) -> Optional[dict[str, Any]]:
        """``response_format`` with the boxes schema, strict."""
        return response_format("Detection", json_schema(), strict=True)

    def score(self, example: Example, response: Response) -> dict[str, Any]:
        """Parse the boxes; store them with the ground truth.

        Args:
            example (Example): the example.
            response (Response): the server's reply (or failure).

        Returns:
            dict[str, Any]: ``record_id``, ``gt``, ``pred`` (None = unparsable), ``parsed``,
            ``failure`` (``"truncated"`` / ``"invalid_json"`` for an unparsable answer), and this
            image's ``tp``/``fp``/``fn`` at the run's threshold (for reading the log).
        """
        pred = parse_boxes(response.content) if response.answered else None
        gt = [tuple(b) for b in example.target["boxes"]]
        result = score_detection(pred, gt, self.iou_threshold)
        failure = None
        if response.answered and pred is None:
            failure = "truncated" if response.finish_reason == "length" else "invalid_json"
        return {
            "record_id": example.target["record_id"],
            "gt": example.target["boxes"],
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

        def pct(x: Optional[float]) -> str:
            return "n/a" if x is None else f"{100 * x:.2f} %"

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


def draw_overlay(
    image_path: Path,
    gt: Sequence[Sequence[int]],
    pred: Optional[Sequence[Sequence[int]]],
    dest: Path,
    caption: str,
) -> Path:
    """Draw true boxes (green, thicker) and predicted boxes (red) on the original image.

    Args:
        image_path (Path): the original image.
        gt (Sequence[Sequence[int]]): ground-truth grid boxes.
        pred (Optional[Sequence[Sequence[int]]]): predicted grid boxes (None: unparsable).
        dest (Path): output PNG.
        caption (str): text drawn in the top-left corner.

    Returns:
        Path: ``dest``.
    """
    from PIL import ImageDraw

    img = open_upright(image_path)
    w, h = img.size
    draw = ImageDraw.Draw(img)
    width = max(2, round(min(w, h) / 150))

    def px(b: Sequence[int]) -> tuple[float, float, float, float]:
        return (b[0] * w / GRID, b[1] * h / GRID, b[2] * w / GRID, b[3] * h / GRID)

    for b in gt:
        draw.rectangle(px(b), outline=(0, 200, 0), width=width + 1)
    for b in pred or []:
        draw.rectangle(px(b), outline=(230, 0, 0), width=width)
    label = caption + ("" if pred is not None else "  (unparsable answer)")
    box = draw.textbbox((4, 4), label)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(255, 255, 255))
    draw.text((4, 4), label, fill=(0, 0, 0))
    dest.parent.mkdir(parents=True, exist_ok=True)
    img.save(dest)
    return dest


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the detection evaluator.

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (0 ok, 1 failed requests, 2 bad input, 130 interrupted).
    """
    parser = build_task_parser("detect", DESCRIPTION, DATASET_HELP)
    task = parser.add_argument_group("detection")
    task.add_argument(
        "--box_format",
        "--box-format",
        choices=BOX_FORMATS,
        default="pixel",
        help="format of dataset rows that do not declare box_format",
    )
    task.add_argument(
        "--object_name", "--object-name", default=DEFAULT_OBJECT, help="object named in the prompt"
    )
    task.add_argument("--iou_threshold", "--iou-threshold", type=float, default=0.5, help="IoU of a match")
    task.add_argument(
        "--overlays", type=int, default=0, help="draw the N worst images with true and predicted boxes"
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.iou_threshold <= 1.0:
        print(f"error: --iou_threshold must be in (0, 1], got {args.iou_threshold}", file=sys.stderr)
        return 2
    adapter = DetectTask(args.object_name, args.iou_threshold)

    def overlays(
        out: Path, split: RecordSplit, scores: list[tuple[int, Mapping[str, Any]]]
    ) -> dict[str, str]:
        if args.overlays <= 0:
            return {}
        results = adapter.results_of([s for _, s in scores])
        ranked = sorted(
            zip(scores, results, strict=True),
            key=lambda sr: (sr[1].f1, sum(sr[1].best_ious) / max(1, len(sr[1].best_ious)), sr[0][0]),
        )
        folder = out / OVERLAY_DIR
        for (row_id, score), result in ranked[: args.overlays]:
            record = split.records[row_id]
            name = f"{row_id:06d}.png"
            draw_overlay(
                record.image,
                score["gt"],
                score["pred"],
                folder / name,
                f"{record.id}: F1 {result.f1:.2f}, TP {result.tp} FP {result.fp} FN {result.fn}",
            )
        print(f"overlays of the {min(args.overlays, len(ranked))} worst images: {folder}")
        return {"overlays": OVERLAY_DIR}

    context = {"prompt": adapter.prompt, "box_format": args.box_format}
    load = load_records(load_detect, ("id", "image", "boxes"), context, box_format=args.box_format)
    return run_record_task("detect", args, adapter, load, after=overlays)


if __name__ == "__main__":
    sys.exit(main())
