"""Nested scores on hand-computed cases (the examples of eval/tasks/extract/README.md)."""

import json

import pytest

from eval.tasks.extract import schema_from_dict
from eval.tasks.extract.metrics import aggregate_extract, compare, score_extract

SCHEMA = schema_from_dict(
    {
        "type": "object",
        "properties": {
            "number": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "sender": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "tax_id": {"type": "string", "x-compare": "digits"},
                },
            },
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "qty": {"type": "number"},
                        "total": {"type": "number"},
                    },
                },
            },
            "total": {"type": ["number", "null"]},
            "notes": {"type": ["string", "null"], "x-compare": "chars"},
        },
    },
    "invoice.json",
)

GOLD = {
    "number": "INV-7",
    "date": "2024-03-05",
    "sender": {"name": "Nour Trading", "tax_id": "300-12"},
    "items": [
        {"name": "Pen", "qty": 2, "total": 3.0},
        {"name": "Paper", "qty": 1, "total": 10.0},
        {"name": "Ink", "qty": 5, "total": 25.0},
    ],
    "total": 38.0,
    "notes": "Deliver to the back door",
}


def _score(pred: object) -> dict:
    content = pred if isinstance(pred, str) or pred is None else json.dumps(pred)
    return score_extract(SCHEMA, GOLD, content)


def test_perfect_answer_in_another_item_order() -> None:
    pred = json.loads(json.dumps(GOLD))
    pred["items"].reverse()
    metrics = aggregate_extract([_score(pred)])
    assert metrics["leaves"] == 15  # 2 + 2 (sender) + 9 (3 items x 3) + total + notes
    assert metrics["accuracy"] == metrics["accuracy_strict"] == 1.0
    assert metrics["item_precision"] == metrics["item_recall"] == metrics["item_f1"] == 1.0
    assert metrics["exact_match"] == 1.0 and metrics["char_similarity"] == 1.0


def test_normalised_versus_strict() -> None:
    pred = json.loads(json.dumps(GOLD))
    pred["date"] = "2024/3/5"  # same date
    pred["sender"]["tax_id"] = "30012"  # same digits
    pred["sender"]["name"] = "NOUR  trading"  # case and spacing
    pred["total"] = "38.00"  # a number written as text
    score = _score(pred)
    assert score["leaves"]["date"] == [1, 1, 0]  # [n, correct normalised, correct strict]
    assert score["leaves"]["sender.tax_id"] == [1, 1, 0]
    assert score["leaves"]["total"] == [1, 1, 0]
    metrics = aggregate_extract([score])
    assert metrics["accuracy"] == 1.0 and metrics["accuracy_strict"] == 11 / 15
    assert metrics["exact_match"] == 1.0 and metrics["exact_match_strict"] == 0.0
    assert score["schema_valid"] is False and score["schema_errors"][0].startswith(
        "date: '2024/3/5' is not a 'date'"
    )


def test_items_matched_optimally_with_a_missing_and_an_extra_item() -> None:
    pred = json.loads(json.dumps(GOLD))
    # Ink is missing, Paper has a wrong total, and an unknown item was added
    pred["items"] = [
        {"name": "Stapler", "qty": 1, "total": 3.0},
        {"name": "Paper", "qty": 1, "total": 12.0},
        {"name": "Pen", "qty": 2, "total": 3.0},
    ]
    score = _score(pred)
    # Pen <-> Pen (3/3), Paper <-> Paper (2/3), Ink <-> Stapler (0/3: qty 5 vs 1, total 25 vs 3)
    assert score["items"]["items[]"] == [3, 3, 1, 1]  # gold, predicted, matched, matched strict
    assert score["leaves"]["items[].name"] == [3, 2, 2]
    assert score["leaves"]["items[].total"] == [3, 1, 1]
    metrics = aggregate_extract([score])
    assert metrics["item_precision"] == metrics["item_recall"] == pytest.approx(1 / 3)
    assert metrics["accuracy"] == pytest.approx(11 / 15)
    assert metrics["per_path"]["items[].qty"] == {"n": 3, "accuracy": 2 / 3, "accuracy_strict": 2 / 3}
    assert metrics["per_array"]["items[]"]["f1"] == pytest.approx(1 / 3)


