"""Build and send one chat-completions request to an OpenAI-compatible server.

One attempt per :meth:`ChatClient.send`; retrying is the runner's job, so the ``openai``
client's own retries are off (``max_retries=0``). Each failure is classified:

* :class:`TransientError` — connection refused or reset, timeout, HTTP 408/409/429/5xx, or a
  body that is not a chat completion (truncated or not JSON). Worth retrying.
* :class:`HTTPError` — any other HTTP error (e.g. 400 for a bad request); the server's own
  message is kept. Not retried.

The API key is read from an environment variable (:func:`api_key_from_env`) and only ever
handed to the ``openai`` client; it is never logged or written. Credentials in the base URL
are masked in every error message (:mod:`eval.core.redact`).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from eval.core.redact import redact_text, url_secrets

__all__ = [
    "ChatClient",
    "ChatResult",
    "TransientError",
    "HTTPError",
    "data_url",
    "response_format",
    "api_key_from_env",
    "PLACEHOLDER_API_KEY",
]

#: Sent when the key variable is unset: local servers (vLLM, transformers serve) need none.
PLACEHOLDER_API_KEY = "EMPTY"


class TransientError(Exception):
    """A failed attempt worth retrying.

    Args:
        message (str): what went wrong.
        status (Optional[int]): the HTTP status, if there was a response.
        retry_after (Optional[float]): seconds the server asked to wait (``Retry-After``).
    """

    def __init__(
        self, message: str, status: Optional[int] = None, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class HTTPError(Exception):
    """A definitive HTTP error (not retried); ``str(exc)`` is the server's message.

    Args:
        message (str): the server's error message.
        status (int): the HTTP status.
    """

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ChatResult:
    """The useful part of one chat completion.

    Attributes:
        content (Optional[str]): the first choice's message text.
        finish_reason (Optional[str]): e.g. ``"stop"`` or ``"length"``.
        usage (Optional[dict[str, Any]]): the ``usage`` object, if the server sent one.
        latency_s (float): seconds from sending the request to having parsed the body.
    """

    content: Optional[str]
    finish_reason: Optional[str]
    usage: Optional[dict[str, Any]]
    latency_s: float


def api_key_from_env(var: str) -> str:
    """Read the API key from the environment.

    Args:
        var (str): the variable's name (``--api-key-env``).

    Returns:
        str: its value, or :data:`PLACEHOLDER_API_KEY` when unset or empty.
    """
    return os.environ.get(var) or PLACEHOLDER_API_KEY


def data_url(data: bytes, mime: str) -> str:
    """Encode image bytes as a base64 ``data:`` URL, in memory.

    Args:
        data (bytes): the encoded image.
        mime (str): its MIME type, e.g. ``image/png``.

    Returns:
        str: ``data:<mime>;base64,<payload>``.
    """
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def response_format(name: str, schema: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
    """The OpenAI-standard structured-output request field.

    This form is what vLLM 0.9.2–0.10.0 enforce for Llama 3.2 Vision and what later vLLM and
    hosted APIs accept (``guided_json`` was removed in vLLM 0.12).

    Args:
        name (str): schema name, e.g. ``"W2Form"``.
        schema (Mapping[str, Any]): the JSON schema.
        strict (bool): ask the server to enforce the schema exactly.

    Returns:
        dict[str, Any]: ``{"type": "json_schema", "json_schema": {name, schema, strict}}``.
    """
    return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": strict}}


def _server_message(body: Any, fallback: str) -> str:
    """Pull the human message out of an error body ({"error": {"message"}} or {"detail"} or {"message"})."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            for key in ("message", "detail"):
                if isinstance(err.get(key), str) and err[key]:
                    return err[key]
            if "detail" in err:
                return json.dumps(err["detail"])
        elif isinstance(err, str) and err:
            return err
        if isinstance(body.get("detail"), (str, list)):
            return body["detail"] if isinstance(body["detail"], str) else json.dumps(body["detail"])
    return fallback


