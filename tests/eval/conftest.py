"""Fixtures for the evaluator tests: tiny W-2 splits drawn with PIL, and a fault-injecting server.

The fault server speaks just enough of the OpenAI chat-completions API. It recognises which
dataset row a request is for by the base64 image payload (the evaluator sends the stored
image bytes unchanged), and answers each attempt for that row with the next scripted action.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

from eval.tasks.w2 import FIELDS, ID_NUMBER_FIELDS, INT_FIELDS, MONEY_FIELDS, W2Form


def w2_record(i: int) -> dict[str, Any]:
    """A complete, deterministic flat W-2 ground truth for document ``i``."""
    rec: dict[str, Any] = {}
    for k in FIELDS:
        if k in MONEY_FIELDS:
            rec[k] = float(1000 * (i + 1) + len(k)) + 0.25
        elif k in INT_FIELDS:
            rec[k] = 40000 + i
        elif k in ID_NUMBER_FIELDS:
            rec[k] = f"12-34567{i:02d}" if "employer" in k else f"123-45-67{i:02d}"
        elif W2Form.model_fields[k].annotation is not str:  # Optional[str]: checkbox-like boxes
            rec[k] = "None" if i % 2 else "x"
        else:
            rec[k] = f"{k.split('_')[-1].title()} {i}"
    return rec


def png_bytes(i: int, size: tuple[int, int] = (160, 112)) -> bytes:
    """A small PNG with the document number drawn on it (distinct bytes per ``i``)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle([4, 4, size[0] - 5, size[1] - 5], outline=(0, 0, 0))
    draw.text((10, 10), f"W-2 form #{i}", fill=(0, 0, 0))
    draw.text((10, 30), f"wages {1000 * (i + 1)}.25", fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def save_split(
    path: Path,
    ground_truths: Sequence[Any],
    images: Optional[Sequence[Optional[bytes]]] = None,
    prompt: Optional[str] = None,
) -> Path:
    """Save a split like the prepare step does: image, ground_truth (JSON string), input."""
    from datasets import Dataset, Image

    from eval.tasks.w2 import PROMPT

    n = len(ground_truths)
    images = list(images) if images is not None else [png_bytes(i) for i in range(n)]
    gts = [g if isinstance(g, str) else json.dumps(g) for g in ground_truths]
    ds = Dataset.from_dict(
        {
            "image": [{"bytes": b, "path": None} for b in images],
            "ground_truth": gts,
            "input": [prompt or PROMPT] * n,
        }
    ).cast_column("image", Image())
    ds.save_to_disk(str(path))
    return path


@pytest.fixture
def w2_split(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``w2_split(n)`` saves n documents and returns the split directory."""

    def make(n: int, name: str = "test", **kwargs: Any) -> Path:
        return save_split(tmp_path / "data" / name, [w2_record(i) for i in range(n)], **kwargs)

    return make


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def completion(
    content: Optional[str], finish_reason: str = "stop", completion_tokens: int = 10
) -> dict[str, Any]:
    """An OpenAI chat-completion body."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fault",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": completion_tokens,
            "total_tokens": 5 + completion_tokens,
        },
    }


# Scripted actions, one per attempt (the last one repeats).
def ok(
    content: Optional[str], finish_reason: str = "stop", tokens: int = 10, delay: float = 0.0
) -> dict[str, Any]:
    return {"kind": "ok", "body": completion(content, finish_reason, tokens), "delay": delay}


