"""The transform builder exposes tiles, patch size and image dtype."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from torchtune_ext.generation import user_message
from torchtune_ext.models import llama3_2_vision_transform


def _transform(ckpt: Path, **kwargs):
    return llama3_2_vision_transform(
        str(ckpt / "original" / "tokenizer.model"), special_tokens_path=str(ckpt / "tokenizer.json"), **kwargs
    )


@pytest.mark.parametrize(("dtype", "expected"), [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_image_dtype_tiles_and_mask(tiny_checkpoint: Path, dtype: str, expected: torch.dtype) -> None:
    transform = _transform(tiny_checkpoint, tile_size=56, max_num_tiles=6, patch_size=14, image_dtype=dtype)
    sample = transform({"messages": [user_message(Image.new("RGB", (300, 50), "red"), "hi")]}, inference=True)
    image = sample["encoder_input"]["images"][0]
    assert image.dtype == expected
    assert image.shape[1:] == (3, 56, 56)
    assert image.shape[0] == 6  # a 6:1 image uses the whole 6-tile budget (stock builder caps at 4)
    assert transform.image_seq_len == 6 * (4 * 4 + 1)
    assert sample["encoder_mask"][0].shape[-1] == 6 * 17


def test_bad_image_dtype(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="image_dtype='int8'"):
        _transform(tiny_checkpoint, image_dtype="int8")
