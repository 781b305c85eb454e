"""benchmarks/train_11b.py: runs the stock recipes on the tiny configs on CPU and reports sane numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from testing_utils import REPO, run_cmd


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_11b", REPO / "benchmarks" / "train_11b.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_11b", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_full_and_lora_two_steps_on_cpu(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "benchmarks" / "README.md").read_text())
    proc = run_cmd(
        [
            "python", "benchmarks/train_11b.py",
            "--config", "configs/tiny/full_w2.yaml", "--config", "configs/tiny/lora_w2.yaml",
            "--steps", "2", "--warmup", "1", "--unique-forms", "2", "--peak-tflops", "10",
            "--device", "cpu", "--readme", str(readme), "batch_size=2",
        ],
        timeout=300,
    )  # fmt: skip
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(r["recipe"], r["settings"]) for r in results] == [("full", "ours"), ("lora", "ours")]
    for r in results:
        assert r["device"] == "cpu" and r["batch_size"] == 2 and r["steps"] == 2
        assert r["samples_per_s"] > 0 and r["tokens_per_s"] > r["samples_per_s"]
        assert math.isclose(r["samples_per_s"] * r["loss_tokens_per_sample"], r["tokens_per_s"], rel_tol=1e-6)
        assert 0 < r["step_time_p50_s"] <= r["step_time_p95_s"]
        assert 0 <= r["data_time_mean_s"] < r["step_time_p50_s"]
        assert 0.1 < r["peak_rss_gib"] < 16
        # Tiny sizes: 4 tiles of 56 px (17 tokens each); ~600 text tokens, most of them answer.
        assert r["encoder_tokens_per_sample"] == 4 * 17
        assert 500 < r["text_tokens_per_sample"] < 700
        assert 0.9 * r["text_tokens_per_sample"] < r["loss_tokens_per_sample"] < r["text_tokens_per_sample"]
        assert r["flops_per_step"] > 1e9 and 0 < r["mfu"] < 1
        assert len(r["losses"]) == 3 and all(3 < x < 10 for x in r["losses"])  # ~ln(512) at random init
    # Full fine-tuning of encoder + fusion costs more FLOPs than adapters on the same batch shapes.
    assert results[0]["flops_per_step"] > results[1]["flops_per_step"]
    rows = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith("| full_w2") or line.startswith("| lora_w2")
    ]
    assert len(rows) == 2
    published = readme.read_text().split("<!-- table:train_11b_cpu -->")[1].split("<!-- /table:")[0]
    assert all(row in published for row in rows)


def test_reference_settings_replace_the_training_knobs() -> None:
    bench = _bench()
    full = bench.resolve_config(
        REPO / "configs/tiny/full_w2.yaml", reference=True, options=[], overrides=[], device=None
    )
    assert full.optimizer._component_ == "bitsandbytes.optim.PagedAdamW8bit" and full.optimizer.lr == 2e-5
    assert full.optimizer_in_bwd and full.compile and full.enable_activation_checkpointing
    assert (full.dtype, full.batch_size, full.clip_grad_norm) == ("bf16", 1, None)
    assert full.loss._component_ == "torchtune.modules.loss.CEWithChunkedOutputLoss"
    assert full.model._component_ == "torchtune_ext.models.llama3_2_vision_tiny"  # size kept

    qlora = bench.resolve_config(
        REPO / "configs/tiny/qlora_w2.yaml", reference=True, options=[], overrides=["seed=3"], device="cpu"
    )
    assert (
        bench.recipe_kind(qlora) == "lora" and qlora.model.quantize_base is False
    )  # the reference has no QLoRA
    assert qlora.lr_scheduler.num_warmup_steps == 100 and qlora.optimizer.fused and not qlora.compile
    assert (qlora.seed, qlora.device) == (3, "cpu")

    ours = bench.resolve_config(
        REPO / "configs/11B_lora_w2.yaml",
        reference=False,
        options=["linear_ce", "ao_adamw8bit", "tiles2"],
        overrides=[],
        device=None,
    )
    assert ours.loss._component_ == "torchtune_ext.modules.LinearCrossEntropyLoss"
    assert dict(ours.optimizer) == {
        "_component_": "torchao.optim.AdamW8bit",
        "lr": 1e-4,
        "weight_decay": 0.01,
    }
    assert ours.tokenizer.max_num_tiles == 2
    with pytest.raises(ValueError, match="key=value"):
        bench.resolve_config(
            REPO / "configs/tiny/full_w2.yaml", reference=False, options=[], overrides=["x"], device=None
        )


def test_parity_spec_and_statistics() -> None:
    bench = _bench()
    spec = bench.parse_spec("configs/tiny/full_w2.yaml --reference --with linear_ce optimizer.lr=1e-3")
    assert spec == {
        "config": Path("configs/tiny/full_w2.yaml"),
        "reference": True,
        "options": ["linear_ce"],
        "overrides": ["optimizer.lr=1e-3"],
    }
    stats = bench.loss_parity([6.0, 5.0, 4.5], [6.0, 5.1, 4.3])
    assert stats["steps"] == 3
    assert math.isclose(stats["max_abs_diff"], 0.2) and math.isclose(stats["mean_abs_diff"], 0.1)
    assert math.isclose(stats["a_step_to_step_mean_abs"], 0.75)


def test_loss_parity_refuses_different_samples_per_step() -> None:
    bench = _bench()
    status = bench.main(
        [
            "--loss-parity",
            "configs/tiny/full_w2.yaml --reference",
            "configs/tiny/full_w2.yaml",
            "--steps",
            "2",
        ]
    )
    assert status == 2
    assert bench.main(["--config", "configs/tiny/full_w2.yaml", "--readme", "no/such/README.md"]) == 2


@pytest.mark.slow
def test_flops_only_publishes_its_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "benchmarks" / "README.md").read_text())
    run_cmd(
        ["python", "benchmarks/train_11b.py", "--flops-only", "--config", "configs/tiny/lora_w2.yaml",
         "--readme", str(readme)],
        timeout=300,
    )  # fmt: skip
    published = readme.read_text().split("<!-- table:train_11b_flops -->")[1].split("<!-- /table:")[0]
    assert "| lora_w2 | ours | 4 (112x112 px) |" in published
    assert "benchmarks/train_11b.py --flops-only" in published
