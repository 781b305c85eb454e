"""A stand-in OpenAI server process and a stand-in interpreter, to test the serving lifecycle.

``fake_python`` makes an executable that behaves like a server environment's ``python``:
``python -c CODE`` (the backend probe) succeeds, anything else runs :data:`FAKE_SERVER`
with the server's own arguments. The fake server reads ``--port`` and the model name the way
the backends pass them (``serve DIR`` for transformers, ``--served-model-name`` for vLLM),
spawns one child process (as uvicorn and vLLM's engine do; its pid goes to ``$FAKE_CHILD_PID``)
and stops it on SIGTERM as they do,
answers ``/health`` after ``$FAKE_DELAY`` seconds, lists its model on ``/v1/models`` (unless
``$FAKE_UNLISTED``), and answers a chat request for its own model only.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

FAKE_SERVER = r"""
import http.server, json, os, signal, subprocess, sys, time

args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
if "--served-model-name" in args:
    model = args[args.index("--served-model-name") + 1]
else:
    model = args[args.index("serve") + 1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def _shutdown(signum, frame):  # what vLLM and uvicorn do on SIGTERM: stop the workers, then exit
    child.terminate()
    child.wait(10)
    sys.exit(0)


signal.signal(signal.SIGTERM, _shutdown)
if os.environ.get("FAKE_CHILD_PID"):
    with open(os.environ["FAKE_CHILD_PID"], "w") as f:
        f.write(f"{child.pid}\n")
start = time.time()
delay = float(os.environ.get("FAKE_DELAY", "0"))
listed = [] if os.environ.get("FAKE_UNLISTED") else [{"id": model, "object": "model"}]


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if time.time() - start < delay:
            return self._send(503, {"status": "starting"})
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        if self.path == "/v1/models":
            return self._send(200, {"object": "list", "data": listed})
        self._send(404, {"detail": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if body.get("model") != model:
            return self._send(400, {"detail": f"Server is pinned to '{model}'; requested '{body.get('model')}'."})
        choice = {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "length"}
        self._send(200, {"object": "chat.completion", "choices": [choice]})

    def log_message(self, *args):
        pass


print(f"fake server for {model!r} listening on {port}", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """An interpreter stand-in whose ``-m <server module> ...`` runs the fake server."""
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-c" ]; then exit 0; fi\n'  # the backend probe: "installed"
        "shift 2\n"  # drop "-m <module>"
        f'exec {sys.executable} {script} "$@"\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A directory that passes as a Hugging Face model (it has a config.json)."""
    d = tmp_path / "11B-full"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d
