"""The serve helper: server command lines, start/health/stop of a process group, and the foreground CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval.serve import (
    ServerError,
    ServerProcess,
    build_command,
    default_device,
    eval_command,
    free_port,
    main,
    server_env,
    start_server,
)

REPO = Path(__file__).resolve().parents[2]


def _model_dir(tmp_path: Path, name: str = "11B-full") -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def test_vllm_command_line(tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    cmd, name = build_command(
        model, "vllm", port=8123, python="/venvs/vllm/bin/python", extra_args=["--enforce-eager"]
    )
    assert name == "11B-full"
    assert cmd == [
        "/venvs/vllm/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model.resolve()),
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "11B-full",
        "--max-model-len",
        "9000",
        "--max-num-seqs",
        "16",
        "--limit-mm-per-prompt",
        '{"image":1}',
        "--enforce-eager",
    ]
    # vLLM 0.10.0 parses dict options with json.loads; the key=value form is rejected there
    assert json.loads(cmd[cmd.index("--limit-mm-per-prompt") + 1]) == {"image": 1}
    cmd, name = build_command(model, "vllm", served_model_name="w2", max_model_len=12000, max_num_seqs=64)
    assert name == "w2" and cmd[cmd.index("--max-model-len") + 1] == "12000"
    assert cmd[cmd.index("--max-num-seqs") + 1] == "64" and cmd[0] == sys.executable
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        build_command(model, "tgi")


def test_transformers_command_line(tmp_path: Path, monkeypatch) -> None:
    model = _model_dir(tmp_path, "tiny")
    cmd, name = build_command(model, "transformers", port=9001, device="cpu")
    assert cmd == [
        sys.executable,
        "-m",
        "transformers.cli.transformers",
        "serve",
        str(model.resolve()),
        "--host",
        "127.0.0.1",
        "--port",
        "9001",
        "--device",
        "cpu",
    ]
    assert name == str(model.resolve())  # transformers serve pins the model to the path it was given
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert default_device() == "cpu"


def test_server_env_is_offline_with_an_existing_cache(tmp_path: Path) -> None:
    env = server_env({"HF_HOME": str(tmp_path / "hf")})
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_DISABLE_UPDATE_CHECK"] == "1"
    assert env["HF_HUB_CACHE"] == str(tmp_path / "hf" / "hub") and Path(env["HF_HUB_CACHE"]).is_dir()
    assert server_env({"HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path)})["HF_HUB_OFFLINE"] == "0"


def test_dry_run_prints_both_commands(tmp_path: Path, capsys) -> None:
    model = _model_dir(tmp_path)
    rc = main(
        [
            "--model",
            str(model),
            "--backend",
            "vllm",
            "--python",
            "/venvs/vllm/bin/python",
            "--port",
            "8123",
            "--dataset",
            "data/w2/test",
            "--dry-run",
            "--",
            "--dtype",
            "bfloat16",
        ]
    )
    assert rc == 0
    server_line, eval_line = capsys.readouterr().out.strip().splitlines()
    assert server_line.startswith("/venvs/vllm/bin/python -m vllm.entrypoints.openai.api_server --model ")
    assert server_line.endswith("--limit-mm-per-prompt '{\"image\":1}' --dtype bfloat16")
    assert eval_line == (
        "python -m eval.w2 --server_url http://127.0.0.1:8123/v1 --model 11B-full "
        "--structured --dataset data/w2/test"
    )
    assert eval_command("http://h:1/v1", "/a b/m", None, False) == (
        "python -m eval.w2 --server_url http://h:1/v1 --model '/a b/m' --dataset DIR/test"
    )


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie child of ours still answers kill(0); reap it if it is ours
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return False


def test_process_group_start_health_stop(tmp_path: Path, stub_server_script: Path) -> None:
    port = free_port()
    pidfile = tmp_path / "child.pid"
    proc = ServerProcess(
        [sys.executable, str(stub_server_script), str(port), "0.5", str(pidfile)],
        f"http://127.0.0.1:{port}/v1",
        "stub",
        f"http://127.0.0.1:{port}/health",
        env=dict(os.environ),
        log_path=tmp_path / "server.log",
    )
    with proc.start(timeout=30):
        assert proc.healthy()
        child = int(pidfile.read_text())
        assert not _gone(child, within=0.1)
    assert proc.process.poll() is not None and not proc.healthy()
    assert _gone(child)  # the whole group was stopped, not just the leader
    assert "stub server listening" in (tmp_path / "server.log").read_text()


def test_start_failures_are_bounded_and_explained(tmp_path: Path, stub_server_script: Path) -> None:
    crash = ServerProcess(
        [sys.executable, "-c", "import sys; print('config.json: bad rope_scaling'); sys.exit(3)"],
        "http://127.0.0.1:9/v1",
        "m",
        "http://127.0.0.1:9/health",
        env=dict(os.environ),
        log_path=tmp_path / "crash.log",
    )
    with pytest.raises(
        ServerError, match=r"(?s)exited with status 3 before it was healthy.*bad rope_scaling"
    ):
        crash.start(timeout=30)
    port = free_port()
    slow = ServerProcess(
        [sys.executable, str(stub_server_script), str(port), "600", str(tmp_path / "p")],
        f"http://127.0.0.1:{port}/v1",
        "m",
        f"http://127.0.0.1:{port}/health",
        env=dict(os.environ),
        log_path=tmp_path / "slow.log",
    )
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=r"not healthy at .* after 1 s"):
        slow.start(timeout=1.0)
    assert time.monotonic() - t0 < 20 and slow.process.poll() is not None  # stopped after the timeout
    with pytest.raises(ServerError, match="no config.json"):
        start_server(tmp_path)
    with pytest.raises(ServerError, match=r"vllm is not installed for .*requirements/serve-vllm.txt"):
        start_server(_model_dir(tmp_path), "vllm")  # this environment has no vLLM, by design


def test_cli_stays_in_the_foreground_until_ctrl_c(tmp_path: Path, stub_server_script: Path) -> None:
    model = _model_dir(tmp_path, "tiny")
    pidfile = tmp_path / "child.pid"
    program = f"""
