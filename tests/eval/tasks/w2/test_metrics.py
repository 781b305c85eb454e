"""Golden tests for the W-2 metrics: every number below is counted by hand in the comments."""

import json

import pytest

from eval.tasks.w2 import FIELDS, ID_NUMBER_FIELDS, INT_FIELDS, MONEY_FIELDS, W2Form, target_json
from eval.tasks.w2.metrics import aggregate_w2, field_kind, schema_error, score_w2, values_match

# One field of each normalisation kind, taken from the task definition (never a copied list).
MONEY = sorted(MONEY_FIELDS)[0]  # an amount
CONTROL = sorted(INT_FIELDS)[0]  # the integer control number
SSN = sorted(ID_NUMBER_FIELDS)[0]  # digits only
BOX = next(
    f for f in FIELDS if W2Form.model_fields[f].annotation is not str and f not in MONEY_FIELDS | INT_FIELDS
)
TEXT = next(f for f in FIELDS if W2Form.model_fields[f].annotation is str and f not in ID_NUMBER_FIELDS)
OTHER_TEXT = next(
    f for f in FIELDS if W2Form.model_fields[f].annotation is str and f not in ID_NUMBER_FIELDS | {TEXT}
)

GT = {
    MONEY: 1000.0,  # number
    CONTROL: 123,  # number (int field)
    BOX: "None",  # optional box, empty
    TEXT: "ACME Corp",  # text
    SSN: "123-45-6789",  # digits
}


def test_field_kinds() -> None:
    assert len({MONEY, CONTROL, BOX, TEXT, SSN, OTHER_TEXT}) == 6
    for f in FIELDS:
        expected = (
            "number"
            if f in MONEY_FIELDS
            else "integer"
            if f in INT_FIELDS
            else "identifier"
            if f in ID_NUMBER_FIELDS
            else "text"
        )
        assert field_kind(f) == expected, f
    assert len(ID_NUMBER_FIELDS) == 2 and all(f in FIELDS for f in ID_NUMBER_FIELDS)
    assert values_match(MONEY, "$1,000.00", 1000.0)
    assert not values_match(TEXT, "1000", "ACME")


def test_formatting_is_forgiven_never_content() -> None:
    """A decimal comma, a wrong identifier layout, an identifier's leading zeros: all wrong."""
    ein, ssn = "box_b_employer_identification_number", "box_a_employee_ssn"
    assert ID_NUMBER_FIELDS == {ein, ssn}
    wages = "box_1_wages"
    assert not values_match(wages, "12,34", 1234.0) and not values_match(wages, "1,2,3,4", 1234.0)
    assert values_match(wages, "$1,234.00", 1234.0)
    assert not values_match(ein, "123-456-789", "12-3456789") and values_match(ein, "123456789", "12-3456789")
    assert not values_match(ssn, "12-345-6789", "123-45-6789") and values_match(
        ssn, "123 45 6789", "123-45-6789"
    )
    # The dataset stores the control number as a JSON integer (no leading zeros can be in the truth):
    assert not values_match(CONTROL, "0012345", 12345)
    assert values_match(CONTROL, "12345", 12345) and values_match(CONTROL, 12345, 12345)


def test_strict_is_raw_python_equality_and_normalised_forgives_format() -> None:
    pred = {
        MONEY: 1000,  # strict: 1000 == 1000.0 -> right
        CONTROL: "123",  # strict: "123" != 123 -> wrong; normalised: 123.00 -> right
        BOX: None,  # strict: None != "None" -> wrong; normalised: both empty -> right
        TEXT: "acme  corp",  # strict wrong; normalised "acme corp" -> right
        SSN: "123456789",  # strict wrong; normalised digits -> right
    }
    s = score_w2(GT, json.dumps(pred))
    assert s["parsed"] and s["failure"] is None
    assert sorted(s["wrong_strict"]) == sorted([CONTROL, BOX, TEXT, SSN])
    assert s["wrong"] == []
    assert s["n_fields"] == 5
    assert s["schema_valid"] is False  # 5 of 45 fields: not a W2Form
    # 40 fields missing + the control number as a string (strict mode; int 1000 for a float is fine)
    assert s["schema_error"].startswith("41 schema error(s): ")


def test_missing_key_is_wrong_even_when_the_truth_is_empty() -> None:
    s = score_w2(GT, json.dumps({MONEY: 1000.004, "extra": 1}))
    # MONEY: strict 1000.004 != 1000.0 -> wrong; normalised 1000.00 == 1000.00 -> right.
    # The four other keys are missing: wrong in both (the empty BOX included).
    assert sorted(s["wrong"]) == sorted(k for k in GT if k != MONEY)
    assert sorted(s["wrong_strict"]) == sorted(GT)


