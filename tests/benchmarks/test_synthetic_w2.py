"""Synthetic W-2 samples: the Llama 3 chat layout, answer-only labels, real tiles and masks, determinism."""

from __future__ import annotations

import pytest
import torch
from synthetic_w2 import synthetic_w2_dataset, synthetic_w2_transform
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, padded_collate_tiled_images_and_mask


@pytest.fixture(scope="module")
def tiny_samples() -> tuple:
    transform = synthetic_w2_transform(512, tile_size=56, image_dtype="float32")
    return transform, synthetic_w2_dataset(transform, num_samples=3, unique_forms=2, seed=0)


def test_layout_labels_and_image(tiny_samples: tuple) -> None:
    transform, ds = tiny_samples
    s = ds[0]
    tokens, labels = s["tokens"], s["labels"]
    specials = transform.num_ordinary  # tiny: 480 ordinary ids, specials 480..511
    assert specials == 480 and transform.pad_id == 484 and transform.image_id == 512
    assert tokens[0] == 480 and tokens[-1] == 481 and tokens.count(512) == 1  # bos, eos, one <|image|>
    assert all(t < 512 for t in tokens if t != 512)
    first_label = next(i for i, x in enumerate(labels) if x != CROSS_ENTROPY_IGNORE_IDX)
    assert tokens[first_label] == 486  # loss starts at the assistant header
    assert tokens[first_label - 1] == 489  # right after the user turn's eot
    assert labels[-1] == CROSS_ENTROPY_IGNORE_IDX and labels[-2] == 489  # answer eot learned, eos not
    assert 500 < len(tokens) < 700  # Llama 3 pre-token pieces of a W-2 answer
    image = s["encoder_input"]["images"][0]
    assert image.shape == (4, 3, 56, 56) and image.dtype == torch.float32
    assert s["encoder_mask"][0].shape == (len(tokens), 4 * 17)
    # Tokens from the image token on attend to the image; those before it do not.
    img_pos = tokens.index(512)
    assert not s["encoder_mask"][0][:img_pos].any() and s["encoder_mask"][0][img_pos:].all()


def test_deterministic_cycling_and_collate(tiny_samples: tuple) -> None:
    transform, ds = tiny_samples
    assert len(ds) == 3
    assert ds[2]["tokens"] == ds[0]["tokens"]  # form 2 % 2 == form 0
    assert ds[1]["tokens"] != ds[0]["tokens"]
    again = synthetic_w2_dataset(transform, num_samples=1, unique_forms=1, seed=0)
    assert again[0]["tokens"] == ds[0]["tokens"]
    batch = padded_collate_tiled_images_and_mask([ds[0], ds[1]], padding_idx=transform.pad_id)
    assert batch["tokens"].shape[0] == 2 and batch["encoder_input"]["images"].shape[:3] == (2, 1, 4)


def test_11b_vocab_uses_llama3_special_ids() -> None:
    transform = synthetic_w2_transform(128256, tile_size=560)
    assert (transform.num_ordinary, transform.pad_id, transform.image_id) == (128000, 128004, 128256)
    assert transform.encode("box_b_employer_identification_number") == transform.encode(
        "box_b_employer_identification_number"
    )
    with pytest.raises(ValueError, match="image_dtype"):
        synthetic_w2_transform(512, tile_size=56, image_dtype="int8")
