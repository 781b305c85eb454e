"""The reply parser finds the JSON object in fenced or prose replies and never repairs one."""

import pytest

from eval.parsing import extract_json_object


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