import sys
import eval.serve as serve

def fake_start(model_dir, backend, *, host, port, log_path=None, **kwargs):
    cmd = [sys.executable, {str(stub_server_script)!r}, str(port), "0", {str(pidfile)!r}]
    proc = serve.ServerProcess(cmd, f"http://{{host}}:{{port}}/v1", "stub-model", f"http://{{host}}:{{port}}/health")
    return proc.start(30)

serve.start_server = fake_start
sys.exit(serve.main(["--model", {str(model)!r}, "--port", "0", "--dataset", "data/w2/test"]))
"""
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 60
        while not lines or lines[-1] != "Ctrl-C stops the server.\n":
            assert time.monotonic() < deadline and proc.poll() is None, (lines, proc.stderr.read())
            lines.append(proc.stdout.readline())
        child = int(pidfile.read_text())
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines)
    assert proc.returncode == 0, err
    assert "ready: http://127.0.0.1:" in text and "(model 'stub-model')" in text
    eval_line = next(line.strip() for line in lines if line.strip().startswith("python -m eval.w2"))
    assert eval_line.startswith("python -m eval.w2 --server_url http://127.0.0.1:")
    assert eval_line.endswith("/v1 --model stub-model --dataset data/w2/test")
    assert "stopping the server" in out
    assert _gone(child)


def test_eval_output_runs_the_evaluation_then_stops(
    tmp_path: Path, kit, fault_server, monkeypatch, capsys
) -> None:
    import eval.report
    import eval.serve
    from eval.tasks.w2 import target_json

    monkeypatch.setattr(eval.report, "plot_bars", lambda *a, **k: None)
    gts = [kit.w2_record(i) for i in range(2)]
    split = kit.save_split(tmp_path / "w2" / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(2)}, {i: [kit.ok(target_json(gts[i]))] for i in range(2)}
    )
    stopped = []

    class Started(ServerProcess):  # stands in for a started server at the fault server's URL
        def stop(self, timeout: float = 15.0):
            stopped.append(True)

    def fake_start(model_dir, backend, **kwargs):
        return Started(
            [], srv.url, "tiny", srv.url.replace("/v1", "/health"), env={}, log_path=tmp_path / "l"
        )

    monkeypatch.setattr(eval.serve, "start_server", fake_start)
    model = _model_dir(tmp_path, "tiny")
    out = tmp_path / "eval_out"
    assert main(["--model", str(model), "--eval-output", str(out)]) == 2
    assert "--eval-output needs --dataset" in capsys.readouterr().err
    rc = main(
        [
            "--model",
            str(model),
            "--dataset",
            str(split),
            "--eval-output",
            str(out),
            "--eval-args",
            "--max_tokens 64 --no_progress",
        ]
    )
    assert rc == 0 and stopped
    printed = capsys.readouterr().out
    assert f"running: python -m eval.w2 --server_url {srv.url} --model tiny --dataset {split}" in printed
    assert json.loads((out / "report.json").read_text())["metrics"]["accuracy_strict"] == 1.0
    assert all(s.body["max_tokens"] == 64 for s in srv.seen)
