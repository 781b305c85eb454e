"""A user's JSON Schema as an extraction task: loading, checking, validating answers, walking it.

The schema file is a JSON Schema (draft 2020-12) whose root is an object. Objects, arrays
(of objects or of values), ``enum``, numbers, integers, booleans, strings, ``format: date``,
nullable fields (``"type": ["string", "null"]`` or ``anyOf`` with ``{"type": "null"}``) and local
``$ref`` into ``$defs`` are understood by the metrics and the prompt; any other keyword is still
enforced by validation. Text is read and written as UTF-8 and never escaped, so non-ASCII and
right-to-left values round-trip unchanged.

One extension keyword, ``x-compare``, picks how a leaf is compared in the normalised scores
(see ``eval/tasks/extract/README.md``): ``text``, ``number``, ``digits``, ``date``, ``exact`` or
``chars`` (long free text: also scored by character similarity). Keywords starting with ``x-``
are removed from the schema sent to a server (:meth:`ExtractSchema.response_schema`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "COMPARE_KEY",
    "COMPARE_KINDS",
    "ExtractSchema",
    "SchemaFileError",
    "declared_types",
    "format_path",
    "json_type",
    "load_schema",
    "schema_from_dict",
]

#: The extension keyword that picks a leaf's comparison.
COMPARE_KEY = "x-compare"
#: Values ``x-compare`` takes.
COMPARE_KINDS: tuple[str, ...] = ("text", "number", "digits", "date", "exact", "chars")

#: Keywords whose value maps names to schemas (their keys are names, not keywords).
_NAME_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
#: Keywords whose value is a list of schemas.
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
#: Keywords whose value is one schema.
_SCHEMA_ONES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
#: What a name sent as ``response_format.json_schema.name`` may hold (the OpenAI rule).
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class SchemaFileError(ValueError):
    """The schema file cannot be used; the message names the file (and the place in it)."""


def json_type(value: Any) -> str:
    """The JSON Schema type name of a decoded JSON value.

    Args:
        value (Any): a decoded JSON value.

    Returns:
        str: ``null``, ``boolean``, ``integer``, ``number``, ``string``, ``array`` or ``object``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def declared_types(node: Mapping[str, Any]) -> set[str]:
    """Types a schema node declares: its ``type``, else those its keywords imply.

    Args:
        node (Mapping[str, Any]): a schema node (``$ref`` not followed).

    Returns:
        set[str]: JSON Schema type names (empty when nothing is said).
    """
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    implied = set()
    if "properties" in node or "additionalProperties" in node:
        implied.add("object")
    if "items" in node:
        implied.add("array")
    for value in node.get("enum", []) if isinstance(node.get("enum"), list) else []:
        implied.add(json_type(value))
    if "const" in node:
        implied.add(json_type(node["const"]))
    return implied


def _accepts(types: set[str], value_type: str) -> bool:
    return value_type in types or (value_type == "integer" and "number" in types)


