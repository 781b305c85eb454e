"""One short `tune run` of a task config: the tiny detection LoRA, two steps on synthetic data.

The other task configs differ only in the dataset block, which the builder tests cover; every
YAML is instantiated by the generic config test.
"""

import math
import re

import pytest
from testing_utils import run_cmd

from torchtune_ext.data.synth.detect import generate_detect

pytestmark = pytest.mark.slow


def test_tiny_detect_lora_trains_and_saves(tmp_path, tiny_checkpoint):
    data = generate_detect(tmp_path / "detect", train=4, test=0)
    out = tmp_path / "run"
    cmd = [
        "tune",
        "run",
        "lora_finetune_single_device",
        "--config",
        "configs/tiny/lora_detect.yaml",
        f"base_dir={tiny_checkpoint}",
        f"data_dir={data}",
        f"output_dir={out}",
        "batch_size=2",
        "max_steps_per_epoch=2",
    ]
    proc = run_cmd(cmd, timeout=300)
    losses = [float(x) for x in re.findall(r"Loss: ([0-9.eE+-]+|nan)", proc.stdout + proc.stderr)]
    assert losses and all(math.isfinite(x) for x in losses)
    epoch = out / "epoch_0"
    assert (epoch / "model-00001-of-00001.safetensors").is_file() and (epoch / "adapter_model.pt").is_file()
    assert (epoch / "tokenizer.json").is_file()  # copied from the base: the merged model is servable
