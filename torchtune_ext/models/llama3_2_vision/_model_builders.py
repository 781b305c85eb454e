"""Model and transform builders for Llama 3.2 Vision: the tiny default and 11B.

Both sizes are assembled by the same functions from torchtune's own component builders
(CLIP encoder with projection head, GQA decoder with a cross-attention layer every
``fusion_interval`` layers, fusion embedding), so the tiny model exercises exactly the code
path of the real one. The vision encoder is torchtune's modules run with the reference tile/patch
padding and attention mask (``_encoder.py``): same weights and keys, served-equal features.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
from torchtune.data._prompt_templates import _get_prompt_template, _TemplateType
from torchtune.models.llama3_2_vision import Llama3VisionTransform
from torchtune.models.llama3_2_vision._component_builders import (
    LoRATrainable,
    llama3_2_vision_decoder,
    lora_llama3_2_vision_decoder,
)
from torchtune.modules.model_fusion import DeepFusionModel
from torchtune.modules.peft import LORA_ATTN_MODULES

from torchtune_ext.models.llama3_2_vision._arch import LLAMA_11B, TINY, VisionArch
from torchtune_ext.models.llama3_2_vision._encoder import (
    llama3_2_vision_encoder,
    lora_llama3_2_vision_encoder,
)

__all__ = [
    "llama3_2_vision_tiny",
    "lora_llama3_2_vision_tiny",
    "qlora_llama3_2_vision_tiny",
    "llama3_2_vision_11b",
    "lora_llama3_2_vision_11b",
    "qlora_llama3_2_vision_11b",
    "llama3_2_vision_transform",
]

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_llama3_2_vision(
    arch: VisionArch,
    *,
    decoder_trainable: bool = False,
    encoder_trainable: bool = True,
    fusion_trainable: bool = True,
    image_size: Optional[int] = None,
) -> DeepFusionModel:
    """Build a Llama 3.2 Vision model of the given size for full fine-tuning.

    Args:
        arch (VisionArch): the size's hyper-parameters.
        decoder_trainable (bool): train the decoder's self-attention layers and embeddings.
        encoder_trainable (bool): train the CLIP encoder.
        fusion_trainable (bool): train the projection head, cross-attention layers and fusion embedding.
        image_size (Optional[int]): tile size in pixels; defaults to the size's native tile.

    Returns:
        DeepFusionModel: the model.
    """
    encoder = llama3_2_vision_encoder(**arch.encoder_kwargs(image_size))
    decoder = llama3_2_vision_decoder(**arch.decoder_kwargs())
    return DeepFusionModel(
        encoder=encoder,
        decoder=decoder,
        encoder_trainable=encoder_trainable,
        decoder_trainable=decoder_trainable,
        fusion_trainable=fusion_trainable,
    )


def build_lora_llama3_2_vision(
    arch: VisionArch,
    *,
    lora_attn_modules: list[LORA_ATTN_MODULES],
    decoder_trainable: str = "frozen",
    encoder_trainable: str = "lora",
    fusion_trainable: str = "lora",
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    image_size: Optional[int] = None,
    scaler_block_size: Optional[int] = None,
) -> DeepFusionModel:
    """Build a Llama 3.2 Vision model of the given size with LoRA adapters.

    Args:
        arch (VisionArch): the size's hyper-parameters.
        lora_attn_modules (list[LORA_ATTN_MODULES]): attention projections that get adapters
            (``q_proj``, ``k_proj``, ``v_proj``, ``output_proj``).
        decoder_trainable (str): ``"lora"`` or ``"frozen"`` for the decoder.
        encoder_trainable (str): ``"lora"`` or ``"frozen"`` for the CLIP encoder.
        fusion_trainable (str): ``"lora"`` or ``"frozen"`` for projection head and cross-attention.
        apply_lora_to_mlp (bool): add adapters to the MLPs too.
        apply_lora_to_output (bool): add an adapter to the final output projection.
        lora_rank (int): adapter rank.
        lora_alpha (float): adapter scaling.
        lora_dropout (float): adapter dropout.
        use_dora (bool): use DoRA instead of LoRA.
        quantize_base (bool): store frozen base weights of adapted linears in NF4 (QLoRA).
        image_size (Optional[int]): tile size in pixels; defaults to the size's native tile.
        scaler_block_size (Optional[int]): NF4 scaler block size for the encoder.

    Returns:
        DeepFusionModel: the model.

    Raises:
        ValueError: if a part is asked to be ``"full"`` (torchtune 0.6.1 cannot mix LoRA and full).
    """
    kinds = {
        "decoder_trainable": LoRATrainable(decoder_trainable.lower()),
        "encoder_trainable": LoRATrainable(encoder_trainable.lower()),
        "fusion_trainable": LoRATrainable(fusion_trainable.lower()),
    }
    full = [name for name, kind in kinds.items() if kind == LoRATrainable.FULL]
    if full:
        raise ValueError(
            f"{', '.join(full)}='full' is not supported with LoRA in torchtune 0.6.1; "
            "use 'lora' or 'frozen', or the full fine-tuning builder"
        )
    decoder_lora = kinds["decoder_trainable"] == LoRATrainable.LORA
    encoder_lora = kinds["encoder_trainable"] == LoRATrainable.LORA
    fusion_lora = kinds["fusion_trainable"] == LoRATrainable.LORA
    lora = dict(
        lora_attn_modules=lora_attn_modules,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
    )
    # torchtune forwards scaler_block_size to to_nf4 as is, so None must not be passed.
    nf4 = {} if scaler_block_size is None else {"scaler_block_size": scaler_block_size}
    encoder = lora_llama3_2_vision_encoder(
        encoder_lora=encoder_lora,
        fusion_lora=fusion_lora,
        **arch.encoder_kwargs(image_size),
        **lora,
        **nf4,
    )
    decoder = lora_llama3_2_vision_decoder(
        decoder_lora=decoder_lora, fusion_lora=fusion_lora, **arch.decoder_kwargs(), **lora
    )
    return DeepFusionModel(
        encoder=encoder,
        decoder=decoder,
        encoder_trainable=kinds["encoder_trainable"] != LoRATrainable.FROZEN,
        decoder_trainable=kinds["decoder_trainable"] != LoRATrainable.FROZEN,
        fusion_trainable=kinds["fusion_trainable"] != LoRATrainable.FROZEN,
    )


def llama3_2_vision_tiny(
    decoder_trainable: bool = False,
    encoder_trainable: bool = True,
    fusion_trainable: bool = True,
    image_size: int = TINY.tile_size,
) -> DeepFusionModel:
    """Tiny Llama 3.2 Vision (56 px tiles, 128-dim CLIP, 256-dim decoder) for CPU runs and tests.

    Args:
        decoder_trainable (bool): train the decoder. Default False, as for 11B.
        encoder_trainable (bool): train the CLIP encoder. Default True.
        fusion_trainable (bool): train the fusion parts. Default True.
        image_size (int): tile size in pixels. Default 56.

    Returns:
        DeepFusionModel: the model.
    """
    return build_llama3_2_vision(
        TINY,
        decoder_trainable=decoder_trainable,
        encoder_trainable=encoder_trainable,
        fusion_trainable=fusion_trainable,
        image_size=image_size,
    )


def lora_llama3_2_vision_tiny(
    lora_attn_modules: list[LORA_ATTN_MODULES],
    decoder_trainable: str = "frozen",
    encoder_trainable: str = "lora",
    fusion_trainable: str = "lora",
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    image_size: int = TINY.tile_size,
) -> DeepFusionModel:
    """Tiny Llama 3.2 Vision with LoRA adapters. Arguments as :func:`lora_llama3_2_vision_11b`.

    Returns:
        DeepFusionModel: the model.
    """
    return build_lora_llama3_2_vision(
        TINY,
        lora_attn_modules=lora_attn_modules,
        decoder_trainable=decoder_trainable,
        encoder_trainable=encoder_trainable,
        fusion_trainable=fusion_trainable,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        image_size=image_size,
    )


def llama3_2_vision_11b(
    decoder_trainable: bool = False,
    encoder_trainable: bool = True,
    fusion_trainable: bool = True,
    image_size: int = LLAMA_11B.tile_size,
) -> DeepFusionModel:
    """Llama 3.2 11B Vision for full fine-tuning.

    Args:
        decoder_trainable (bool): train the decoder. Default False.
        encoder_trainable (bool): train the CLIP encoder. Default True.
        fusion_trainable (bool): train the fusion parts. Default True.
        image_size (int): tile size in pixels: 560 for Instruct weights, 448 for pre-trained.

    Returns:
        DeepFusionModel: the model.
    """
    return build_llama3_2_vision(
        LLAMA_11B,
        decoder_trainable=decoder_trainable,
        encoder_trainable=encoder_trainable,
        fusion_trainable=fusion_trainable,
        image_size=image_size,
    )


def lora_llama3_2_vision_11b(
    lora_attn_modules: list[LORA_ATTN_MODULES],
    decoder_trainable: str = "frozen",
    encoder_trainable: str = "lora",
    fusion_trainable: str = "lora",
    apply_lora_to_mlp: bool = False,
    apply_lora_to_output: bool = False,
    lora_rank: int = 8,
    lora_alpha: float = 16,
    lora_dropout: float = 0.0,
    use_dora: bool = False,
    quantize_base: bool = False,
    image_size: int = LLAMA_11B.tile_size,
) -> DeepFusionModel:
    """Llama 3.2 11B Vision with LoRA adapters.

    Args:
        lora_attn_modules (list[LORA_ATTN_MODULES]): attention projections that get adapters.
        decoder_trainable (str): ``"lora"`` or ``"frozen"``. Default frozen.
        encoder_trainable (str): ``"lora"`` or ``"frozen"``. Default lora.
        fusion_trainable (str): ``"lora"`` or ``"frozen"``. Default lora.
        apply_lora_to_mlp (bool): add adapters to the MLPs.
        apply_lora_to_output (bool): add an adapter to the output projection.
        lora_rank (int): adapter rank.
        lora_alpha (float): adapter scaling.
        lora_dropout (float): adapter dropout.
        use_dora (bool): use DoRA.
        quantize_base (bool): NF4 base weights (QLoRA).
        image_size (int): tile size in pixels.

    Returns:
        DeepFusionModel: the model.
    """
    return build_lora_llama3_2_vision(
        LLAMA_11B,
        lora_attn_modules=lora_attn_modules,
        decoder_trainable=decoder_trainable,
        encoder_trainable=encoder_trainable,
        fusion_trainable=fusion_trainable,
        apply_lora_to_mlp=apply_lora_to_mlp,
        apply_lora_to_output=apply_lora_to_output,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        quantize_base=quantize_base,
        image_size=image_size,
        # Lets the 1280-dim encoder weights quantise evenly across 1, 2, 4, 6 or 8 GPUs (as torchtune).
        scaler_block_size=200 if quantize_base else None,
    )


qlora_llama3_2_vision_tiny = partial(lora_llama3_2_vision_tiny, quantize_base=True)
qlora_llama3_2_vision_tiny.__doc__ = "Tiny Llama 3.2 Vision with NF4 base weights (QLoRA)."
qlora_llama3_2_vision_11b = partial(lora_llama3_2_vision_11b, quantize_base=True)
qlora_llama3_2_vision_11b.__doc__ = "Llama 3.2 11B Vision with NF4 base weights (QLoRA)."


def llama3_2_vision_transform(
    path: str,
    special_tokens_path: Optional[str] = None,
    max_seq_len: int = 8192,
    tile_size: int = LLAMA_11B.tile_size,
    max_num_tiles: int = LLAMA_11B.max_num_tiles,
    patch_size: int = LLAMA_11B.patch_size,
    image_dtype: str = "bfloat16",
    prompt_template: Optional[_TemplateType] = None,
) -> Llama3VisionTransform:
    """Tokenizer + image tiling + cross-attention mask for Llama 3.2 Vision, every knob exposed.

    torchtune's stock builder fixes patch 14 and 4 tiles and always emits bf16 images, which
    breaks fp32 models; this one takes them as arguments.

    Args:
        path (str): tiktoken BPE file (``original/tokenizer.model``).
        special_tokens_path (Optional[str]): HF ``tokenizer.json`` (or a JSON shaped like its
            ``added_tokens``) with the special-token ids; None for Llama 3's canonical ids.
        max_seq_len (int): truncate samples to this many tokens.
        tile_size (int): tile side in pixels (560 for 11B Instruct, 56 for tiny).
        max_num_tiles (int): most tiles an image is split into.
        patch_size (int): CLIP patch size (sets tokens per tile in the cross-attention mask).
        image_dtype (str): dtype of the image tensors, matching the model's dtype
            (``"bfloat16"``, ``"float32"``, ``"float16"``).
        prompt_template (Optional[_TemplateType]): optional prompt template.

    Returns:
        Llama3VisionTransform: the transform.

    Raises:
        ValueError: on an unknown ``image_dtype``.
    """
    dtype = getattr(torch, image_dtype, None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"image_dtype={image_dtype!r} is not a floating torch dtype name")
    transform = Llama3VisionTransform(
        path=path,
        special_tokens_path=special_tokens_path,
        tile_size=tile_size,
        patch_size=patch_size,
        max_num_tiles=max_num_tiles,
        max_seq_len=max_seq_len,
        image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD,
        prompt_template=_get_prompt_template(prompt_template) if prompt_template is not None else None,
    )
    transform.transform_image.dtype = dtype
    return transform
