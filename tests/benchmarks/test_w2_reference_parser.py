"""Our accuracy_strict vs the reference evaluator's reading of replies: same rule, different parser."""

from __future__ import annotations

import pytest
from w2_reference_parser import STYLES, compare, reference_parse


def test_the_reimplemented_reference_parser_repairs_and_breaks_as_the_original() -> None:
    assert reference_parse("") == ({}, True)
    assert reference_parse("{'a': 'x', 'b': 2,}") == ({"a": "x", "b": 2}, False)  # quotes, trailing comma
    assert reference_parse("Sure: {a: 1, b: 2}") == ({"a": 1, "b": 2}, False)  # unquoted keys
    assert reference_parse('{"a": None, "b": 1}') == ({"a": None, "b": 1}, False)
    assert reference_parse('{"a": 1, "b": None}') == ({}, True)  # only ": None," is repaired
    assert reference_parse('{"a": "O\'Brien", "b": "Macy\'s"}') == ({}, True)  # two apostrophes
    assert reference_parse('{"a": "O\'Brien"}') == ({"a": "O'Brien"}, False)  # one is fine
    assert reference_parse('```json\n{"a": 1}\n``` and {"b": 2}') == ({"a": 1}, False)
    assert reference_parse('{"a": "12\n34", "b": 1}') == ({"a": "1234", "b": 1}, False)


def test_the_two_numbers_agree_on_content_and_differ_only_by_parser() -> None:
    rows = {r["style"]: r for r in compare(n=20, seed=1)}
    assert set(rows) == {*STYLES, "mix of all styles (random per document)"}
    for same in ("compact JSON (what training teaches)", "JSON in a code fence", "JSON after a sentence",
                 "indented JSON", "cut off (max_tokens)"):  # fmt: skip
        assert rows[same]["ours"] == rows[same]["reference"], same
    assert rows["compact JSON, five values wrong"]["ours"] == pytest.approx(40 / 45)
    assert rows["compact JSON, five values wrong"]["reference"] == pytest.approx(40 / 45)
    for repaired in ("trailing comma", "unquoted keys", "Python dict repr", "raw line break inside a value"):
        assert rows[repaired]["ours"] == 0.0 and rows[repaired]["reference"] >= 0.9, repaired
    assert (
        rows["apostrophes in two names"]["ours"] == 1.0
        and rows["apostrophes in two names"]["reference"] == 0.0
    )
