"""The image policy shared by training and evaluation: size limit, complete decode, colour rule."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.images import half_transparent_png, oversized_png, truncated_jpeg

from eval.core.images import MAX_IMAGE_PIXELS, ImageError, check_size, decode_image, open_image, to_rgb


def _encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_size_limit_is_read_from_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ImageError, match=r"^image is too large: 12000x12000 = 144,000,000 pixels, over the limit"
    ):
        open_image(oversized_png(12000))  # Pillow itself only warns at this size
    with pytest.raises(
        ImageError, match=r"^image is too large: 196,000,000 pixels, over the limit of 89,478,485$"
    ):
        decode_image(oversized_png(14000))  # Pillow itself refuses this one
    path = tmp_path / "big.png"
    path.write_bytes(oversized_png(12000))
    with pytest.raises(ImageError, match="too large"):
        decode_image(path)
    # The limit is ours, whatever a process sets Pillow's to.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageError, match="too large"):
        open_image(oversized_png(12000))
    check_size(9459, 9459)  # 89,472,681 pixels: at the limit
    with pytest.raises(ImageError):
        check_size(MAX_IMAGE_PIXELS + 1, 1)


def test_an_image_is_usable_only_if_it_decodes_completely(tmp_path: Path) -> None:
    good = _encode(Image.new("RGB", (30, 20), (10, 200, 30)), "JPEG")
    assert decode_image(good).size == (30, 20)
    Image.open(io.BytesIO(truncated_jpeg())).verify()  # the header check alone passes it ...
    with pytest.raises(ImageError, match=r"^image does not decode \(OSError: image file is truncated"):
        decode_image(truncated_jpeg())  # ... but its pixels do not decode
    with pytest.raises(ImageError, match=r"^image does not decode \(UnidentifiedImageError"):
        decode_image(b"<html>not an image</html>")
    with pytest.raises(ImageError, match=r"^image is empty \(0 bytes\)$"):
        decode_image(b"")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty.png is empty \(0 bytes\)$"):
        decode_image(tmp_path / "empty.png")
    with pytest.raises(ImageError, match=r"^cannot read image file .*missing.png: No such file"):
        decode_image(tmp_path / "missing.png")


def _transparent_variants() -> dict[str, Image.Image]:
    rgba = Image.open(io.BytesIO(half_transparent_png())).convert("RGBA")
    la = rgba.convert("LA")
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 250, 10, 10] + [0] * 762)
    palette.paste(1, (0, 0, 4, 8))
    palette.info["transparency"] = 0  # index 0 (black) is transparent
    rgb_trns = Image.new("RGB", (8, 8), (0, 0, 0))
    rgb_trns.paste((40, 90, 200), (0, 0, 8, 4))
    rgb_trns.info["transparency"] = (0, 0, 0)
    return {"RGBA": rgba, "LA": la, "P+tRNS": palette, "RGB+tRNS": rgb_trns}


@pytest.mark.parametrize("name", ["RGBA", "LA", "P+tRNS", "RGB+tRNS", "L", "RGB", "CMYK"])
def test_colour_rule_is_the_hf_image_processors(name: str) -> None:
    """Transparency composited on white, exactly as transformers' convert_to_rgb (what the servers run)."""
    from transformers.image_transforms import convert_to_rgb

    variants = _transparent_variants()
    rng = np.random.default_rng(1)
    opaque = Image.fromarray(rng.integers(0, 255, (6, 9, 3), dtype=np.uint8))
    variants.update({"L": opaque.convert("L"), "RGB": opaque, "CMYK": opaque.convert("CMYK")})
    image = variants[name]
    ours = to_rgb(image)
    assert ours.mode == "RGB"
    assert np.array_equal(np.asarray(ours), convert_to_rgb(image, return_numpy=True)), name


def test_transparent_pixels_become_white_not_black() -> None:
    image = Image.open(io.BytesIO(half_transparent_png()))
    corner = to_rgb(image).getpixel((0, 0))
    assert corner == (255, 127, 127)  # red at alpha 128 over white
    assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # a plain convert drops alpha
    assert to_rgb(image).getpixel((32, 24)) == (0, 0, 255)  # opaque pixels unchanged
