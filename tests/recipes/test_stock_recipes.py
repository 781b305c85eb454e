"""The stock torchtune recipes train the tiny configs and write checkpoints that reload strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from testing_utils import run_cmd
from torchtune.training import FullModelHFCheckpointer

from torchtune_ext.models import llama3_2_vision_tiny

CASES = {
    "full": ("full_finetune_single_device", "configs/tiny/full_w2.yaml"),
    "lora": ("lora_finetune_single_device", "configs/tiny/lora_w2.yaml"),
    "qlora": ("lora_finetune_single_device", "configs/tiny/qlora_w2.yaml"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_tune_run_writes_a_strictly_reloadable_epoch(
    name: str, tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    recipe, config = CASES[name]
    out = tmp_path / name
    run_cmd(
        [
            "tune", "run", recipe, "--config", config, f"base_dir={tiny_checkpoint}", f"data_dir={w2_data}",
            f"output_dir={out}", "max_steps_per_epoch=2", "batch_size=2",
        ]
    )  # fmt: skip
    epoch = out / "epoch_0"
    state = FullModelHFCheckpointer(
        checkpoint_dir=str(epoch),
        checkpoint_files=["model-00001-of-00001.safetensors"],
        model_type="LLAMA3_VISION",
        output_dir=str(tmp_path / "reload"),
    ).load_checkpoint()["model"]
    # LoRA/QLoRA outputs are merged weights in the base layout: they load into the plain model.
    llama3_2_vision_tiny().load_state_dict(state, strict=True)

    before = load_file(str(tiny_checkpoint / "model-00001-of-00001.safetensors"))
    after = load_file(str(epoch / "model-00001-of-00001.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("vision_model.") for k in changed), "encoder did not train"
    assert any("cross_attn" in k for k in changed), "fusion layers did not train"
    # QLoRA stores the frozen decoder's MLPs in NF4 and saves them dequantised: compare attention.
    frozen = "language_model.model.layers.0." + ("self_attn." if name == "qlora" else "")
    assert not any(k.startswith(frozen) for k in changed), "frozen decoder changed"
    # Every non-weight file a server needs is carried over from the base directory.
    for name_ in ["config.json", "tokenizer.json", "preprocessor_config.json", "original/tokenizer.model"]:
        assert (epoch / name_).is_file(), name_
    if name != "full":
        assert (epoch / "adapter_model.pt").is_file()
    assert list((out / "logs").glob("log_*.txt")), "no training log"
