"""Serve a model directory with an OpenAI-compatible server, ready for ``python -m eval.w2``.

``python -m eval.serve --model DIR [--backend transformers|vllm] [--port P]`` starts the server
with safe settings for Llama 3.2 Vision, waits (bounded) until ``/health`` answers, prints the
exact ``eval.w2`` command for it, and stays in the foreground until Ctrl-C, then stops the
server's whole process group. With ``--eval-output DIR`` it runs that evaluation itself and
then stops the server (one command for demos and CI).

Backends:

* ``transformers`` (default; CI and the CPU demo): ``transformers serve DIR`` from the same
  environment (``transformers[serving]`` 5.x). It ignores ``response_format``, so run the
  evaluator without ``--structured``. The model name in requests is the directory path.
  ``--device cpu`` is passed when no NVIDIA GPU is visible.
* ``vllm``: ``python -m vllm.entrypoints.openai.api_server`` from a separate environment
  (``eval/requirements/serve-vllm.txt``: vLLM 0.10.0, the last release that loads Mllama and
  enforces structured output for it; needs transformers < 5 and Python < 3.13), chosen with
  ``--python ENV/bin/python``. Defaults: ``--max-model-len 9000`` (room for the evaluator's
  8192 completion tokens), ``--max-num-seqs 16`` (vLLM's default runs out of memory on
  Mllama), ``--limit-mm-per-prompt '{"image":1}'`` (the JSON form vLLM 0.10.0 parses) and
  ``--served-model-name`` (default: the directory's name).

Python API: :func:`start_server` returns a started :class:`ServerProcess`, which is a context
manager; the test fixtures use the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Optional

__all__ = [
    "BACKENDS",
    "ServerError",
    "ServerProcess",
    "build_command",
    "default_device",
    "eval_command",
    "free_port",
    "server_env",
    "start_server",
    "main",
]

BACKENDS = ("transformers", "vllm")
VLLM_MAX_MODEL_LEN = 9000
VLLM_MAX_NUM_SEQS = 16


class ServerError(RuntimeError):
    """The server could not be started, or died; the message ends with its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago.

    Args:
        host (str): interface to probe.

    Returns:
        int: the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_device() -> str:
    """``cpu`` when no NVIDIA GPU is visible (no ``nvidia-smi``, no ``/dev/nvidiactl``), else ``auto``.

    Returns:
        str: the ``transformers serve --device`` value.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return "cpu"
    if shutil.which("nvidia-smi") or Path("/dev/nvidiactl").exists():
        return "auto"
    return "cpu"


def build_command(
    model_dir: str | Path,
    backend: str = "transformers",
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    python: Optional[str] = None,
    served_model_name: Optional[str] = None,
    device: Optional[str] = None,
    max_model_len: int = VLLM_MAX_MODEL_LEN,
    max_num_seqs: int = VLLM_MAX_NUM_SEQS,
    extra_args: Sequence[str] = (),
) -> tuple[list[str], str]:
    """The server command line and the model name clients must send.

    Args:
        model_dir (str | Path): the HF model directory.
        backend (str): ``transformers`` or ``vllm``.
        host (str): listen address.
        port (int): listen port.
        python (Optional[str]): interpreter of the server's environment (default: this one).
        served_model_name (Optional[str]): vLLM model name (default: the directory's name);
            transformers always serves under the directory path.
        device (Optional[str]): transformers ``--device`` (default: :func:`default_device`).
        max_model_len (int): vLLM ``--max-model-len``.
        max_num_seqs (int): vLLM ``--max-num-seqs``.
        extra_args (Sequence[str]): appended verbatim.

    Returns:
        tuple[list[str], str]: the argv and the served model name.

    Raises:
        ValueError: for an unknown backend.
    """
    model = str(Path(model_dir).resolve())
    python = python or sys.executable
    if backend == "transformers":
        cmd = [
            python,
            "-m",
            "transformers.cli.transformers",
            "serve",
            model,
            "--host",
            host,
            "--port",
            str(port),
            "--device",
            device or default_device(),
        ]
        return cmd + list(extra_args), model
    if backend == "vllm":
        name = served_model_name or Path(model).name
        cmd = [
            python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            model,
            "--host",
            host,
            "--port",
            str(port),
            "--served-model-name",
            name,
            "--max-model-len",
            str(max_model_len),
            "--max-num-seqs",
            str(max_num_seqs),
            "--limit-mm-per-prompt",
            json.dumps({"image": 1}, separators=(",", ":")),
        ]
        return cmd + list(extra_args), name
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def server_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Environment for a local-directory server: offline hub, no update check, a cache dir that exists.

    ``transformers serve`` answers ``/v1/models`` only when the HF hub cache directory exists,
    so it is created if missing. Values already set in ``base`` win.

    Args:
        base (Optional[Mapping[str, str]]): starting environment (default: ``os.environ``).

    Returns:
        dict[str, str]: the environment.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    cache = env.get("HF_HUB_CACHE") or str(
        Path(env.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"
    )
    Path(cache).mkdir(parents=True, exist_ok=True)
    env["HF_HUB_CACHE"] = cache
    return env


class ServerProcess:
    """A server child process in its own process group (stop it to end the whole group).

    Args:
        command (Sequence[str]): argv.
        base_url (str): the OpenAI base URL (``http://host:port/v1``).
        model_name (str): what clients send as ``model``.
        health_url (str): polled until it answers 200.
        env (Optional[Mapping[str, str]]): environment (default: :func:`server_env`).
        log_path (Optional[Path]): server stdout+stderr (default: a temp file).
    """

    def __init__(
        self,
        command: Sequence[str],
        base_url: str,
        model_name: str,
        health_url: str,
        env: Optional[Mapping[str, str]] = None,
        log_path: Optional[Path] = None,
    ) -> None:
        self.command = list(command)
        self.base_url = base_url
        self.model_name = model_name
        self.health_url = health_url
        self.env = dict(env) if env is not None else server_env()
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="eval-serve-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = Path(log_path)
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self, timeout: float = 600.0) -> ServerProcess:
        """Start the process and wait until it is healthy.

        Args:
            timeout (float): seconds allowed for start-up.

        Returns:
            ServerProcess: self.

        Raises:
            ServerError: if it exits or is not healthy in time (it is stopped then).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def healthy(self) -> bool:
        """bool: True if ``health_url`` answers 200 now."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=2.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float) -> None:
        """Poll ``health_url`` until it answers 200.

        Args:
            timeout (float): seconds.

        Raises:
            ServerError: if the process exits first or the time runs out.
        """
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"server exited with status {code} before it was healthy "
                    f"({shlex.join(self.command)}){self.log_tail()}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"server not healthy at {self.health_url} after {timeout:g} s{self.log_tail()}"
                )
            time.sleep(0.5)

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server log, formatted for an error message.

        Args:
            lines (int): how many.

        Returns:
            str: ``"\\n--- last lines of LOG ---\\n..."`` or ``""``.
        """
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\n--- last lines of {self.log_path} ---\n" + "\n".join(text) if text else ""

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM the process group, then SIGKILL after ``timeout`` seconds.

        Args:
            timeout (float): grace period.

        Returns:
            Optional[int]: the exit status, or None if never started.
        """
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        # children that ignored SIGTERM while the leader exited
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_server(
    model_dir: str | Path,
    backend: str = "transformers",
    *,
    host: str = "127.0.0.1",
    port: Optional[int] = None,
    python: Optional[str] = None,
    served_model_name: Optional[str] = None,
    device: Optional[str] = None,
    max_model_len: int = VLLM_MAX_MODEL_LEN,
    max_num_seqs: int = VLLM_MAX_NUM_SEQS,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 600.0,
    log_path: Optional[Path] = None,
    env: Optional[Mapping[str, str]] = None,
) -> ServerProcess:
    """Start a server for ``model_dir`` and wait until it is healthy.

    Use as ``with start_server(dir) as srv: ... srv.base_url, srv.model_name``.

    Args:
        model_dir (str | Path): HF model directory (must hold ``config.json``).
        backend (str): ``transformers`` or ``vllm``.
        host (str): listen address.
        port (Optional[int]): listen port (None or 0: a free one).
        python (Optional[str]): interpreter of the server's environment.
        served_model_name (Optional[str]): vLLM served name.
        device (Optional[str]): transformers device.
        max_model_len (int): vLLM context length.
        max_num_seqs (int): vLLM concurrent sequences.
        extra_args (Sequence[str]): extra server arguments.
        startup_timeout (float): seconds allowed until healthy.
        log_path (Optional[Path]): server log file.
        env (Optional[Mapping[str, str]]): base environment (passed through :func:`server_env`).

    Returns:
        ServerProcess: the running server.

    Raises:
        ServerError: if the directory is not a model, the backend is not installed for
            ``python``, or the server does not become healthy in time.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ServerError(f"{model_dir}: not a Hugging Face model directory (no config.json)")
    python = python or sys.executable
    module = {
        "transformers": "transformers.cli.transformers",
        "vllm": "vllm.entrypoints.openai.api_server",
    }.get(backend)
    if module is None:
        raise ServerError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    _require_module(python, module.split(".")[0], backend)
    port = port or free_port(host)
    cmd, name = build_command(
        model_dir,
        backend,
        host=host,
        port=port,
        python=python,
        served_model_name=served_model_name,
        device=device,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        extra_args=extra_args,
    )
    proc = ServerProcess(
        cmd,
        f"http://{host}:{port}/v1",
        name,
        f"http://{host}:{port}/health",
        env=server_env(env),
        log_path=log_path,
    )
    return proc.start(startup_timeout)


def _require_module(python: str, module: str, backend: str) -> None:
    """Fail early, with the fix, if the server's interpreter lacks the backend package."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec(sys.argv[1]) is None)"
    try:
        found = subprocess.run([python, "-c", probe, module], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"cannot run {python}: {exc}") from exc
    if not found:
        hint = (
            "create its environment from eval/requirements/serve-vllm.txt (Python < 3.13) and pass "
            "--python ENV/bin/python"
            if backend == "vllm"
            else "pip install 'transformers[serving]'"
        )
        raise ServerError(f"{module} is not installed for {python}; {hint}")


def eval_command(
    base_url: str, model_name: str, dataset: Optional[str], structured: bool, output_dir: Optional[str] = None
) -> str:
    """The ``python -m eval.w2`` command for a running server.

    Args:
        base_url (str): server base URL.
        model_name (str): served model name.
        dataset (Optional[str]): split directory (a placeholder if None).
        structured (bool): add ``--structured``.
        output_dir (Optional[str]): ``--output_dir`` value, if any.

    Returns:
        str: a shell-quoted command line.
    """
    cmd = ["python", "-m", "eval.w2", "--server_url", base_url, "--model", model_name]
    if structured:
        cmd.append("--structured")
    cmd += ["--dataset", dataset or "DIR/test"]
    if output_dir:
        cmd += ["--output_dir", output_dir]
    return shlex.join(cmd)


def _parser() -> argparse.ArgumentParser:
    from eval.cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="python -m eval.serve",
        description="Serve a Llama 3.2 Vision model directory with an OpenAI-compatible server for eval.w2. "
        "Arguments after `--` go to the server unchanged.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--model", required=True, help="Hugging Face model directory (config.json, weights, tokenizer)"
    )
    p.add_argument("--backend", choices=BACKENDS, default="transformers", help="server")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--port", type=int, default=8001, help="listen port (0: any free port)")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the server's environment (vLLM: its own venv)",
    )
    p.add_argument(
        "--served-model-name",
        "--served_model_name",
        dest="served_model_name",
        default=None,
        help="vLLM: the model name clients send (default: the directory's name)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="transformers: --device (default: cpu when no NVIDIA GPU is visible, else auto)",
    )
    p.add_argument(
        "--max-model-len",
        "--max_model_len",
        dest="max_model_len",
        type=int,
        default=VLLM_MAX_MODEL_LEN,
        help="vLLM: context length (prompt + 8192 completion tokens fit)",
    )
    p.add_argument(
        "--max-num-seqs",
        "--max_num_seqs",
        dest="max_num_seqs",
        type=int,
        default=VLLM_MAX_NUM_SEQS,
        help="vLLM: concurrent sequences (raise on big GPUs; the reference used 100 on an H100)",
    )
    p.add_argument(
        "--startup-timeout",
        "--startup_timeout",
        dest="startup_timeout",
        type=float,
        default=900.0,
        help="seconds to wait for /health",
    )
    p.add_argument(
        "--log-file",
        "--log_file",
        dest="log_file",
        default=None,
        help="server log (default: a temp file; its path is printed)",
    )
    p.add_argument("--dataset", default=None, help="split directory to put into the printed eval.w2 command")
    p.add_argument(
        "--eval-output",
        "--eval_output",
        dest="eval_output",
        default=None,
        help="instead of staying in the foreground: run eval.w2 on --dataset into this directory, "
        "then stop the server (exit status: eval.w2's)",
    )
    p.add_argument(
        "--eval-args",
        "--eval_args",
        dest="eval_args",
        default="",
        help="extra eval.w2 flags for --eval-output, as one string (e.g. '--limit 10 --max_tokens 512')",
    )
    p.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the server command and exit",
    )
    return p


def _run_eval(server: ServerProcess, args: argparse.Namespace, structured: bool) -> int:
    """Run eval.w2 in this process against the started server (``--eval-output``)."""
    from eval.w2 import main as w2_main

    argv = [
        "--server_url",
        server.base_url,
        "--model",
        server.model_name,
        "--dataset",
        args.dataset,
        "--output_dir",
        args.eval_output,
    ]
    if structured:
        argv.append("--structured")
    argv += shlex.split(args.eval_args)
    print(f"ready: {server.base_url}; running: {shlex.join(['python', '-m', 'eval.w2', *argv])}", flush=True)
    try:
        return w2_main(argv)
    finally:
        print("stopping the server ...", flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the serve helper (see the module docstring).

    Args:
        argv (Optional[Sequence[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: 0 after Ctrl-C, 1 if the server died, 2 if it could not start; with
        ``--eval-output``, the evaluator's exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    port = args.port or free_port(args.host)
    structured = args.backend == "vllm"
    server_args = dict(
        host=args.host,
        port=port,
        python=args.python,
        served_model_name=args.served_model_name,
        device=args.device,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        extra_args=extra,
    )
    if args.dry_run:
        cmd, name = build_command(args.model, args.backend, **server_args)
        print(shlex.join(cmd))
        print(eval_command(f"http://{args.host}:{port}/v1", name, args.dataset, structured))
        return 0
    if args.eval_output and not args.dataset:
        print("error: --eval-output needs --dataset (the split to evaluate)", file=sys.stderr)
        return 2
    print(f"starting {args.backend} server for {args.model} on {args.host}:{port} ...", flush=True)
    try:
        server = start_server(
            args.model,
            args.backend,
            **server_args,
            startup_timeout=args.startup_timeout,
            log_path=Path(args.log_file) if args.log_file else None,
        )
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted while starting; the server was stopped", file=sys.stderr)
        return 130
    if args.eval_output:
        with server:
            return _run_eval(server, args, structured)
    with server:
        try:
            print(f"ready: {server.base_url} (model {server.model_name!r}); log: {server.log_path}")
            if not structured:
                print("note: transformers serve ignores response_format, so the command has no --structured")
            command = eval_command(server.base_url, server.model_name, args.dataset, structured)
            print(f"evaluate with:\n  {command}")
            print("Ctrl-C stops the server.", flush=True)
            code = server.process.wait() if server.process else 0
        except KeyboardInterrupt:
            print("\nstopping the server ...", flush=True)
            return 0
    print(f"error: the server exited with status {code}{server.log_tail()}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
