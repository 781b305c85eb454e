"""Our recipes through ``tune run``: validation, keep-best, early stopping, logs, exact resume, FSDP on CPU.

One reference run of the full recipe (``reference``, with validation and LinearCrossEntropyLoss)
is shared: the interrupted runs must end bit-identical to it, and the 2-process FSDP run must
follow its loss curve within ``DISTRIBUTED_LOSS_TOLERANCE``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from testing_utils import REPO

from torchtune_ext.training import BestTracker

TUNE = str(Path(sys.executable).parent / "tune")
FULL = "torchtune_ext/recipes/full_finetune_vision.py"
LORA = "torchtune_ext/recipes/lora_finetune_vision.py"
DISTRIBUTED = "torchtune_ext/recipes/full_finetune_vision_distributed.py"
WEIGHTS = "model-00001-of-00001.safetensors"
#: Largest per-step |loss difference| between 2 FSDP processes (batch 1 each) and one device
#: (batch 2): the same samples per step, different fp32 reduction order.
DISTRIBUTED_LOSS_TOLERANCE = 1e-4
#: Timing and memory vary from run to run; everything else in metrics.jsonl must not.
VOLATILE = {"tokens_per_second_per_gpu", "samples_per_second", "peak_rss_gib", "seconds"}


def _env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH pointing into the repository."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def _args(data: Path, base: Path, out: Path, config: str = "full_w2_val.yaml") -> list[str]:
    return [
        "--config", str(REPO / "configs" / "tiny" / config), f"base_dir={base}", f"data_dir={data}",
        f"output_dir={out}", "epochs=2", "max_steps_per_epoch=3", "run_val_every_n_steps=2",
        "save_every_n_steps=2", "dataset_val.limit=2", "dataset_val.max_new_tokens=8",
        "loss._component_=torchtune_ext.modules.LinearCrossEntropyLoss", "early_stopping=null",
    ]  # fmt: skip


def _tune(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([TUNE, "run", *args], cwd=cwd, env=env or _env(), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(
            f"tune run {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def _records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / WEIGHTS))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tiny_checkpoint: Path, w2_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented command, from a directory outside the repository, uninterrupted."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    out = cwd / "run"
    _tune([FULL, *_args(w2_data, tiny_checkpoint, out, "full_w2_val.yaml"), "batch_size=2"], cwd)
    return out


@pytest.mark.slow
def test_run_writes_validations_best_logs_and_plots(reference: Path, w2_data: Path, tmp_path: Path) -> None:
    records = _records(reference)
    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in val] == [2, 4, 6]
    # Logged per step: loss, lr, throughput and peak memory (RSS on CPU), to disk and in metrics.jsonl.
    log = next((reference / "logs").glob("log_*.txt")).read_text()
    for key in (
        "loss:",
        "lr:",
        "tokens_per_second_per_gpu:",
        "samples_per_second:",
        "peak_rss_gib:",
        "val/accuracy:",
    ):
        assert key in log, key
    for name in ("loss.png", "validation.png", "memory.png"):
        assert (reference / "plots" / name).read_bytes().startswith(b"\x89PNG"), name

    # Each validation is an evaluator run: its records, its identity, its numbers.
    for r in val:
        step_dir = reference / "validation" / f"step_{r['step']}"
        metrics = json.loads((step_dir / "metrics.json").read_text())
        assert metrics["counts"]["selected"] == metrics["counts"]["ok"] == 2
        assert metrics["metrics"]["accuracy"] == r["accuracy"]
        assert json.loads((step_dir / "run.json").read_text())["identity"]["model"] == f"step_{r['step']}"

    # keep-best: the first of the best validations (ties do not replace it), as BestTracker decides.
    tracker = BestTracker()
    for r in val:
        tracker.update(r["step"], r["accuracy"])
    best = json.loads((reference / "best" / "best.json").read_text())
    assert (best["step"], best["metric"], best["value"]) == (
        tracker.best_step,
        "accuracy",
        tracker.best_value,
    )
    assert [r["step"] for r in val if r["best"]][-1] == tracker.best_step
    if tracker.best_step <= 3:  # best before the end of epoch 0: best/ holds those weights, not the last
        assert not _same_weights(reference / "best", reference / "epoch_1")

    # best/ is a servable HF directory as it is: the export takes it.
    from torchtune_ext.export import export_checkpoint

    export_checkpoint(reference / "best", tmp_path / "exported")
    assert (tmp_path / "exported" / "config.json").is_file()


@pytest.mark.slow
def test_sigterm_then_resume_matches_the_uninterrupted_run(
    reference: Path, tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = [FULL, *_args(w2_data, tiny_checkpoint, out), "batch_size=2"]
    proc = subprocess.Popen([TUNE, "run", *args], cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (out / "metrics.jsonl").exists() or '"step": 3' not in (out / "metrics.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before step 3"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 143, stderr[-3000:]
    assert "resume_from_checkpoint=True continues" in stderr
    assert not (out / "epoch_1").exists()

    _tune([*args, "resume_from_checkpoint=True"], tmp_path)
    assert _records(out) == _records(reference)
    for name in ("epoch_0", "epoch_1", "best"):
        assert _same_weights(out / name, reference / name), name


_SLOW_SAVE = """
    import os, time
    import torch

    _save = torch.save
    _count = [0]

    def slow_save(obj, f, *args, **kwargs):
        # The second resume-state save writes half a file and hangs there, until killed.
        if "recipe_state" in str(f):
            _count[0] += 1
            if _count[0] == 2:
                with open(f, "wb") as fh:
                    fh.write(b"half a checkpoint")
                open(os.environ["SAVE_STARTED"], "w").close()
                time.sleep(600)
        return _save(obj, f, *args, **kwargs)

    torch.save = slow_save
