"""Shared fixtures: the tiny checkpoint is built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (tests run commands from here)."""
    return REPO


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama 3.2 Vision HF checkpoint (seed 0), built once per session. Treat as read-only."""
    from torchtune_ext.models.make_tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llama3.2-vision", seed=0)


@pytest.fixture(scope="session")
def w2_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared synthetic W-2 directory (train/validation/test), built once per session."""
    from torchtune_ext.data.prepare_w2 import main as prepare_main
    from torchtune_ext.data.synth.__main__ import main as synth_main

    root = tmp_path_factory.mktemp("w2")
    args = ["w2", "--num", "24", "--output-dir", str(root / "synth"), "--seed", "0"]
    assert synth_main([*args, "--splits", "train=12,validation=2,test=10", "--workers", "1"]) == 0
    assert prepare_main(["--source", str(root / "synth"), "--output-dir", str(root / "prepared")]) == 0
    return root / "prepared"
