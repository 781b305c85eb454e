"""The DocVQA task definition: prompt, target, answer extraction."""

import pytest

from eval.tasks.docvqa import json_schema, parse_answer, prompt, target_text


def test_prompt_contains_question():
    p = prompt("  What is the date? ")
    assert p.endswith("Question: What is the date?")


def test_target_is_first_answer():
    assert target_text([" 12/03/1998 ", "March 12, 1998"]) == "12/03/1998"
    for bad in ([], [""], "abc"):
        with pytest.raises(ValueError):
            target_text(bad)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("  ACME Corp \n", "ACME Corp"),
        ('{"answer": " 42 "}', "42"),
        ('"42"', "42"),
        ("```\n42\n```", "42"),
        ('{"other": 1}', '{"other": 1}'),
        ("{not json", "{not json"),
        (None, ""),
    ],
)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_schema():
    assert json_schema()["required"] == ["answer"]
