"""Normalising extracted values before they are compared (every task that scores fields).

Rules:

* **Empty**: ``None`` (JSON ``null``), and any string that normalises to ``""`` or ``"none"``
  (the reference dataset writes empty boxes as the string ``"None"``) are all the same empty value.
* **Text**: Unicode NFKC, then ``str.casefold``, then runs of whitespace collapsed to one space
  and stripped at both ends.
* **Numbers**: a JSON number (not a boolean), or a string that is a plain decimal number with an
  optional sign, optional leading ``$`` and optional ``,`` thousands separators (``"$1,234.5"``),
  becomes a :class:`decimal.Decimal` rounded half-up to cents (``0.01``). Anything else in a
  numeric field (``"n/a"``, ``"12 USD"``, ``NaN``) is compared as text; nothing is guessed.
* **Digits only** (identification numbers such as SSN or EIN): the ASCII digits of the value,
  when it has at least one; otherwise the value is compared as text.
* Other JSON values (booleans, lists, objects) are compared by their canonical JSON text,
  normalised as text.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

__all__ = [
    "EMPTY",
    "normalize_text",
    "to_cents",
    "normalize_value",
]

#: The one normalised form of an empty value.
EMPTY: tuple[str] = ("empty",)

_CENT = Decimal("0.01")
_NUMBER_RE = re.compile(r"^[+-]?\$?(?:\d[\d,]*(?:\.\d*)?|\.\d+)$")


def normalize_text(value: str) -> str:
    """NFKC, casefold and collapse whitespace.

    Args:
        value (str): any string.

    Returns:
        str: the normalised string.
    """
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def to_cents(value: Any) -> Optional[Decimal]:
    """Read a number as a Decimal rounded half-up to cents, or None if it is not one.

    Args:
        value (Any): a JSON value.

    Returns:
        Optional[Decimal]: the amount to the cent, or None for booleans, non-finite floats and
        strings that are not plain decimal numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value).quantize(_CENT, rounding=ROUND_HALF_UP)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # repr is the shortest decimal that round-trips, so 0.1 stays 0.1 (not 0.1000000000000000055).
        return Decimal(repr(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(" ", "")
        if not _NUMBER_RE.match(text):
            return None
        sign = "-" if text.startswith("-") else ""
        digits = text.lstrip("+-").lstrip("$").replace(",", "")
        try:
            return Decimal(sign + digits).quantize(_CENT, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            return None
    return None


def normalize_value(value: Any, kind: str = "text") -> tuple[Any, ...]:
    """Normalise one extracted value for comparison (rules in the module docstring).

    Args:
        value (Any): a JSON value.
        kind (str): ``"text"``, ``"number"`` or ``"digits"``.

    Returns:
        tuple[Any, ...]: a tagged, comparable form: ``EMPTY``, ``("number", Decimal)`` or
        ``("text", str)``.

    Raises:
        ValueError: if ``kind`` is unknown.
    """
    if kind not in ("text", "number", "digits"):
        raise ValueError(f"unknown value kind {kind!r}; expected text, number or digits")
    if value is None:
        return EMPTY
    if isinstance(value, str):
        text = normalize_text(value)
    elif isinstance(value, (bool, list, dict)):
        text = normalize_text(json.dumps(value, sort_keys=True, ensure_ascii=False))
    else:
        text = normalize_text(str(value))
    if text in ("", "none"):
        return EMPTY
    if kind == "number":
        cents = to_cents(value)
        if cents is not None:
            return ("number", cents)
    elif kind == "digits":
        digits = "".join(ch for ch in text if "0" <= ch <= "9")
        if digits:
            return ("digits", digits)
    return ("text", text)