@dataclass(frozen=True)
class ExtractSchema:
    """A checked extraction schema.

    Attributes:
        schema (dict[str, Any]): the schema as written (``x-compare`` annotations included).
        source (str): the file it was read from (for messages).
        title (str): its ``title``, or the file's stem.
        sha256 (str): hash of its canonical JSON (what ``--resume`` compares).
    """

    schema: dict[str, Any]
    source: str
    title: str
    sha256: str
    _validator: Any = field(default=None, repr=False, compare=False)

    # ----- what is sent and how answers are checked -------------------------------------------

    def response_schema(self) -> dict[str, Any]:
        """The schema sent as ``response_format``: the file's, without ``x-`` keywords.

        Returns:
            dict[str, Any]: a copy; the file's schema is not changed.
        """
        out = copy.deepcopy(self.schema)
        _strip_extensions(out)
        return out

    def response_name(self) -> str:
        """The ``json_schema.name`` of ``response_format``: the title, letters, digits, ``_`` and ``-`` only.

        Returns:
            str: e.g. ``Invoice_page``.
        """
        return _NAME_UNSAFE.sub("_", self.title).strip("_")[:64] or "extraction"

    def errors(self, instance: Any, limit: int = 3) -> list[str]:
        """Validation errors of an answer, each ``path: message``, in document order.

        ``format: date`` is checked (and ``date-time`` when ``rfc3339-validator`` is
        installed), unlike in plain JSON Schema validation.

        Args:
            instance (Any): a decoded answer.
            limit (int): most errors returned (the first ones by path).

        Returns:
            list[str]: empty when the answer is valid.
        """
        errors = sorted(
            self._validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
        )
        out = []
        for err in errors[:limit]:
            message = err.message if len(err.message) <= 160 else err.message[:157] + "..."
            out.append(f"{format_path(err.absolute_path)}: {message}")
        return out

    def is_valid(self, instance: Any) -> bool:
        """Whether an answer validates (see :meth:`errors`).

        Args:
            instance (Any): a decoded answer.

        Returns:
            bool: True when valid.
        """
        return self._validator.is_valid(instance)

    # ----- walking the schema beside a value -------------------------------------------------

    def resolve(self, node: Any) -> dict[str, Any]:
        """Follow local ``$ref`` (``#/$defs/Name``) to the schema node it names.

        Args:
            node (Any): a schema node (``True``/missing count as the empty schema).

        Returns:
            dict[str, Any]: the node.
        """
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
            node = _pointer(self.schema, node["$ref"])
            seen += 1
        return node if isinstance(node, dict) else {}

    def branch(self, node: Any, value: Any) -> dict[str, Any]:
        """The branch of an ``anyOf``/``oneOf`` node that a value's type selects (else the node).

        ``null`` and values no branch accepts select the first branch that is not ``null``.

        Args:
            node (Any): a schema node.
            value (Any): the gold value at that node.

        Returns:
            dict[str, Any]: the node describing ``value``.
        """
        node = self.resolve(node)
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if not isinstance(options, list):
                continue
            resolved = [self.resolve(o) for o in options]
            vtype = json_type(value)
            if vtype != "null":  # a null selects the non-null branch: it says how the field compares
                for option in resolved:
                    if _accepts(declared_types(option), vtype):
                        return option
            non_null = [o for o in resolved if declared_types(o) != {"null"}]
            if non_null:
                return non_null[0]
        return node

    def property(self, node: Any, key: str, value: Any = None) -> dict[str, Any]:
        """The schema of property ``key`` of an object node.

        Args:
            node (Any): an object schema node (already :meth:`branch`-selected).
            key (str): the property name.
            value (Any): the gold value of the property (selects an ``anyOf`` branch).

        Returns:
            dict[str, Any]: its node (empty when the schema does not describe it).
        """
        node = self.resolve(node)
        props = node.get("properties")
        if isinstance(props, dict) and key in props:
            return self.branch(props[key], value)
        extra = node.get("additionalProperties")
        return self.branch(extra, value) if isinstance(extra, dict) else {}

    def items(self, node: Any, value: Any = None) -> dict[str, Any]:
        """The schema of the items of an array node.

        Args:
            node (Any): an array schema node.
            value (Any): a gold item (selects an ``anyOf`` branch).

        Returns:
            dict[str, Any]: the item node (empty when not described).
        """
        node = self.resolve(node)
        return self.branch(node.get("items"), value) if isinstance(node.get("items"), dict) else {}

    def leaf_kind(self, node: Any) -> str:
        """How a leaf is compared in the normalised scores (one of :data:`COMPARE_KINDS`).

        ``x-compare`` wins; else numbers and integers are ``number``, strings with
        ``format: date`` or ``date-time`` are ``date``, and everything else (strings, enums,
        booleans) is ``text``.

        Args:
            node (Any): the leaf's schema node.

        Returns:
            str: the comparison kind.
        """
        node = self.resolve(node)
        if node.get(COMPARE_KEY) in COMPARE_KINDS:
            return node[COMPARE_KEY]
        types = set(declared_types(node))
        for key in ("anyOf", "oneOf"):
            for option in node.get(key, []) if isinstance(node.get(key), list) else []:
                option = self.resolve(option)
                if option.get(COMPARE_KEY) in COMPARE_KINDS:
                    return option[COMPARE_KEY]
                types |= declared_types(option)
                if option.get("format") in ("date", "date-time"):
                    return "date"
        if types & {"number", "integer"}:
            return "number"
        if node.get("format") in ("date", "date-time"):
            return "date"
        return "text"

    def canonical(self, value: Any, node: Any = None) -> Any:
        """A value with every object's keys in schema order (extra keys after, as they were).

        Values are not changed, so the answer text round-trips the data exactly.

        Args:
            value (Any): a decoded JSON value.
            node (Any): its schema node (default: the root).

        Returns:
            Any: the reordered value.
        """
        node = self.branch(self.schema if node is None else node, value)
        if isinstance(value, dict):
            props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
            keys = [k for k in props if k in value] + [k for k in value if k not in props]
            return {k: self.canonical(value[k], self.property(node, k, value[k])) for k in keys}
        if isinstance(value, list):
            return [self.canonical(v, self.items(node, v)) for v in value]
        return value


