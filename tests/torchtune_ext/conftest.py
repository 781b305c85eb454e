"""Fixtures for the export and parity tests: tiny fine-tune outputs, written the way the recipes do.

A couple of real optimiser steps are run in-process (an image+text sample, cross-entropy on the
next token) and the result is saved through ``FullModelHFCheckpointer`` exactly as
``full_finetune_single_device`` / ``lora_finetune_single_device`` save it (merged LoRA weights plus
``adapter_model.pt``), which is what ``torchtune_ext.export`` consumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

LORA_RANK, LORA_ALPHA = 4, 8.0


def _train_batch(base: Path) -> dict:
    from PIL import Image
    from support import parity
    from transformers import AutoProcessor

    from torchtune_ext.models import TINY
    from torchtune_ext.models.hf_format import supported_aspect_ratios

    proc = AutoProcessor.from_pretrained(base)
    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8))
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Parse this W-2 form."}]},
        {"role": "assistant", "content": [{"type": "text", "text": '{"box_1_wages": 1234.5}'}]},
    ]
    text = proc.apply_chat_template(msgs)
    batch = proc(images=[img], text=text, return_tensors="pt", add_special_tokens=False)
    return parity.hf_batch_to_torchtune(
        batch,
        supported_aspect_ratios=supported_aspect_ratios(TINY.max_num_tiles),
        tokens_per_tile=TINY.tokens_per_tile,
    )


def _train(model: torch.nn.Module, inputs: dict, params: list[torch.nn.Parameter], steps: int = 2) -> None:
    opt = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    for _ in range(steps):
        logits = model(
            inputs["tokens"], encoder_input=inputs["encoder_input"], encoder_mask=inputs["encoder_mask"]
        )
        labels = inputs["tokens"][0, 1:].masked_fill(inputs["tokens"][0, 1:] >= logits.shape[-1], -100)
        loss = torch.nn.functional.cross_entropy(logits[0, :-1].float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def _checkpointer(base: Path, out: Path):
    from torchtune.training import FullModelHFCheckpointer

    return FullModelHFCheckpointer(
        checkpoint_dir=str(base),
        checkpoint_files=["model-00001-of-00001.safetensors"],
        model_type="LLAMA3_VISION",
        output_dir=str(out),
    )


@pytest.fixture(scope="session")
def tiny_full_output(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``output_dir/epoch_0`` of a 2-step full fine-tune of the tiny model (encoder + fusion trained)."""
    from torchtune_ext.models import llama3_2_vision_tiny

    out = tmp_path_factory.mktemp("tiny_full")
    ckpt = _checkpointer(tiny_checkpoint, out)
    torch.manual_seed(0)
    model = llama3_2_vision_tiny()
    model.load_state_dict(ckpt.load_checkpoint()["model"])
    _train(model, _train_batch(tiny_checkpoint), [p for p in model.parameters() if p.requires_grad])
    ckpt.save_checkpoint({"model": model.state_dict()}, epoch=0)
    return out / "epoch_0"


@pytest.fixture(scope="session")
def tiny_lora_output(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``output_dir/epoch_0`` of a 2-step LoRA fine-tune: merged weights + ``adapter_model.pt``."""
    from torchtune.modules.peft import (
        get_adapter_params,
        get_adapter_state_dict,
        get_merged_lora_ckpt,
        set_trainable_params,
    )

    from torchtune_ext.models import lora_llama3_2_vision_tiny

    out = tmp_path_factory.mktemp("tiny_lora")
    ckpt = _checkpointer(tiny_checkpoint, out)
    torch.manual_seed(0)
    model = lora_llama3_2_vision_tiny(
        lora_attn_modules=["q_proj", "v_proj", "output_proj"],
        apply_lora_to_mlp=True,
        lora_rank=LORA_RANK,
        lora_alpha=LORA_ALPHA,
    )
    missing, unexpected = model.load_state_dict(ckpt.load_checkpoint()["model"], strict=False)
    assert not unexpected and all("lora" in k for k in missing)
    adapters = get_adapter_params(model)
    set_trainable_params(model, adapters)
    _train(model, _train_batch(tiny_checkpoint), list(adapters.values()))
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    ckpt.save_checkpoint(
        {
            "model": get_merged_lora_ckpt(state, rank=LORA_RANK, alpha=LORA_ALPHA),
            "adapter": get_adapter_state_dict(state),
        },
        epoch=0,
    )
    return out / "epoch_0"
