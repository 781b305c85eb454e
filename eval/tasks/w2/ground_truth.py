"""Reading one W-2 ground truth: the one validation training and evaluation both apply.

The W-2 dataset builder (``torchtune_ext.datasets.w2_dataset``) and the evaluator
(:meth:`eval.tasks.w2.task.W2Task.sample`) call :func:`parse_ground_truth`, so a row is
trained on exactly when it is scored, and both name the same reason when it is not.

A cell is a JSON string (or an already-decoded mapping) holding the flat record, or the
hub dataset's ``{"gt_parse": {...}}``. ``gt_parse`` is unwrapped whenever it is present, as
the reference's ``evaluate.py`` does (other keys beside it are ignored). The record must
validate as :class:`~eval.tasks.w2.schema.W2Form` (pydantic's default, lax mode): every field
present, no other key, values of the field's type. The values are returned as stored, not
coerced, since scoring compares against what the dataset holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from eval.tasks.w2.schema import W2Form

__all__ = ["GroundTruthError", "parse_ground_truth"]


class GroundTruthError(ValueError):
    """A ground-truth cell is not a usable W-2 record; the message says why, naming the key.

    Messages start with what the cell is or does (``"is not valid JSON ..."``,
    ``"does not match W2Form: box_1_wages: Field required"``), for the caller to prefix with
    the column and row.
    """


def parse_ground_truth(value: Any) -> dict[str, Any]:
    """Parse and check one ground-truth cell.

    Args:
        value (Any): a JSON string, or an already-decoded mapping.

    Returns:
        dict[str, Any]: the flat record, values as stored (``"None"`` stays a string).

    Raises:
        GroundTruthError: if the cell is missing, not valid JSON, not an object, or does not
            match ``W2Form`` (a missing key, an unknown key, a value of the wrong type: the
            first one is named, and how many more there are).
    """
    if value is None:
        raise GroundTruthError("is missing")
    if isinstance(value, (str, bytes)):
        try:
            obj = json.loads(value)
        except ValueError as e:  # JSONDecodeError, or bytes that are not UTF-8
            raise GroundTruthError(f"is not valid JSON ({e})") from None
    else:
        obj = value
    if isinstance(obj, Mapping) and "gt_parse" in obj:
        obj = obj["gt_parse"]
    if not isinstance(obj, Mapping):
        raise GroundTruthError(f"is a JSON {_json_type(obj)}, not an object")
    try:
        W2Form.model_validate(obj)
    except ValidationError as e:
        errors = e.errors()
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise GroundTruthError(f"does not match W2Form: {where}: {first['msg']}{more}") from None
    return dict(obj)


def _json_type(value: Any) -> str:
    names = {list: "list", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
