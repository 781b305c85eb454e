"""Llama 3.2 Vision encoder that computes what the serving stack computes.

torchtune 0.6.1's ``Llama3VisionEncoder`` runs the CLIP tower on the raw tile sequence: no patch
padding, no attention mask, and only as many tiles as the batch holds. Meta's reference encoder
(``llama-models``: ``models/llama3/multimodal/model.py``), which the released checkpoints were
trained with, and every server that loads them (vLLM 0.10.0, transformers 4.53) do three things
differently, all of which change the image features (see README.md in this folder):

1. every image has ``max_num_tiles`` tiles: missing tiles are zero pixels;
2. each tile's token sequence (CLS + patches) is zero-padded to a multiple of 8 after
   ``ln_pre`` (11B: 1601 -> 1608; tiny 56 px tiles: 17 -> 24);
3. an additive attention mask blocks only (padding, padding) query/key pairs, where padding means a
   padded token or any token of a tile beyond the image's ``h * w`` tiles. Real tokens do attend to
   padding; this is the reference behaviour, copied by vLLM and transformers.

The same mask and padding are used by the CLIP layers and by the global (projection) layers;
``post_tile_pos_embed`` is added to the padded sequence after ``ln_post``; padding is cut off only at
the end. Intermediate taps are the *input* of CLIP layer ``i`` (as in torchtune, the reference,
vLLM 0.10.0 and transformers 4.x), concatenated after the final features with the layer index
varying fastest.

:class:`Llama3VisionReferenceEncoder` reuses torchtune's modules (``clip`` and ``projection``) so its
state dict is key-for-key the one of torchtune's encoder: checkpoints load and save unchanged, and
LoRA / QLoRA layers built by torchtune's LoRA builders plug in as they are.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn.functional as F
from torchtune.models.llama3_2_vision._component_builders import (
    llama3_2_vision_encoder as _tt_llama3_2_vision_encoder,
)
from torchtune.models.llama3_2_vision._component_builders import (
    lora_llama3_2_vision_encoder as _tt_lora_llama3_2_vision_encoder,
)
from torchtune.models.llama3_2_vision._encoder import Llama3VisionEncoder, Llama3VisionProjectionHead
from torchtune.modules import VisionTransformer
from torchtune.modules.common_utils import reparametrize_as_dtype_state_dict_post_hook
from torchtune.modules.peft import LORA_ATTN_MODULES

__all__ = [
    "PATCH_PAD_MULTIPLE",
    "Llama3VisionReferenceEncoder",
    "llama3_2_vision_encoder",
    "lora_llama3_2_vision_encoder",
    "num_patch_padding",
    "reference_encoder_attention_mask",
]

#: Each tile's token sequence is padded to a multiple of this (Meta's ``expand_num_tokens_to_mult8``).
PATCH_PAD_MULTIPLE = 8


def num_patch_padding(tokens_per_tile: int) -> int:
    """Number of zero tokens appended to each tile (vLLM 0.10.0 / transformers: ``(8 - n % 8) % 8``).

    Meta's reference pads ``8 - n % 8``, i.e. 8 instead of 0 when ``n`` is already a multiple of 8; that
    case cannot occur for Llama 3.2 Vision since ``n = g**2 + 1`` and squares are 0, 1 or 4 mod 8.

    Args:
        tokens_per_tile (int): CLS token plus patches of one tile.

    Returns:
        int: padding tokens per tile.
    """
    return (PATCH_PAD_MULTIPLE - tokens_per_tile % PATCH_PAD_MULTIPLE) % PATCH_PAD_MULTIPLE


def reference_encoder_attention_mask(
    aspect_ratio: torch.Tensor,
    *,
    num_tiles: int,
    tokens_per_tile: int,
    padded_tokens_per_tile: int,
    dtype: torch.dtype,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Additive self-attention mask of the reference vision encoder.

    A position is *padding* if its tile index is ``>= h * w`` of its image's aspect ratio or its
    token index within the tile is ``>= tokens_per_tile``. Only pairs where query and key are both
    padding get ``finfo(dtype).min``; everything else is 0. This equals transformers'/vLLM's
    ``_prepare_aspect_ratio_attention_mask`` and Meta's ``build_encoder_attention_mask``. A float mask
    (not a boolean one) keeps all-padding rows (images with no real tile) finite, as there.

    Args:
        aspect_ratio (torch.Tensor): ``(n_images, 2)`` tiles along height and width per image.
        num_tiles (int): tiles per image in the sequence (``max_num_tiles``).
        tokens_per_tile (int): real tokens per tile (CLS + patches).
        padded_tokens_per_tile (int): tokens per tile after padding.
        dtype (torch.dtype): dtype of the attention scores.
        device (Optional[torch.device]): where the mask is built (the activations' device);
            default ``aspect_ratio``'s.

    Returns:
        torch.Tensor: ``(n_images, S, S)`` with ``S = num_tiles * padded_tokens_per_tile``.
    """
    device = aspect_ratio.device if device is None else device
    n_real_tiles = aspect_ratio.prod(dim=-1).to(device)
    tile_idx = torch.arange(num_tiles, device=device)
    token_idx = torch.arange(padded_tokens_per_tile, device=device)
    real_tile = tile_idx[None, :, None] < n_real_tiles[:, None, None]
    real = real_tile & (token_idx[None, None, :] < tokens_per_tile)
    pad = ~real.reshape(aspect_ratio.shape[0], num_tiles * padded_tokens_per_tile)
    blocked = pad[:, :, None] & pad[:, None, :]
    mask = torch.zeros(blocked.shape, dtype=dtype, device=device)
    return mask.masked_fill(blocked, torch.finfo(dtype).min)