"""


@pytest.mark.slow
def test_sigkill_during_a_save_then_resume_without_validation_matches(
    reference: Path, tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    """Also the losses with and without validation: this run validates nothing."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(_SLOW_SAVE))
    started = tmp_path / "save_started"
    out = tmp_path / "run"
    args = [FULL, *_args(w2_data, tiny_checkpoint, out), "batch_size=2", "dataset_val=null", "keep_best=null"]
    proc = subprocess.Popen([TUNE, "run", *args], cwd=tmp_path, env=_env(PYTHONPATH=str(hook), SAVE_STARTED=str(started)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached its second save"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=60)
    assert (out / "recipe_state" / "recipe_state.pt").stat().st_size > 1000  # the first save, intact

    _tune([*args, "resume_from_checkpoint=True"], tmp_path)
    train = [r for r in _records(reference) if r["kind"] == "train"]
    assert _records(out) == train  # bit-identical losses, with and without validation
    for name in ("epoch_0", "epoch_1"):
        assert _same_weights(out / name, reference / name), name
    assert not (out / "validation").exists() and not (out / "best").exists()


@pytest.mark.slow
def test_two_cpu_processes_follow_the_single_device_curve(
    reference: Path, tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = _args(w2_data, tiny_checkpoint, out, "full_w2_distributed.yaml")
    _tune(["--nproc_per_node", "2", DISTRIBUTED, *args, "batch_size=1"], tmp_path)
    ours, single = _records(out), _records(reference)
    assert [(r["kind"], r["step"]) for r in ours] == [(r["kind"], r["step"]) for r in single]
    diffs = [abs(a["loss"] - b["loss"]) for a, b in zip(ours, single, strict=True) if a["kind"] == "train"]
    assert max(diffs) <= DISTRIBUTED_LOSS_TOLERANCE, diffs
    # Validation rows are split between the processes and gathered: one record per row.
    predictions = (out / "validation" / "step_2" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in predictions) == [0, 1]
    assert (out / "best" / WEIGHTS).is_file() and (out / "epoch_1" / WEIGHTS).is_file()
    assert (out / "plots" / "loss.png").is_file()


@pytest.mark.slow
def test_qlora_early_stops_and_keeps_merged_best(
    tiny_checkpoint: Path, w2_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = [LORA, "--config", str(REPO / "configs" / "tiny" / "lora_w2_val.yaml"), f"base_dir={tiny_checkpoint}",
            f"data_dir={w2_data}", f"output_dir={out}", "model._component_=torchtune_ext.models.qlora_llama3_2_vision_tiny",
            "epochs=3", "max_steps_per_epoch=2", "batch_size=2", "run_val_every_n_steps=1", "dataset_val.limit=1",
            "dataset_val.max_new_tokens=4", "early_stopping.patience=1", "optimizer.lr=1e-6"]  # fmt: skip
    proc = _tune(args, tmp_path)
    records = _records(out)
    val = [r for r in records if r["kind"] == "val"]
    tracker = BestTracker(patience=1)
    for r in val:
        tracker.update(r["step"], r["accuracy"])
        last = r["step"]
        if tracker.should_stop:
            break
    assert tracker.should_stop, "the metric kept improving: no early stop to check"
    assert max(r["step"] for r in records) == last < 6, "training went on after early stopping"
    assert f"early stopping at step {last}" in proc.stderr + proc.stdout
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["step"] == tracker.best_step

    # best/ holds merged weights in the base layout: they load into the plain model, strictly.
    from torchtune.training import FullModelHFCheckpointer

    from torchtune_ext.models import llama3_2_vision_tiny

    state = FullModelHFCheckpointer(
        checkpoint_dir=str(out / "best"), checkpoint_files=[WEIGHTS], model_type="LLAMA3_VISION",
        output_dir=str(tmp_path / "reload"),
    ).load_checkpoint()["model"]  # fmt: skip
    llama3_2_vision_tiny().load_state_dict(state, strict=True)
    assert (out / f"epoch_{(last - 1) // 2}" / "adapter_model.pt").is_file()


@pytest.mark.slow
def test_misspelt_and_unknown_overrides_stop_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "never"
    proc = subprocess.run(
        [TUNE, "run", FULL, "--config", str(REPO / "configs" / "tiny" / "full_w2_val.yaml"), f"output_dir={out}",
         "batch_szie=2", "foo_bar=1", "epochs=abc"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "'batch_szie'" in errors[0] and "did you mean 'batch_size'?" in errors[0]
    assert "'foo_bar'" in errors[0] and "'epochs' must be int, got 'abc'" in errors[0]
    assert not out.exists()