def format_path(parts: Any) -> str:
    """A concrete location as text: ``items[2].total``, ``sender.name``, ``<root>``.

    Args:
        parts (Any): path parts (strings for keys, integers for array positions).

    Returns:
        str: the path.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _pointer(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for raw in [p for p in ref[1:].split("/") if p]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return {}
    return node


def _strip_extensions(node: Any) -> None:
    if not isinstance(node, dict):
        return
    for key in [k for k in node if isinstance(k, str) and k.startswith("x-")]:
        del node[key]
    for key in _NAME_MAPS:
        if isinstance(node.get(key), dict):
            for child in node[key].values():
                _strip_extensions(child)
    for key in _SCHEMA_LISTS + _SCHEMA_ONES:
        value = node.get(key)
        for child in value if isinstance(value, list) else [value]:
            _strip_extensions(child)


def _walk(node: Any, where: list[Any]) -> Any:
    """Yield ``(location, node)`` for every schema node (name maps walked by name)."""
    if not isinstance(node, dict):
        return
    yield where, node
    for key in _NAME_MAPS:
        if isinstance(node.get(key), dict):
            for name, child in node[key].items():
                yield from _walk(child, [*where, key, name])
    for key in _SCHEMA_LISTS + _SCHEMA_ONES:
        value = node.get(key)
        if isinstance(value, list):
            for i, child in enumerate(value):
                yield from _walk(child, [*where, key, i])
        else:
            yield from _walk(value, [*where, key])


def _date_checker(checker_cls: Any) -> Any:
    """A format checker for ``date`` (and ``date-time`` where jsonschema can check it)."""
    return checker_cls(formats=[f for f in ("date", "date-time") if f in checker_cls.checkers])


def schema_from_dict(schema: Mapping[str, Any], source: str = "<schema>") -> ExtractSchema:
    """Check a decoded schema and build an :class:`ExtractSchema`.

    Args:
        schema (Mapping[str, Any]): the JSON Schema.
        source (str): where it came from (for messages).

    Returns:
        ExtractSchema: the checked schema.

    Raises:
        SchemaFileError: if it is not a valid JSON Schema, its root is not an object, a
            ``$ref`` is not local or does not resolve, or an ``x-compare`` value is unknown.
    """
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, Mapping):
        raise SchemaFileError(f"{source}: a schema must be a JSON object, got {json_type(schema)}")
    schema = dict(schema)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise SchemaFileError(f"{source}: not a valid JSON Schema at {where}: {exc.message}") from exc
    for where, node in _walk(schema, []):
        at = "/".join(str(p) for p in where) or "<root>"
        ref = node.get("$ref")
        if isinstance(ref, str) and (not ref.startswith("#") or _pointer(schema, ref) == {}):
            raise SchemaFileError(f"{source}: {at}: $ref {ref!r} must point inside this file (#/$defs/...)")
        kind = node.get(COMPARE_KEY)
        if kind is not None and kind not in COMPARE_KINDS:
            raise SchemaFileError(
                f"{source}: {at}: {COMPARE_KEY} {kind!r} is not one of {', '.join(COMPARE_KINDS)}"
            )
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    title = schema.get("title") if isinstance(schema.get("title"), str) else Path(source).stem
    result = ExtractSchema(
        schema=schema,
        source=source,
        title=title or "extraction",
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        _validator=Draft202012Validator(schema, format_checker=_date_checker(FormatChecker)),
    )
    root = result.resolve(schema)
    if declared_types(root) != {"object"}:
        raise SchemaFileError(
            f'{source}: the root of an extraction schema must be an object ("type": "object")'
        )
    return result


def load_schema(path: str | Path) -> ExtractSchema:
    """Read and check a schema file (UTF-8 JSON).

    Args:
        path (str | Path): the file.

    Returns:
        ExtractSchema: the checked schema.

    Raises:
        SchemaFileError: if the file is not JSON or not a usable schema (names the file).
        FileNotFoundError: if it does not exist.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"schema file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SchemaFileError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise SchemaFileError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
    return schema_from_dict(data, str(path))