def status(code: int, message: str = "boom", headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
    return {"kind": "status", "code": code, "message": message, "headers": headers or {}}


def raw(code: int, body: bytes, ctype: str = "application/json") -> dict[str, Any]:
    return {"kind": "raw", "code": code, "body": body, "ctype": ctype}


def hang(seconds: float = 3.0) -> dict[str, Any]:
    return {"kind": "hang", "seconds": seconds}


HANG = hang()
TRUNCATED = {"kind": "truncated"}
NONJSON = {"kind": "nonjson"}
DROP = {"kind": "drop"}


@dataclass
class Seen:
    row: Optional[int]
    attempt: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FaultServer:
    """A chat-completions server that plays scripted actions per dataset row."""

    payload_ids: dict[str, int]
    actions: dict[int, list[dict[str, Any]]]
    default: dict[str, Any] = field(default_factory=lambda: ok("{}"))
    drop_after: Optional[int] = None  # after this many requests, every connection is dropped (a dead server)
    port: int = 0  # 0: any free port
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FaultServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms each
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                body = json.dumps({"object": "list", "data": [{"id": "fault", "object": "model"}]}).encode()
                self._send(200, body, "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                action = server._next_action(body, dict(self.headers))
                kind = action["kind"]
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if kind == "hang":
                    time.sleep(action["seconds"])
                    self._send(200, json.dumps(completion("{}")).encode(), "application/json")
                elif kind == "ok":
                    time.sleep(action.get("delay", 0.0))
                    self._send(200, json.dumps(action["body"]).encode(), "application/json")
                elif kind == "status":
                    payload = json.dumps(
                        {
                            "error": {
                                "message": action["message"],
                                "type": "BadRequestError",
                                "code": action["code"],
                            }
                        }
                    ).encode()
                    self._send(action["code"], payload, "application/json", action["headers"])
                elif kind == "truncated":
                    full = json.dumps(completion('{"a": 1}')).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(full)))
                    self.end_headers()
                    self.wfile.write(full[: len(full) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif kind == "raw":
                    self._send(action["code"], action["body"], action["ctype"])
                elif kind == "nonjson":
                    self._send(200, b"<html>502 Bad Gateway</html>", "text/html")

            def _send(
                self, code: int, body: bytes, ctype: str, headers: Optional[dict[str, str]] = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        class QuietServer(ThreadingHTTPServer):
            request_queue_size = 128  # the stdlib's 5 drops connections when many workers connect at once

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up on a hung or dropped request are expected here

        self._httpd = QuietServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_action(self, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        row: Optional[int] = None
        try:
            url = body["messages"][0]["content"][0]["image_url"]["url"]
            row = self.payload_ids.get(url.split("base64,", 1)[1])
        except (KeyError, IndexError, TypeError):
            pass
        with self._lock:
            attempt = sum(1 for s in self.seen if s.row == row) + 1
            n_before = len(self.seen)
            self.seen.append(Seen(row, attempt, body, {k.lower(): v for k, v in headers.items()}))
        if self.drop_after is not None and n_before >= self.drop_after:
            return DROP
        script = self.actions.get(row) if row is not None else None
        if not script:
            return self.default
        return script[min(attempt, len(script)) - 1]

    def requests_for(self, row: int) -> list[Seen]:
        return [s for s in self.seen if s.row == row]


@pytest.fixture
def fault_server() -> Callable[..., FaultServer]:
    """Factory: ``fault_server(payload_ids, actions, ...)`` starts a server, stopped after the test."""
    servers: list[FaultServer] = []

    def make(
        payload_ids: dict[str, int], actions: dict[int, list[dict[str, Any]]], **kwargs: Any
    ) -> FaultServer:
        srv = FaultServer(payload_ids, actions, **kwargs).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def kit() -> Any:
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        w2_record=w2_record,
        png_bytes=png_bytes,
        save_split=save_split,
        b64=b64,
        completion=completion,
        ok=ok,
        status=status,
        hang=hang,
        raw=raw,
        HANG=HANG,
        TRUNCATED=TRUNCATED,
        NONJSON=NONJSON,
        DROP=DROP,
    )


def pytest_configure(config: Any) -> None:
    import datasets

    datasets.disable_progress_bars()  # keep captured stderr to what the evaluator prints


@pytest.fixture(scope="session")
def tiny_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``transformers serve`` on 127.0.0.1 (free port) serving the tiny Llama 3.2 Vision checkpoint.

    Uses the project-wide ``tiny_checkpoint`` fixture when there is one, else builds the checkpoint.
    Start-up is bounded (180 s); the server's process group is stopped when the test run ends.
    """
    import os

    from eval.serve import start_server

    try:
        checkpoint = request.getfixturevalue("tiny_checkpoint")
    except pytest.FixtureLookupError:
        from torchtune_ext.models import make_tiny_checkpoint

        checkpoint = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint", seed=0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path_factory.mktemp("hf_hub_cache"))}
    log = tmp_path_factory.mktemp("tiny_server") / "server.log"
    with start_server(checkpoint, "transformers", startup_timeout=180, env=env, log_path=log) as server:
        yield server
