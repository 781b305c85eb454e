"""Rules a label must also satisfy beyond the schema: a small JSON file, checked on every label.

The file maps a path (the metrics' notation: ``sender.name``, ``items[].total``; ``[]`` means
every item) to checks::

    {
      "invoice_number":  {"required": true, "regex": "^INV-[0-9]{6}$"},
      "items":           {"min_items": 1},
      "items[].quantity": {"min": 1, "max": 10000},
      "items[].total":   {"product_of": ["quantity", "unit_price"], "tolerance": 0.01},
      "total":           {"sum_of": "items[].total"}
    }

Checks (a value that is null or absent is only checked by ``required``):

* ``required: true``: present and not empty (not null, ``""`` or ``[]``);
* ``regex``: a string that matches the whole pattern (Python ``re``);
* ``min`` / ``max``: a number within the bounds (inclusive);
* ``min_items`` / ``max_items``: a list with that many items;
* ``sum_of: PATH``: a number equal to the sum of the numbers at ``PATH`` (from the root);
* ``product_of: [KEY, ...]``: a number equal to the product of these keys of the same object;
* ``tolerance``: allowed difference for ``sum_of`` and ``product_of`` (default 0.01).

Each failure is reported as ``path: what is wrong`` with the concrete position
(``items[2].total: 12.5 != quantity x unit_price = 12.0``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from eval.tasks.extract.schema import ExtractSchema

__all__ = ["CHECKS", "Rules", "RulesFileError", "load_rules", "rules_from_dict"]

#: The checks a rule may hold, with the JSON types their values take.
CHECKS: dict[str, tuple[type, ...]] = {
    "required": (bool,),
    "regex": (str,),
    "min": (int, float),
    "max": (int, float),
    "min_items": (int,),
    "max_items": (int,),
    "sum_of": (str,),
    "product_of": (list,),
    "tolerance": (int, float),
}

_MISSING = object()
_PART = re.compile(r"^([^.\[\]]+)(\[\])?$")


class RulesFileError(ValueError):
    """The rules file is unusable; the message names the file and the path or check."""


def _split(path: str) -> list[tuple[str, bool]]:
    """``items[].total`` -> ``[("items", True), ("total", False)]``; raises ValueError when malformed."""
    parts = []
    for raw in path.split("."):
        match = _PART.match(raw)
        if match is None:
            raise ValueError(f"bad path {path!r} (write it like items[].total)")
        parts.append((match.group(1), bool(match.group(2))))
    return parts


def _values(value: Any, parts: list[tuple[str, bool]], where: str) -> Iterator[tuple[str, Any, Any]]:
    """Yield ``(concrete path, value, parent object)`` for every place a pattern path names."""
    if not parts:
        return
    (key, each), rest = parts[0], parts[1:]
    if not isinstance(value, dict):
        return
    child = value.get(key, _MISSING)
    here = f"{where}.{key}" if where else key
    if each:
        if not isinstance(child, list):
            if not rest:
                yield here, child, value
            return
        for i, item in enumerate(child):
            if rest:
                yield from _values(item, rest, f"{here}[{i}]")
            else:
                yield f"{here}[{i}]", item, child
    elif rest:
        yield from _values(child, rest, here)
    else:
        yield here, child, value


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Rules:
    """Checked rules.

    Attributes:
        rules (dict[str, dict[str, Any]]): path -> checks, as in the file.
        source (str): where they came from.
        sha256 (str): hash of their canonical JSON (a teacher run checks it on resume).
    """

    rules: dict[str, dict[str, Any]]
    source: str
    sha256: str

    def errors(self, label: Any) -> list[str]:
        """Every rule a label breaks, ``path: reason``, in file order.

        Args:
            label (Any): a decoded label (an object).

        Returns:
            list[str]: empty when every rule holds.
        """
        out: list[str] = []
        for path, checks in self.rules.items():
            for where, value, parent in _values(label, _split(path), ""):
                out.extend(f"{where}: {reason}" for reason in _check(label, value, parent, checks))
        return out


def _check(label: Any, value: Any, parent: Any, checks: Mapping[str, Any]) -> Iterator[str]:
    empty = value is _MISSING or value is None or value == "" or value == []
    if checks.get("required") and empty:
        yield "required, but " + ("missing" if value is _MISSING else f"empty ({json.dumps(value)})")
    if value is _MISSING or value is None:
        return
    if "regex" in checks:
        if not isinstance(value, str):
            yield f"expected text to match {checks['regex']!r}, got {json.dumps(value, ensure_ascii=False)}"
        elif re.fullmatch(checks["regex"], value) is None:
            yield f"{json.dumps(value, ensure_ascii=False)} does not match {checks['regex']!r}"
    number = _number(value)
    for key, bad in (("min", lambda n, b: n < b), ("max", lambda n, b: n > b)):
        if key in checks:
            if number is None:
                yield f"expected a number for {key} {checks[key]}, got {json.dumps(value, ensure_ascii=False)}"
            elif bad(number, checks[key]):
                yield f"{value} is {'below the minimum' if key == 'min' else 'above the maximum'} {checks[key]}"
    for key, bad in (("min_items", lambda n, b: n < b), ("max_items", lambda n, b: n > b)):
        if key in checks:
            if not isinstance(value, list):
                yield f"expected a list for {key}, got {json.dumps(value, ensure_ascii=False)}"
            elif bad(len(value), checks[key]):
                yield f"{len(value)} items, {key} is {checks[key]}"
    tolerance = float(checks.get("tolerance", 0.01))
    if "sum_of" in checks:
        parts = [v for _, v, _ in _values(label, _split(checks["sum_of"]), "")]
        numbers = [_number(v) for v in parts if v is not _MISSING and v is not None]
        if number is None or any(n is None for n in numbers):
            yield f"sum_of {checks['sum_of']} needs numbers"
        elif abs(number - sum(n for n in numbers if n is not None)) > tolerance:
            yield f"{value} != sum of {checks['sum_of']} = {round(sum(n for n in numbers if n is not None), 6)}"
    if "product_of" in checks:
        keys = checks["product_of"]
        factors = [_number(parent.get(k)) if isinstance(parent, dict) else None for k in keys]
        if number is None or any(f is None for f in factors):
            yield f"product_of {' x '.join(keys)} needs numbers"
        else:
            product = math.prod(f for f in factors if f is not None)
            if abs(number - product) > tolerance:
                yield f"{value} != {' x '.join(keys)} = {round(product, 6)}"


def _schema_has(schema: ExtractSchema, parts: list[tuple[str, bool]]) -> bool:
    node: Any = schema.schema
    for key, each in parts:
        node = schema.branch(node, {})
        props = node.get("properties")
        if not isinstance(props, dict):
            return True  # the schema does not describe this object's keys
        if key not in props:
            return False
        node = props[key]
        if each:
            node = schema.items(node)
    return True


def rules_from_dict(data: Any, source: str = "<rules>", schema: Optional[ExtractSchema] = None) -> Rules:
    """Check decoded rules.

    Args:
        data (Any): the decoded file.
        source (str): where it came from (for messages).
        schema (Optional[ExtractSchema]): when given, every path must be one of its fields.

    Returns:
        Rules: the rules.

    Raises:
        RulesFileError: for a bad path, an unknown check, a value of the wrong type, a bad regex,
            or a path the schema does not have.
    """
    import hashlib

    if not isinstance(data, dict):
        raise RulesFileError(f"{source}: expected a JSON object of path -> checks")
    for path, checks in data.items():
        try:
            _split(path)
        except ValueError as exc:
            raise RulesFileError(f"{source}: {exc}") from exc
        if not isinstance(checks, dict) or not checks:
            raise RulesFileError(f"{source}: {path}: expected an object of checks")
        for name, value in checks.items():
            if name not in CHECKS:
                raise RulesFileError(f"{source}: {path}: unknown check {name!r}; checks: {', '.join(CHECKS)}")
            if not isinstance(value, CHECKS[name]) or (isinstance(value, bool) and bool not in CHECKS[name]):
                raise RulesFileError(f"{source}: {path}: {name} has a value of the wrong type ({value!r})")
        if "regex" in checks:
            try:
                re.compile(checks["regex"])
            except re.error as exc:
                raise RulesFileError(f"{source}: {path}: bad regex {checks['regex']!r} ({exc})") from exc
        if "product_of" in checks and not all(isinstance(k, str) for k in checks["product_of"]):
            raise RulesFileError(f"{source}: {path}: product_of lists key names")
        if "sum_of" in checks:
            try:
                _split(checks["sum_of"])
            except ValueError as exc:
                raise RulesFileError(f"{source}: {path}: sum_of: {exc}") from exc
        if schema is not None:
            for named in [path] + ([checks["sum_of"]] if "sum_of" in checks else []):
                if not _schema_has(schema, _split(named)):
                    raise RulesFileError(f"{source}: {named!r} is not a field of the schema {schema.source}")
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return Rules(dict(data), source, hashlib.sha256(text.encode("utf-8")).hexdigest())


def load_rules(path: str | Path, schema: Optional[ExtractSchema] = None) -> Rules:
    """Read a rules file (UTF-8 JSON).

    Args:
        path (str | Path): the file.
        schema (Optional[ExtractSchema]): when given, paths are checked against it.

    Returns:
        Rules: the rules.

    Raises:
        RulesFileError: if the file is not JSON or not valid rules (names the file).
        FileNotFoundError: if it does not exist.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"rules file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"{path}: not valid JSON ({exc})") from exc
    return rules_from_dict(data, str(path), schema)