class Llama3VisionReferenceEncoder(Llama3VisionEncoder):
    """torchtune's Llama 3.2 Vision encoder with the reference tile/patch padding and attention mask.

    Same submodules and parameter names as :class:`torchtune.models.llama3_2_vision.Llama3VisionEncoder`
    (``clip.*``, ``projection.*``); only ``forward`` differs. See the module docstring.

    Args:
        clip (VisionTransformer): torchtune CLIP tower (stock or LoRA), CLS prepended, no CLS projection.
        projection_head (Llama3VisionProjectionHead): global layers + output projection.
        max_num_tiles (int): tiles every image is padded to (4 for Llama 3.2 Vision).

    Raises:
        ValueError: if ``clip`` appends its CLS token or projects it (not the Llama 3.2 layout).
    """

    def __init__(
        self,
        clip: VisionTransformer,
        projection_head: Llama3VisionProjectionHead,
        *,
        max_num_tiles: int,
    ) -> None:
        super().__init__(clip=clip, projection_head=projection_head)
        if clip.cls_projection is not None or clip.cls_token_embedding.append_cls_token:
            raise ValueError("Llama3VisionReferenceEncoder needs a CLIP tower with a leading CLS token")
        self.max_num_tiles = max_num_tiles

    def forward(self, images: torch.Tensor, aspect_ratio: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode tiled images.

        Args:
            images (torch.Tensor): ``(b, i, t, c, h, w)``; ``t <= max_num_tiles`` (tiles past an image's
                ``h * w`` must be zeros, as torchtune's collate and the HF processor make them).
            aspect_ratio (Optional[torch.Tensor]): ``(b, i, 2)`` tiles along height and width; may be
                None only when ``t == 1``.

        Returns:
            torch.Tensor: ``(b, i * t * tokens_per_tile, decoder_dim)``; only the ``t`` input tiles are
            returned, so torchtune's cross-attention masks keep their shape.

        Raises:
            ValueError: if ``t > max_num_tiles`` or ``aspect_ratio`` is missing for multi-tile input.
        """
        clip, proj = self.clip, self.projection
        bsz, n_imgs, n_tiles, n_ch, height, width = images.shape
        if n_tiles > self.max_num_tiles:
            raise ValueError(f"images have {n_tiles} tiles, more than max_num_tiles={self.max_num_tiles}")
        if aspect_ratio is None:
            if n_tiles > 1:
                raise ValueError(f"aspect_ratio is required for {n_tiles}-tile images")
            aspect_ratio = torch.ones((bsz, n_imgs, 2), dtype=torch.int, device=images.device)
        n_media = bsz * n_imgs
        tiles = self.max_num_tiles
        ar = aspect_ratio.reshape(n_media, 2)

        # 1. Every image gets max_num_tiles tiles (zero pixels), as the HF processor / Meta's _stack_images.
        if n_tiles < tiles:
            images = F.pad(images, (0, 0, 0, 0, 0, 0, 0, tiles - n_tiles))
        x = clip.conv(images.reshape(n_media * tiles, n_ch, height, width).to(clip.conv.weight.dtype))
        x = x.reshape(n_media, tiles, -1, clip.patches_per_tile).permute(0, 1, 3, 2)
        dim = x.shape[-1]
        if clip.pre_tile_pos_embed is not None:
            x = clip.pre_tile_pos_embed(x, ar)
        x = clip.cls_token_embedding(x)
        x = clip.token_pos_embedding(x, ar)
        x = clip.ln_pre(x)

        # 2. Pad every tile's tokens to a multiple of 8 (after ln_pre), 3. mask only pad<->pad pairs.
        n_tok = x.shape[2]
        n_pad = num_patch_padding(n_tok)
        seq = n_tok + n_pad
        x = F.pad(x, (0, 0, 0, n_pad))
        mask = reference_encoder_attention_mask(
            ar,
            num_tiles=tiles,
            tokens_per_tile=n_tok,
            padded_tokens_per_tile=seq,
            dtype=x.dtype,
            device=x.device,  # aspect_ratio may live elsewhere (CPU beside meta activations)
        )
        x = x.reshape(n_media, tiles * seq, dim)

        taps = []
        for idx, layer in enumerate(clip.layers):
            if idx in clip.out_indices:
                taps.append(x)  # the input of layer idx
            x = layer(x, mask=mask)
        x = clip.ln_post(x)
        if clip.post_tile_pos_embed is not None:
            x = clip.post_tile_pos_embed(x.reshape(n_media, tiles, seq, dim), ar)
        x = x.reshape(n_media, tiles * seq, dim)
        for layer in proj.layers:
            x = layer(x, mask=mask)

        # Cut the padded tokens and the padding tiles torchtune did not ask for.
        x = x.reshape(n_media, tiles, seq, dim)[:, :n_tiles, :n_tok]
        if proj.num_hidden > 0:
            hidden = torch.stack(taps, dim=-1).reshape(n_media, tiles, seq, dim, len(taps))
            hidden = hidden[:, :n_tiles, :n_tok].reshape(n_media, n_tiles, n_tok, dim * len(taps))
            x = torch.cat([x, hidden], dim=-1)
        return proj.output(x).reshape(bsz, n_imgs * n_tiles * n_tok, -1)


def llama3_2_vision_encoder(
    *,
    patch_size: int,
    num_heads: int,
    clip_embed_dim: int,
    clip_num_layers: int,
    clip_hidden_states: Optional[list[int]],
    num_layers_projection: int,
    decoder_embed_dim: int,
    tile_size: int,
    max_num_tiles: int = 4,
    in_channels: int = 3,
) -> Llama3VisionReferenceEncoder:
    """Drop-in for torchtune's ``llama3_2_vision_encoder`` with reference padding, mask and taps.

    Args:
        patch_size (int): CLIP patch size in pixels.
        num_heads (int): attention heads of the CLIP and projection layers.
        clip_embed_dim (int): CLIP width.
        clip_num_layers (int): CLIP layers.
        clip_hidden_states (Optional[list[int]]): CLIP layers whose *input* is tapped for the projection.
        num_layers_projection (int): global (projection) layers.
        decoder_embed_dim (int): decoder width (output of the projection).
        tile_size (int): tile size in pixels.
        max_num_tiles (int): most tiles per image.
        in_channels (int): image channels.

    Returns:
        Llama3VisionReferenceEncoder: the encoder, state-dict compatible with torchtune's.
    """
    stock = _tt_llama3_2_vision_encoder(
        patch_size=patch_size,
        num_heads=num_heads,
        clip_embed_dim=clip_embed_dim,
        clip_num_layers=clip_num_layers,
        clip_hidden_states=clip_hidden_states,
        num_layers_projection=num_layers_projection,
        decoder_embed_dim=decoder_embed_dim,
        tile_size=tile_size,
        max_num_tiles=max_num_tiles,
        in_channels=in_channels,
    )
    return Llama3VisionReferenceEncoder(stock.clip, stock.projection, max_num_tiles=max_num_tiles)


def lora_llama3_2_vision_encoder(
    encoder_lora: bool,
    fusion_lora: bool,
    lora_attn_modules: list[LORA_ATTN_MODULES],
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    *,
    patch_size: int,
    num_heads: int,
    clip_embed_dim: int,
    clip_num_layers: int,
    clip_hidden_states: Optional[list[int]],
    num_layers_projection: int,
    decoder_embed_dim: int,
    tile_size: int,
    max_num_tiles: int = 4,
    in_channels: int = 3,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    **quantization_kwargs,
) -> Llama3VisionReferenceEncoder:
    """Drop-in for torchtune's ``lora_llama3_2_vision_encoder`` with reference padding, mask and taps.

    The LoRA/DoRA/NF4 CLIP and projection layers are built by torchtune; only the forward differs.

    Args:
        encoder_lora (bool): LoRA on the CLIP layers.
        fusion_lora (bool): LoRA on the projection head.
        lora_attn_modules (list[LORA_ATTN_MODULES]): attention projections that get adapters.
        apply_lora_to_mlp (bool): adapters on the MLPs too.
        apply_lora_to_output (bool): adapter on the projection's output linear.
        patch_size (int): CLIP patch size in pixels.
        num_heads (int): attention heads.
        clip_embed_dim (int): CLIP width.
        clip_num_layers (int): CLIP layers.
        clip_hidden_states (Optional[list[int]]): tapped CLIP layers (their inputs).
        num_layers_projection (int): global (projection) layers.
        decoder_embed_dim (int): decoder width.
        tile_size (int): tile size in pixels.
        max_num_tiles (int): most tiles per image.
        in_channels (int): image channels.
        lora_rank (int): adapter rank.
        lora_alpha (float): adapter scaling.
        lora_dropout (float): adapter dropout.
        use_dora (bool): DoRA instead of LoRA.
        quantize_base (bool): NF4 base weights (QLoRA).
        **quantization_kwargs: forwarded to torchtune (e.g. ``scaler_block_size``).

    Returns:
        Llama3VisionReferenceEncoder: the encoder, state-dict compatible with torchtune's.
    """
    stock = _tt_lora_llama3_2_vision_encoder(
        encoder_lora=encoder_lora,
        fusion_lora=fusion_lora,
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        patch_size=patch_size,
        num_heads=num_heads,
        clip_embed_dim=clip_embed_dim,
        clip_num_layers=clip_num_layers,
        clip_hidden_states=clip_hidden_states,
        num_layers_projection=num_layers_projection,
        decoder_embed_dim=decoder_embed_dim,
        tile_size=tile_size,
        max_num_tiles=max_num_tiles,
        in_channels=in_channels,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        **quantization_kwargs,
    )
    encoder = Llama3VisionReferenceEncoder(stock.clip, stock.projection, max_num_tiles=max_num_tiles)
    if quantize_base:
        # torchtune registers this hook on the encoder it returns; re-register it on ours so NF4
        # weights are still saved as bf16.
        encoder._register_state_dict_hook(
            partial(reparametrize_as_dtype_state_dict_post_hook, offload_to_cpu=True)
        )
    return encoder
