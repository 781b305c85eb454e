"""benchmarks/tiny_train.py: times our recipe against the stock one on a tiny config, one table row."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from testing_utils import REPO, run_cmd


@pytest.mark.slow
def test_times_lora_through_tune_run(tiny_checkpoint: Path, w2_data: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "configs" / "README.md").read_text())
    proc = run_cmd(
        [
            "python", "benchmarks/tiny_train.py", "--base-dir", str(tiny_checkpoint),
            "--data-dir", str(w2_data), "--steps", "4", "--repeats", "1", "--configs", "lora", "--readme", str(readme),
        ],
        timeout=300,
    )  # fmt: skip
    assert proc.stdout.startswith("machine: ")
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| tiny ")]
    assert len(rows) == 1
    number = r"(-?[\d.]+|n/a)"
    match = re.fullmatch(
        rf"\| tiny lora \| {number} \| {number} \| {number} \| (\d+) \| (\d+) \| ([\d.]+) \|", rows[0]
    )
    assert match, rows[0]
    # Wall-time differences can be noisy on a shared box; the RSS of a real training process is not.
    stock_rss, ours_rss, ratio = int(match.group(4)), int(match.group(5)), float(match.group(6))
    assert 100 < stock_rss < 16 * 1024 and 100 < ours_rss < 16 * 1024
    assert abs(ratio - ours_rss / stock_rss) < 0.01
    published = readme.read_text()
    assert rows[0] in published.split("<!-- table:tiny_train -->")[1].split("<!-- /table:tiny_train -->")[0]


def test_rejects_a_directory_without_a_checkpoint(tmp_path: Path, w2_data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/tiny_train.py", "--base-dir", str(tmp_path), "--data-dir", str(w2_data)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"--base-dir {tmp_path.resolve()}: no config.json" in proc.stderr
