"""Small PIL drawing helpers shared by the synthetic task-data generators."""

from __future__ import annotations

import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

__all__ = ["font", "gradient", "jitter", "regular_polygon", "split_seed"]

Color = tuple[int, int, int]


@lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at ``size`` px (no system fonts needed).

    Args:
        size (int): pixel size (at least 6).

    Returns:
        ImageFont.FreeTypeFont | ImageFont.ImageFont: the font.
    """
    return ImageFont.load_default(size=max(6, int(size)))


def gradient(width: int, height: int, top: Color, bottom: Color) -> Image.Image:
    """A vertical two-colour gradient.

    Args:
        width (int): image width.
        height (int): image height.
        top (Color): colour of the first row.
        bottom (Color): colour of the last row.

    Returns:
        Image.Image: an RGB image.
    """
    column = Image.new("RGB", (1, height))
    for y in range(height):
        t = y / max(1, height - 1)
        column.putpixel((0, y), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return column.resize((width, height), Image.Resampling.NEAREST)


def jitter(rng: random.Random, color: Color, amount: int = 25) -> Color:
    """Shift each channel of a colour by up to ``amount``.

    Args:
        rng (random.Random): the random source.
        color (Color): base colour.
        amount (int): maximum shift per channel.

    Returns:
        Color: the jittered colour.
    """
    return tuple(min(255, max(0, c + rng.randint(-amount, amount))) for c in color)  # type: ignore[return-value]


def regular_polygon(
    draw: ImageDraw.ImageDraw,
    center: tuple[float, float],
    radius: float,
    sides: int,
    fill: Color,
    rotation: float,
) -> None:
    """Draw a filled regular polygon.

    Args:
        draw (ImageDraw.ImageDraw): target.
        center (tuple[float, float]): centre in pixels.
        radius (float): circumradius in pixels.
        sides (int): number of sides.
        fill (Color): fill colour.
        rotation (float): rotation in degrees.
    """
    draw.regular_polygon((center[0], center[1], radius), sides, rotation=rotation, fill=fill)


def split_seed(seed: int, split: str, index: int) -> random.Random:
    """A random source for one example, independent of every other example.

    Args:
        seed (int): the dataset seed.
        split (str): split name.
        index (int): example index within the split.

    Returns:
        random.Random: a freshly seeded generator.
    """
    return random.Random(f"{seed}/{split}/{index}")
