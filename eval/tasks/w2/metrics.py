"""W-2 extraction metrics: the reference's strict accuracy and a normalised accuracy.

Per document, :func:`score_w2` compares the predicted object with the ground truth, field by
field over the ground truth's keys; :func:`aggregate_w2` turns the per-document scores into
the report's metrics.

* ``accuracy_strict`` is the llama-cookbook ``evaluate.py`` number: a field is correct iff
  ``field in pred and pred[field] == gt[field]`` (raw Python equality, so ``1000 == 1000.0``
  counts and ``"None"`` vs ``null`` does not); a reply that does not parse, a truncated reply
  and a failed request count every field of that document wrong. Micro-averaged:
  Σ correct fields / Σ ground-truth fields over all documents. Comparable with the published
  58 / 72 / 98 %.
* ``accuracy`` is the same micro average with each value normalised first
  (:func:`eval.core.values.normalize_value`), formatting forgiven but never content: money as
  Decimal to the cent, with ``$`` and well-formed thousands grouping accepted (``"12,34"`` is
  not 1234); the control number as the digits written (``"12345"`` = 12345, but the leading
  zeros of ``"0012345"`` count: the dataset stores it as a JSON integer, so a prediction with
  leading zeros is wrong, as in ``accuracy_strict``); SSN and EIN as their digits when written
  in their layout (``123-45-6789``, ``12-3456789``, with hyphens, spaces or none:
  ``"123-456-789"`` is not an EIN); everything else as text (NFKC, casefold, collapsed
  whitespace); and ``"None"``, ``null`` and ``""`` all equal. A key missing from the prediction
  is wrong.
* ``per_field_accuracy`` / ``per_field_accuracy_strict``: the same per field, over all scored
  documents (the reference averaged per field over parsed documents only).
* ``exact_match`` / ``exact_match_strict``: the share of documents with every field correct.
* ``json_parse_rate``: share of documents whose reply held a JSON object
  (:func:`eval.core.replies.extract_json_object`: code fences and prose tolerated, nothing repaired).
* ``schema_valid_rate``: share of documents whose object validates as
  :class:`eval.tasks.w2.W2Form` in pydantic strict mode (all fields, right types, no extras).

Documents whose dataset row is unusable (an input error) are not scored; the report counts them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from pydantic import ValidationError

from eval.core.replies import extract_json_object
from eval.core.values import normalize_value
from eval.tasks.w2.schema import ID_LAYOUTS, INT_FIELDS, MONEY_FIELDS, W2Form

__all__ = ["field_kind", "values_match", "schema_error", "score_w2", "aggregate_w2"]


def field_kind(field: str) -> str:
    """Normalisation kind of a W-2 field.

    Args:
        field (str): a field name.

    Returns:
        str: ``"number"`` for amounts, ``"integer"`` for the control number, ``"identifier"``
        for SSN/EIN, else ``"text"`` (see :func:`eval.core.values.normalize_value`).
    """
    if field in MONEY_FIELDS:
        return "number"
    if field in INT_FIELDS:
        return "integer"
    if field in ID_LAYOUTS:
        return "identifier"
    return "text"


def values_match(field: str, pred: Any, gt: Any) -> bool:
    """Whether a predicted value equals the ground truth after normalisation.

    Args:
        field (str): the field name (picks the normalisation).
        pred (Any): predicted JSON value.
        gt (Any): ground-truth JSON value.

    Returns:
        bool: True if both normalise to the same value.
    """
    kind, layout = field_kind(field), ID_LAYOUTS.get(field)
    return normalize_value(pred, kind, layout) == normalize_value(gt, kind, layout)


def schema_error(prediction: Mapping[str, Any]) -> Optional[str]:
    """Validate a prediction against :class:`W2Form` in strict mode.

    Args:
        prediction (Mapping[str, Any]): the parsed object.

    Returns:
        Optional[str]: None if valid, else a one-line summary of the first errors.
    """
    try:
        W2Form.model_validate(dict(prediction), strict=True)
    except ValidationError as exc:
        errors = exc.errors()
        shown = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return f"{len(errors)} schema error(s): {shown}{more}"
    return None


def score_w2(
    ground_truth: Mapping[str, Any],
    content: Optional[str],
    *,
    answered: bool = True,
    finish_reason: Optional[str] = None,
) -> dict[str, Any]:
    """Score one document.

    Args:
        ground_truth (Mapping[str, Any]): the flat ground-truth record.
        content (Optional[str]): the model's reply text (None when there was no answer).
        answered (bool): False when the request failed (no reply to parse).
        finish_reason (Optional[str]): the choice's ``finish_reason``; ``"length"`` marks a
            reply that does not parse as ``truncated`` instead of ``invalid_json``.

    Returns:
        dict[str, Any]: JSON-serialisable score with ``parsed``, ``failure`` (None,
        ``"truncated"`` or ``"invalid_json"``; None also when there was no answer),
        ``parse_error``, ``schema_valid``, ``schema_error``, ``prediction``, ``ground_truth``,
        ``n_fields``, ``wrong`` and ``wrong_strict`` (lists of wrong field names).
    """
    gt = dict(ground_truth)
    fields = list(gt)
    parsed = extract_json_object(content) if answered else None
    failure: Optional[str] = None
    if parsed is not None and not parsed.ok:
        failure = "truncated" if finish_reason == "length" else "invalid_json"
    pred = parsed.value if parsed is not None and parsed.ok else None
    if pred is None:
        wrong = list(fields)
        wrong_strict = list(fields)
        schema_err: Optional[str] = None
    else:
        wrong = [k for k in fields if k not in pred or not values_match(k, pred[k], gt[k])]
        wrong_strict = [k for k in fields if not (k in pred and pred[k] == gt[k])]
        schema_err = schema_error(pred)
    return {
        "parsed": pred is not None,
        "failure": failure,
        "parse_error": parsed.error if parsed is not None else None,
        "schema_valid": pred is not None and schema_err is None,
        "schema_error": schema_err,
        "prediction": pred,
        "ground_truth": gt,
        "n_fields": len(fields),
        "wrong": wrong,
        "wrong_strict": wrong_strict,
    }


def aggregate_w2(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-document scores from :func:`score_w2`.

    Args:
        scores (Sequence[Mapping[str, Any]]): one score per scored document.

    Returns:
        dict[str, Any]: ``documents``, ``fields``, ``accuracy``, ``accuracy_strict``,
        ``exact_match``, ``exact_match_strict``, ``json_parse_rate``, ``schema_valid_rate``,
        ``per_field_accuracy`` and ``per_field_accuracy_strict`` (rates are None with no documents).
    """
    n_docs = len(scores)
    total = correct = correct_strict = 0
    exact = exact_strict = parsed = valid = 0
    seen: dict[str, int] = {}
    right: dict[str, int] = {}
    right_strict: dict[str, int] = {}
    for s in scores:
        wrong = set(s["wrong"])
        wrong_strict = set(s["wrong_strict"])
        fields = list(s["ground_truth"])
        total += len(fields)
        correct += len(fields) - len(wrong)
        correct_strict += len(fields) - len(wrong_strict)
        exact += not wrong
        exact_strict += not wrong_strict
        parsed += bool(s["parsed"])
        valid += bool(s["schema_valid"])
        for k in fields:
            seen[k] = seen.get(k, 0) + 1
            right[k] = right.get(k, 0) + (k not in wrong)
            right_strict[k] = right_strict.get(k, 0) + (k not in wrong_strict)

    def rate(num: int, den: int) -> Optional[float]:
        return num / den if den else None

    return {
        "documents": n_docs,
        "fields": total,
        "accuracy": rate(correct, total),
        "accuracy_strict": rate(correct_strict, total),
        "exact_match": rate(exact, n_docs),
        "exact_match_strict": rate(exact_strict, n_docs),
        "json_parse_rate": rate(parsed, n_docs),
        "schema_valid_rate": rate(valid, n_docs),
        "per_field_accuracy": {k: right[k] / seen[k] for k in seen},
        "per_field_accuracy_strict": {k: right_strict[k] / seen[k] for k in seen},
    }
