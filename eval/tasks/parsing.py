"""Reading JSON values (objects *and* lists) from free-form model output, for the task parsers.

Built on :func:`eval.parsing.extract_json_object` (the evaluators' one object finder, which
never repairs JSON): objects are found exactly as for W-2. Tasks whose answer may also be a
bare JSON list (detection) need two more cases, tried first:

1. the whole reply is JSON (any type);
2. the body of the first Markdown code fence is JSON (any type);
3. otherwise the first complete JSON object in the reply (:func:`extract_json_object`).

A list surrounded by prose without a fence is not found as JSON (a detection parser then
falls back to bare numbers).
"""

from __future__ import annotations

import json
import re
from typing import Any

from eval.parsing import extract_json_object

__all__ = ["strip_code_fences", "extract_json_value"]

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)


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
    """Find the JSON answer in ``text`` (rules in the module docstring).

    Args:
        text (str): model output.

    Returns:
        Any: the decoded value, or None when nothing decodes (a JSON ``null`` also gives None).
    """
    for candidate in (text.strip(), strip_code_fences(text)):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return extract_json_object(text).value
