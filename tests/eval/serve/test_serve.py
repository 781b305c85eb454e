"""Serving: command lines per backend, the one lifecycle (ready = serves the model; the whole
group stops), and the ``python -m eval.serve`` command line on every terminating signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testing_utils import REPO, gone

from eval.serve import (
    ServerError,
    ServerProcess,
    build_command,
    default_device,
    free_port,
    server_env,
    start_server,
)
from eval.serve.__main__ import eval_command, main


def test_vllm_command_line(model_dir: Path) -> None:
    cmd, name = build_command(
        model_dir, "vllm", port=8123, python="/venvs/vllm/bin/python", extra_args=["--enforce-eager"]
    )
    assert name == "11B-full"
    assert cmd == [
        "/venvs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_dir.resolve()), "--host", "127.0.0.1", "--port", "8123",
        "--served-model-name", "11B-full", "--max-model-len", "9000", "--max-num-seqs", "16",
        "--limit-mm-per-prompt", '{"image":1}', "--enforce-eager",
    ]  # fmt: skip
    # vLLM 0.10.0 parses dict options with json.loads; the key=value form is rejected there
    assert json.loads(cmd[cmd.index("--limit-mm-per-prompt") + 1]) == {"image": 1}
    cmd, name = build_command(model_dir, "vllm", served_model_name="w2", max_model_len=12000, max_num_seqs=64)
    assert name == "w2" and cmd[cmd.index("--max-model-len") + 1] == "12000"
    assert cmd[cmd.index("--max-num-seqs") + 1] == "64" and cmd[0] == sys.executable
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        build_command(model_dir, "tgi")


def test_transformers_command_line(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cmd, name = build_command(model_dir, "transformers", port=9001, device="cpu")
    assert cmd == [
        sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir.resolve()),
        "--host", "127.0.0.1", "--port", "9001", "--device", "cpu",
    ]  # fmt: skip
    assert name == str(model_dir.resolve())  # transformers serve pins the model to the path it was given
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert default_device() == "cpu"


def test_vllm_cpu_command_line_carries_the_cpu_settings(model_dir: Path) -> None:
    cmd, name = build_command(
        model_dir, "vllm-cpu", port=8123, python="/v/bin/python", served_model_name="tiny"
    )
    assert cmd[:3] == ["/v/bin/python", "-m", "vllm.entrypoints.openai.api_server"] and name == "tiny"
    joined = " ".join(cmd)
    for part in ("--host 127.0.0.1", "--port 8123", "--enforce-eager", "--gpu-memory-utilization 0.3",
                 "--served-model-name tiny", "--dtype auto", "--max-model-len 16384"):  # fmt: skip
        assert part in joined
    config = json.loads(cmd[cmd.index("--structured-outputs-config") + 1])
    assert config == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert "--dtype float32" in " ".join(build_command(model_dir, "vllm-cpu", dtype="float32")[0])


def test_server_env_is_offline_with_what_the_backend_needs(tmp_path: Path) -> None:
    env = server_env("transformers", {"HF_HOME": str(tmp_path / "hf")})
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_DISABLE_UPDATE_CHECK"] == "1"
    assert env["HF_HUB_CACHE"] == str(tmp_path / "hf" / "hub") and Path(env["HF_HUB_CACHE"]).is_dir()
    assert (
        server_env("transformers", {"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path)})["HF_HUB_OFFLINE"]
        == "0"
    )
    cpu = server_env("vllm-cpu", {"PATH": "/bin"})
    assert cpu["VLLM_CPU_KVCACHE_SPACE"] == "1" and cpu["HF_HUB_OFFLINE"] == "1" and "HF_HUB_CACHE" not in cpu
    assert server_env("vllm-cpu", {"VLLM_CPU_KVCACHE_SPACE": "4"})["VLLM_CPU_KVCACHE_SPACE"] == "4"


def test_dry_run_prints_both_commands(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--model", str(model_dir), "--backend", "vllm", "--python", "/venvs/vllm/bin/python",
               "--port", "8123", "--dataset", "data/w2/test", "--dry-run", "--", "--dtype", "bfloat16"])  # fmt: skip
    assert rc == 0
    server_line, eval_line = capsys.readouterr().out.strip().splitlines()
    assert server_line.startswith("/venvs/vllm/bin/python -m vllm.entrypoints.openai.api_server --model ")
    assert server_line.endswith("--limit-mm-per-prompt '{\"image\":1}' --dtype bfloat16")
    assert eval_line == (
        "python -m eval.w2 --server_url http://127.0.0.1:8123/v1 --model 11B-full "
        "--structured --dataset data/w2/test"
    )
    assert main(["--model", str(model_dir), "--task", "classify", "--port", "9", "--dry-run"]) == 0
    eval_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert eval_line.startswith("python -m eval.classify --server_url http://127.0.0.1:9/v1 --model ")
    assert "--structured" not in eval_line  # transformers serve ignores response_format
    assert eval_command("http://h:1/v1", "/a b/m", None, False) == [
        "python", "-m", "eval.w2", "--server_url", "http://h:1/v1", "--model", "/a b/m", "--dataset", "DIR/test"
    ]  # fmt: skip


def _server(model_dir: Path, fake_python: Path, backend: str, tmp_path: Path, **kw) -> ServerProcess:
    port = free_port()
    cmd, name = build_command(model_dir, backend, port=port, python=str(fake_python), served_model_name="m")
    return ServerProcess(
        cmd, f"http://127.0.0.1:{port}/v1", kw.pop("name", name), env=kw.pop("env", dict(os.environ)),
        log_path=tmp_path / f"{backend}.log", model_listed=backend != "transformers", **kw,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["transformers", "vllm-cpu"])
def test_ready_means_it_serves_the_model_and_stop_ends_the_group(
    backend: str, model_dir: Path, fake_python: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    env = {
        **os.environ,
        "FAKE_CHILD_PID": str(pidfile),
        "FAKE_DELAY": "0.5",
        "FAKE_UNLISTED": "1" * (backend == "transformers"),
    }
    with _server(model_dir, fake_python, backend, tmp_path, env=env, startup_timeout=30) as server:
        assert server.healthy() and server.serves_model() and server.startup_seconds >= 0.5
        child = int(pidfile.read_text())
        assert not gone(child, within=0.1)
    assert server.process.poll() is not None and not server.healthy()
    assert gone(child)  # the whole group was stopped, not just the leader
    assert "fake server for" in (tmp_path / f"{backend}.log").read_text()


@pytest.mark.parametrize("backend", ["transformers", "vllm-cpu"])
def test_a_server_for_another_model_is_not_ready(
    backend: str, model_dir: Path, fake_python: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "FAKE_UNLISTED": "1" * (backend == "transformers")}
    server = _server(model_dir, fake_python, backend, tmp_path, env=env, name="other-model")
    t0 = time.monotonic()
    with pytest.raises(ServerError, match="healthy but does not serve 'other-model'"):
        server.start(timeout=2)
    assert time.monotonic() - t0 < 20 and server.process.poll() is not None


def test_a_taken_port_is_refused_not_mistaken_for_the_new_server(
    model_dir: Path, fake_python: Path, tmp_path: Path
) -> None:
    with _server(model_dir, fake_python, "vllm-cpu", tmp_path, startup_timeout=30) as first:
        second = ServerProcess(first.command, first.base_url, first.model_name, log_path=tmp_path / "2.log")
        with pytest.raises(ServerError, match=r"127\.0\.0\.1:\d+ is already in use"):
            second.start(timeout=5)
        assert second.process is None and first.running()


def test_start_failures_are_bounded_and_explained(tmp_path: Path, model_dir: Path) -> None:
    crash = ServerProcess(
        [sys.executable, "-c", "import sys; print('config.json: bad rope_scaling'); sys.exit(3)"],
        f"http://127.0.0.1:{free_port()}/v1", "m", log_path=tmp_path / "crash.log",
    )  # fmt: skip
    with pytest.raises(ServerError, match=r"(?s)exited with status 3 before it was ready.*bad rope_scaling"):
        crash.start(timeout=30)
    slow = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(600)"], f"http://127.0.0.1:{free_port()}/v1", "m",
        log_path=tmp_path / "slow.log",
    )  # fmt: skip
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"not healthy at .* after 1 s"):
        slow.start(timeout=1.0)
    assert time.monotonic() - t0 < 20 and slow.process.poll() is not None  # stopped after the timeout
    with pytest.raises(ServerError, match="no config.json"):
        start_server(tmp_path)
    with pytest.raises(ServerError, match=r"vllm is not installed for .*requirements/serve-vllm.txt"):
        start_server(model_dir, "vllm")  # this environment has no vLLM, by design


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT])
def test_cli_serves_until_a_terminating_signal_then_stops_the_server(
    sig: signal.Signals, model_dir: Path, fake_python: Path, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "eval.serve", "--model", str(model_dir), "--backend", "vllm-cpu",
         "--python", str(fake_python), "--port", "0", "--task", "classify", "--dataset", "data/cars/test"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "FAKE_CHILD_PID": str(pidfile)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not lines or not lines[-1].startswith("stop with Ctrl-C, or: kill "):
            assert time.monotonic() < deadline and proc.poll() is None, (lines, proc.stderr.read())
            lines.append(proc.stdout.readline())
        child = int(pidfile.read_text())
        assert lines[-1].strip() == f"stop with Ctrl-C, or: kill {proc.pid}"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines)
    assert proc.returncode == 0, err
    assert "ready: http://127.0.0.1:" in text and "(model '11B-full')" in text
    eval_line = next(line.strip() for line in lines if line.strip().startswith("python -m eval."))
    assert eval_line.startswith("python -m eval.classify --server_url http://127.0.0.1:")
    assert eval_line.endswith("/v1 --model 11B-full --structured --dataset data/cars/test")
    assert "stopping the server" in out
    assert gone(child)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_a_killed_serve_command_does_not_leave_its_server_running(
    model_dir: Path, fake_python: Path, tmp_path: Path
) -> None:
    """kill -9 cannot be caught: the kernel sends the server SIGTERM when its parent dies."""
    from eval.serve import port_in_use

    pidfile = tmp_path / "child.pid"
    proc = subprocess.Popen(
        [sys.executable, "-m", "eval.serve", "--model", str(model_dir), "--backend", "vllm-cpu",
         "--python", str(fake_python), "--port", "0"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "FAKE_CHILD_PID": str(pidfile)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not lines or not lines[-1].startswith("stop with Ctrl-C"):
            assert time.monotonic() < deadline and proc.poll() is None, (lines, proc.stderr.read())
            lines.append(proc.stdout.readline())
        port = int(next(x for x in lines if x.startswith("ready: ")).split(":")[3].split("/")[0])
        worker = int(pidfile.read_text())
        server = int(Path(f"/proc/{worker}/stat").read_text().split()[3])  # the worker's parent
        assert port_in_use("127.0.0.1", port) and not gone(server, within=0.1)
        proc.kill()
        proc.communicate(timeout=30)
        assert gone(server) and gone(worker) and not port_in_use("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_eval_output_runs_the_evaluation_then_stops(
    tmp_path: Path, model_dir: Path, kit, fault_server, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import eval.core.report
    import eval.serve.__main__ as serve_cli
    from eval.tasks.w2 import target_json

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)
    gts = [kit.w2_record(i) for i in range(2)]
    split = kit.save_split(tmp_path / "w2" / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(2)}, {i: [kit.ok(target_json(gts[i]))] for i in range(2)}
    )
    stopped = []

    class Started(ServerProcess):  # stands in for a started server at the fault server's URL
        def start(self, timeout: float | None = None) -> ServerProcess:
            return self

        def stop(self, timeout: float = 15.0):
            stopped.append(True)

    monkeypatch.setattr(
        serve_cli, "start_server", lambda *a, **k: Started([], srv.url, "tiny", log_path=tmp_path / "l")
    )
    out = tmp_path / "eval_out"
    assert main(["--model", str(model_dir), "--eval-output", str(out)]) == 2
    assert "--eval-output needs --dataset" in capsys.readouterr().err
    rc = main(["--model", str(model_dir), "--dataset", str(split), "--eval-output", str(out),
               "--eval-args", "--max_tokens 64 --no_progress"])  # fmt: skip
    assert rc == 0 and stopped
    printed = capsys.readouterr().out
    assert f"running: python -m eval.w2 --server_url {srv.url} --model tiny --dataset {split}" in printed
    assert json.loads((out / "report.json").read_text())["metrics"]["accuracy_strict"] == 1.0
    assert all(s.body["max_tokens"] == 64 for s in srv.seen)


def test_secrets_in_server_arguments_are_masked_in_what_is_printed(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "sk-sentinel-5150"
    assert (
        main(["--model", str(model_dir), "--backend", "vllm-cpu", "--dry-run", "--", "--api-key", secret])
        == 0
    )
    printed = capsys.readouterr().out
    assert "--api-key '***'" in printed and secret not in printed
    echo = "import sys; print('non-default args:', sys.argv[1:]); sys.exit(3)"
    crash = ServerProcess(
        [sys.executable, "-c", echo, "--api-key", secret, "--url", f"http://bob:{secret}x@h/v1"],
        f"http://127.0.0.1:{free_port()}/v1", "m", log_path=tmp_path / "crash.log",
    )  # fmt: skip
    with pytest.raises(ServerError) as info:
        crash.start(timeout=30)
    message = str(info.value)
    assert "non-default args:" in message and "http://bob:***@h/v1" in message and secret not in message
