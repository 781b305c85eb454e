"""Real-sized W-2 training samples without a tokenizer file: for benchmarks and smoke runs.

:func:`synthetic_w2_dataset` renders forms with :mod:`torchtune_ext.data.synth.w2` (612×792
pages like the reference dataset), stores them PNG-encoded, and on each ``__getitem__``
decodes one and applies the model transform — the same per-sample work as training on the
prepared Arrow data.

:class:`SyntheticW2Transform` stands in for ``Llama3VisionTransform`` where no
``tokenizer.model`` exists (the GPU box has no weights): images go through torchtune's own
``CLIPImageTransform`` and ``VisionCrossAttentionMask`` (so tile counts and cross-attention
masks are the real ones), and text is laid out in the Llama 3 chat format
(``bos``, user header, ``<|image|>``, prompt, ``eot``, assistant header, answer, ``eot``,
``eos``), with each piece of Llama 3's pre-tokenizer (its regex split of the text) mapped to
one id by a stable hash. A W-2 answer gives about 575 pieces; the BPE gives at least one token
per piece, so lengths are those of the real tokenizer or slightly shorter. The ids are
deterministic, so the text stays learnable (the same key gets the same ids), which loss
comparisons need.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Mapping
from typing import Any

import regex
import torch
from PIL import Image as PILImage
from torch.utils.data import Dataset
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX
from torchtune.models.clip import CLIPImageTransform
from torchtune.models.llama3._tokenizer import CL100K_PATTERN
from torchtune.modules.transforms import VisionCrossAttentionMask

from eval.tasks import CONTENT_ORDER
from eval.tasks.w2 import PROMPT, target_json

__all__ = ["SyntheticW2Dataset", "SyntheticW2Transform", "synthetic_w2_dataset", "synthetic_w2_transform"]

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# Llama 3 special-token offsets from the first special id (128000 in the 11B vocabulary).
_BOS, _EOS, _PAD, _START_HEADER, _END_HEADER, _EOT = 0, 1, 4, 6, 7, 9


class SyntheticW2Transform:
    """Model transform for ``{"image": PIL image, "target": answer}`` samples without a tokenizer file.

    Args:
        vocab_size (int): the decoder's base vocabulary; ``<|image|>`` is ``vocab_size`` (the
            first fusion token) as in Llama 3.2 Vision.
        tile_size (int): tile side in pixels.
        patch_size (int): CLIP patch size.
        max_num_tiles (int): most tiles per image.
        max_seq_len (int): samples are truncated to this many tokens.
        image_dtype (torch.dtype): dtype of the image tensors.
        num_special_tokens (int): size of the special-token block at the top of the vocabulary
            (256 for Llama 3); default: 256 if it leaves at least 1,024 ordinary ids, else 32.

    Raises:
        ValueError: if the vocabulary is too small for the special-token block.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        tile_size: int,
        patch_size: int,
        max_num_tiles: int,
        max_seq_len: int = 8192,
        image_dtype: torch.dtype = torch.bfloat16,
        num_special_tokens: int | None = None,
    ) -> None:
        specials = num_special_tokens or (256 if vocab_size - 256 >= 1024 else 32)
        if vocab_size <= specials:
            raise ValueError(f"vocab_size={vocab_size} leaves no ordinary ids below {specials} specials")
        self.num_ordinary = vocab_size - specials
        self.image_id = vocab_size
        self.pad_id = self.num_ordinary + _PAD
        self.max_seq_len = max_seq_len
        self._pattern = regex.compile(CL100K_PATTERN)
        self.transform_image = CLIPImageTransform(
            image_mean=_CLIP_MEAN,
            image_std=_CLIP_STD,
            tile_size=tile_size,
            possible_resolutions=None,
            max_num_tiles=max_num_tiles,
            resample="bilinear",
            resize_to_max_canvas=False,
            dtype=image_dtype,
        )
        self.xattn_mask = VisionCrossAttentionMask(
            tile_size=tile_size, patch_size=patch_size, image_token_id=self.image_id
        )

    def encode(self, text: str) -> list[int]:
        """Map each Llama 3 pre-tokenizer piece of ``text`` to one stable ordinary id.

        Args:
            text (str): text to encode.

        Returns:
            list[int]: one id per piece.
        """
        return [zlib.crc32(p.encode()) % self.num_ordinary for p in self._pattern.findall(text)]

    def _special(self, offset: int) -> int:
        return self.num_ordinary + offset

    def _header(self, role: str) -> list[int]:
        return [
            self._special(_START_HEADER),
            *self.encode(role),
            self._special(_END_HEADER),
            *self.encode("\n\n"),
        ]

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """Build ``tokens``, ``labels``, ``encoder_input`` and ``encoder_mask`` for one sample.

        Args:
            sample (Mapping[str, Any]): ``image`` (PIL image) and ``target`` (answer text).

        Returns:
            dict[str, Any]: the fields torchtune's ``padded_collate_tiled_images_and_mask`` takes.
        """
        image = self.transform_image({"image": sample["image"]}, inference=False)
        body = {"image": [self.image_id], "text": self.encode(PROMPT)}
        user = [*self._header("user"), *(t for k in CONTENT_ORDER for t in body[k]), self._special(_EOT)]
        answer = [*self._header("assistant"), *self.encode(sample["target"].strip()), self._special(_EOT)]
        tokens = [self._special(_BOS), *user, *answer, self._special(_EOS)]
        masked = [True] * (1 + len(user)) + [False] * len(answer) + [True]
        tokens, masked = tokens[: self.max_seq_len], masked[: self.max_seq_len]
        out = {
            "tokens": tokens,
            "labels": [CROSS_ENTROPY_IGNORE_IDX if m else t for t, m in zip(tokens, masked, strict=True)],
            "encoder_input": {"images": [image["image"]], "aspect_ratio": [image["aspect_ratio"]]},
        }
        return self.xattn_mask(out, inference=False)


