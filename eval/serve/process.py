"""The one server lifecycle: start a server in its own process group, wait until it serves the
requested model, stop the whole group.

Used by ``python -m eval.serve`` for every backend (:mod:`eval.serve.backends`) and by the test
fixtures. Readiness means all of:

* the process is still running (a server that exits while starting is reported with the end
  of its log);
* ``/health`` answers 200;
* the server serves the requested model name: ``/v1/models`` lists it, or, for servers whose
  list does not name a model pinned at start (``transformers serve``), a one-token request for
  it is answered.

Before starting, the port must be free: a server left running on it by an earlier run would
otherwise answer the health check for the new one.

Stopping: the owner stops the server's process group when it exits normally or on Ctrl-C,
SIGTERM, SIGHUP or SIGQUIT (:func:`stop_on_signals`). A signal no program can catch
(``kill -9``) is covered on Linux by the parent-death signal: the kernel sends the server
SIGTERM when the process that started it dies.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Optional

from eval.core.redact import argv_secrets, redact_argv, redact_text

__all__ = [
    "ServerError",
    "ServerProcess",
    "free_port",
    "port_in_use",
    "stop_on_signals",
]


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


def port_in_use(host: str, port: int) -> bool:
    """Whether something accepts connections on ``host:port``.

    Args:
        host (str): address.
        port (int): port.

    Returns:
        bool: True if a connection succeeds.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ServerProcess:
    """A server child process in its own process group; a context manager that starts and stops it.

    Args:
        command (Sequence[str]): argv.
        base_url (str): the OpenAI base URL (``http://host:port/v1``).
        model_name (str): what clients send as ``model``; readiness checks the server serves it.
        env (Optional[Mapping[str, str]]): environment (default: this process's).
        log_path (Optional[Path]): server stdout+stderr (default: a temp file).
        model_listed (bool): ``/v1/models`` names the served model (vLLM); when False, a
            one-token request checks it instead (``transformers serve``).
        startup_timeout (float): seconds :meth:`start` waits for readiness.
    """

    def __init__(
        self,
        command: Sequence[str],
        base_url: str,
        model_name: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        log_path: Optional[Path] = None,
        model_listed: bool = True,
        startup_timeout: float = 600.0,
    ) -> None:
        self.command = list(command)
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.env = dict(env) if env is not None else dict(os.environ)
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="eval-serve-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = Path(log_path)
        self.model_listed = model_listed
        self.startup_timeout = startup_timeout
        self.startup_seconds: Optional[float] = None
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def health_url(self) -> str:
        """str: ``http://host:port/health``."""
        return self.base_url.removesuffix("/v1") + "/health"

    @property
    def pid(self) -> Optional[int]:
        """Optional[int]: the server's pid (also its process-group id) once started."""
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        """bool: True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: Optional[float] = None) -> ServerProcess:
        """Start the process (if not started) and wait until it is ready.

        Args:
            timeout (Optional[float]): seconds allowed for start-up (default: ``startup_timeout``).

        Returns:
            ServerProcess: self.

        Raises:
            ServerError: if the port is taken, the process exits, or it is not ready in time
                (it is stopped then).
        """
        if self.process is not None:
            return self
        host, port = _host_port(self.base_url)
        if port_in_use(host, port):
            raise ServerError(
                f"{host}:{port} is already in use (a server left running by an earlier run?); "
                "stop it or choose another --port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
                preexec_fn=_term_when_parent_dies(),
            )
        try:
            self.wait_ready(self.startup_timeout if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def healthy(self) -> bool:
        """bool: True if ``/health`` answers 200 now."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=2.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def served_models(self) -> Optional[list[str]]:
        """The model ids ``/v1/models`` lists, or None if it does not answer with a list.

        Returns:
            Optional[list[str]]: the ids.
        """
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=5.0) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            return None
        return [str(m.get("id")) for m in data if isinstance(m, dict)]

    def serves_model(self) -> bool:
        """Whether the server answers for :attr:`model_name`.

        Returns:
            bool: True if ``/v1/models`` lists it or (when models are not listed) a one-token
            request for it is answered.
        """
        if self.model_listed:
            return self.model_name in (self.served_models() or [])
        body = json.dumps(
            {"model": self.model_name, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        ).encode()
        request = urllib.request.Request(
            self.base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60.0) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout: float) -> None:
        """Poll until the server is healthy and serves :attr:`model_name`.

        Args:
            timeout (float): seconds.

        Raises:
            ServerError: if the process exits first or the time runs out.
        """
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        healthy = False
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(
                    f"server exited with status {code} before it was ready "
                    f"({shlex.join(redact_argv(self.command))}){self.log_tail()}"
                )
            healthy = healthy or self.healthy()
            if healthy and self.serves_model():
                return
            if time.monotonic() > deadline:
                what = (
                    f"healthy but does not serve {self.model_name!r} (it lists {self.served_models()})"
                    if healthy
                    else f"not healthy at {self.health_url}"
                )
                raise ServerError(f"server {what} after {timeout:g} s{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 25) -> str:
        """The last lines of the server log, formatted for an error message.

        Args:
            lines (int): how many.

        Returns:
            str: ``"\\n--- last lines of LOG ---\\n..."`` or ``""``; the command's secrets
            (``--api-key`` values, credentials in URLs) masked, since servers echo their arguments.
        """
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        shown = redact_text("\n".join(text), argv_secrets(self.command))
        return f"\n--- last lines of {self.log_path} ---\n" + shown if text else ""

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM the process group, then SIGKILL after ``timeout`` seconds; no worker outlives it.

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
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


def _term_when_parent_dies() -> Optional[Callable[[], None]]:
    """On Linux, a ``preexec_fn`` that makes the kernel SIGTERM the child when this process dies.

    Prepared in the parent (no import or allocation after the fork). None elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: nobody will stop us
            os._exit(1)

    return preexec


def _host_port(base_url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


#: The terminating signals a program can catch, besides SIGINT (Ctrl-C): kill, a closed
#: terminal, Ctrl-\.
TERMINATING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)


class _Terminated(KeyboardInterrupt):
    """Raised in the main thread when a terminating signal arrives (handled like Ctrl-C)."""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGQUIT into ``KeyboardInterrupt`` while the block runs.

    A ``with server:`` inside the block then stops the server's process group on
    ``kill``, a closed terminal, Ctrl-\\ or Ctrl-C alike. The previous handlers are restored after.

    Yields:
        None
    """

    def handler(signum: int, frame: Optional[FrameType]) -> Any:
        raise _Terminated(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
