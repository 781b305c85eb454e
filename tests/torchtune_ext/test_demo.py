"""``make demo``'s job (``python -m torchtune_ext.demo``) end to end, small: every step runs and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testing_utils import run_cmd

from torchtune_ext.demo import loss_curve


@pytest.mark.slow
def test_demo_runs_every_step_then_resumes(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["python", "-m", "torchtune_ext.demo", "--output-dir", str(out), "--forms", "24", "--epochs", "1",
            "--eval-limit", "2", "--port", "0"]  # fmt: skip
    first = run_cmd(args, timeout=900).stdout
    steps = ["-m torchtune_ext.models.make_tiny", "-m torchtune_ext.data.synth w2", "-m torchtune_ext.data.prepare_w2",
             "run full_finetune_single_device", "-m torchtune_ext.export", "-m eval.serve"]  # fmt: skip
    assert [s for s in steps if s not in first] == []
    assert first.index(steps[0]) < first.index(steps[3]) < first.index(steps[4]) < first.index(steps[5])
    assert f"fine-tuned checkpoint: {out / 'tiny_full_w2' / 'epoch_0'}" in first
    assert "loss per step:" in first and "#" in first
    assert (out / "tiny_full_w2_hf" / "config.json").is_file()
    report = json.loads((out / "eval_w2" / "report.json").read_text())
    assert report["counts"]["selected"] == report["counts"]["recorded"] == 2, report["counts"]

    # A second run skips what exists and only scores again.
    second = run_cmd(args, timeout=600).stdout
    assert [s for s in steps[:-1] if s in second] == []
    assert "-m eval.serve" in second


def test_loss_curve_reads_the_torchtune_log(tmp_path: Path) -> None:
    (tmp_path / "log_1.txt").write_text("Step 1 | loss:4.0 lr:1e-4\nStep 2 | loss:2.0 lr:1e-4\n")
    assert loss_curve(tmp_path, width=4).splitlines() == ["    1    4.000  ####", "    2    2.000  ##"]
    with pytest.raises(FileNotFoundError, match="no training log"):
        loss_curve(tmp_path / "missing")
