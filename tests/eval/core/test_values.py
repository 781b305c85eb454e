"""Normalisation rules, percentiles and serving statistics, on hand-computed cases."""

import datetime
from decimal import Decimal

import pytest

from eval.core.report import percentile, serving_stats
from eval.core.values import EMPTY, normalize_text, normalize_value, to_cents, to_date


@pytest.mark.parametrize(
    ("kind", "a", "b", "equal"),
    [
        # numbers: Decimal to the cent, $ and thousands separators accepted
        ("number", 1000.0, 1000, True),
        ("number", "$1,234.50", 1234.5, True),
        ("number", " $ 1,234.50 ", 1234.5, True),
        ("number", "-$5", -5, True),
        ("number", "1234.505", 1234.51, True),  # half-up to the cent
        ("number", 1234.504, 1234.5, True),
        ("number", 0.1 + 0.2, 0.3, True),  # 0.30000000000000004 -> 0.30
        ("number", 1234.5, 1234.51, False),
        ("number", "12 USD", 12, False),  # not a plain number: compared as text
        ("number", True, 1, False),  # booleans are not numbers
        ("number", "None", None, True),
        ("number", "", None, True),
        ("number", 0.0, None, False),  # zero is not empty
        # text: NFKC, casefold, collapsed whitespace
        ("text", "ＡＣＭＥ  Corp", "acme corp", True),  # fullwidth letters (NFKC)
        ("text", "Straße", "STRASSE", True),  # casefold
        ("text", " Main\n\tSt ", "main st", True),
        ("text", "x", "X", True),
        ("text", "Main St.", "Main St", False),  # punctuation is kept
        ("text", "None", None, True),
        ("text", "NONE", "", True),
        ("text", "null", None, False),  # only "None", null and "" are empty
        ("text", 12, "12", True),  # a number in a text field compares by its text
        # digits only (SSN, EIN)
        ("digits", "123-45-6789", "123456789", True),
        ("digits", "12 3456789", "12-3456789", True),
        ("digits", "123-45-6789", "123-45-6780", False),
        ("digits", "unknown", "UNKNOWN", True),  # no digits: compared as text
        ("digits", None, "None", True),
        # dates: year-first calendar dates, any of - / . as separator, time part ignored
        ("date", "2024-03-05", "2024/3/5", True),
        ("date", "2024.03.05", "2024-03-05T10:30:00Z", True),
        ("date", "2024-03-05", "2024-03-06", False),
        ("date", "05/03/2024", "2024-03-05", False),  # day-first is not guessed: compared as text
        ("date", "05/03/2024", "05/03/2024", True),
        ("date", "2024-02-30", "2024-03-01", False),  # not a date: text
        ("date", "2024-03-05", None, False),
        ("date", "", None, True),
        # money accepts only well-formed thousands grouping: a decimal comma is not a separator
        ("number", "12,34", 1234, False),
        ("number", "1,2,3,4", 1234, False),
        ("number", "1234,5", 12345, False),
        ("number", "1,234,567.8", 1234567.8, True),
        ("number", "12,345", 12345, True),
        ("number", "1.234,56", 1234.56, False),
        ("number", "1 234.50", 1234.5, False),  # a space inside is not a separator either
        ("number", "12,34", "12,34", True),  # compared as text: equal to itself
        # integer identifiers (the control number): digits as written, leading zeros kept
        ("integer", "0012345", 12345, False),
        ("integer", "12345", 12345, True),
        ("integer", 12345.0, 12345, True),  # the same JSON number
        ("integer", " 12345 ", 12345, True),
        ("integer", "12,345", 12345, False),
        ("integer", 12345.5, 12345, False),
        ("integer", "0012345", "0012345", True),
        ("integer", True, 1, False),
        ("integer", None, "None", True),
    ],
)
def test_normalised_equality(kind: str, a: object, b: object, equal: bool) -> None:
    assert (normalize_value(a, kind) == normalize_value(b, kind)) is equal


@pytest.mark.parametrize(
    ("layout", "a", "b", "equal"),
    [
        ((3, 2, 4), "123-45-6789", "123456789", True),  # SSN: with or without its hyphens
        ((3, 2, 4), "123 45 6789", "123-45-6789", True),  # or spaces, in the same places
        ((3, 2, 4), "123-45-6789", "123-45-6780", False),
        ((3, 2, 4), "12-345-6789", "123-45-6789", False),  # the digits, laid out wrongly
        ((3, 2, 4), "123-45 6789", "123-45-6789", False),  # mixed separators
        ((3, 2, 4), "XXX-XX-6789", "xxx-xx-6789", True),  # not an identifier: compared as text
        ((3, 2, 4), None, "None", True),
        ((2, 7), "12-3456789", "123456789", True),  # EIN
        ((2, 7), "123-456-789", "12-3456789", False),
        ((2, 7), "12 3456789", "12-3456789", True),
        ((2, 7), "12-345-6789", "12-3456789", False),
        ((2, 7), 123456789, "12-3456789", True),  # a JSON number of the right digits
    ],
)
def test_identifiers_keep_their_digits_and_layout(layout: tuple, a: object, b: object, equal: bool) -> None:
    assert (normalize_value(a, "identifier", layout) == normalize_value(b, "identifier", layout)) is equal


def test_normalised_forms() -> None:
    assert normalize_value("$1,000", "number") == ("number", Decimal("1000.00"))
    assert normalize_value(None, "text") == EMPTY
    assert normalize_value("  A  b ", "text") == ("text", "a b")
    assert normalize_value("12-3456789", "identifier", (2, 7)) == ("identifier", "123456789")
    assert normalize_value("0012345", "integer") == ("integer", "0012345")
    assert normalize_value(12345, "integer") == ("integer", "12345")
    with pytest.raises(ValueError, match="needs a layout"):
        normalize_value("12-3456789", "identifier")
    assert normalize_text("Ｗ－２\u00a0FORM") == "w-2 form"
    assert to_cents("1.005") == Decimal("1.01")
    assert to_cents(float("nan")) is None
    assert to_cents("1.2.3") is None
    assert normalize_value("2024-3-5", "date") == ("date", datetime.date(2024, 3, 5))
    assert to_date("2024-13-01") is None and to_date(20240305) is None
    with pytest.raises(ValueError, match="unknown value kind"):
        normalize_value(1, "money")


def test_percentile_linear_interpolation() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    # position (4 - 1) * 0.95 = 2.85 -> 3 + 0.85 * (4 - 3)
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0], 0) == 1.0 and percentile([1.0, 2.0], 100) == 2.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_serving_stats_counts_answered_requests_only() -> None:
    records = [
        {"status": "ok", "latency_s": 0.5, "usage": {"completion_tokens": 10}},
        {"status": "ok", "latency_s": 1.0, "usage": {"completion_tokens": 20}},
        {"status": "ok", "latency_s": 2.0, "usage": None},  # no usage: latency only
        {"status": "request_failed", "latency_s": None},
        {"status": "http_error", "latency_s": None},
    ]
    stats = serving_stats(records)
    assert stats["latency_p50_s"] == 1.0
    assert stats["latency_p95_s"] == pytest.approx(1.0 + 0.9 * 1.0)  # position 2 * 0.95 = 1.9
    assert stats["latency_mean_s"] == pytest.approx(3.5 / 3)
    assert stats["output_tokens"] == 30
    assert stats["output_tokens_per_s"] == pytest.approx(30 / 1.5)
    assert stats["answers_with_usage"] == 2
    empty = serving_stats([])
    assert empty["latency_p50_s"] is None and empty["output_tokens_per_s"] is None
