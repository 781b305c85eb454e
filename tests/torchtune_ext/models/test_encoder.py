"""The reference-semantics vision encoder: same weights/keys as torchtune's, features of the server."""

from __future__ import annotations

import pytest
import torch
from support import parity
from torchtune.models.llama3_2_vision._component_builders import (
    llama3_2_vision_encoder as stock_encoder,
)
from torchtune.models.llama3_2_vision._component_builders import (
    lora_llama3_2_vision_encoder as stock_lora_encoder,
)
from torchtune.models.llama3_2_vision._convert_weights import llama3_vision_tune_to_hf
from torchtune.modules.model_fusion import get_fusion_params

from torchtune_ext.models.llama3_2_vision import (
    Llama3VisionReferenceEncoder,
    llama3_2_vision_encoder,
    lora_llama3_2_vision_encoder,
)
from torchtune_ext.models.llama3_2_vision._encoder import (
    num_patch_padding,
    reference_encoder_attention_mask,
)

# Tiny CLIP with 3 layers so the taps [0, 2] include a non-first, non-last layer, and 2 global layers.
KW = dict(
    patch_size=14,
    num_heads=4,
    clip_embed_dim=64,
    clip_num_layers=3,
    clip_hidden_states=[0, 2],
    num_layers_projection=2,
    decoder_embed_dim=96,
    tile_size=56,
    max_num_tiles=4,
)
RATIOS = [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]]
TOKENS = (56 // 14) ** 2 + 1


@pytest.fixture(scope="module")
def encoders() -> tuple[Llama3VisionReferenceEncoder, torch.nn.Module]:
    """Ours and torchtune's stock encoder with the same random weights (gates non-zero)."""
    torch.manual_seed(0)
    ours = llama3_2_vision_encoder(**KW).eval()
    with torch.no_grad():
        for p in ours.parameters():
            scale = p.shape[-1] ** -0.5 if p.ndim > 1 else 0.3
            p.copy_(torch.randn_like(p) * scale)
    stock = stock_encoder(**KW).eval()
    stock.load_state_dict(ours.state_dict())
    return ours, stock


@pytest.fixture(scope="module")
def hf_vision(encoders) -> tuple[torch.nn.Module, torch.nn.Module]:
    """transformers' MllamaVisionModel + projector with the same weights, taps as in 4.x/vLLM."""
    from transformers import MllamaVisionConfig
    from transformers.models.mllama.modeling_mllama import MllamaVisionModel

    ours, _ = encoders
    dim = KW["clip_embed_dim"]
    hf_sd = llama3_vision_tune_to_hf(
        {f"encoder.{k}": v for k, v in ours.state_dict().items()},
        encoder_dim=dim,
        tile_size=KW["tile_size"],
        num_tiles=KW["max_num_tiles"],
        supported_aspect_ratios=RATIOS,
    )
    config = MllamaVisionConfig(
        hidden_size=dim,
        num_hidden_layers=KW["clip_num_layers"],
        num_global_layers=KW["num_layers_projection"],
        attention_heads=KW["num_heads"],
        intermediate_size=4 * dim,
        image_size=KW["tile_size"],
        patch_size=KW["patch_size"],
        max_num_tiles=KW["max_num_tiles"],
        intermediate_layers_indices=KW["clip_hidden_states"],
        supported_aspect_ratios=RATIOS,
        vision_output_dim=dim * 3,
    )
    vision = MllamaVisionModel(config).eval()
    vision.load_state_dict(
        {k.removeprefix("vision_model."): v for k, v in hf_sd.items() if "vision_model" in k}
    )
    projector = torch.nn.Linear(dim * 3, KW["decoder_embed_dim"])
    projector.load_state_dict(
        {"weight": hf_sd["multi_modal_projector.weight"], "bias": hf_sd["multi_modal_projector.bias"]}
    )
    parity.use_reference_vision_taps(vision)  # transformers 5: taps = layer inputs, as 4.x / vLLM
    return vision, projector


def _images(ratios: list[list[int]], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One image per sample with the given tilings, zero tiles past h*w (as collate/processor)."""
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.zeros(len(ratios), 1, 4, 3, 56, 56)
    for i, (h, w) in enumerate(ratios):
        pixels[i, 0, : h * w] = torch.randn(h * w, 3, 56, 56, generator=gen)
    return pixels, torch.tensor(ratios).unsqueeze(1)


@torch.no_grad()
def _hf_features(hf_vision, pixels: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    vision, projector = hf_vision
    ids = torch.tensor([[RATIOS.index(r) + 1 for r in row] for row in ratio.tolist()])
    mask = (torch.arange(4)[None, None] < ratio.prod(-1)[..., None]).long()
    feats = projector(
        vision(pixel_values=pixels, aspect_ratio_ids=ids, aspect_ratio_mask=mask).last_hidden_state
    )
    return feats  # (b, imgs, 4 tiles, tokens, dim)


def test_matches_transformers_for_every_tiling(encoders, hf_vision) -> None:
    ours, stock = encoders
    pixels, ratio = _images(RATIOS)  # a batch of 8 images, one per supported tiling
    ref = _hf_features(hf_vision, pixels, ratio)
    with torch.no_grad():
        out = ours(pixels, ratio).reshape(8, 1, 4, TOKENS, -1)
        out_stock = stock(pixels, ratio).reshape(8, 1, 4, TOKENS, -1)
    for i, (h, w) in enumerate(RATIOS):
        real = slice(0, h * w)  # padding tiles are masked out of cross-attention downstream
        assert (out[i, :, real] - ref[i, :, real]).abs().max() <= 1e-5
        assert (out_stock[i, :, real] - ref[i, :, real]).abs().max() > 1e-3


def test_two_images_per_sample(encoders, hf_vision) -> None:
    ours, _ = encoders
    pixels, _ = _images([[2, 2], [1, 2]])
    pixels = pixels.reshape(1, 2, 4, 3, 56, 56)
    ratio = torch.tensor([[[2, 2], [1, 2]]])
    ref = _hf_features(hf_vision, pixels, ratio)
    with torch.no_grad():
        out = ours(pixels, ratio).reshape(1, 2, 4, TOKENS, -1)
    assert (out[0, 0] - ref[0, 0]).abs().max() <= 1e-5
    assert (out[0, 1, :2] - ref[0, 1, :2]).abs().max() <= 1e-5


def test_features_do_not_depend_on_batch_tile_padding(encoders) -> None:
    """A 1x2 image alone (2 tiles) or padded to a batch's 4 tiles: ours gives the same features."""
    ours, stock = encoders
    pixels, ratio = _images([[1, 2]])
    with torch.no_grad():
        alone = ours(pixels[:, :, :2], ratio)
        padded = ours(pixels, ratio).reshape(1, 4, TOKENS, -1)[:, :2].reshape(1, 2 * TOKENS, -1)
        stock_alone = stock(pixels[:, :, :2], ratio)
        stock_padded = stock(pixels, ratio).reshape(1, 4, TOKENS, -1)[:, :2].reshape(1, 2 * TOKENS, -1)
    assert alone.shape == (1, 2 * TOKENS, KW["decoder_embed_dim"])
    assert (alone - padded).abs().max() <= 1e-6
    assert (stock_alone - stock_padded).abs().max() > 1e-3


def test_state_dict_is_torchtunes(encoders) -> None:
    ours, stock = encoders
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in stock.state_dict().items()
    }
    lora = dict(lora_attn_modules=["q_proj", "v_proj"], apply_lora_to_mlp=True, lora_rank=4, lora_alpha=8)
    ours_lora = lora_llama3_2_vision_encoder(encoder_lora=True, fusion_lora=True, **lora, **KW)
    stock_lora = stock_lora_encoder(encoder_lora=True, fusion_lora=True, **lora, **KW)
    assert ours_lora.state_dict().keys() == stock_lora.state_dict().keys()
    # The projection head stays a fusion module (trained with fusion_trainable).
    assert get_fusion_params(ours_lora).keys() == get_fusion_params(stock_lora).keys() != set()


def test_qlora_state_dict_is_bf16() -> None:
    kw = {**KW, "clip_embed_dim": 128, "decoder_embed_dim": 128}  # NF4 needs 128x128-divisible weights
    enc = lora_llama3_2_vision_encoder(
        encoder_lora=True, fusion_lora=True, lora_attn_modules=["q_proj"], quantize_base=True, **kw
    )
    from torchao.dtypes.nf4tensor import NF4Tensor

    assert any(isinstance(p, NF4Tensor) for p in enc.parameters())
    sd = enc.state_dict()
    assert not any(isinstance(v, NF4Tensor) for v in sd.values())
    assert sd["clip.layers.0.attn.q_proj.weight"].dtype == torch.bfloat16


def test_lora_encoder_trains_with_activation_checkpointing() -> None:
    from torchtune.modules import TransformerSelfAttentionLayer
    from torchtune.modules.peft import get_adapter_params
    from torchtune.training import set_activation_checkpointing

    torch.manual_seed(0)
    enc = lora_llama3_2_vision_encoder(
        encoder_lora=True, fusion_lora=True, lora_attn_modules=["q_proj", "v_proj"], **KW
    )
    set_activation_checkpointing(enc, auto_wrap_policy={TransformerSelfAttentionLayer})
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith(("scale.scale", "gate")):  # fresh tanh gates are 0: open them
                p.fill_(0.5)
    for p in get_adapter_params(enc).values():
        torch.nn.init.normal_(p, std=0.02)
    pixels, ratio = _images([[1, 3], [2, 1]])
    enc(pixels[:, :, :3], ratio).square().mean().backward()
    grads = {n: p.grad for n, p in get_adapter_params(enc).items()}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), grads.keys()


