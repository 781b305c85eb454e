"""The single-class detection task: one box convention, one prompt, one answer format.

Training (``torchtune_ext.datasets.detect_dataset``) and evaluation (``python -m eval.detect``)
both import from here.

**Box convention** (targets and predictions alike): integer ``[x1, y1, x2, y2]`` on a
0-1000 grid relative to the *original* image, origin at the top-left corner, ``x`` to the
right, ``y`` down; ``x1 < x2`` and ``y1 < y2``. A pixel coordinate ``p`` on an image of
width ``W`` maps to ``floor(p / W * 1000 + 0.5)``; the grid does not depend on any resize the
model's image transform does. Llama 3.2 Vision has no grounding tokens, so boxes are plain
text numbers.

**Answer**: ``{"boxes": [[x1, y1, x2, y2], ...]}`` with boxes sorted top-to-bottom then
left-to-right (:func:`target_json`); ``{"boxes": []}`` when there is no object.

**Parsing predictions** (:func:`parse_boxes`) is tolerant: the answer object, a JSON list of
boxes, a single box, a list of objects with a ``box``/``bbox``/``bbox_2d`` key or
``x1,y1,x2,y2`` keys, any of them inside code fences or prose; when the text holds no JSON at
all, bare numbers if their count is a positive multiple of 4. JSON that is not box-shaped is
unparsable (numbers are never guessed out of it). Predicted boxes are then clamped to
the grid and their corners ordered (``[x2, y2, x1, y1]`` becomes ``[x1, y1, x2, y2]``); a
box that is degenerate after that is kept (it can only be a false positive).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Optional

from eval.core.replies import extract_json_value, strip_code_fences

__all__ = [
    "GRID",
    "BOXES_KEY",
    "BOX_FORMATS",
    "DEFAULT_OBJECT",
    "Box",
    "BoxError",
    "prompt",
    "json_schema",
    "to_grid",
    "target_json",
    "parse_boxes",
]

#: Size of the coordinate grid: 1000 is the full width (x) or height (y).
GRID = 1000
#: Key of the answer object.
BOXES_KEY = "boxes"
#: How source boxes may be given: pixels, normalised to [0, 1], or already on the grid.
BOX_FORMATS: tuple[str, ...] = ("pixel", "normalized", "grid")
#: The object the synthetic data and the OpenFoodFacts importer use.
DEFAULT_OBJECT = "nutrition table"

#: One box on the grid: (x1, y1, x2, y2).
Box = tuple[int, int, int, int]
BoxFormat = Literal["pixel", "normalized", "grid"]

_PROMPT_TEMPLATE = (
    "Find every {object} in this image. "
    'Answer with JSON {{"boxes": [[x1, y1, x2, y2], ...]}}: integer corners on a 0-1000 grid '
    "(x from the left edge, y from the top edge, 1000 = full width or height). "
    'Answer {{"boxes": []}} if there is none.'
)
_BOX_KEYS = ("box", "bbox", "bbox_2d", "box_2d")
_CORNER_KEYS = ("x1", "y1", "x2", "y2")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class BoxError(ValueError):
    """A ground-truth box is malformed (wrong length, not numbers, inverted, empty)."""


def prompt(object_name: str = DEFAULT_OBJECT) -> str:
    """The one detection instruction, sent after the image.

    Args:
        object_name (str): what to find, e.g. ``"nutrition table"``.

    Returns:
        str: the prompt.
    """
    return _PROMPT_TEMPLATE.format(object=object_name)


def json_schema() -> dict[str, Any]:
    """JSON schema of the answer: ``boxes``, a list of 4-integer lists in ``[0, 1000]``.

    Returns:
        dict[str, Any]: the object schema sent in ``response_format`` by ``--structured``.
    """
    coordinate = {"type": "integer", "minimum": 0, "maximum": GRID}
    box = {"type": "array", "items": coordinate, "minItems": 4, "maxItems": 4}
    return {
        "title": "Detection",
        "type": "object",
        "properties": {BOXES_KEY: {"type": "array", "items": box}},
        "required": [BOXES_KEY],
        "additionalProperties": False,
    }


def _grid(v: float) -> int:
    return min(GRID, max(0, math.floor(v * GRID + 0.5)))


def to_grid(
    box: Sequence[float], box_format: BoxFormat, width: Optional[int] = None, height: Optional[int] = None
) -> Box:
    """Convert one ground-truth ``[x1, y1, x2, y2]`` box to the grid convention.

    Coordinates outside the image are clamped to it; rounding is half-up.

    Args:
        box (Sequence[float]): the box in ``box_format``.
        box_format (BoxFormat): ``"pixel"``, ``"normalized"`` (``[0, 1]``) or ``"grid"``.
        width (Optional[int]): original image width in pixels (``"pixel"`` only).
        height (Optional[int]): original image height in pixels (``"pixel"`` only).

    Returns:
        Box: the integer grid box.

    Raises:
        BoxError: if the box is not 4 finite numbers, is inverted or empty, or is empty
            after clamping and rounding; or if a pixel box comes without the image size.
    """
    if (
        isinstance(box, (str, bytes))
        or len(box) != 4
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
    ):
        raise BoxError(f"a box must be 4 numbers [x1, y1, x2, y2], got {box!r}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BoxError(f"box has a non-finite coordinate: {box!r}")
    if not (x1 < x2 and y1 < y2):
        raise BoxError(f"box must have x1 < x2 and y1 < y2, got {box!r}")
    if box_format == "pixel":
        if not width or not height:
            raise BoxError("pixel boxes need the image width and height")
        sx, sy = 1.0 / width, 1.0 / height
    elif box_format == "normalized":
        sx = sy = 1.0
    elif box_format == "grid":
        sx = sy = 1.0 / GRID
    else:
        raise BoxError(f"unknown box format {box_format!r}; expected one of {BOX_FORMATS}")
    out = (_grid(x1 * sx), _grid(y1 * sy), _grid(x2 * sx), _grid(y2 * sy))
    if not (out[0] < out[2] and out[1] < out[3]):
        raise BoxError(f"box {box!r} ({box_format}) is empty on the 0-{GRID} grid: {list(out)}")
    return out


def _sorted(boxes: Iterable[Box]) -> list[Box]:
    return sorted(boxes, key=lambda b: (b[1], b[0], b[3], b[2]))


def target_json(boxes: Iterable[Sequence[int]]) -> str:
    """Serialise ground-truth grid boxes as the answer the model learns.

    Args:
        boxes (Iterable[Sequence[int]]): boxes already on the grid (see :func:`to_grid`).

    Returns:
        str: ``{"boxes": [[x1, y1, x2, y2], ...]}``, boxes sorted top-to-bottom, left-to-right.

    Raises:
        BoxError: if a box is not 4 integers within the grid with ordered corners.
    """
    checked: list[Box] = []
    for b in boxes:
        if len(b) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in b):
            raise BoxError(f"a grid box must be 4 integers, got {b!r}")
        if not (0 <= b[0] < b[2] <= GRID and 0 <= b[1] < b[3] <= GRID):
            raise BoxError(f"grid box out of range or inverted: {list(b)}")
        checked.append((b[0], b[1], b[2], b[3]))
    return json.dumps({BOXES_KEY: [list(b) for b in _sorted(checked)]})


def _as_number(v: Any) -> Optional[float]:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _box_from(value: Any) -> Optional[list[float]]:
    if isinstance(value, dict):
        for key in _BOX_KEYS:
            if key in value:
                return _box_from(value[key])
        if all(k in value for k in _CORNER_KEYS):
            return _box_from([value[k] for k in _CORNER_KEYS])
        return None
    if isinstance(value, list) and len(value) == 4:
        numbers = [_as_number(v) for v in value]
        if all(n is not None for n in numbers):
            return numbers  # type: ignore[return-value]
    return None


def _boxes_from_json(value: Any) -> Optional[list[list[float]]]:
    if isinstance(value, dict):
        for key in (BOXES_KEY, *_BOX_KEYS):
            if key in value:
                inner = value[key]
                single = _box_from(inner)
                return [single] if single is not None else _boxes_from_json(inner)
        single = _box_from(value)
        return [single] if single is not None else None
    if isinstance(value, list):
        single = _box_from(value)
        if single is not None:
            return [single]
        boxes = [_box_from(item) for item in value]
        if all(b is not None for b in boxes):
            return boxes  # type: ignore[return-value]
    return None


def _clean(box: Sequence[float]) -> Box:
    x1, y1, x2, y2 = (min(GRID, max(0, math.floor(v + 0.5))) for v in box)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def parse_boxes(text: Optional[str]) -> Optional[list[Box]]:
    """Read predicted grid boxes from a model response (see the module docstring).

    Args:
        text (Optional[str]): the response content (None for a failed request).

    Returns:
        Optional[list[Box]]: boxes in the order the model gave them (clamped, corners ordered),
        ``[]`` for an explicit empty answer, or None if nothing could be read.
    """
    if text is None:
        return None
    value = extract_json_value(text)
    if value is not None:
        boxes = _boxes_from_json(value)
    else:
        numbers = [float(n) for n in _NUMBER.findall(strip_code_fences(text))]
        if not numbers or len(numbers) % 4:
            return None
        boxes = [numbers[i : i + 4] for i in range(0, len(numbers), 4)]
    return None if boxes is None else [_clean(b) for b in boxes]
