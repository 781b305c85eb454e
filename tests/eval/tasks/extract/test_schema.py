"""Schema files: checks with one-line errors, validation, walking, prompt and target text."""

import json
from pathlib import Path

import pytest

from eval.tasks.extract import (
    SchemaFileError,
    default_prompt,
    describe_fields,
    load_schema,
    read_prompt_file,
    schema_from_dict,
    target_json,
)
from eval.tasks.extract.answers import INTRO, NULLS, ONLY
from eval.tasks.extract.schema import format_path

INVOICE = {
    "title": "invoice page",
    "type": "object",
    "properties": {
        "number": {"type": "string", "description": "as printed"},
        "date": {"type": "string", "format": "date"},
        "currency": {"enum": ["USD", "SAR"]},
        "sender": {"$ref": "#/$defs/party"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "qty": {"type": "integer"},
                    "total": {"type": "number"},
                },
                "required": ["name", "qty", "total"],
            },
        },
        "total": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["number", "items"],
    "additionalProperties": False,
    "$defs": {
        "party": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tax_id": {"type": ["string", "null"], "x-compare": "digits"},
            },
        }
    },
}

GOLD = {
    "number": "INV-7",
    "date": "2024-03-05",
    "currency": "SAR",
    "sender": {"tax_id": "300 12", "name": "شركة النور"},
    "items": [{"total": 3.0, "name": "قلم", "qty": 2}],
    "total": None,
    "tags": ["urgent"],
}


def _write(tmp_path: Path, data: object, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_walk_and_kinds(tmp_path: Path) -> None:
    schema = load_schema(_write(tmp_path, INVOICE))
    assert schema.title == "invoice page" and len(schema.sha256) == 64
    root = schema.schema
    sender = schema.property(root, "sender", GOLD["sender"])
    assert schema.leaf_kind(schema.property(sender, "tax_id")) == "digits"
    items = schema.property(root, "items")
    item = schema.items(items, GOLD["items"][0])
    assert [schema.leaf_kind(schema.property(item, k)) for k in ("name", "qty", "total")] == [
        "text",
        "number",
        "number",
    ]
    assert schema.leaf_kind(schema.property(root, "date")) == "date"
    assert schema.leaf_kind(schema.property(root, "total", None)) == "number"  # nullable number
    assert schema.leaf_kind(schema.property(root, "currency")) == "text"
    assert schema.property(root, "unknown") == {}


def test_validation_errors_name_the_path(tmp_path: Path) -> None:
    schema = load_schema(_write(tmp_path, INVOICE))
    assert schema.errors(GOLD) == [] and schema.is_valid(GOLD)
    bad = json.loads(json.dumps(GOLD))
    bad["items"][0]["qty"] = "two"
    bad["date"] = "05/03/2024"
    bad["extra"] = 1
    errors = schema.errors(bad)
    assert errors[0].startswith("<root>: Additional properties are not allowed ('extra'")
    assert "date: '05/03/2024' is not a 'date'" in errors
    assert "items[0].qty: 'two' is not of type 'integer'" in errors
    assert format_path(["items", 2, "total"]) == "items[2].total" and format_path([]) == "<root>"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"s.json: not valid JSON \(line 1"),
        ("[1, 2]", r"s.json: a schema must be a JSON object, got array"),
        ('{"type": "array", "items": {}}', r"s.json: the root of an extraction schema must be an object"),
        ('{"type": "object", "properties": {"a": {"type": "strin"}}}', r"s.json: not a valid JSON Schema at properties/a/type"),
        ('{"type": "object", "properties": {"a": {"$ref": "other.json#/x"}}}', r"s.json: properties/a: \$ref 'other.json#/x' must point inside"),
        ('{"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}', r"\$ref '#/\$defs/missing' must point inside"),
        ('{"type": "object", "properties": {"a": {"type": "string", "x-compare": "fuzzy"}}}', r"s.json: properties/a: x-compare 'fuzzy' is not one of text"),
    ],
)  # fmt: skip
def test_bad_schema_files_get_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(SchemaFileError, match=message) as info:
        load_schema(_write(tmp_path, content))
    assert "\n" not in str(info.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="schema file not found: .*nope.json"):
        load_schema(tmp_path / "nope.json")


def test_response_schema_drops_extension_keywords_only() -> None:
    schema = schema_from_dict(
        {"type": "object", "properties": {"x-ray": {"type": "string", "x-compare": "chars"}}, "x-note": 1}
    )
    sent = schema.response_schema()
    assert sent == {
        "type": "object",
        "properties": {"x-ray": {"type": "string"}},
    }  # a property may be named x-...
    assert "x-compare" in schema.schema["properties"]["x-ray"]  # the file's schema is unchanged
    assert schema_from_dict({"title": "Mon schéma / v2", "type": "object"}).response_name() == "Mon_sch_ma_v2"


def test_target_keeps_values_and_non_ascii_and_follows_schema_order(tmp_path: Path) -> None:
    schema = load_schema(_write(tmp_path, INVOICE))
    text = target_json(schema, GOLD)
    assert "شركة النور" in text and "\\u" not in text  # right-to-left text unchanged, not escaped
    assert json.loads(text) == GOLD  # round trip
    assert list(json.loads(text)) == ["number", "date", "currency", "sender", "items", "total", "tags"]
    assert list(json.loads(text)["sender"]) == ["name", "tax_id"]
    assert list(json.loads(text)["items"][0]) == ["name", "qty", "total"]


def test_default_prompt_lists_nested_fields(tmp_path: Path) -> None:
    schema = load_schema(_write(tmp_path, INVOICE))
    prompt = default_prompt(schema)
    assert prompt.splitlines()[0] == INTRO.format(title="invoice page")
    assert "- number (text): as printed" in prompt
    assert "- date (date, YYYY-MM-DD)" in prompt and '- currency (one of: "USD", "SAR")' in prompt
    assert "- sender (object)\n  - name (text)\n  - tax_id (text, or null)" in prompt
    assert "- items (list of objects)\n  - name (text)\n  - qty (integer)\n  - total (number)" in prompt
    assert "- total (number, or null)" in prompt and "- tags (list of text values)" in prompt
    assert prompt.endswith(f"\n{NULLS} {ONLY}")
    no_nulls = schema_from_dict({"type": "object", "properties": {"a": {"type": "string"}}})
    assert default_prompt(no_nulls).endswith(f"- a (text)\n{ONLY}")


def test_prompt_file_placeholders(tmp_path: Path) -> None:
    schema = load_schema(_write(tmp_path, INVOICE))
    path = _write(tmp_path, "Read the invoice {note}.\nFields:\n{fields}\nSchema: {schema}\n", "p.txt")
    prompt = read_prompt_file(path, schema)
    assert prompt.startswith("Read the invoice {note}.\nFields:\n" + describe_fields(schema))
    assert '"x-compare"' not in prompt and '"$defs"' in prompt
    with pytest.raises(SchemaFileError, match="p.txt: the prompt file is empty"):
        read_prompt_file(_write(tmp_path, "  \n", "p.txt"), schema)
