"""Quantized serving: ``eval.serve --quantization`` reaches vLLM's command line, and the evaluator
records the server's quantization in run.json and report.json."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from eval.serve import ServerProcess, build_command
from eval.serve.__main__ import main


@pytest.mark.parametrize(
    ("quantization", "flags"),
    [("fp8", ["--quantization", "fp8"]),
     ("bitsandbytes", ["--quantization", "bitsandbytes", "--load-format", "bitsandbytes"])],
)  # fmt: skip
def test_dry_run_passes_quantization_to_vllm_and_the_evaluator(
    quantization: str, flags: list[str], model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["--model", str(model_dir), "--backend", "vllm", "--python", "/venvs/vllm/bin/python",
               "--port", "8123", "--quantization", quantization, "--dry-run", "--", "--enforce-eager"])  # fmt: skip
    assert rc == 0
    server_line, eval_line = capsys.readouterr().out.strip().splitlines()
    server = shlex.split(server_line)
    assert server[:3] == ["/venvs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    at = server.index("--quantization")
    assert server[at : at + len(flags)] == flags and server[-1] == "--enforce-eager"
    assert server.count("--quantization") == 1
    assert shlex.split(eval_line)[-2:] == ["--server_quantization", quantization]


def test_quantization_only_for_vllm(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--model", str(model_dir), "--backend", "transformers", "--quantization", "fp8", "--dry-run"])
    assert rc == 2 and "--quantization is for --backend vllm" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not available for --backend vllm-cpu"):
        build_command(model_dir, "vllm-cpu", quantization="fp8")
    with pytest.raises(ValueError, match="not available for --backend vllm"):
        build_command(model_dir, "vllm", quantization="int3")
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--backend", "vllm", "--quantization", "int3", "--dry-run"])
    cmd, _ = build_command(model_dir, "vllm")
    assert "--quantization" not in cmd and "--load-format" not in cmd  # unquantized by default


def test_a_pre_quantized_checkpoint_is_recorded(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {"quantization_config": {"quant_method": "compressed-tensors", "format": "float-quantized"}}
    (model_dir / "config.json").write_text(json.dumps(config))
    assert main(["--model", str(model_dir), "--backend", "vllm", "--dry-run"]) == 0
    server_line, eval_line = capsys.readouterr().out.strip().splitlines()
    assert "--quantization" not in server_line  # vLLM reads it from config.json
    assert eval_line.endswith("--server_quantization compressed-tensors")


def test_the_evaluator_records_the_served_quantization(
    tmp_path: Path, model_dir: Path, kit, fault_server, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import eval.core.report
    import eval.serve.__main__ as serve_cli
    from eval.core.cli import main as run_task
    from eval.tasks.w2 import target_json

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)
    gts = [kit.w2_record(i) for i in range(2)]
    split = kit.save_split(tmp_path / "w2" / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(2)}, {i: [kit.ok(target_json(gts[i]))] for i in range(2)}
    )
    started = {}

    class Started(ServerProcess):  # stands in for vLLM started at the fault server's URL
        def start(self, timeout: float | None = None) -> ServerProcess:
            return self

        def stop(self, timeout: float = 15.0):
            return None

    def fake_start(model, backend, **kwargs):
        started.update(kwargs, backend=backend)
        return Started([], srv.url, "11B-full", log_path=tmp_path / "log")

    monkeypatch.setattr(serve_cli, "start_server", fake_start)
    out = tmp_path / "eval_out"
    rc = main(["--model", str(model_dir), "--backend", "vllm", "--quantization", "fp8", "--dataset", str(split),
               "--eval-output", str(out), "--eval-args=--no_progress"])  # fmt: skip
    assert rc == 0 and started["backend"] == "vllm" and started["quantization"] == "fp8"
    assert "--server_quantization fp8" in capsys.readouterr().out
    assert json.loads((out / "report.json").read_text())["server_quantization"] == "fp8"
    assert json.loads((out / "run.json").read_text())["identity"]["server_quantization"] == "fp8"
    # resuming that run against a differently quantized server is refused: the numbers would mix
    args = ["--server_url", srv.url, "--model", "11B-full", "--dataset", str(split), "--output_dir", str(out),
            "--no_progress", "--resume", "--structured"]  # fmt: skip
    assert run_task("w2", [*args, "--server_quantization", "bitsandbytes"]) == 2
    assert "server_quantization: 'fp8' -> 'bitsandbytes'" in capsys.readouterr().err
    assert run_task("w2", [*args, "--server_quantization", "fp8"]) == 0
