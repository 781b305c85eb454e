"""recipes/generate_vision.py takes its prompt from the task registry, for any task with one prompt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from testing_utils import REPO, run_cmd

from eval.tasks import get_task


@pytest.mark.slow
def test_classify_generation_uses_the_classify_prompt(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from PIL import Image

    labels = tmp_path / "labels.txt"
    labels.write_text("Acme | ACME\nGlobex\n")
    image = tmp_path / "logo.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(image)
    proc = run_cmd(
        ["python", "recipes/generate_vision.py", "--config", "configs/tiny/generate.yaml",
         f"base_dir={tiny_checkpoint}", f"output_dir={tmp_path / 'gen'}", "task=classify",
         f"task_options.labels={labels}", f"images=[{image}]", "max_new_tokens=4"]
    )  # fmt: skip
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    expected = get_task("classify").from_options(labels=str(labels)).instruction()
    assert len(lines) == 1 and lines[0]["image"] == str(image)
    assert lines[0]["prompt"] == expected and "Acme, Globex" in expected
    assert isinstance(lines[0]["answer"], str)


def test_a_task_without_one_prompt_fails_before_loading_the_model(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "recipes/generate_vision.py", "--config", "configs/tiny/generate.yaml",
         f"base_dir={tmp_path / 'missing'}", "task=docvqa", "images=[x.png]"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "task 'docvqa' has no prompt of its own (it asks per row); set `prompt`" in proc.stderr


@pytest.mark.slow
def test_split_rows_are_answered_with_their_own_prompts(
    tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "answers.jsonl"
    proc = run_cmd(
        ["python", "recipes/generate_vision.py", "--config", "configs/tiny/generate.yaml",
         f"base_dir={tiny_checkpoint}", f"output_dir={tmp_path / 'gen'}", f"split={w2_data / 'test'}",
         "limit=2", "max_new_tokens=4", f"output_file={out}"]
    )  # fmt: skip
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    task = get_task("w2").from_options()
    assert [line["id"] for line in lines] == [0, 1]
    assert all(line["prompt"] == task.instruction() for line in lines)
    assert [json.loads(line) for line in out.read_text().splitlines()] == lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["images=[missing.png]"], "error: image missing.png: cannot read image file missing.png"),
        (["images=[x.png]", "split=somewhere"], "error: set either `images` (image files) or `split`"),
        (["split=no/such/split"], "error: split no/such/split: "),
    ],
)
def test_bad_input_is_one_line_before_the_model_loads(tmp_path: Path, args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "recipes/generate_vision.py", "--config", "configs/tiny/generate.yaml",
         f"base_dir={tmp_path / 'missing'}", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(message), proc.stderr[-500:]
