"""Golden tests for ANLS and exact match."""

import pytest

from eval.tasks.docvqa.metrics import anls, exact_match, levenshtein, normalize_answer, score_docvqa


def test_normalisation():
    assert normalize_answer("  ACME \t  Corp\n") == "acme corp"
    assert normalize_answer("$1,234.") == "$1,234."  # punctuation kept


def test_levenshtein():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("same", "same") == 0


def test_anls_values():
    assert anls("kitten", ["sitting"]) == pytest.approx(1 - 3 / 7)
    assert anls("abc", ["xyz"]) == 0.0
    assert anls("ab", ["ax"]) == 0.0  # NL = 0.5 is not < tau
    assert anls("abcd", ["abce"]) == pytest.approx(0.75)  # NL = 0.25
    # max over golds: "$1,234" -> 1 - 1/6, "1234" -> 1 - 1/5
    assert anls("1,234", ["$1,234", "1234"]) == pytest.approx(5 / 6)
    assert anls(" ACME  Corp ", ["acme corp"]) == 1.0
    assert anls("", ["abc"]) == 0.0
    assert anls("", [""]) == 1.0
    with pytest.raises(ValueError):
        anls("x", [])


def test_exact_match():
    assert exact_match("ACME  corp", ["x", "acme corp"])
    assert not exact_match("acme corp.", ["acme corp"])


def test_dataset_golden():
    s = score_docvqa(["kitten", "ACME corp", ""], [["sitting"], ["acme  corp"], ["x"]])
    assert s.n == 3
    assert s.anls == pytest.approx((4 / 7 + 1 + 0) / 3)
    assert s.exact_match == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        score_docvqa(["a"], [])
