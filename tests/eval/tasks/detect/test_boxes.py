"""The detection task definition: grid convention, target serialisation, tolerant parsing."""

import pytest

from eval.tasks.detect import BoxError, json_schema, parse_boxes, prompt, target_json, to_grid


def test_to_grid_formats():
    assert to_grid([50, 100, 150, 300], "pixel", 200, 400) == (250, 250, 750, 750)
    assert to_grid([0.25, 0.25, 0.75, 0.75], "normalized") == (250, 250, 750, 750)
    assert to_grid([250, 250, 750, 750], "grid") == (250, 250, 750, 750)
    # half-up rounding: 1 px of 2000 = 0.5 on the grid -> 1
    assert to_grid([1, 0, 2000, 10], "pixel", 2000, 10) == (1, 0, 1000, 1000)
    # outside the image: clamped
    assert to_grid([-10, 0, 250, 500], "pixel", 200, 400) == (0, 0, 1000, 1000)


@pytest.mark.parametrize(
    "box, fmt, size, message",
    [
        ([10, 10, 5, 20], "pixel", (100, 100), "x1 < x2"),
        ([10, 10, 20], "pixel", (100, 100), "4 numbers"),
        ([0, 0, 0.1, 10], "pixel", (1000, 1000), "empty on the 0-1000 grid"),
        ([0, 0, 1, 1], "pixel", (None, None), "width and height"),
        ([0, 0, 1, 1], "polar", (None, None), "unknown box format"),
        (["0", 0, 1, 1], "normalized", (None, None), "4 numbers"),
        ([0, 0, float("nan"), 1], "normalized", (None, None), "non-finite"),
    ],
)
def test_to_grid_errors(box, fmt, size, message):
    with pytest.raises(BoxError, match=message):
        to_grid(box, fmt, *size)


def test_target_sorted_and_checked():
    assert target_json([(500, 500, 600, 600), (10, 20, 30, 40)]) == (
        '{"boxes": [[10, 20, 30, 40], [500, 500, 600, 600]]}'
    )
    assert target_json([]) == '{"boxes": []}'
    with pytest.raises(BoxError):
        target_json([(10, 20, 5, 40)])
    with pytest.raises(BoxError):
        target_json([(0, 0, 10, 1001)])


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"boxes": [[1, 2, 3, 4]]}', [(1, 2, 3, 4)]),
        ("```json\n[[1, 2, 3, 4], [5, 6, 7, 8]]\n```", [(1, 2, 3, 4), (5, 6, 7, 8)]),
        ("[1, 2, 3, 4]", [(1, 2, 3, 4)]),
        ('Here: {"bbox": [10, 20, 30, 40]} done', [(10, 20, 30, 40)]),
        ('[{"bbox_2d": [1, 2, 3, 4]}, {"x1": 5, "y1": 6, "x2": 7, "y2": 8}]', [(1, 2, 3, 4), (5, 6, 7, 8)]),
        ('{"boxes": [["1", "2", "3", "4"]]}', [(1, 2, 3, 4)]),
        ("The table is at 10, 20, 30, 40.", [(10, 20, 30, 40)]),
        ("```\n10 20 30 40\n50 60 70 80\n```", [(10, 20, 30, 40), (50, 60, 70, 80)]),
        ("[10.6, 20.4, 30, 40]", [(11, 20, 30, 40)]),
        ('{"boxes": []}', []),
        ("[]", []),
        ("[[1200, -5, 300, 400]]", [(300, 0, 1000, 400)]),  # clamped, then corners ordered
        ("[[5, 5, 5, 9]]", [(5, 5, 5, 9)]),  # degenerate kept (a false positive)
        ("no table here", None),
        ("1 2 3", None),
        ('{"boxes": [[1, 2, 3]]}', None),  # JSON that is not boxes: no number guessing
        ('{"boxes": "1, 2, 3, 4"}', None),
        ("", None),
        (None, None),
    ],
)
def test_parse_boxes(text, expected):
    assert parse_boxes(text) == expected


def test_prompt_and_schema():
    assert "nutrition table" in prompt() and "0-1000" in prompt()
    assert "logo" in prompt("logo")
    box = json_schema()["properties"]["boxes"]["items"]
    assert box["minItems"] == box["maxItems"] == 4
    assert box["items"] == {"type": "integer", "minimum": 0, "maximum": 1000}
    assert parse_boxes(target_json([(1, 2, 3, 4)])) == [(1, 2, 3, 4)]
