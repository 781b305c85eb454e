"""Scanner/photocopier artefacts for synthetic document images.

Every effect is off by default and drawn from the caller's random generator, so a page
with a given seed looks the same on every run.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

__all__ = ["ScanNoise", "apply_scan_noise", "encode_image"]


@dataclass(frozen=True)
class ScanNoise:
    """Strength of each artefact; each form draws its own amount up to the maximum.

    Attributes:
        rotate (float): maximum absolute skew in degrees.
        blur (float): maximum Gaussian blur radius in px.
        noise (float): maximum standard deviation of additive Gaussian noise (0-255 scale).
        contrast (float): maximum relative contrast change (0.2 means 0.8x to 1.2x).
        jpeg_quality (int): 0 stores lossless PNG; 1-95 stores JPEG at that quality.
    """

    rotate: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    contrast: float = 0.0
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        for name in ("rotate", "blur", "noise", "contrast"):
            if getattr(self, name) < 0:
                raise ValueError(f"scan noise {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality must be 0 (PNG) or 1-95, got {self.jpeg_quality}")

    @property
    def active(self) -> bool:
        """Whether any pixel-changing effect is on (JPEG alone counts as one)."""
        return bool(self.rotate or self.blur or self.noise or self.contrast)


#: The ``--scan-noise`` preset: a typical office scan.
SCAN_PRESET = ScanNoise(rotate=1.0, blur=0.7, noise=6.0, contrast=0.15, jpeg_quality=85)


def apply_scan_noise(img: Image.Image, noise: ScanNoise, rng: np.random.Generator) -> Image.Image:
    """Apply the enabled artefacts to a grayscale page.

    Args:
        img (Image.Image): an ``"L"`` page.
        noise (ScanNoise): maximum strengths.
        rng (np.random.Generator): source of the per-page amounts.

    Returns:
        Image.Image: the degraded page (same size and mode).
    """
    if noise.contrast:
        img = ImageEnhance.Contrast(img).enhance(1.0 + rng.uniform(-noise.contrast, noise.contrast))
    if noise.rotate:
        angle = rng.uniform(-noise.rotate, noise.rotate)
        img = img.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=255)
    if noise.blur:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, noise.blur)))
    if noise.noise:
        sigma = rng.uniform(0.0, noise.noise)
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + rng.standard_normal(arr.shape, dtype=np.float32) * sigma
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def encode_image(img: Image.Image, jpeg_quality: int = 0) -> bytes:
    """Encode a page for storage: PNG (fast compression) or JPEG.

    Args:
        img (Image.Image): the page.
        jpeg_quality (int): 0 for PNG, else the JPEG quality.

    Returns:
        bytes: the encoded file.
    """
    buf = io.BytesIO()
    if jpeg_quality:
        img.save(buf, format="JPEG", quality=jpeg_quality)
    else:
        img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
