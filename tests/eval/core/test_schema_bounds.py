"""The bounded schema variant: every open string/number/array bounded, the original untouched."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from eval.core.schema_bounds import bounded_json_schema
from eval.tasks import w2


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


def test_w2_schema_every_string_and_number_bounded_and_original_unchanged() -> None:
    original = w2.json_schema()
    before = copy.deepcopy(original)
    bounded = bounded_json_schema(original, max_string_chars=16, max_abs_number=1e6)
    assert original == before
    assert w2.json_schema() == before  # the seed-compatible default is not touched
    strings = numbers = 0
    for path, node in _walk(bounded):
        if node.get("type") == "string":
            strings += 1
            assert node["pattern"] == '^[^\\x00-\\x1f"\\\\]{0,16}$', path
        if node.get("type") in ("number", "integer"):
            numbers += 1
            assert (node["minimum"], node["maximum"]) == (-1e6, 1e6), path
    # 17 str + 5 Optional[str] fields; 22 float + 1 int fields.
    assert (strings, numbers) == (22, 23)
    assert bounded["properties"]["box_d_control_number"]["maximum"] == 1_000_000
    assert isinstance(bounded["properties"]["box_d_control_number"]["maximum"], int)
    assert set(bounded["required"]) == set(w2.FIELDS)
    assert bounded["additionalProperties"] is False


def test_pattern_accepts_dataset_values_and_rejects_control_characters() -> None:
    pattern = bounded_json_schema({"type": "string"}, max_string_chars=8)["pattern"]
    assert re.fullmatch(pattern, "None")
    assert re.fullmatch(pattern, "")
    assert re.fullmatch(pattern, "x")
    assert not re.fullmatch(pattern, "123456789")
    for bad in ("a\x1eb", 'a"b', "a\\b", "a\nb"):
        assert not re.fullmatch(pattern, bad), repr(bad)


def test_declared_bounds_kept_and_values_not_treated_as_schemas() -> None:
    schema = {
        "type": "object",
        "properties": {
            # property names that are also keywords must be walked as schemas
            "type": {"type": "string", "maxLength": 5, "minLength": 1},
            "enum": {"type": "string", "enum": ["a", "b"]},
            "n": {"type": "integer", "minimum": 0},
            "xs": {"type": "array", "items": {"type": "number"}, "maxItems": 3},
            "ys": {"type": "array", "items": {"$ref": "#/$defs/Y"}},
        },
        "$defs": {"Y": {"type": "object", "properties": {"s": {"type": ["string", "null"]}}}},
        "default": {"type": "string"},
    }
    out = bounded_json_schema(schema, max_string_chars=10, max_abs_number=100, max_items=7)
    props = out["properties"]
    # the declared length moves into the pattern: vLLM 0.32 refuses a pattern beside a length bound
    assert props["type"]["pattern"].endswith("{1,5}$") and not {"maxLength", "minLength"} & set(props["type"])
    assert "pattern" not in props["enum"]
    assert (props["n"]["minimum"], props["n"]["maximum"]) == (0, 100)
    assert props["xs"]["maxItems"] == 3 and props["xs"]["items"]["maximum"] == 100
    assert props["ys"]["maxItems"] == 7
    assert out["$defs"]["Y"]["properties"]["s"]["pattern"].endswith("{0,10}$")
    assert out["default"] == {"type": "string"}  # a value, left alone
    json.dumps(out)


def test_bad_bounds_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        bounded_json_schema({"type": "string"}, max_string_chars=0)


def test_long_bounds_are_chained_in_pieces_xgrammar_compiles() -> None:
    from eval.core.schema_bounds import MAX_REPEAT, string_pattern

    assert string_pattern(0, 64) == '^[^\\x00-\\x1f"\\\\]{0,64}$'
    for low, high in [(0, MAX_REPEAT + 1), (3, 300), (130, 260), (0, 0)]:
        pattern = string_pattern(low, high)
        counts = [int(n) for n in re.findall(r"\{(?:0,)?(\d+)\}", pattern)]
        assert all(n <= MAX_REPEAT for n in counts), pattern
        for n in range(high + 3):
            assert (re.fullmatch(pattern, "é" * n) is not None) == (low <= n <= high), (low, high, n)


def _longest_w2_answer(max_string_chars: int) -> dict[str, Any]:
    """A valid W-2 answer with every value as long as the bounded schema allows."""
    from eval.tasks.w2 import W2Form

    answer: dict[str, Any] = {}
    for name, field in W2Form.model_fields.items():
        if field.annotation is int:
            answer[name] = -1_000_000_000
        elif field.annotation is float:
            answer[name] = -999_999_999.999999
        else:
            answer[name] = "ü" * max_string_chars  # non-ASCII is written as is
    return answer


@pytest.mark.parametrize("chars", [16, 64])
def test_the_text_bound_covers_the_longest_valid_answer(chars: int) -> None:
    from eval.core.schema_bounds import json_text_bound

    longest = json.dumps(_longest_w2_answer(chars), ensure_ascii=False)
    bound = json_text_bound(w2.json_schema(), max_string_chars=chars)
    assert len(longest) <= bound <= len(longest) + len(w2.FIELDS)  # at most one digit per number over


def test_text_bound_by_hand() -> None:
    from eval.core.schema_bounds import json_text_bound

    enum = {"type": "object", "properties": {"label": {"type": "string", "enum": ["A", "Mercedes-Benz"]}}}
    assert json_text_bound(enum) == len('{"label": "Mercedes-Benz"}') == 26
    box = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000}, "maxItems": 4}
    boxes = {"type": "object", "properties": {"boxes": {"type": "array", "items": box, "maxItems": 2}}}
    assert json_text_bound(boxes) == len(json.dumps({"boxes": [[1000] * 4] * 2}))
    optional = {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}
    assert json_text_bound(optional) == 7
    assert json_text_bound({"type": "object"}) is None  # any keys: no bound
    assert json_text_bound({"type": "object", "properties": {"x": {}}}) is None


def test_default_token_budget_comes_from_the_task() -> None:
    from eval.core.task import UNBOUNDED_MAX_TOKENS, answer_token_budget
    from eval.tasks import get_task
    from eval.tasks.classify import LabelSet

    classify = get_task("classify")(LabelSet(("Acme", "Mercedes-Benz")))
    assert answer_token_budget(classify, 64) == 97  # ceil(1.25 * 26) + 64
    budgets = {name: answer_token_budget(get_task(name)(), 64) for name in ("w2", "detect", "docvqa")}
    assert budgets == {"w2": 3941, "detect": 2158, "docvqa": 402}
    assert all(b < UNBOUNDED_MAX_TOKENS for b in budgets.values())
    assert answer_token_budget(get_task("w2")(), 16) < budgets["w2"]  # --max_string_chars bounds it
