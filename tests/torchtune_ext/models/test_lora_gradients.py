"""LoRA trains the image path: with the checkpoint's live gates, encoder and fusion adapters get gradient.

Fresh torchtune builders set every fusion gate to 0, which cuts the image path off: then
the same adapters get exactly zero gradient. The tiny checkpoint's gates are non-zero, like
a real checkpoint's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from torchtune.data import Message, padded_collate_tiled_images_and_mask
from torchtune.modules.peft import LoRALinear
from torchtune.training import FullModelHFCheckpointer

from torchtune_ext.generation import user_message
from torchtune_ext.models import llama3_2_vision_transform, lora_llama3_2_vision_tiny


def _adapter_grads(tiny_checkpoint: Path, tmp_path: Path, load_gates: bool) -> dict[str, float]:
    torch.manual_seed(0)
    model = lora_llama3_2_vision_tiny(
        lora_attn_modules=["q_proj", "v_proj", "output_proj"], apply_lora_to_mlp=True
    )
    state = FullModelHFCheckpointer(
        checkpoint_dir=str(tiny_checkpoint),
        checkpoint_files=["model-00001-of-00001.safetensors"],
        model_type="LLAMA3_VISION",
        output_dir=str(tmp_path),
    ).load_checkpoint()["model"]
    if not load_gates:
        state = {k: v for k, v in state.items() if not k.endswith(("ca_scale.scale", "mlp_scale.scale"))}
    model.load_state_dict(state, strict=False)
    transform = llama3_2_vision_transform(
        str(tiny_checkpoint / "original/tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        tile_size=56,
        image_dtype="float32",
        max_seq_len=256,
    )
    image = Image.new("RGB", (100, 60), "white")
    ImageDraw.Draw(image).rectangle([10, 10, 60, 40], fill="blue")
    user = user_message(image, "Read it.")
    user.masked = True  # loss on the answer only
    sample = transform({"messages": [user, Message(role="assistant", content="42")]})
    sample["labels"] = [
        -100 if masked else tok for tok, masked in zip(sample["tokens"], sample["mask"], strict=True)
    ]
    batch = padded_collate_tiled_images_and_mask([sample])
    labels = batch.pop("labels")
    logits = model(**batch)
    torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100).backward()
    return {
        name: module.lora_b.weight.grad.abs().sum().item()
        for name, module in model.named_modules()
        if isinstance(module, LoRALinear) and (name.startswith("encoder.") or ".fusion_layer." in name)
    }


def test_encoder_and_fusion_adapters_get_gradient(tiny_checkpoint: Path, tmp_path: Path) -> None:
    grads = _adapter_grads(tiny_checkpoint, tmp_path, load_gates=True)
    assert any(n.startswith("encoder.clip.") for n in grads) and any(".fusion_layer." in n for n in grads)
    assert any(n.startswith("encoder.projection.") for n in grads)
    dead = [n for n, g in grads.items() if g == 0]
    assert not dead, f"adapters without gradient: {dead}"


@pytest.mark.parametrize("part", ["encoder.", ".fusion_layer."])
def test_zero_gates_starve_the_image_path(tiny_checkpoint: Path, tmp_path: Path, part: str) -> None:
    grads = _adapter_grads(tiny_checkpoint, tmp_path, load_gates=False)
    assert all(g == 0 for n, g in grads.items() if part in n or n.startswith(part))
