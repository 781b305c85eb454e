"""Synthetic product photos with drawn nutrition tables, for the detection task.

Each image is a "package": a gradient background, a brand name and decorative shapes, and
0, 1 or 2 nutrition tables (white panel, "Nutrition Facts" header, nutrient rows). The
table boxes are recorded in pixels. Output layout (read by ``eval.tasks.detect.reader.load_detect``)::

    OUT/<split>/images/<nnnnn>.jpg
    OUT/<split>/data.jsonl   {"id", "image", "width", "height", "box_format": "pixel",
                              "boxes": [[x1, y1, x2, y2], ...]}
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

from eval.core.records import write_jsonl
from torchtune_ext.data.synth import add_split_arguments, write_splits
from torchtune_ext.data.synth.drawing import font, gradient, split_seed

__all__ = ["generate_detect"]

_NUTRIENTS = (
    ("Energy", "kcal"),
    ("Fat", "g"),
    ("Saturates", "g"),
    ("Carbohydrate", "g"),
    ("Sugars", "g"),
    ("Fibre", "g"),
    ("Protein", "g"),
    ("Salt", "g"),
)
_BRANDS = ("Crunchy Oats", "Sunny Juice", "Mighty Beans", "Choco Puffs", "Green Tea", "Fresh Pasta")

Box = tuple[int, int, int, int]


def _overlaps(a: Box, b: Box, margin: int = 4) -> bool:
    return not (
        a[2] + margin <= b[0] or b[2] + margin <= a[0] or a[3] + margin <= b[1] or b[3] + margin <= a[1]
    )


def _table(draw: ImageDraw.ImageDraw, rng: random.Random, box: Box) -> None:
    x1, y1, x2, y2 = box
    draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=(250, 250, 245), outline=(0, 0, 0), width=2)
    rows = rng.randint(4, 7)
    row_h = (y2 - y1) / (rows + 1.6)
    header = font(row_h * 0.8)
    body = font(row_h * 0.55)
    pad = max(3, (x2 - x1) // 20)
    draw.text((x1 + pad, y1 + row_h * 0.15), "Nutrition Facts", fill=(0, 0, 0), font=header)
    y = y1 + row_h * 1.2
    draw.line((x1 + pad, y, x2 - pad, y), fill=(0, 0, 0), width=3)
    for name, unit in rng.sample(_NUTRIENTS, rows):
        value = f"{rng.randint(0, 400) if unit == 'kcal' else rng.randint(0, 300) / 10:g} {unit}"
        draw.text((x1 + pad, y + row_h * 0.2), name, fill=(0, 0, 0), font=body)
        right = draw.textlength(value, font=body)
        draw.text((x2 - pad - right, y + row_h * 0.2), value, fill=(0, 0, 0), font=body)
        y += row_h
        draw.line((x1 + pad, y, x2 - pad, y), fill=(80, 80, 80), width=1)


def _example(seed: int, split: str, index: int) -> tuple[Image.Image, list[Box]]:
    rng = split_seed(seed, split, index)
    w, h = rng.randint(256, 384), rng.randint(192, 320)
    top = tuple(rng.randint(30, 230) for _ in range(3))
    bottom = tuple(rng.randint(30, 230) for _ in range(3))
    img = gradient(w, h, top, bottom)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 5)):  # package art
        color = tuple(rng.randint(0, 255) for _ in range(3))
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, min(w, h) / 4)
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((cx - r, cy - r, cx + r, cy + r), fill=color)
    draw.text(
        (rng.uniform(4, w / 3), rng.uniform(4, h / 5)),
        rng.choice(_BRANDS),
        fill=tuple(rng.randint(0, 255) for _ in range(3)),
        font=font(rng.randint(16, 28)),
    )
    wanted = rng.choices((0, 1, 2), weights=(1, 8, 1))[0]
    boxes: list[Box] = []
    for _ in range(wanted * 20):  # bounded rejection sampling for non-overlapping tables
        if len(boxes) == wanted:
            break
        tw, th = int(w * rng.uniform(0.25, 0.45)), int(h * rng.uniform(0.35, 0.6))
        x1, y1 = rng.randint(2, w - tw - 2), rng.randint(2, h - th - 2)
        box = (x1, y1, x1 + tw, y1 + th)
        if not any(_overlaps(box, b) for b in boxes):
            boxes.append(box)
    for box in boxes:
        _table(draw, rng, box)
    return img, boxes


def generate_detect(output_dir: str | Path, *, train: int = 48, test: int = 16, seed: int = 0) -> Path:
    """Write a synthetic nutrition-table detection dataset (layout in the module docstring).

    Args:
        output_dir (str | Path): output directory (created).
        train (int): images in ``train``.
        test (int): images in ``test``.
        seed (int): dataset seed; the same seed gives byte-identical files.

    Returns:
        Path: ``output_dir``.
    """
    out = Path(output_dir)
    for split, count in (("train", train), ("test", test)):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            img, boxes = _example(seed, split, i)
            rel = f"images/{i:05d}.jpg"
            img.save(out / split / rel, quality=90)
            rows.append(
                {
                    "id": f"{split}-{i:05d}",
                    "image": rel,
                    "width": img.width,
                    "height": img.height,
                    "box_format": "pixel",
                    "boxes": [list(b) for b in boxes],
                }
            )
        write_jsonl(out / split / "data.jsonl", rows)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The generator's flags.

    Args:
        p (argparse.ArgumentParser): the subcommand's parser.
    """
    p.description = "Product photos with nutrition tables and their boxes, for the detection task."
    add_split_arguments(p, train=48, test=16)


def run(args: argparse.Namespace) -> int:
    """Write the dataset the parsed flags describe.

    Args:
        args (argparse.Namespace): from :func:`add_arguments`.

    Returns:
        int: exit status (0 ok, 2 bad input, with ``error: ...`` on stderr).
    """
    return write_splits(args, generate_detect)
