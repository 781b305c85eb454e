"""The tiny and 11B builders share topology and honour the trainable switches."""

from __future__ import annotations

import pytest
import torch
from torchao.dtypes.nf4tensor import NF4Tensor
from torchtune.modules.model_fusion import FusionLayer
from torchtune.modules.peft import LoRALinear

from torchtune_ext.models import (
    LLAMA_11B,
    TINY,
    llama3_2_vision_11b,
    llama3_2_vision_tiny,
    lora_llama3_2_vision_11b,
    lora_llama3_2_vision_tiny,
    qlora_llama3_2_vision_tiny,
)

ATTN = ["q_proj", "v_proj", "output_proj"]


def _trainable(model: torch.nn.Module, prefix: str) -> set[bool]:
    return {p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix)}


def test_tiny_has_the_11b_topology() -> None:
    model = llama3_2_vision_tiny()
    fused = [i for i, layer in enumerate(model.decoder.layers) if isinstance(layer, FusionLayer)]
    assert fused == TINY.fusion_layers == [1, 3]
    assert len(model.encoder.clip.layers) == TINY.clip_num_layers
    assert len(model.encoder.projection.layers) == TINY.num_layers_projection
    attn = model.decoder.layers[0].attn
    assert (attn.num_heads, attn.num_kv_heads) == (8, 2)  # grouped-query attention, as in 11B (32/8)
    assert model.decoder.tok_embeddings.fusion_embedding.weight.shape == (
        TINY.num_fusion_tokens,
        TINY.embed_dim,
    )
    # The projection head concatenates the final state with one state per tap.
    assert model.encoder.projection.output.in_features == TINY.clip_embed_dim * (
        len(TINY.clip_hidden_states) + 1
    )


def test_11b_matches_torchtune_on_meta() -> None:
    from torchtune.models.llama3_2_vision import llama3_2_vision_11b as stock_11b

    with torch.device("meta"):
        ours, stock = llama3_2_vision_11b(), stock_11b()
    ours_shapes = {n: p.shape for n, p in ours.named_parameters()}
    assert ours_shapes == {n: p.shape for n, p in stock.named_parameters()}
    assert sum(p.numel() for p in ours.parameters()) > 10e9
    assert LLAMA_11B.hf_cross_attention_layers == [3, 8, 13, 18, 23, 28, 33, 38]


@pytest.mark.parametrize(
    ("dec", "enc", "fus"), [(False, True, True), (True, False, False), (False, False, True)]
)
def test_full_trainable_switches(dec: bool, enc: bool, fus: bool) -> None:
    model = llama3_2_vision_tiny(decoder_trainable=dec, encoder_trainable=enc, fusion_trainable=fus)
    assert _trainable(model, "encoder.clip.") == {enc}
    assert _trainable(model, "encoder.projection.") == {fus}
    assert _trainable(model, "decoder.layers.1.fusion_layer.") == {fus}
    assert _trainable(model, "decoder.layers.0.") == {dec}


def test_lora_adapters_where_asked() -> None:
    model = lora_llama3_2_vision_tiny(lora_attn_modules=ATTN, apply_lora_to_mlp=True)
    lora = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert any(n.startswith("encoder.clip.layers.0.attn.q_proj") for n in lora)
    assert any(n.startswith("decoder.layers.1.fusion_layer.attn.q_proj") for n in lora)
    assert not any(n.startswith("decoder.layers.0.") for n in lora)  # decoder frozen: no adapters


def test_lora_rejects_full_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="encoder_trainable='full'"):
        lora_llama3_2_vision_tiny(lora_attn_modules=ATTN, encoder_trainable="full")
    with torch.device("meta"), pytest.raises(ValueError, match="decoder_trainable='full'"):
        lora_llama3_2_vision_11b(lora_attn_modules=ATTN, decoder_trainable="full")


def test_qlora_stores_adapted_base_weights_in_nf4() -> None:
    model = qlora_llama3_2_vision_tiny(lora_attn_modules=ATTN, apply_lora_to_mlp=True)
    q = model.encoder.clip.layers[0].attn.q_proj
    assert isinstance(q.weight, NF4Tensor)
    assert not isinstance(model.decoder.layers[0].attn.q_proj.weight, NF4Tensor)  # frozen, no adapter
