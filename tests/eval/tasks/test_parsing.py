"""JSON extraction for the task parsers (objects via eval.parsing, plus whole/fenced lists)."""

import pytest

from eval.tasks.parsing import extract_json_value, strip_code_fences


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", [1, 2]),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ("```\n[1, 2]\n```\ntrailing", [1, 2]),
        ('Answer: {"a": [1]} hope it helps {"b": 2}', {"a": [1]}),
        ('```json\n{"a": 1}', {"a": 1}),  # unterminated fence
        ('"just a string"', "just a string"),
        ("no json", None),
        ("prose then [3] without a fence", None),  # lists need the whole reply or a fence
        ('{"a": {"b": 1}, oops}', None),  # a broken object never yields its inner object
    ],
)
def test_extract(text, expected):
    assert extract_json_value(text) == expected


def test_strip_fences():
    assert strip_code_fences("  plain  ") == "plain"
    assert strip_code_fences("x ```py\nbody\n``` y") == "body"


def test_many_brackets_is_cheap():
    assert extract_json_value("{" * 10_000) is None