def synthetic_w2_transform(
    vocab_size: int,
    tile_size: int,
    patch_size: int = 14,
    max_num_tiles: int = 4,
    max_seq_len: int = 8192,
    image_dtype: str = "bfloat16",
) -> SyntheticW2Transform:
    """Builder of :class:`SyntheticW2Transform` for configs (``_component_``).

    Args:
        vocab_size (int): the decoder's base vocabulary (128256 for 11B, 512 for tiny).
        tile_size (int): tile side in pixels.
        patch_size (int): CLIP patch size.
        max_num_tiles (int): most tiles per image.
        max_seq_len (int): truncation length.
        image_dtype (str): ``"bfloat16"``, ``"float32"`` or ``"float16"``.

    Returns:
        SyntheticW2Transform: the transform.

    Raises:
        ValueError: on an unknown ``image_dtype``.
    """
    dtype = getattr(torch, image_dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"image_dtype={image_dtype!r} is not a floating torch dtype name")
    return SyntheticW2Transform(
        vocab_size,
        tile_size=tile_size,
        patch_size=patch_size,
        max_num_tiles=max_num_tiles,
        max_seq_len=max_seq_len,
        image_dtype=dtype,
    )


class SyntheticW2Dataset(Dataset):
    """``num_samples`` samples cycling over ``unique_forms`` rendered W-2 forms.

    Args:
        model_transform (SyntheticW2Transform): applied to ``{"image", "target"}`` per item.
        num_samples (int): dataset length.
        unique_forms (int): forms actually rendered (item ``i`` uses form ``i % unique_forms``).
        seed (int): generator seed; same seed, same forms.
        width (int): page width in px.
        height (int): page height in px.

    Raises:
        ValueError: if a count is not positive.
    """

    def __init__(
        self,
        model_transform: SyntheticW2Transform,
        *,
        num_samples: int,
        unique_forms: int = 8,
        seed: int = 0,
        width: int = 612,
        height: int = 792,
    ) -> None:
        from torchtune_ext.data.synth.w2 import make_w2  # rendering needs fonts; import on use

        if num_samples < 1 or unique_forms < 1:
            raise ValueError(f"num_samples={num_samples} and unique_forms={unique_forms} must be >= 1")
        self._transform = model_transform
        self._num_samples = num_samples
        self._forms = []
        for index in range(min(num_samples, unique_forms)):
            png, ground_truth = make_w2(seed, index, width=width, height=height)
            self._forms.append((png, target_json(json.loads(ground_truth)["gt_parse"])))

    def __len__(self) -> int:
        return self._num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        png, target = self._forms[index % len(self._forms)]
        with PILImage.open(io.BytesIO(png)) as image:
            rgb = image.convert("RGB")
        return self._transform({"image": rgb, "target": target})


def synthetic_w2_dataset(
    model_transform: SyntheticW2Transform,
    num_samples: int = 64,
    unique_forms: int = 8,
    seed: int = 0,
    width: int = 612,
    height: int = 792,
) -> SyntheticW2Dataset:
    """Builder of :class:`SyntheticW2Dataset` for configs; the recipe passes the model transform first.

    Args:
        model_transform (SyntheticW2Transform): the config's tokenizer (a synthetic transform).
        num_samples (int): dataset length.
        unique_forms (int): forms rendered.
        seed (int): generator seed.
        width (int): page width in px (612, as the reference dataset).
        height (int): page height in px (792).

    Returns:
        SyntheticW2Dataset: the dataset.
    """
    return SyntheticW2Dataset(
        model_transform,
        num_samples=num_samples,
        unique_forms=unique_forms,
        seed=seed,
        width=width,
        height=height,
    )
