"""Rules files: every check on a passing and a failing label, and one-line errors for bad files."""

import json
from pathlib import Path

import pytest

from eval.tasks.extract import schema_from_dict
from torchtune_ext.data.documents.rules import RulesFileError, load_rules, rules_from_dict

LABEL = {
    "number": "INV-000123",
    "items": [{"qty": 2, "price": 1.5, "total": 3.0}, {"qty": 1, "price": 10, "total": 10.0}],
    "total": 13.0,
    "note": None,
}


@pytest.mark.parametrize(
    ("rules", "errors"),
    [
        ({"number": {"required": True, "regex": "^INV-[0-9]{6}$"}}, []),
        ({"number": {"regex": "^[0-9]+$"}}, ["number: \"INV-000123\" does not match '^[0-9]+$'"]),
        ({"note": {"required": True}}, ["note: required, but empty (null)"]),
        ({"missing": {"required": True}}, ["missing: required, but missing"]),
        ({"note": {"regex": "x"}}, []),  # null is only checked by required
        ({"items[].qty": {"min": 1, "max": 1}}, ["items[0].qty: 2 is above the maximum 1"]),
        ({"items": {"min_items": 3}}, ["items: 2 items, min_items is 3"]),
        ({"items": {"max_items": 2}}, []),
        ({"total": {"sum_of": "items[].total"}}, []),
        ({"total": {"sum_of": "items[].qty"}}, ["total: 13.0 != sum of items[].qty = 3.0"]),
        ({"items[].total": {"product_of": ["qty", "price"]}}, []),
        (
            {"items[].price": {"product_of": ["qty", "total"], "tolerance": 0.5}},
            ["items[0].price: 1.5 != qty x total = 6.0", "items[1].price: 10 != qty x total = 10.0"][:1],
        ),
        ({"number": {"min": 0}}, ['number: expected a number for min 0, got "INV-000123"']),
    ],
)  # fmt: skip
def test_checks(rules: dict, errors: list[str]) -> None:
    assert rules_from_dict(rules).errors(LABEL) == errors


def test_product_within_tolerance_and_rounding() -> None:
    rules = rules_from_dict({"items[].total": {"product_of": ["qty", "price"]}})
    assert rules.errors({"items": [{"qty": 3, "price": 0.1, "total": 0.3}]}) == []  # 0.30000000000000004
    assert rules.errors({"items": [{"qty": 3, "price": 0.1, "total": 0.32}]}) == [
        "items[0].total: 0.32 != qty x price = 0.3"
    ]
    assert rules.errors({"items": [{"qty": "3", "price": 0.1, "total": 0.3}]}) == [
        "items[0].total: product_of qty x price needs numbers"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1]", "expected a JSON object of path -> checks"),
        ('{"items[].": {"min": 1}}', "bad path 'items[].'"),
        ('{"total": {"between": [1, 2]}}', "total: unknown check 'between'; checks: required, regex"),
        ('{"total": {"min": "1"}}', "total: min has a value of the wrong type ('1')"),
        ('{"total": {"required": 1}}', "total: required has a value of the wrong type (1)"),
        ('{"number": {"regex": "("}}', "number: bad regex '('"),
        ('{"totl": {"min": 0}}', "'totl' is not a field of the schema"),
        ('{"total": {"sum_of": "items[].cost"}}', "'items[].cost' is not a field of the schema"),
        ("{oops", "not valid JSON"),
    ],
)
def test_bad_rules_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    schema = schema_from_dict(
        {
            "type": "object",
            "properties": {
                "number": {"type": "string"},
                "total": {"type": "number"},
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"total": {"type": "number"}}},
                },
            },
        }
    )
    path = tmp_path / "rules.json"
    path.write_text(content)
    with pytest.raises(RulesFileError) as info:
        load_rules(path, schema)
    assert (
        str(info.value).startswith(f"{path}: ") and message in str(info.value) and "\n" not in str(info.value)
    )


def test_the_generators_rules_fit_its_schema(invoices: Path) -> None:
    from eval.tasks.extract import load_schema

    rules = load_rules(invoices / "rules.json", load_schema(invoices / "schema.json"))
    for labels in (invoices / "labels").glob("*.json"):
        for target in json.loads(labels.read_text(encoding="utf-8")):
            assert rules.errors(target) == []  # true labels pass
