"""Keep-best/early-stop bookkeeping, atomic files and directories, and the resume-state helpers."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from torchtune_ext.training import (
    BestTracker,
    ConfigError,
    GracefulStop,
    MetricsLog,
    atomic_torch_save,
    check_resumable,
    load_resume_state,
    plot_metrics,
    publish_dir,
    recover_dir,
    staging_dir,
    trainable_state_dict,
)


def test_best_tracker_keeps_the_first_best_and_counts_patience() -> None:
    t = BestTracker(mode="max", patience=2, min_delta=0.05)
    assert [t.update(s, v) for s, v in [(1, None), (2, 0.2), (3, 0.24), (4, 0.3), (5, 0.3)]] == [
        False, True, False, True, False,
    ]  # fmt: skip
    assert (t.best_step, t.best_value, t.since_best, t.should_stop) == (4, 0.3, 1, False)
    t.update(6, 0.1)
    assert t.should_stop
    again = BestTracker(mode="max", patience=2, min_delta=0.05)
    again.load_state_dict(t.state_dict())
    assert again.state_dict() == t.state_dict() and again.should_stop


def test_best_tracker_min_mode_and_settings() -> None:
    t = BestTracker(mode="min")
    assert [t.update(s, v) for s, v in [(1, 0.5), (2, 0.5), (3, 0.4)]] == [True, False, True]
    assert not t.should_stop  # no patience: never stops
    for bad in ({"mode": "up"}, {"patience": 0}, {"min_delta": -1.0}):
        with pytest.raises(ValueError):
            BestTracker(**bad)


def test_atomic_save_keeps_the_old_file_when_a_write_dies(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    atomic_torch_save({"step": 1}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_torch_save({"step": 2, "x": Boom()}, path)
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_publish_dir_replaces_whole_and_recovers_an_interrupted_swap(tmp_path: Path) -> None:
    dest = tmp_path / "best"
    for version in ("1", "2"):
        tmp = staging_dir(dest)
        (tmp / "weights").write_text(version)
        publish_dir(tmp, dest)
        assert (dest / "weights").read_text() == version
    # A kill between the two renames leaves only the previous version, under .best.old.
    os.replace(dest, tmp_path / ".best.old")
    recover_dir(dest)
    assert (dest / "weights").read_text() == "2" and not (tmp_path / ".best.old").exists()


def test_trainable_state_dict_leaves_out_frozen_parameters_only() -> None:
    from torchtune_ext.models import llama3_2_vision_tiny

    model = llama3_2_vision_tiny(decoder_trainable=False, encoder_trainable=True, fusion_trainable=True)
    full = {k: v.clone() for k, v in model.state_dict().items()}
    kept = trainable_state_dict(model, full)
    assert any(k.startswith("encoder.") for k in kept)
    assert not any(k.startswith("decoder.layers.0.attn") for k in kept)  # frozen decoder
    # The fusion embedding (trained) is kept, the renamed frozen text embedding is not.
    assert "decoder.tok_embeddings.fusion_embedding.weight" in kept
    assert "decoder.tok_embeddings.weight" not in kept
    restored = llama3_2_vision_tiny(decoder_trainable=False, encoder_trainable=True, fusion_trainable=True)
    restored.load_state_dict({**restored.state_dict(), **kept})
    frozen = {k: v for k, v in full.items() if k not in kept}
    restored.load_state_dict({**restored.state_dict(), **frozen})
    assert all(torch.equal(restored.state_dict()[k], v) for k, v in full.items())


def test_resume_needs_a_saved_run_and_the_same_data_order(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    with pytest.raises(ConfigError, match="resume_from_checkpoint=True but .* does not exist"):
        load_resume_state(tmp_path)
    saved = {"batch_size": 4, "epochs": 2, "resume_from_checkpoint": False}
    assert check_resumable(
        saved, OmegaConf.create({**saved, "epochs": 3, "resume_from_checkpoint": True})
    ) == ["epochs"]
    with pytest.raises(ConfigError, match=r"batch_size: 4 -> 2"):
        check_resumable(saved, OmegaConf.create({**saved, "batch_size": 2}))


def test_graceful_stop_turns_sigterm_into_a_request() -> None:
    stop = GracefulStop()
    with stop.installed():
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.exit_status == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_metrics_log_truncates_on_resume_and_plots(tmp_path: Path) -> None:
    class Logger:
        def __init__(self) -> None:
            self.lines: list = []

        def log_dict(self, payload, step):
            self.lines.append((step, dict(payload)))

    logger = Logger()
    log = MetricsLog(tmp_path / "metrics.jsonl", logger)
    for step in (1, 2, 3):
        log.log("train", step, {"loss": 4.0 - step, "peak_rss_gib": 1.0}, epoch=0)
    log.log("val", 2, {"accuracy": 0.5}, best=True)
    assert logger.lines[-1] == (2, {"val/accuracy": 0.5})
    log.truncate(2)
    assert [(r["kind"], r["step"]) for r in log.records()] == [("train", 1), ("train", 2), ("val", 2)]
    written = plot_metrics(log.records(), tmp_path / "plots", "accuracy")
    assert sorted(p.name for p in written) == ["loss.png", "memory.png", "validation.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