def test_failures_count_every_field_wrong() -> None:
    unparsable = score_w2(GT, "{MONEY: 1000.0,", finish_reason="stop")
    truncated = score_w2(GT, "{MONEY: 1000.0,", finish_reason="length")
    no_answer = score_w2(GT, None, answered=False)
    for s in (unparsable, truncated, no_answer):
        assert not s["parsed"] and s["prediction"] is None and not s["schema_valid"]
        assert sorted(s["wrong"]) == sorted(GT) and sorted(s["wrong_strict"]) == sorted(GT)
    assert unparsable["failure"] == "invalid_json"
    assert truncated["failure"] == "truncated"
    assert no_answer["failure"] is None  # a failed request is counted by the runner, not as a parse failure


def test_a_complete_reply_cut_at_max_tokens_still_counts() -> None:
    s = score_w2(GT, json.dumps(GT), finish_reason="length")
    assert s["parsed"] and s["failure"] is None and s["wrong"] == [] and s["wrong_strict"] == []


def test_aggregate_golden() -> None:
    # doc A: strict 1/5 right, normalised 5/5 right (see the test above)
    doc_a = score_w2(
        GT,
        json.dumps(
            {
                MONEY: 1000,
                CONTROL: "123",
                BOX: None,
                TEXT: "acme  corp",
                SSN: "123456789",
            }
        ),
    )
    # doc B: exact copy, strict 5/5, normalised 5/5
    doc_b = score_w2(GT, "```json\n" + json.dumps(GT) + "\n```")
    # doc C: unparsable, 0/5 both
    doc_c = score_w2(GT, "I cannot read this form.")
    # doc D: a different document with 2 fields; prediction gets the name right only after normalisation
    doc_d = score_w2(
        {TEXT: "Foo Inc", OTHER_TEXT: "CA"},
        json.dumps({TEXT: "FOO INC", OTHER_TEXT: "NY"}),
    )
    m = aggregate_w2([doc_a, doc_b, doc_c, doc_d])
    assert m["documents"] == 4
    assert m["fields"] == 5 + 5 + 5 + 2
    # strict correct: A 1 + B 5 + C 0 + D 0 = 6 of 17
    assert m["accuracy_strict"] == pytest.approx(6 / 17)
    # normalised correct: A 5 + B 5 + C 0 + D 1 = 11 of 17
    assert m["accuracy"] == pytest.approx(11 / 17)
    # exact match: normalised A and B; strict B only
    assert m["exact_match"] == pytest.approx(2 / 4)
    assert m["exact_match_strict"] == pytest.approx(1 / 4)
    # parsed: A, B, D (C is prose); schema-valid: none (partial forms)
    assert m["json_parse_rate"] == pytest.approx(3 / 4)
    assert m["schema_valid_rate"] == 0.0
    # per field: TEXT appears in A, B, C, D: normalised right in A, B, D; strict in B only
    assert m["per_field_accuracy"][TEXT] == pytest.approx(3 / 4)
    assert m["per_field_accuracy_strict"][TEXT] == pytest.approx(1 / 4)
    # OTHER_TEXT appears in D only, wrong
    assert m["per_field_accuracy"][OTHER_TEXT] == 0.0
    # CONTROL in A, B, C: normalised A, B; strict B
    assert m["per_field_accuracy"][CONTROL] == pytest.approx(2 / 3)
    assert m["per_field_accuracy_strict"][CONTROL] == pytest.approx(1 / 3)
    assert set(m["per_field_accuracy"]) == set(GT) | {OTHER_TEXT}


def test_aggregate_of_nothing() -> None:
    m = aggregate_w2([])
    assert m["documents"] == 0 and m["accuracy"] is None and m["accuracy_strict"] is None
    assert m["per_field_accuracy"] == {}


def _full_record() -> dict:
    from pydantic import BaseModel

    from eval.tasks.w2 import INT_FIELDS, MONEY_FIELDS, W2Form

    assert issubclass(W2Form, BaseModel)
    rec = {}
    for k in FIELDS:
        if k in MONEY_FIELDS:
            rec[k] = 12.5
        elif k in INT_FIELDS:
            rec[k] = 7
        else:
            rec[k] = "None"
    return rec


def test_schema_validity_is_strict() -> None:
    rec = _full_record()
    assert schema_error(rec) is None
    assert score_w2(rec, target_json(rec))["schema_valid"] is True
    assert schema_error({**rec, MONEY: "12.5"}) is not None  # a string where a number belongs
    assert schema_error({**rec, CONTROL: 7.5}) is not None
    missing = dict(rec)
    del missing[FIELDS[-1]]
    assert FIELDS[-1] in schema_error(missing)
    assert "extra" in schema_error({**rec, "extra": 1})
    assert schema_error({**rec, BOX: None}) is None  # Optional[str]
    # 45 fields, one schema-violating value: the schema fails, the fields are still scored one by one
    s = score_w2(rec, json.dumps({**rec, MONEY: "12.50"}))
    assert s["parsed"] and not s["schema_valid"]
    assert s["wrong"] == [] and s["wrong_strict"] == [MONEY]
