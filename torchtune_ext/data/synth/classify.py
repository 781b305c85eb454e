"""Synthetic brand-logo images for the classification task (offline, deterministic).

Each label is a fictional brand with its own colour and shape; an image shows the logo at a
random place and size, the brand name in a random size, and grey distractor shapes on a
random background. Output layout (read by ``eval.tasks.classify.reader.load_classify``)::

    OUT/labels.txt                   one label per line, aliases after "|"
    OUT/<split>/<label>/<nnnnn>.jpg  the folder tree
    OUT/<split>/data.jsonl           {"id", "image": "<label>/<nnnnn>.jpg", "label"}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from eval.core.records import write_jsonl
from torchtune_ext.data.synth import add_split_arguments, write_splits
from torchtune_ext.data.synth.drawing import font, gradient, jitter, split_seed

__all__ = ["BRANDS", "generate_classify"]

#: (label, aliases, colour, shape) of every synthetic brand, in label order.
BRANDS: tuple[tuple[str, tuple[str, ...], tuple[int, int, int], str], ...] = (
    ("Acme", ("ACME Corp",), (200, 40, 40), "circle"),
    ("Borealis", (), (40, 80, 200), "triangle"),
    ("Cobalt", ("Cobalt Motors",), (20, 140, 150), "square"),
    ("Dynamo", (), (230, 130, 20), "diamond"),
    ("Everest", (), (120, 50, 160), "pentagon"),
    ("Fjord", ("Fjord AS",), (40, 150, 60), "hexagon"),
    ("Gamma", (), (60, 60, 60), "bar"),
    ("Helix", (), (200, 60, 140), "ring"),
)


def _logo(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, color, rot: float) -> None:
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=max(2, int(r / 3)))
    elif shape == "bar":
        draw.rectangle((cx - r, cy - r / 3, cx + r, cy + r / 3), fill=color)
    else:
        sides = {"triangle": 3, "square": 4, "diamond": 4, "pentagon": 5, "hexagon": 6}[shape]
        rotation = rot + (45 if shape == "diamond" else 0)
        draw.regular_polygon((cx, cy, r), sides, rotation=rotation, fill=color)


def _image(seed: int, split: str, index: int, brand: int, size: int) -> Image.Image:
    rng = split_seed(seed, split, index)
    name, _, color, shape = BRANDS[brand]
    top = tuple(rng.randint(170, 255) for _ in range(3))
    bottom = tuple(rng.randint(170, 255) for _ in range(3))
    img = gradient(size, size, top, bottom)  # type: ignore[arg-type]
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(1, 3)):  # distractors
        g = rng.randint(120, 200)
        x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size * 0.05, size * 0.12)
        draw.rectangle((x - r, y - r, x + r, y + r), fill=(g, g, g))
    r = rng.uniform(size * 0.16, size * 0.26)
    cx = rng.uniform(r + 2, size - r - 2)
    cy = rng.uniform(r + 2, size * 0.7 - r) if size * 0.7 - r > r + 2 else r + 2
    _logo(draw, shape, cx, cy, r, jitter(rng, color), rng.uniform(-15, 15))
    text_font = font(rng.randint(max(8, size // 10), max(9, size // 7)))
    left, _, right, bottom_px = draw.textbbox((0, 0), name, font=text_font)
    tx = rng.uniform(0, max(0.0, size - (right - left)))
    ty = min(size - bottom_px - 1, cy + r + 2)
    draw.text((tx, ty), name, fill=jitter(rng, color, 15), font=text_font)
    return img


def generate_classify(
    output_dir: str | Path,
    *,
    train: int = 48,
    test: int = 16,
    seed: int = 0,
    num_labels: int = 4,
    size: int = 112,
) -> Path:
    """Write a synthetic classification dataset (see the module docstring for the layout).

    Labels cycle through the first ``num_labels`` brands, so classes are balanced.

    Args:
        output_dir (str | Path): output directory (created).
        train (int): images in ``train``.
        test (int): images in ``test``.
        seed (int): dataset seed; the same seed gives byte-identical files.
        num_labels (int): number of brands, 2 to ``len(BRANDS)``.
        size (int): image side in pixels.

    Returns:
        Path: ``output_dir``.

    Raises:
        ValueError: if ``num_labels`` is out of range.
    """
    if not 2 <= num_labels <= len(BRANDS):
        raise ValueError(f"num_labels must be in [2, {len(BRANDS)}], got {num_labels}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    brands = BRANDS[:num_labels]
    (out / "labels.txt").write_text(
        "".join(" | ".join((name, *aliases)) + "\n" for name, aliases, _, _ in brands), encoding="utf-8"
    )
    for split, count in (("train", train), ("test", test)):
        rows = []
        for i in range(count):
            brand = i % num_labels
            name = brands[brand][0]
            rel = f"{name}/{i:05d}.jpg"
            (out / split / name).mkdir(parents=True, exist_ok=True)
            _image(seed, split, i, brand, size).save(out / split / rel, quality=90)
            rows.append({"id": f"{split}-{i:05d}", "image": rel, "label": name})
        write_jsonl(out / split / "data.jsonl", rows)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The generator's flags.

    Args:
        p (argparse.ArgumentParser): the subcommand's parser.
    """
    p.description = (
        "Brand logos for the classification task: a folder tree + JSONL per split, and labels.txt."
    )
    add_split_arguments(p, train=48, test=16)
    p.add_argument(
        "--num-labels", type=int, default=4, help=f"number of brands, 2-{len(BRANDS)} (default: 4)"
    )
    p.add_argument("--size", type=int, default=112, help="image side in pixels (default: 112)")


def run(args: argparse.Namespace) -> int:
    """Write the dataset the parsed flags describe.

    Args:
        args (argparse.Namespace): from :func:`add_arguments`.

    Returns:
        int: exit status (0 ok, 2 bad input, with ``error: ...`` on stderr).
    """
    return write_splits(args, generate_classify, num_labels=args.num_labels, size=args.size)
