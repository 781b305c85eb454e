"""Tolerant reading of JSON from free-form model output (shared by the task parsers).

Models that are not constrained by a schema wrap their JSON in code fences or prose. These
helpers find the JSON but never invent values: if nothing decodes, they say so.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["strip_code_fences", "extract_json_value"]

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
#: Bound on decode attempts, so a long response full of brackets stays cheap.
_MAX_ATTEMPTS = 64


def strip_code_fences(text: str) -> str:
    """Return the body of the first fenced code block, or the stripped text if there is none.

    Args:
        text (str): model output.

    Returns:
        str: the fenced body (an unterminated fence runs to the end), stripped.
    """
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip()


def extract_json_value(text: str) -> Any:
    """Find the first JSON object or array in ``text`` (or the whole text if it is JSON).

    Tries, in order: the whole text (after removing code fences), then each ``{`` or ``[``
    from the left with :meth:`json.JSONDecoder.raw_decode` (trailing prose is ignored).

    Args:
        text (str): model output.

    Returns:
        Any: the decoded value, or None when nothing decodes (a JSON ``null`` also gives None).
    """
    body = strip_code_fences(text)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    attempts = 0
    for match in re.finditer(r"[\[{]", body):
        attempts += 1
        if attempts > _MAX_ATTEMPTS:
            break
        try:
            value, _ = decoder.raw_decode(body, match.start())
        except (json.JSONDecodeError, RecursionError):
            continue
        return value
    return None
