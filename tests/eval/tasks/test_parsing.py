"""Tolerant JSON extraction shared by the task parsers."""

import pytest

from eval.tasks.parsing import extract_json_value, strip_code_fences


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ("```\n[1, 2]\n```\ntrailing", [1, 2]),
        ('Answer: {"a": [1]} hope it helps {"b": 2}', {"a": [1]}),
        ("bad { brace then [3]", [3]),
        ("no json", None),
        ('```json\n{"a": 1}', {"a": 1}),  # unterminated fence
    ],
)
def test_extract(text, expected):
    assert extract_json_value(text) == expected


def test_strip_fences():
    assert strip_code_fences("  plain  ") == "plain"
    assert strip_code_fences("x ```py\nbody\n``` y") == "body"


def test_bounded_on_many_brackets():
    assert extract_json_value("{" * 10_000) is None
