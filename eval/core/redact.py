"""Credentials in server URLs never reach the terminal, a report or a results file.

A server URL may carry credentials (``http://user:secret@host/v1``, ``https://TOKEN@host/v1``)
or a key in its query (``?api_key=...``). Everything the evaluator and ``eval.serve`` print
or write goes through :func:`redact_text`: report and run arguments, error messages (ours,
the HTTP client's and the server's), warnings and the commands ``eval.serve`` shows.

Rules: in a URL, a password becomes ``***`` (``user:***@host``), a user part without a
password (a token) becomes ``***`` (``***@host``), and the value of a query parameter named
like a secret (``key``, ``api_key``, ``token``, ``secret``, ``password``, ``sig``, ...)
becomes ``***``. The secrets of a known URL (:func:`url_secrets`) are also replaced wherever
they appear on their own, e.g. percent-decoded in a library's error message. In a command
line (:func:`redact_argv`), the value of a flag named like a secret (``--api-key sk-...``,
``--token=...``) is masked too, and :func:`argv_secrets` gives those values for masking a
server's log, which may echo its arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["argv_secrets", "redact_argv", "redact_text", "redact_url", "strip_userinfo", "url_secrets"]

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&](?:[A-Za-z0-9_.-]*(?:key|token|secret|password|passwd|sig|signature|auth))=)"
    r"(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)


_SECRET_FLAG = re.compile(r"^--?[A-Za-z0-9_-]*(?:key|token|secret|password|passwd)$", re.IGNORECASE)


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user + ':' + MASK if sep else MASK}@"


def redact_url(url: str) -> str:
    """The URL with its credentials masked.

    Args:
        url (str): any URL.

    Returns:
        str: e.g. ``http://user:***@host/v1``.
    """
    return redact_text(url)


def url_secrets(url: str) -> list[str]:
    """The secret parts of a URL, raw and percent-decoded, for :func:`redact_text`.

    Args:
        url (str): a URL.

    Returns:
        list[str]: the password (or the token-like user part) and secret query values, longest first.
    """
    found: set[str] = set()
    match = _USERINFO.search(url)
    if match:
        user, sep, password = match.group("userinfo").partition(":")
        found.add(password if sep else user)
    found.update(m.group("value") for m in _SECRET_QUERY.finditer(url))
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask credentials in every URL of ``text``, and every occurrence of ``secrets``.

    Args:
        text (str): any message.
        secrets (Iterable[str]): literal secrets to mask too (see :func:`url_secrets`).

    Returns:
        str: the text with credentials replaced by ``***``.
    """
    for secret in secrets:
        text = text.replace(secret, MASK)
    text = _USERINFO.sub(_mask_userinfo, text)
    return _SECRET_QUERY.sub(lambda m: m.group("name") + MASK, text)


def strip_userinfo(url: str) -> tuple[str, str | None]:
    """Split the credentials off a URL, for clients that cannot take them in the URL.

    Args:
        url (str): a URL.

    Returns:
        tuple[str, str | None]: the URL without ``user:password@``, and ``user:password``
        percent-decoded (None when there was none).
    """
    match = _USERINFO.search(url)
    if match is None or match.start() != 0:
        return url, None
    user, _, password = match.group("userinfo").partition(":")
    return match.group("scheme") + url[match.end() :], f"{unquote(user)}:{unquote(password)}"


def argv_secrets(argv: Iterable[str]) -> list[str]:
    """The values of secret-looking flags and the URL secrets in a command line.

    Args:
        argv (Iterable[str]): the command.

    Returns:
        list[str]: the secrets, longest first (for :func:`redact_text`).
    """
    args = list(argv)
    found: set[str] = set()
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                found.add(value)
            elif i + 1 < len(args):
                found.add(args[i + 1])
        found.update(url_secrets(arg))
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact_argv(argv: Iterable[str]) -> list[str]:
    """A command line with its secrets masked (secret flags' values, credentials in URLs).

    Args:
        argv (Iterable[str]): the command.

    Returns:
        list[str]: the command to show.
    """
    args = list(argv)
    secrets = argv_secrets(args)
    return [redact_text(arg, secrets) for arg in args]
