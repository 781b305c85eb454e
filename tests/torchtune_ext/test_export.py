"""``python -m torchtune_ext.export``: full and LoRA tiny outputs become servable HF directories."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from testing_utils import REPO

from torchtune_ext.export import ExportError, expected_weight_shapes, export_checkpoint

SHARD = "model-00001-of-00001.safetensors"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torchtune_ext.export", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _chat_with_image(model_dir: Path) -> str:
    """Answer one chat request with an image, as a server would (processor + chat template + generate)."""
    from PIL import Image
    from transformers import AutoProcessor, MllamaForConditionalGeneration

    proc = AutoProcessor.from_pretrained(model_dir)
    model = MllamaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    img = Image.fromarray(np.random.default_rng(3).integers(0, 255, (80, 60, 3), dtype=np.uint8))
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is box 1?"}]}]
    batch = proc(
        images=[img],
        text=proc.apply_chat_template(msgs, add_generation_prompt=True),
        return_tensors="pt",
        add_special_tokens=False,
    )
    out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    new = out[0, batch["input_ids"].shape[1] :]
    assert len(new) >= 1
    return proc.decode(new, skip_special_tokens=False)


@pytest.mark.parametrize("kind", ["full", "lora"])
def test_export_is_servable(kind: str, request: pytest.FixtureRequest, tiny_checkpoint: Path, tmp_path: Path):
    epoch = request.getfixturevalue(f"tiny_{kind}_output")
    out = tmp_path / "served"
    proc = _cli("--checkpoint-dir", str(epoch), "--base-dir", str(tiny_checkpoint), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"exported 118 tensors to {out}" in proc.stdout

    for name in (
        SHARD,
        "model.safetensors.index.json",
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "chat_template.jinja",
        "original/tokenizer.model",
    ):
        assert (out / name).is_file(), name
    assert not (out / "adapter_model.pt").exists()
    manifest = json.loads((out / "export_manifest.json").read_text())
    assert manifest["files"][SHARD] == str(epoch)
    if kind == "lora":
        assert "adapter_model.pt" in manifest["ignored"]

    # The weights are the fine-tune's (bit for bit), not the base's.
    exported, trained, base = (load_file(d / SHARD) for d in (out, epoch, tiny_checkpoint))
    assert exported.keys() == trained.keys()
    assert all(torch.equal(exported[k], trained[k]) for k in exported)
    assert any(not torch.equal(exported[k], base[k]) for k in exported)

    answer = _chat_with_image(out)
    assert isinstance(answer, str) and answer


def test_expected_shapes_match_what_torchtune_writes(tiny_checkpoint: Path) -> None:
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    written = {k: tuple(v.shape) for k, v in load_file(tiny_checkpoint / SHARD).items()}
    assert expected_weight_shapes(config) == written


@pytest.fixture
def epoch_copy(tiny_full_output: Path, tmp_path: Path) -> Path:
    """A writable copy of the full fine-tune's epoch directory (for breaking it)."""
    return Path(shutil.copytree(tiny_full_output, tmp_path / "epoch_0"))


def _refusal(*args: str) -> str:
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_missing_file_is_named(epoch_copy: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    (epoch_copy / "preprocessor_config.json").unlink()
    # Without a base directory to fall back on, the missing file is reported by name...
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(tmp_path / "o"))
    assert "preprocessor_config.json: not found" in err and "--base-dir" in err
    assert not (tmp_path / "o").exists()
    # ...and with one, it is taken from there.
    res = export_checkpoint(epoch_copy, tmp_path / "o", tiny_checkpoint)
    assert res.sources["preprocessor_config.json"] == str(tiny_checkpoint.resolve())
    assert res.sources["config.json"] == str(epoch_copy.resolve())


def test_missing_weights_and_adapter_only(epoch_copy: Path, tmp_path: Path) -> None:
    (epoch_copy / "model.safetensors.index.json").unlink()
    (epoch_copy / SHARD).unlink()
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(tmp_path / "o"))
    assert "no model weights" in err
    (epoch_copy / "adapter_model.pt").write_bytes(b"")
    with pytest.raises(ExportError, match="only adapter_model.pt"):
        export_checkpoint(epoch_copy, tmp_path / "o")


def test_shard_listed_in_index_but_missing(epoch_copy: Path, tmp_path: Path) -> None:
    (epoch_copy / SHARD).unlink()
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(tmp_path / "o"))
    assert SHARD in err and "missing" in err


def test_weights_checked_against_config(epoch_copy: Path, tmp_path: Path) -> None:
    config = json.loads((epoch_copy / "config.json").read_text())
    config["vision_config"]["hidden_size"] = 64
    config["vision_config"]["vision_output_dim"] = 64 * 3
    (epoch_copy / "config.json").write_text(json.dumps(config))
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(tmp_path / "o"))
    assert SHARD in err and "config.json implies" in err
    assert not (tmp_path / "o").exists()


def test_no_chat_template(epoch_copy: Path, tmp_path: Path) -> None:
    (epoch_copy / "chat_template.jinja").unlink()
    tok_cfg = json.loads((epoch_copy / "tokenizer_config.json").read_text())
    template = tok_cfg.pop("chat_template")
    (epoch_copy / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(tmp_path / "o"))
    assert "no chat template" in err and "--chat-template" in err
    (tmp_path / "t.jinja").write_text(template)
    res = export_checkpoint(epoch_copy, tmp_path / "o", chat_template=tmp_path / "t.jinja")
    assert (res.output_dir / "chat_template.jinja").read_text() == template


def test_never_overwrites_sources(epoch_copy: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in epoch_copy.iterdir())
    for target in (epoch_copy, epoch_copy / "export", epoch_copy.parent, tiny_checkpoint):
        err = _refusal(
            "--checkpoint-dir",
            str(epoch_copy),
            "--base-dir",
            str(tiny_checkpoint),
            "--output-dir",
            str(target),
            "--force",
        )
        assert "overlaps the source directory" in err
    assert sorted(p.name for p in epoch_copy.iterdir()) == before


def test_non_empty_output_needs_force(epoch_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    err = _refusal("--checkpoint-dir", str(epoch_copy), "--output-dir", str(out))
    assert "not empty" in err and "--force" in err
    assert (out / "keep.txt").read_text() == "user data"
    export_checkpoint(epoch_copy, out, force=True)
    assert not (out / "keep.txt").exists() and (out / SHARD).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_exported_lora_answers_through_transformers_serve(
    tiny_lora_output: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """End to end: export, `transformers serve` the directory, one OpenAI chat request with an image."""
    import base64
    import io
    import time
    import urllib.request

    from PIL import Image

    out = export_checkpoint(tiny_lora_output, tmp_path / "served", tiny_checkpoint).output_dir
    (tmp_path / "hf_cache").mkdir()
    port = _free_port()
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf_cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [str(Path(sys.executable).parent / "transformers"), "serve", str(out), "--device", "cpu"]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=log
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{base}/models", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "transformers serve did not come up in 120 s"
                time.sleep(1)
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(3).integers(0, 255, (80, 60, 3), dtype=np.uint8)).save(
            buf, "PNG"
        )
        url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        body = {
            "model": str(out),
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": url}},
                        {"type": "text", "text": "What is box 1?"},
                    ],
                }
            ],
            "max_tokens": 6,
            "temperature": 0,
        }
        request = urllib.request.Request(
            f"{base}/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        reply = json.loads(urllib.request.urlopen(request, timeout=120).read())
        assert reply["usage"]["completion_tokens"] >= 1
        assert reply["choices"][0]["message"]["content"]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
