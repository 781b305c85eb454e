"""The one image policy of training and evaluation: which images are usable, and how they become RGB.

Every place that reads a dataset image goes through this module: the evaluator before it sends
a row (:func:`eval.core.splits.read_image_bytes`), the torchtune dataset builders when they are
built and when they decode a sample (``torchtune_ext.datasets``), the detection reader when it
measures an image, and the generation recipe. So a row is usable for training exactly when it
is usable for evaluation, and the model sees the same pixels on both sides. No torch here.

Rules:

* **Size**: an image is usable only if ``width * height <= MAX_IMAGE_PIXELS`` (89,478,485,
  Pillow's own decompression-bomb threshold, about 9459 x 9459). The size is read from the
  header, before any pixel is decoded, so an oversized image costs nothing. Llama 3.2 Vision
  sees at most four 560 x 560 tiles (1.25 Mpx); a larger image is only shrunk, while decoding
  one at the limit takes 268 MB as RGB. The limit does not depend on ``PIL.Image.MAX_IMAGE_PIXELS``
  (a process may change that); Pillow still refuses, on its own, images over twice its
  setting, which are reported the same way.
* **Decoding**: an image is usable only if it decodes completely. A header check is not
  enough: a truncated JPEG has a valid header and fails only when its pixels are read.
* **Colour**: an image with transparency (an alpha band, or a palette / grey / RGB image with
  a transparent colour) is composited on a white background, then converted to RGB; any
  other image is converted to RGB directly (:func:`to_rgb`). This is the rule of the
  Hugging Face image processors (``transformers.image_transforms.convert_to_rgb``) that the
  servers run; torchtune's ``CLIPImageTransform`` alone would turn transparent pixels black.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path
from typing import Any, Union

__all__ = [
    "MAX_IMAGE_PIXELS",
    "ImageError",
    "ImageSource",
    "check_size",
    "decode_image",
    "has_transparency",
    "open_image",
    "to_rgb",
]

#: Most pixels (width x height) of a usable image: Pillow's decompression-bomb warning threshold.
MAX_IMAGE_PIXELS = 89_478_485

#: Encoded image bytes, or a path to an image file.
ImageSource = Union[bytes, str, Path]

_PIL_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageError(ValueError):
    """An image is not usable; the message is one line saying why (callers add the row)."""


def check_size(width: int, height: int) -> None:
    """Apply the size rule.

    Args:
        width (int): pixels.
        height (int): pixels.

    Raises:
        ImageError: if ``width * height`` exceeds :data:`MAX_IMAGE_PIXELS`.
    """
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"image is too large: {width}x{height} = {width * height:,} pixels, "
            f"over the limit of {MAX_IMAGE_PIXELS:,}"
        )


def open_image(source: ImageSource) -> Any:
    """Open an image lazily (header only) and apply the size rule; no pixel is decoded.

    Args:
        source (ImageSource): encoded bytes or a file path.

    Returns:
        PIL.Image.Image: the opened image (the caller closes it).

    Raises:
        ImageError: if the source is empty or unreadable, is not an image ("image does not
            decode"), or is too large.
    """
    from PIL import Image

    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("image is empty (0 bytes)")
        fp: Any = io.BytesIO(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size == 0:
                raise ImageError(f"image file {path} is empty (0 bytes)")
        except OSError as exc:
            raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
        fp = path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size rule below decides
        try:
            image = Image.open(fp)
        except Image.DecompressionBombError as exc:
            found = _PIL_PIXELS.search(str(exc))
            pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
            raise ImageError(
                f"image is too large: {pixels}, over the limit of {MAX_IMAGE_PIXELS:,}"
            ) from None
        except Exception as exc:  # Pillow raises many types for data that is not an image
            raise ImageError(f"image does not decode ({type(exc).__name__}: {exc})") from None
    try:
        check_size(*image.size)
    except ImageError:
        image.close()
        raise
    return image


def decode_image(source: ImageSource) -> Any:
    """Open an image, apply the size rule, and decode every pixel.

    Args:
        source (ImageSource): encoded bytes or a file path.

    Returns:
        PIL.Image.Image: the decoded image, as stored (mode and EXIF orientation unchanged).

    Raises:
        ImageError: if it is not usable (see the module docstring); the message says why.
    """
    image = open_image(source)
    try:
        image.load()
    except Exception as exc:  # truncated or corrupt data: OSError, SyntaxError, zlib/struct errors
        image.close()
        raise ImageError(f"image does not decode ({type(exc).__name__}: {exc})") from None
    return image


def has_transparency(image: Any) -> bool:
    """Whether an image has an alpha band or a transparent colour.

    Args:
        image (PIL.Image.Image): the image.

    Returns:
        bool: True if :func:`to_rgb` composites it on white.
    """
    return "A" in image.getbands() or image.info.get("transparency") is not None


def to_rgb(image: Any) -> Any:
    """Convert an image to RGB by the colour rule: transparency composited on white.

    Args:
        image (PIL.Image.Image): any mode.

    Returns:
        PIL.Image.Image: an RGB image (``image`` itself when it is already RGB without transparency).
    """
    from PIL import Image

    if has_transparency(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")
