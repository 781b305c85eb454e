"""The reply parsers find the JSON answer (object, or any value) in fenced or prose replies and never repair one."""

import pytest

from eval.core.replies import extract_json_object, extract_json_value, strip_code_fences


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": 1}\n ', {"a": 1}),
        ('```json\n{"a": 1, "b": "x"}\n```', {"a": 1, "b": "x"}),
        ('```\n{"a": null}\n```\nDone.', {"a": None}),
        ('Here is the form: {"a": "}{", "b": {"c": 2}} -- hope it helps', {"a": "}{", "b": {"c": 2}}),
        ('Note {see below}: {"a": 1}', {"a": 1}),  # an invalid prose span is skipped
        ('{"a": "quote \\" and brace }"}', {"a": 'quote " and brace }'}),
        ('first {"a": 1} second {"a": 2}', {"a": 1}),  # the first object wins
    ],
)
def test_finds_the_object(reply: str, expected: dict) -> None:
    parsed = extract_json_object(reply)
    assert parsed.ok and parsed.error is None
    assert parsed.value == expected


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   \n", "empty"),
        ("[1, 2]", "not_object"),
        ('"just a string"', "not_object"),
        ("no json here", "invalid_json"),
        ('{"a": 1,}', "invalid_json"),  # trailing comma: not repaired
        ("{'a': 1}", "invalid_json"),  # single quotes: not repaired
        ('{"a": {"b": 1}', "invalid_json"),  # truncated: the complete inner object is not taken
        ('{"a": 1, "b": {"c": 2}, oops}', "invalid_json"),  # nested object of an invalid span is not taken
        ('```json\n{"box_1_wages": 100.0, "box_2', "invalid_json"),
    ],
)
def test_never_guesses(reply: str, error: str) -> None:
    parsed = extract_json_object(reply)
    assert not parsed.ok
    assert parsed.value is None
    assert parsed.error == error


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
def test_extract_value(text, expected):
    assert extract_json_value(text) == expected


def test_strip_fences():
    assert strip_code_fences("  plain  ") == "plain"
    assert strip_code_fences("x ```py\nbody\n``` y") == "body"


def test_many_brackets_is_cheap():
    assert extract_json_value("{" * 10_000) is None
