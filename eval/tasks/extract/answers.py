"""The extraction prompt and the answer the model learns, both made from the schema.

* **Prompt**: :func:`default_prompt` lists the schema's fields (nested objects and lists
  indented under their parent, with types, allowed values and descriptions). A prompt file
  (:func:`read_prompt_file`) replaces it; in it, ``{fields}`` stands for that field list and
  ``{schema}`` for the JSON schema sent to servers (both optional; no other braces are
  special).
* **Answer**: :func:`target_json`, the gold object with keys in schema order, as
  ``json.dumps(..., ensure_ascii=False)``: values unchanged, non-ASCII and right-to-left text
  kept as they are (no ``\\u`` escapes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from eval.tasks.extract.schema import ExtractSchema, SchemaFileError, declared_types

__all__ = [
    "INTRO",
    "NULLS",
    "ONLY",
    "default_prompt",
    "describe_fields",
    "read_prompt_file",
    "render_prompt",
    "target_json",
]

#: First line of the generated prompt (``{title}``: the schema's title).
INTRO = "Extract the fields of this {title} as one JSON object:"
#: Said when a field may be null.
NULLS = "Use null for a value the page does not show."
#: Last sentence of the generated prompt.
ONLY = "Answer with the JSON object only."


def _type_text(schema: ExtractSchema, node: Mapping[str, Any]) -> tuple[str, bool, Optional[dict[str, Any]]]:
    """(words for the type, nullable, the node whose fields are listed below it, if any)."""
    node = schema.resolve(node)
    options = [schema.resolve(o) for o in node.get("anyOf", node.get("oneOf", [])) or []]
    nullable = "null" in declared_types(node) or any(declared_types(o) == {"null"} for o in options)
    main = next((o for o in options if declared_types(o) != {"null"}), node) if options else node
    types = declared_types(main) - {"null"}
    if "enum" in main:
        values = [v for v in main["enum"] if v is not None]
        return "one of: " + ", ".join(json.dumps(v, ensure_ascii=False) for v in values), nullable, None
    if "object" in types:
        return "object", nullable, main
    if "array" in types:
        item = schema.resolve(main.get("items"))
        item_text, _, item_fields = _type_text(schema, item) if item else ("value", False, None)
        if item_fields is not None:
            return "list of objects", nullable, item_fields
        return f"list of {item_text} values", nullable, None
    if main.get("format") in ("date", "date-time"):
        return "date, YYYY-MM-DD", nullable, None
    for name, words in (("integer", "integer"), ("number", "number"), ("boolean", "true or false")):
        if name in types:
            return words, nullable, None
    return "text", nullable, None


def _lines(schema: ExtractSchema, node: Mapping[str, Any], depth: int, out: list[str]) -> bool:
    """Append one line per property of an object node; True if any field may be null."""
    any_null = False
    props = schema.resolve(node).get("properties") or {}
    for name, child in props.items():
        text, nullable, nested = _type_text(schema, child)
        any_null |= nullable
        desc = schema.resolve(child).get("description")
        line = f"{'  ' * depth}- {name} ({text}{', or null' if nullable else ''})"
        if isinstance(desc, str) and desc.strip():
            line += f": {' '.join(desc.split())}"
        out.append(line)
        if nested is not None:
            any_null |= _lines(schema, nested, depth + 1, out)
    return any_null


def describe_fields(schema: ExtractSchema) -> str:
    """The field list of a schema, one line per field, nested fields indented.

    Args:
        schema (ExtractSchema): the schema.

    Returns:
        str: e.g. ``- total (number)`` / ``- items (list of objects)`` / ``  - quantity (number)``.
    """
    out: list[str] = []
    _lines(schema, schema.schema, 0, out)
    return "\n".join(out)


def default_prompt(schema: ExtractSchema) -> str:
    """The prompt generated from a schema: what to extract, the fields, how to answer.

    Args:
        schema (ExtractSchema): the schema.

    Returns:
        str: the prompt.
    """
    out: list[str] = []
    nullable = _lines(schema, schema.schema, 0, out)
    title = " ".join(schema.title.replace("_", " ").split()) or "data"
    tail = f"{NULLS} {ONLY}" if nullable else ONLY
    return "\n".join([INTRO.format(title=title), *out, tail])


def render_prompt(template: str, schema: ExtractSchema) -> str:
    """Fill a prompt file's ``{fields}`` and ``{schema}`` placeholders.

    Args:
        template (str): the prompt file's text.
        schema (ExtractSchema): the schema.

    Returns:
        str: the prompt.
    """
    text = template.replace("{fields}", describe_fields(schema))
    if "{schema}" in text:
        text = text.replace("{schema}", json.dumps(schema.response_schema(), ensure_ascii=False))
    return text


def read_prompt_file(path: str | Path, schema: ExtractSchema) -> str:
    """Read a prompt file (UTF-8) and fill its placeholders.

    Args:
        path (str | Path): the file.
        schema (ExtractSchema): the schema.

    Returns:
        str: the prompt, stripped.

    Raises:
        SchemaFileError: if the file is empty or not UTF-8 (names the file).
        FileNotFoundError: if it does not exist.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SchemaFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    if not text:
        raise SchemaFileError(f"{path}: the prompt file is empty")
    return render_prompt(text, schema)


def target_json(schema: ExtractSchema, target: Mapping[str, Any]) -> str:
    """The answer the model learns for a gold object: keys in schema order, values unchanged.

    Args:
        schema (ExtractSchema): the schema (key order).
        target (Mapping[str, Any]): the gold object.

    Returns:
        str: ``json.dumps`` of it, non-ASCII kept.
    """
    return json.dumps(schema.canonical(dict(target)), ensure_ascii=False)
