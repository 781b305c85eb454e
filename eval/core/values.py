"""Normalising extracted values before they are compared (every task that scores fields).

Formatting is normalised, content never is: two values are equal only if they say the same
thing, written differently.

Rules:

* **Empty**: ``None`` (JSON ``null``), and any string that normalises to ``""`` or ``"none"``
  (the reference dataset writes empty boxes as the string ``"None"``) are all the same empty value.
* **Text**: Unicode NFKC, then ``str.casefold``, then runs of whitespace collapsed to one space
  and stripped at both ends.
* **Numbers** (money): a JSON number (not a boolean), or a string that is a decimal number with
  an optional sign and ``$`` and well-formed ``,`` thousands grouping (``"$1,234.5"``,
  ``"12,345"``, ``"1234.5"``), becomes a :class:`decimal.Decimal` rounded half-up to cents
  (``0.01``). A comma anywhere else (``"12,34"``, ``"1,2,3,4"``: a decimal comma or a typo, not
  1234), a space between digits, or anything else (``"n/a"``, ``"12 USD"``, ``NaN``) makes the
  value text, compared as text: nothing is guessed.
* **Integer identifiers** (a control number): the decimal digits as written. A JSON integer
  (or a number with no fraction) gives its digits; a string gives its digits only if it is
  digits alone (surrounding whitespace ignored), leading zeros kept, so ``"0012345"`` is not
  ``12345``. Anything else is text.
* **Identifiers with a layout** (SSN ``3-2-4``, EIN ``2-7`` digit groups): the digits, if the
  value is the digits alone or the digit groups of the layout joined by one kind of separator
  (``-`` or a space): ``"12-3456789"`` = ``"123456789"`` = ``"12 3456789"``, but
  ``"123-456-789"`` is text and matches no EIN. A JSON integer counts as its digits.
* **Digits only** (a schema's own choice, e.g. ``x-compare: digits`` in the extract task): the
  ASCII digits of the value, when it has at least one, whatever the layout; otherwise text.
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
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

__all__ = [
    "EMPTY",
    "KINDS",
    "identifier_digits",
    "integer_digits",
    "normalize_text",
    "normalize_value",
    "to_cents",
    "to_date",
]

#: The one normalised form of an empty value.
EMPTY: tuple[str] = ("empty",)

_CENT = Decimal("0.01")
#: Sign, optional $, then digits with well-formed "," grouping (or none), optional fraction.
_NUMBER_RE = re.compile(r"^(?P<sign>[+-]?)\s*\$?\s*(?P<digits>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)$")
_DIGITS_RE = re.compile(r"^\d+$")
_DATE_RE = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[T ].*)?$")
#: The normalisation kinds :func:`normalize_value` takes.
KINDS: tuple[str, ...] = ("text", "number", "integer", "identifier", "digits", "date")


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
        match = _NUMBER_RE.match(unicodedata.normalize("NFKC", value).strip())
        if not match:
            return None
        sign = "-" if match.group("sign") == "-" else ""
        try:
            return Decimal(sign + match.group("digits").replace(",", "")).quantize(
                _CENT, rounding=ROUND_HALF_UP
            )
        except InvalidOperation:
            return None
    return None


def integer_digits(value: Any) -> Optional[str]:
    """The decimal digits of an integer identifier, as written (leading zeros kept).

    Args:
        value (Any): a JSON value.

    Returns:
        Optional[str]: the digits of a JSON integer or fraction-free number, or of a string that
        is digits alone (whitespace around ignored); None otherwise.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()
        return text if _DIGITS_RE.match(text) else None
    return None


def identifier_digits(value: Any, layout: Sequence[int]) -> Optional[str]:
    """The digits of an identifier written in its layout, e.g. ``(2, 7)`` for an EIN.

    Args:
        value (Any): a JSON value.
        layout (Sequence[int]): the sizes of the digit groups.

    Returns:
        Optional[str]: the digits, if the value is the digits alone or the groups joined by
        one ``-`` or one space each (the same separator throughout); None otherwise.
    """
    digits = integer_digits(value)
    total = sum(layout)
    if digits is not None and len(digits) == total:
        return digits
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    for sep in ("-", " "):
        groups = text.split(sep)
        if len(groups) == len(layout) and all(
            _DIGITS_RE.match(g) and len(g) == n for g, n in zip(groups, layout, strict=True)
        ):
            return "".join(groups)
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


def normalize_value(
    value: Any, kind: str = "text", layout: Optional[Sequence[int]] = None
) -> tuple[Any, ...]:
    """Normalise one extracted value for comparison (rules in the module docstring).

    Args:
        value (Any): a JSON value.
        kind (str): one of :data:`KINDS`: ``"text"``, ``"number"`` (money), ``"integer"`` (an
            integer identifier), ``"identifier"`` (digit groups, given by ``layout``),
            ``"digits"`` (the digits, any layout) or ``"date"``.
        layout (Optional[Sequence[int]]): digit group sizes of an ``"identifier"``.

    Returns:
        tuple[Any, ...]: a tagged, comparable form: ``EMPTY``, ``("number", Decimal)``,
        ``("integer", digits)``, ``("identifier", digits)``, ``("digits", str)``,
        ``("date", datetime.date)`` or ``("text", str)``.

    Raises:
        ValueError: if ``kind`` is unknown, or an ``"identifier"`` has no layout.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown value kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "identifier" and not layout:
        raise ValueError("an 'identifier' value needs a layout (digit group sizes)")
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
    elif kind == "integer":
        digits = integer_digits(value)
        if digits is not None:
            return ("integer", digits)
    elif kind == "identifier":
        digits = identifier_digits(value, layout or ())
        if digits is not None:
            return ("identifier", digits)
    elif kind == "digits":
        digits = "".join(ch for ch in text if "0" <= ch <= "9")
        if digits:
            return ("digits", digits)
    elif kind == "date":
        date = to_date(value)
        if date is not None:
            return ("date", date)
    return ("text", text)
