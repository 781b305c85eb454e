"""Request building and the classification of every server failure (one attempt each)."""

import json

import pytest

from eval.core.client import (
    PLACEHOLDER_API_KEY,
    ChatClient,
    HTTPError,
    TransientError,
    api_key_from_env,
    data_url,
    response_format,
)
from eval.core.runner import RetryPolicy, send_with_retries
from eval.tasks import openai_user_content
from eval.tasks.w2 import W2Form

IMAGE = b"\x89PNG fake bytes"


def _request(client: ChatClient, fmt=None) -> dict:
    return client.build_request(openai_user_content(data_url(IMAGE, "image/png"), "prompt"), fmt)


def test_build_request_shape() -> None:
    client = ChatClient("http://127.0.0.1:9/v1", "m", temperature=0.0, seed=42, max_tokens=16)
    fmt = response_format("W2Form", W2Form.model_json_schema())
    body = _request(client, fmt)
    assert (
        body["model"] == "m"
        and body["temperature"] == 0.0
        and body["seed"] == 42
        and body["max_tokens"] == 16
    )
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    assert msg["content"][0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORyBmYWtlIGJ5dGVz"},
    }
    assert msg["content"][1] == {"type": "text", "text": "prompt"}
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "W2Form", "schema": W2Form.model_json_schema(), "strict": True},
    }
    assert "guided_json" not in json.dumps(body)
    no_seed = ChatClient("http://127.0.0.1:9/v1", "m", seed=None)
    assert "seed" not in _request(no_seed) and "response_format" not in _request(no_seed)
    client.close()


def test_api_key_from_env(monkeypatch) -> None:
    monkeypatch.setenv("EVAL_TEST_KEY", "sk-123")
    assert api_key_from_env("EVAL_TEST_KEY") == "sk-123"
    monkeypatch.delenv("EVAL_TEST_KEY")
    assert api_key_from_env("EVAL_TEST_KEY") == PLACEHOLDER_API_KEY


@pytest.fixture
def one_row_server(fault_server, kit):
    def make(*actions):
        return fault_server({kit.b64(IMAGE): 0}, {0: list(actions)})

    return make


def test_answer_is_read(one_row_server, kit) -> None:
    srv = one_row_server(kit.ok('{"a": 1}', finish_reason="length", tokens=7))
    client = ChatClient(srv.url, "m")
    result = client.send(_request(client))
    assert result.content == '{"a": 1}' and result.finish_reason == "length"
    assert result.usage["completion_tokens"] == 7 and result.latency_s > 0


@pytest.mark.parametrize(
    ("action", "kind", "fragment", "status"),
    [
        (("status", 500), TransientError, "HTTP 500: boom", 500),
        (("status", 503), TransientError, "HTTP 503", 503),
        (("status", 429), TransientError, "HTTP 429", 429),
        (("status", 408), TransientError, "HTTP 408", 408),
        (("status", 400), HTTPError, "boom", 400),
        (("status", 404), HTTPError, "boom", 404),
        (
            ("raw", 422, b'{"detail": "Unexpected fields in the request: {\'foo\'}"}'),
            HTTPError,
            "Unexpected fields in the request: {'foo'}",
            422,
        ),
        (("raw", 400, b"plain text failure", "text/plain"), HTTPError, "plain text failure", 400),
        (  # vLLM's error body (flat, not under "error")
            (
                "raw",
                400,
                b'{"object": "error", "message": "max_tokens is too large: 9000", "type": "BadRequestError",'
                b' "param": null, "code": 400}',
            ),
            HTTPError,
            "max_tokens is too large: 9000",
            400,
        ),
        (("truncated",), TransientError, "connection error", None),
        (("nonjson",), TransientError, "response body is not JSON", None),
        (("raw", 200, b'{"object": "error"}'), TransientError, "not a chat completion", None),
        (("drop",), TransientError, "connection error", None),
    ],
)
def test_failures_are_classified(one_row_server, kit, action, kind, fragment, status) -> None:
    name, *params = action
    script = {
        "status": lambda code: kit.status(code),
        "raw": lambda code, body, *ct: kit.raw(code, body, *ct),
        "truncated": lambda: kit.TRUNCATED,
        "nonjson": lambda: kit.NONJSON,
        "drop": lambda: kit.DROP,
    }[name](*params)
    srv = one_row_server(script)
    client = ChatClient(srv.url, "m", timeout=5)
    with pytest.raises(kind) as err:
        client.send(_request(client))
    assert fragment in str(err.value)
    if kind is HTTPError:  # the server's own message, nothing added
        assert str(err.value) == fragment
    assert err.value.status == status
    client.close()


def test_timeout_and_refused_are_transient(one_row_server, kit) -> None:
    srv = one_row_server(kit.hang(2.0))
    client = ChatClient(srv.url, "m", timeout=0.3)
    with pytest.raises(TransientError, match="timed out after 0.3 s"):
        client.send(_request(client))
    from eval.serve import free_port

    dead = ChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2)
    with pytest.raises(TransientError, match="connection error"):
        dead.send(_request(dead))


def test_retry_after_is_read(one_row_server, kit) -> None:
    srv = one_row_server(kit.status(429, "slow down", {"Retry-After": "7"}))
    client = ChatClient(srv.url, "m")
    with pytest.raises(TransientError) as err:
        client.send(_request(client))
    assert err.value.retry_after == 7.0


def test_send_with_retries_counts_attempts(one_row_server, kit) -> None:
    srv = one_row_server(kit.status(500), kit.DROP, kit.NONJSON, kit.ok('{"x": 1}'))
    client = ChatClient(srv.url, "m")
    resp = send_with_retries(client, _request(client), RetryPolicy(retries=3, base_delay=0.001))
    assert resp.status == "ok" and resp.attempts == 4 and resp.content == '{"x": 1}'
    assert len(srv.requests_for(0)) == 4
    srv2 = one_row_server(kit.status(502))
    client2 = ChatClient(srv2.url, "m")
    resp2 = send_with_retries(client2, _request(client2), RetryPolicy(retries=2, base_delay=0.001))
    assert resp2.status == "request_failed" and resp2.attempts == 3 and resp2.http_status == 502
    assert resp2.error == "HTTP 502: boom (after 3 attempts)"
    srv3 = one_row_server(kit.status(400, "model 'x' not found"), kit.ok("{}"))
    client3 = ChatClient(srv3.url, "m")
    resp3 = send_with_retries(client3, _request(client3), RetryPolicy(retries=5, base_delay=0.001))
    assert resp3.status == "http_error" and resp3.attempts == 1
    assert resp3.error == "model 'x' not found" and resp3.http_status == 400
