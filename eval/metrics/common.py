"""Task-independent metrics: value normalisation helpers, percentiles, serving statistics.

Normalisation rules (used by every task that compares extracted values):

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
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Optional

__all__ = [
    "EMPTY",
    "normalize_text",
    "to_cents",
    "normalize_value",
    "percentile",
    "serving_stats",
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


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """Percentile with linear interpolation between closest ranks (numpy's default method).

    Args:
        values (Sequence[float]): samples (any order).
        q (float): the percentile in [0, 100].

    Returns:
        Optional[float]: the percentile, or None when there are no samples.

    Raises:
        ValueError: if ``q`` is outside [0, 100].
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def serving_stats(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Latency and throughput of the requests the server answered.

    Only records with ``status == "ok"`` count. Latency is the duration of the attempt that
    got the answer (retries and back-off excluded). ``output_tokens_per_s`` is the sum of
    ``usage.completion_tokens`` over the sum of those latencies (the per-request decode rate,
    weighted by time), counted over answers that report usage.

    Args:
        records (Iterable[Mapping[str, Any]]): result records (see :mod:`eval.runner`).

    Returns:
        dict[str, Any]: ``latency_p50_s``, ``latency_p95_s``, ``latency_mean_s``,
        ``output_tokens``, ``output_tokens_per_s`` and ``answers_with_usage``.
    """
    latencies: list[float] = []
    tokens = 0
    token_time = 0.0
    with_usage = 0
    for rec in records:
        if rec.get("status") != "ok" or rec.get("latency_s") is None:
            continue
        latencies.append(float(rec["latency_s"]))
        usage = rec.get("usage") or {}
        completion = usage.get("completion_tokens")
        if isinstance(completion, int) and not isinstance(completion, bool):
            tokens += completion
            token_time += float(rec["latency_s"])
            with_usage += 1
    return {
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_mean_s": sum(latencies) / len(latencies) if latencies else None,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / token_time if token_time > 0 else None,
        "answers_with_usage": with_usage,
    }