def test_fewer_predicted_items_leave_gold_items_wrong() -> None:
    pred = json.loads(json.dumps(GOLD))
    pred["items"] = [{"name": "Ink", "qty": 5, "total": 25.0}]
    score = _score(pred)
    assert score["items"]["items[]"] == [3, 1, 1, 1]
    metrics = aggregate_extract([score])
    assert metrics["item_precision"] == 1.0 and metrics["item_recall"] == pytest.approx(1 / 3)
    assert metrics["item_f1"] == pytest.approx(0.5)
    assert metrics["accuracy"] == pytest.approx((15 - 6) / 15)


def test_char_similarity_of_long_text() -> None:
    pred = json.loads(json.dumps(GOLD))
    pred["notes"] = "deliver to the back dor"  # case ignored, one character missing
    score = _score(pred)
    assert score["chars"]["notes"] == [1, pytest.approx(1 - 1 / 24)]
    assert score["leaves"]["notes"] == [1, 0, 0]  # not equal, so not correct
    del pred["notes"]
    assert _score(pred)["chars"]["notes"] == [1, 0.0]


@pytest.mark.parametrize(
    ("content", "failure", "parse_error"),
    [
        ("not json", "invalid_json", "invalid_json"),
        ("[1]", "invalid_json", "not_object"),
        ("", "invalid_json", "empty"),
    ],
)
def test_unparsable_reply_scores_every_leaf_wrong(content: str, failure: str, parse_error: str) -> None:
    score = _score(content)
    assert score["parsed"] is False and score["failure"] == failure and score["parse_error"] == parse_error
    metrics = aggregate_extract([score])
    assert metrics["accuracy"] == 0.0 and metrics["items"] == {
        "gold": 3,
        "predicted": 0,
        "matched": 0,
        "matched_strict": 0,
    }
    assert metrics["item_precision"] is None and metrics["item_recall"] == 0.0 and metrics["item_f1"] is None
    assert score_extract(SCHEMA, GOLD, '{"number": "INV', finish_reason="length")["failure"] == "truncated"
    failed = score_extract(SCHEMA, GOLD, None, answered=False)
    assert failed["failure"] is None and failed["parsed"] is False and failed["parse_error"] is None


def test_fenced_reply_and_aggregation_over_pages() -> None:
    good = _score("Here it is:\n```json\n" + json.dumps(GOLD) + "\n```")
    bad = _score(json.dumps({"number": "INV-7"}))
    metrics = aggregate_extract([good, bad])
    assert metrics["documents"] == 2 and metrics["json_parse_rate"] == 1.0
    assert metrics["accuracy"] == pytest.approx(16 / 30)  # micro average: 15 + 1 of 30 leaves
    assert metrics["exact_match"] == 0.5
    assert metrics["item_recall"] == pytest.approx(3 / 6) and metrics["item_precision"] == 1.0
    assert aggregate_extract([])["accuracy"] is None


def test_nested_lists_and_null_gold() -> None:
    schema = schema_from_dict(
        {
            "type": "object",
            "properties": {
                "sections": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "title": {"type": "string"},
                            "tags": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "due": {"type": ["number", "null"]},
            },
        }
    )
    gold = {"sections": [{"title": "A", "tags": ["x", "y"]}, {"title": "B", "tags": []}], "due": None}
    pred = {"sections": [{"title": "b", "tags": ["z"]}, {"title": "A", "tags": ["y", "x"]}], "due": "None"}
    comparison = compare(schema, gold, pred)
    assert sorted(comparison.leaves) == sorted(
        [
            ("sections[].title", True),
            ("sections[].title", True),
            ("sections[].tags[]", True),
            ("sections[].tags[]", True),
            ("due", True),
        ]
    )
    # section B is paired and its leaves are right, but its predicted tags hold an extra item
    assert comparison.items == {"sections[].tags[]": [2, 3, 2], "sections[]": [2, 2, 1]}
    assert not comparison.exact
    assert compare(schema, gold, pred, strict=True).leaves.count(("due", False)) == 1
