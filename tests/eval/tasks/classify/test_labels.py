"""The classification task definition: labels file, canonicalisation, prompt, schema, target."""

import json

import pytest

from eval.tasks.classify import (
    LabelSet,
    LabelsFileError,
    json_schema,
    load_labels,
    parse_label,
    prompt,
    target_json,
)


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("# makers\nAcme | ACME Corp | acme inc\n\nBorealis\nMercedes-Benz | Mercedes\n")
    return load_labels(path)


def test_load_text_file(labels):
    assert labels.labels == ("Acme", "Borealis", "Mercedes-Benz")
    assert len(labels) == 3 and "Acme" in labels


def test_load_json_file(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps({"Acme": ["ACME Corp"], "Borealis": []}))
    assert load_labels(tmp_path / "l.json").canonical("acme corp") == "Acme"
    (tmp_path / "m.json").write_text(json.dumps(["x", "y"]))
    assert load_labels(tmp_path / "m.json").labels == ("x", "y")


@pytest.mark.parametrize(
    "content, message",
    [
        ("Acme\nBorealis\nAcme\n", r"labels.txt:3: duplicate label 'Acme'"),
        ("Acme\nACME\n", "same after normalisation"),
        ("Acme | Borealis\nBorealis\n", "clashes"),
        ("Acme | \n", r"labels.txt:1: empty label or alias"),
        ("# nothing\n", "no labels"),
    ],
)
def test_bad_labels_file(tmp_path, content, message):
    path = tmp_path / "labels.txt"
    path.write_text(content)
    with pytest.raises(LabelsFileError, match=message):
        load_labels(path)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Acme", "Acme"),
        ("  acme corp. ", "Acme"),
        ('"MERCEDES"', "Mercedes-Benz"),
        ("mercedes-benz", "Mercedes-Benz"),
        ('{"label": "borealis"}', "Borealis"),
        ('```json\n{"label": "Acme Inc"}\n```', "Acme"),
        ('Sure! {"label": "Borealis"} is my answer.', "Borealis"),
        ('"Borealis"', "Borealis"),
        ("```\nBorealis\n```", "Borealis"),
        ("It is Acme", None),  # never guessed from a sentence
        ('{"label": 3}', None),
        ('{"maker": "Acme"}', None),
        ("Zeta", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_label(labels, text, expected):
    assert parse_label(text, labels) == expected


def test_prompt_lists_labels_in_order(labels):
    p = prompt(labels)
    assert "Acme, Borealis, Mercedes-Benz" in p
    assert p == prompt(["Acme", "Borealis", "Mercedes-Benz"])


def test_schema_enum_and_target(labels):
    schema = json_schema(labels)
    assert schema["properties"]["label"]["enum"] == ["Acme", "Borealis", "Mercedes-Benz"]
    assert schema["required"] == ["label"] and schema["additionalProperties"] is False
    assert target_json("Mercedes-Benz") == '{"label": "Mercedes-Benz"}'
    assert parse_label(target_json("Borealis"), labels) == "Borealis"


def test_labelset_validation():
    with pytest.raises(ValueError):
        LabelSet(())
    with pytest.raises(ValueError, match="unknown label"):
        LabelSet(("a",), {"x": "b"})
