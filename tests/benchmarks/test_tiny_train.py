"""benchmarks/tiny_train.py: times the stock ``tune run`` on a tiny config and prints a table row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from testing_utils import REPO, run_cmd


@pytest.mark.slow
def test_times_lora_through_tune_run(tiny_checkpoint: Path, w2_data: Path) -> None:
    proc = run_cmd(
        [
            "python", "benchmarks/tiny_train.py", "--base-dir", str(tiny_checkpoint),
            "--data-dir", str(w2_data), "--steps", "2", "--configs", "lora",
        ],
        timeout=300,
    )  # fmt: skip
    assert proc.stdout.startswith("machine: ")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny ")]
    assert len(rows) == 1
    match = re.fullmatch(r"\| tiny lora \(batch 2\) \| (-?[\d.]+) \| (\d+) \|", rows[0])
    assert match, rows[0]
    # Wall-time differences can be noisy on a shared box; the RSS of a real training process is not.
    assert 100 < int(match.group(2)) < 16 * 1024


def test_rejects_a_directory_without_a_checkpoint(tmp_path: Path, w2_data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/tiny_train.py", "--base-dir", str(tmp_path), "--data-dir", str(w2_data)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"--base-dir {tmp_path.resolve()}: no config.json" in proc.stderr
