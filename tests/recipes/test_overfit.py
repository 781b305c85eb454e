"""The image path is real: a full fine-tune learns a different answer for each of 8 images.

All 8 samples share one prompt, so only the image can tell the model which answer to give:
a model that ignored the image could get at most 1 of 8 right. Every part is trained here
(``decoder_trainable=True``): with the random tiny decoder frozen, as in the W-2 configs, the
fusion layers alone need far more steps than a test can afford.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from testing_utils import run_cmd

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#000000", "#bcbd22"]
ANSWERS = ["4821", "1937", "6402", "5518", "7290", "3366", "8145", "2073"]
QUESTION = "What is the control number on this form?"
REPEATS = 50


def _form(i: int) -> Image.Image:
    # A "form": coloured header band whose colour and stripe layout differ per form.
    img = Image.new("RGB", (112, 56), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 111, 20], fill=COLORS[i])
    for k in range(i + 1):
        draw.rectangle([4 + 13 * k, 28, 12 + 13 * k, 52], fill=COLORS[(i + 3) % 8])
    return img


@pytest.mark.slow
def test_full_finetune_learns_per_image_answers(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rows = []
    for i in range(8):
        _form(i).save(tmp_path / f"form{i}.png")
        rows.append({"input": QUESTION, "output": ANSWERS[i], "image": f"form{i}.png"})
    (tmp_path / "train.json").write_text(json.dumps(rows * REPEATS))

    out = tmp_path / "run"
    run_cmd(
        [
            "tune", "run", "full_finetune_single_device", "--config", "configs/tiny/full_w2.yaml",
            f"base_dir={tiny_checkpoint}", f"output_dir={out}",
            "dataset._component_=torchtune.datasets.multimodal.vqa_dataset",
            "dataset.source=json", f"dataset.data_files={tmp_path / 'train.json'}",
            f"dataset.image_dir={tmp_path}", "~dataset.data_dir", "~dataset.split", "dataset.split=train",
            "model.decoder_trainable=True", "batch_size=4", "epochs=1", "optimizer.lr=3e-3",
        ]
    )  # fmt: skip
    images = ",".join(str(tmp_path / f"form{i}.png") for i in range(8))
    proc = run_cmd(
        [
            "python", "recipes/generate_vision.py", "--config", "configs/tiny/generate.yaml",
            f"base_dir={tiny_checkpoint}", f"checkpoint_dir={out / 'epoch_0'}", f"output_dir={tmp_path / 'gen'}",
            f"prompt={QUESTION}", f"images=[{images}]", "max_new_tokens=8",
        ]
    )  # fmt: skip
    answers = [json.loads(line)["answer"] for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 8
    correct = sum(a.strip() == ANSWERS[i] for i, a in enumerate(answers))
    assert correct >= 7, f"only {correct}/8 per-image answers reproduced: {answers}"