def test_padding_and_mask() -> None:
    assert [num_patch_padding(n) for n in (17, 1601, 1025, 24, 10)] == [7, 7, 7, 0, 6]
    mask = reference_encoder_attention_mask(
        torch.tensor([[1, 2], [0, 0]]),
        num_tiles=4,
        tokens_per_tile=17,
        padded_tokens_per_tile=24,
        dtype=torch.float32,
    )
    assert mask.shape == (2, 96, 96)
    blocked = mask == torch.finfo(torch.float32).min
    pad = torch.ones(96, dtype=torch.bool)
    for tile in range(2):  # image 0: tiles 0 and 1 are real, their first 17 tokens are real
        pad[tile * 24 : tile * 24 + 17] = False
    assert torch.equal(blocked[0], pad[:, None] & pad[None, :])  # only pad<->pad is blocked
    assert blocked[1].all()  # an image slot with no tiles: every pair is pad<->pad, rows stay finite
    assert ((mask == 0) | blocked).all()


def test_rejects_too_many_tiles(encoders) -> None:
    ours, _ = encoders
    with pytest.raises(ValueError, match="max_num_tiles=4"):
        ours(torch.zeros(1, 1, 5, 3, 56, 56), torch.tensor([[[1, 5]]]))


def test_runs_on_meta_with_aspect_ratio_on_cpu() -> None:
    """FLOP counting runs the encoder on meta while aspect_ratio stays on the CPU (tile embeddings
    read its values); the attention mask must follow the activations' device."""
    with torch.device("meta"):
        model = llama3_2_vision_encoder(**KW)
    pixels, ratio = _images([[1, 2], [2, 2]])
    out = model(pixels.to("meta"), ratio)
    assert out.device.type == "meta"
    assert out.shape[0] == 2
