"""Detection overlays: true boxes (green) and predicted boxes (red) drawn on the original image."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from eval.core.records import open_upright
from eval.tasks.detect.boxes import GRID

__all__ = ["draw_overlay"]


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
