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
* **Dates**: a string holding an ISO 8601 calendar date, year first (``2024-03-05``, also with
  ``/`` or ``.`` as separator, one-digit month or day, or a date-time whose date part is one)
  becomes that :class:`datetime.date`. Day-first and month-first forms (``05/03/2024``) are
  ambiguous and are compared as text; nothing is guessed.
* Other JSON values (booleans, lists, objects) are compared by their canonical JSON text,
  normalised as text.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

__all__ = [
    "EMPTY",
    "KINDS",
    "normalize_text",
    "to_cents",
    "to_date",
    "normalize_value",
]

#: The normalisation kinds :func:`normalize_value` takes.
KINDS: tuple[str, ...] = ("text", "number", "digits", "date")

#: The one normalised form of an empty value.
EMPTY: tuple[str] = ("empty",)

_CENT = Decimal("0.01")
_NUMBER_RE = re.compile(r"^[+-]?\$?(?:\d[\d,]*(?:\.\d*)?|\.\d+)$")
_DATE_RE = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[T ].*)?$")


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


def to_date(value: Any) -> Optional[datetime.date]:
    """Read a year-first calendar date (``2024-03-05``, ``2024/3/5``, ``2024-03-05T10:00``).

    Args:
        value (Any): a JSON value.

    Returns:
        Optional[datetime.date]: the date, or None for anything else (including impossible
        dates such as ``2024-02-30`` and day- or month-first forms).
    """
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(unicodedata.normalize("NFKC", value).strip())
    if match is None:
        return None
    try:
        return datetime.date(int(match.group(1)), int(match.group(3)), int(match.group(4)))
    except ValueError:
        return None


def normalize_value(value: Any, kind: str = "text") -> tuple[Any, ...]:
    """Normalise one extracted value for comparison (rules in the module docstring).

    Args:
        value (Any): a JSON value.
        kind (str): one of :data:`KINDS`: ``"text"``, ``"number"``, ``"digits"`` or ``"date"``.

    Returns:
        tuple[Any, ...]: a tagged, comparable form: ``EMPTY``, ``("number", Decimal)``,
        ``("digits", str)``, ``("date", datetime.date)`` or ``("text", str)``.

    Raises:
        ValueError: if ``kind`` is unknown.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown value kind {kind!r}; expected one of {', '.join(KINDS)}")
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
    elif kind == "date":
        date = to_date(value)
        if date is not None:
            return ("date", date)
    return ("text", text)