class ChatClient:
    """Sends chat-completions requests with fixed sampling settings.

    Args:
        base_url (str): the server's OpenAI base URL, ending in ``/v1``.
        model (str): the served model name.
        api_key (str): the key (see :func:`api_key_from_env`).
        timeout (float): seconds allowed per attempt (connect, read and write).
        temperature (float): sampling temperature.
        seed (Optional[int]): sampling seed; None sends none.
        max_tokens (int): completion token limit.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = PLACEHOLDER_API_KEY,
        timeout: float = 300.0,
        temperature: float = 0.0,
        seed: Optional[int] = 42,
        max_tokens: int = 8192,
    ) -> None:
        import openai  # deferred so that `--help` stays fast

        self._openai = openai
        self.base_url = base_url
        self.model = model
        self.temperature = temperature
        self.seed = seed
        self.max_tokens = max_tokens
        self.timeout = timeout
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._secrets = url_secrets(base_url)
        self._response_cls = _http_response_class()

    def build_request(
        self, content: Sequence[Mapping[str, Any]], fmt: Optional[Mapping[str, Any]] = None
    ) -> dict[str, Any]:
        """Assemble the request body: one user turn with ``content``.

        Args:
            content (Sequence[Mapping[str, Any]]): OpenAI content parts (image first, see
                :func:`eval.tasks.openai_user_content`).
            fmt (Optional[Mapping[str, Any]]): a ``response_format`` (see :func:`response_format`).

        Returns:
            dict[str, Any]: keyword arguments for ``chat.completions.create``.
        """
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": list(content)}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if fmt is not None:
            body["response_format"] = dict(fmt)
        return body

    def send(self, request: Mapping[str, Any]) -> ChatResult:
        """Send one request, once.

        Args:
            request (Mapping[str, Any]): from :meth:`build_request`.

        Returns:
            ChatResult: the answer.

        Raises:
            TransientError: on connection errors, timeouts, 408/409/429/5xx and malformed bodies.
            HTTPError: on other HTTP errors, with the server's message.
        """
        try:
            return self._send(request)
        except TransientError as exc:
            raise TransientError(redact_text(str(exc), self._secrets), exc.status, exc.retry_after) from None
        except HTTPError as exc:
            raise HTTPError(redact_text(str(exc), self._secrets), exc.status) from None

    def _send(self, request: Mapping[str, Any]) -> ChatResult:
        openai = self._openai
        start = time.perf_counter()
        try:
            # The SDK's documented raw route: same auth, timeout and error classes as
            # chat.completions.create, without its per-request walk over the typed params (about
            # 1.5 ms for a W-2 request) and without parsing into pydantic models.
            raw = self._client.post("/chat/completions", cast_to=self._response_cls, body=dict(request))
            text = raw.text
        except openai.APITimeoutError as exc:
            raise TransientError(f"timed out after {self.timeout:g} s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            raise TransientError(f"connection error: {detail}") from exc
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = _server_message(exc.body, exc.response.text[:500] or str(exc))
            if status in (408, 409, 429) or status >= 500:
                retry_after = _retry_after(exc.response.headers)
                raise TransientError(f"HTTP {status}: {message}", status, retry_after) from exc
            raise HTTPError(message, status) from exc
        latency = time.perf_counter() - start
        return _parse_completion(text, latency)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


def _http_response_class() -> type:
    """The HTTP response class of the ``openai`` SDK's HTTP library (httpx, or httpx2 in openai 3.x)."""
    try:
        import httpx2 as httpx
    except ImportError:
        import httpx
    return httpx.Response


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds form only)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _parse_completion(text: str, latency: float) -> ChatResult:
    """Read a chat-completion body, raising :class:`TransientError` if it is not one."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        snippet = " ".join(text[:120].split())
        raise TransientError(f"response body is not JSON ({len(text)} bytes): {snippet!r}") from exc
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise TransientError("response body is not a chat completion (no choices)")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        content = json.dumps(content)
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else None
    finish = choice.get("finish_reason")
    return ChatResult(
        content=content,
        finish_reason=finish if isinstance(finish, str) else None,
        usage=usage,
        latency_s=latency,
    )
