"""Find the JSON answer in a model's reply, without guessing.

A structured (schema-enforced) reply is the JSON itself. A free-form reply may wrap it in a
Markdown code fence or surround it with prose. These functions accept both, and nothing more:
they never repair quotes, commas or truncated text, because a repaired reply would score
fields the model never produced.

:func:`extract_json_object` (every task whose answer is an object), in order:

1. The whole reply (whitespace stripped) is valid JSON: it is the answer if it is an object,
   otherwise the reply is not an object (``"not_object"``).
2. Otherwise the reply is scanned for balanced ``{...}`` spans, left to right (braces inside
   JSON strings do not count); the first span that is a valid JSON object is the answer.
   Spans nested in a rejected span are not tried, so an invalid object never yields one of
   its inner objects, and an unclosed ``{`` ends the search (a reply cut off mid-object
   never yields the complete objects inside it). This covers code fences and prose around
   the object.
3. Otherwise the reply is invalid (``"invalid_json"``), or empty (``"empty"``).

:func:`extract_json_value` (tasks whose answer may also be a bare JSON list, e.g. detection)
tries two more cases first: the whole reply is JSON of any type; the body of the first
Markdown code fence is JSON of any type. A list surrounded by prose without a fence is not
found as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["ParsedReply", "extract_json_object", "extract_json_value", "strip_code_fences"]


@dataclass(frozen=True)
class ParsedReply:
    """Outcome of :func:`extract_json_object`.

    Attributes:
        value (Optional[dict[str, Any]]): the decoded object, or None.
        error (Optional[str]): None on success, else ``"empty"``, ``"not_object"`` or ``"invalid_json"``.
    """

    value: Optional[dict[str, Any]]
    error: Optional[str]

    @property
    def ok(self) -> bool:
        """bool: True when a JSON object was found."""
        return self.error is None


def extract_json_object(text: Optional[str]) -> ParsedReply:
    """Return the first complete JSON object in ``text`` (see the module docstring).

    Args:
        text (Optional[str]): the model's reply (None counts as empty).

    Returns:
        ParsedReply: the object, or the reason there is none.
    """
    if text is None or not text.strip():
        return ParsedReply(None, "empty")
    stripped = text.strip()
    try:
        whole = json.loads(stripped)
    except ValueError:
        pass
    else:
        if isinstance(whole, dict):
            return ParsedReply(whole, None)
        return ParsedReply(None, "not_object")
    start = stripped.find("{")
    while start != -1:
        end = _matching_brace(stripped, start)
        if end is None:  # unclosed: everything after is inside it (e.g. a truncated reply)
            break
        try:
            value = json.loads(stripped[start : end + 1])
        except ValueError:
            value = None
        if isinstance(value, dict):
            return ParsedReply(value, None)
        start = stripped.find("{", end + 1)
    return ParsedReply(None, "invalid_json")


def _matching_brace(text: str, start: int) -> Optional[int]:
    """Index of the ``}`` closing the ``{`` at ``start`` (JSON strings skipped), or None."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


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
    """Find the JSON answer in ``text``, of any type (rules in the module docstring).

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
