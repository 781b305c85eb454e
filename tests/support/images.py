"""Images that real datasets contain and that break naive loaders, built on the fly (cached per process).

* :func:`oversized_png`: a valid PNG whose header says ``side x side`` pixels (1-bit, a few
  tens of KiB on disk); 12000 is over the image policy's limit but under Pillow's own error
  threshold (Pillow only warns), 14000 is over both (Pillow raises ``DecompressionBombError``).
* :func:`truncated_jpeg`: the first half of a JPEG: a valid header, pixels that do not decode.
* :func:`half_transparent_png`: an RGBA PNG whose pixels are red at alpha 128, so black and
  white compositing give clearly different pixels.
"""

from __future__ import annotations

import io
from functools import lru_cache


@lru_cache(maxsize=4)
def oversized_png(side: int) -> bytes:
    """A valid 1-bit ``side x side`` PNG (all white).

    Args:
        side (int): width and height in pixels.

    Returns:
        bytes: the encoded PNG.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (side, side), 1).save(buf, format="PNG")
    return buf.getvalue()


@lru_cache(maxsize=4)
def truncated_jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    """The first half of a noisy RGB JPEG: the header parses, the pixel data ends early.

    Args:
        width (int): pixels.
        height (int): pixels.
        seed (int): noise seed (distinct seeds give distinct bytes).

    Returns:
        bytes: the truncated JPEG.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@lru_cache(maxsize=4)
def half_transparent_png(width: int = 64, height: int = 48) -> bytes:
    """An RGBA PNG: red at alpha 128 everywhere, with an opaque blue square in the middle.

    Args:
        width (int): pixels.
        height (int): pixels.

    Returns:
        bytes: the encoded PNG.
    """
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (width, height), (255, 0, 0, 128))
    ImageDraw.Draw(image).rectangle(
        [width // 4, height // 4, 3 * width // 4, 3 * height // 4], (0, 0, 255, 255)
    )
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
