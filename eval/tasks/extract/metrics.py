"""Scores of nested extraction answers against a gold object, driven by the schema.

Definitions with worked examples are in ``eval/tasks/extract/README.md``. In short:

* The gold object is cut into **leaves** (every value that is not an object or an array;
  ``null`` included), each with a path pattern: ``sender.name``, ``items[].total``,
  ``tags[]``. A leaf is correct when the prediction holds an equal value at the same place.
* **Strict** equality is raw JSON equality (``1000 == 1000.0`` counts, ``"None"`` vs ``null``
  does not), as the reference W-2 evaluation. **Normalised** equality compares
  :func:`eval.core.values.normalize_value` forms of the leaf's kind from the schema
  (:meth:`~eval.tasks.extract.schema.ExtractSchema.leaf_kind`): numbers to the cent, dates as
  dates, digits only, or text (NFKC, casefold, collapsed whitespace; ``null``, ``""`` and
  ``"None"`` all empty); ``exact`` leaves compare strictly in both.
* **Arrays** are matched order-insensitively: gold items and predicted items are paired one to
  one by :func:`~eval.tasks.extract.assignment.max_weight_assignment`, maximising the number of
  correct gold leaves; a gold item left without a partner has every leaf wrong. An item is
  **matched** when it is paired and entirely right (every leaf, and no extra items in its own
  arrays). Item precision = matched / predicted items, recall = matched / gold items.
* **Character similarity** (leaves with ``x-compare: chars``): 1 - Levenshtein distance / length
  of the longer text, on normalised text; a missing or non-text prediction scores 0.

A reply that holds no JSON object (or a failed request) scores every gold leaf wrong and has no
predicted items. Extra keys in a prediction cost nothing here; the schema-valid rate shows them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from eval.core.replies import extract_json_object
from eval.core.values import normalize_text, normalize_value
from eval.tasks.extract.assignment import max_weight_assignment
from eval.tasks.extract.edit_distance import char_similarity
from eval.tasks.extract.schema import ExtractSchema

__all__ = ["Comparison", "aggregate_extract", "compare", "leaf_equal", "score_extract"]

#: A prediction that has no value at this place.
_MISSING = object()


@dataclass
class Comparison:
    """What comparing one gold value with a prediction found.

    Attributes:
        leaves (list[tuple[str, bool]]): ``(path pattern, correct)`` per gold leaf.
        items (dict[str, list[int]]): array path -> ``[gold items, predicted items, matched]``.
        chars (list[tuple[str, float]]): ``(path pattern, similarity)`` per ``chars`` leaf.
    """

    leaves: list[tuple[str, bool]] = field(default_factory=list)
    items: dict[str, list[int]] = field(default_factory=dict)
    chars: list[tuple[str, float]] = field(default_factory=list)

    @property
    def correct(self) -> int:
        """int: correct gold leaves."""
        return sum(ok for _, ok in self.leaves)

    @property
    def exact(self) -> bool:
        """bool: every gold leaf right and every array item matched, none extra."""
        return all(ok for _, ok in self.leaves) and all(g == p == m for g, p, m in self.items.values())

    def merge(self, other: Comparison) -> None:
        """Add another comparison's counts to this one.

        Args:
            other (Comparison): e.g. the comparison of a matched item pair.
        """
        self.leaves.extend(other.leaves)
        self.chars.extend(other.chars)
        for path, counts in other.items.items():
            mine = self.items.setdefault(path, [0, 0, 0])
            for k in range(3):
                mine[k] += counts[k]


def leaf_equal(gold: Any, pred: Any, kind: str, strict: bool) -> bool:
    """Whether a predicted leaf equals the gold one.

    Args:
        gold (Any): the gold value.
        pred (Any): the predicted value.
        kind (str): the leaf's comparison kind (``text``, ``number``, ``digits``, ``date``,
            ``exact`` or ``chars``).
        strict (bool): raw equality instead of the normalised forms.

    Returns:
        bool: True when equal.
    """
    if strict or kind == "exact":
        return bool(pred == gold)
    value_kind = "text" if kind == "chars" else kind
    return normalize_value(pred, value_kind) == normalize_value(gold, value_kind)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def compare(schema: ExtractSchema, gold: Any, pred: Any, strict: bool = False) -> Comparison:
    """Compare a gold object with a prediction (rules in the module docstring).

    Args:
        schema (ExtractSchema): the task's schema (leaf kinds, item schemas).
        gold (Any): the gold object.
        pred (Any): the predicted object (anything; not an object scores every leaf wrong).
        strict (bool): raw equality instead of normalised.

    Returns:
        Comparison: leaves, item counts and character similarities.
    """
    out = Comparison()
    _compare(schema, gold, pred, schema.schema, "", strict, out)
    return out


def _compare(
    schema: ExtractSchema, gold: Any, pred: Any, node: Any, path: str, strict: bool, out: Comparison
) -> None:
    node = schema.branch(node, gold)
    if isinstance(gold, dict):
        for key, value in gold.items():
            inner = pred.get(key, _MISSING) if isinstance(pred, dict) else _MISSING
            _compare(schema, value, inner, schema.property(node, key, value), _join(path, key), strict, out)
        return
    if isinstance(gold, list):
        _compare_array(schema, gold, pred, node, path + "[]", strict, out)
        return
    kind = schema.leaf_kind(node)
    where = path or "<root>"
    out.leaves.append((where, pred is not _MISSING and leaf_equal(gold, pred, kind, strict)))
    if kind == "chars":
        similar = 0.0
        if isinstance(pred, str) and isinstance(gold, str):
            similar = char_similarity(normalize_text(gold), normalize_text(pred))
        elif pred is not _MISSING and gold is None and pred in (None, ""):
            similar = 1.0
        out.chars.append((where, similar))


def _compare_array(
    schema: ExtractSchema, gold: list[Any], pred: Any, node: Any, path: str, strict: bool, out: Comparison
) -> None:
    preds = pred if isinstance(pred, list) else []
    pairs: dict[tuple[int, int], Comparison] = {}
    for i, g in enumerate(gold):
        item_node = schema.items(node, g)
        for j, p in enumerate(preds):
            pairs[i, j] = sub = Comparison()
            _compare(schema, g, p, item_node, path, strict, sub)
    weights = [[pairs[i, j].correct for j in range(len(preds))] for i in range(len(gold))]
    assigned = dict(max_weight_assignment(weights))
    matched = 0
    for i, g in enumerate(gold):
        if i in assigned:
            sub = pairs[i, assigned[i]]
            matched += sub.exact
        else:
            sub = Comparison()
            _compare(schema, g, _MISSING, schema.items(node, g), path, strict, sub)
        out.merge(sub)
    counts = out.items.setdefault(path, [0, 0, 0])
    counts[0] += len(gold)
    counts[1] += len(preds)
    counts[2] += matched


def _tally(comparison: Comparison) -> dict[str, list[int]]:
    per_path: dict[str, list[int]] = {}
    for path, ok in comparison.leaves:
        counts = per_path.setdefault(path, [0, 0])
        counts[0] += 1
        counts[1] += ok
    return per_path


def score_extract(
    schema: ExtractSchema,
    gold: Mapping[str, Any],
    content: Optional[str],
    *,
    answered: bool = True,
    finish_reason: Optional[str] = None,
) -> dict[str, Any]:
    """Score one page.

    Args:
        schema (ExtractSchema): the task's schema.
        gold (Mapping[str, Any]): the gold object.
        content (Optional[str]): the reply text (None when there was no answer).
        answered (bool): False when the request failed.
        finish_reason (Optional[str]): ``"length"`` marks an unparsable reply as ``truncated``.

    Returns:
        dict[str, Any]: JSON-serialisable: ``parsed``, ``failure``, ``parse_error``,
        ``schema_valid``, ``schema_errors``, ``prediction``, ``leaves`` (path -> ``[n,
        correct, correct_strict]``), ``items`` (path -> ``[gold, predicted, matched,
        matched_strict]``), ``chars`` (path -> ``[n, similarity sum]``), ``exact`` and
        ``exact_strict``.
    """
    parsed = extract_json_object(content) if answered else None
    failure: Optional[str] = None
    if parsed is not None and not parsed.ok:
        failure = "truncated" if finish_reason == "length" else "invalid_json"
    pred: Any = parsed.value if parsed is not None and parsed.ok else _MISSING
    errors = schema.errors(pred) if pred is not _MISSING else []
    normal = compare(schema, gold, pred)
    strict = compare(schema, gold, pred, strict=True)
    leaves = {path: [n, ok, 0] for path, (n, ok) in _tally(normal).items()}
    for path, (_, ok) in _tally(strict).items():
        leaves[path][2] = ok
    items = {path: [*counts, strict.items[path][2]] for path, counts in normal.items.items()}
    chars: dict[str, list[float]] = {}
    for path, similar in normal.chars:
        slot = chars.setdefault(path, [0, 0.0])
        slot[0] += 1
        slot[1] += similar
    return {
        "parsed": pred is not _MISSING,
        "failure": failure,
        "parse_error": parsed.error if parsed is not None else None,
        "schema_valid": pred is not _MISSING and not errors,
        "schema_errors": errors,
        "prediction": None if pred is _MISSING else pred,
        "leaves": leaves,
        "items": items,
        "chars": chars,
        "exact": normal.exact,
        "exact_strict": strict.exact,
    }


def _rate(num: float, den: float) -> Optional[float]:
    return num / den if den else None


def _f1(precision: Optional[float], recall: Optional[float]) -> Optional[float]:
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def aggregate_extract(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate per-page scores from :func:`score_extract` (micro averages over leaves and items).

    Args:
        scores (Sequence[Mapping[str, Any]]): one score per scored page.

    Returns:
        dict[str, Any]: ``documents``, ``leaves``, ``accuracy``, ``accuracy_strict``,
        ``exact_match``, ``exact_match_strict``, ``json_parse_rate``, ``schema_valid_rate``,
        ``items`` (gold / predicted / matched), ``item_precision``, ``item_recall``,
        ``item_f1`` (and ``_strict`` variants), ``char_similarity``, ``per_path`` (path ->
        ``n``, ``accuracy``, ``accuracy_strict``), ``per_array`` (path -> counts, precision,
        recall, F1) and ``per_path_char_similarity``. Rates are None when undefined.
    """
    n_docs = len(scores)
    per_path: dict[str, list[int]] = {}
    per_array: dict[str, list[int]] = {}
    per_chars: dict[str, list[float]] = {}
    for s in scores:
        for path, counts in s["leaves"].items():
            slot = per_path.setdefault(path, [0, 0, 0])
            for k in range(3):
                slot[k] += counts[k]
        for path, counts in s["items"].items():
            slot = per_array.setdefault(path, [0, 0, 0, 0])
            for k in range(4):
                slot[k] += counts[k]
        for path, (n, total) in s["chars"].items():
            slot_c = per_chars.setdefault(path, [0, 0.0])
            slot_c[0] += n
            slot_c[1] += total
    leaves = sum(c[0] for c in per_path.values())
    gold_items = sum(c[0] for c in per_array.values())
    pred_items = sum(c[1] for c in per_array.values())
    matched = sum(c[2] for c in per_array.values())
    matched_strict = sum(c[3] for c in per_array.values())
    precision, recall = _rate(matched, pred_items), _rate(matched, gold_items)
    precision_s, recall_s = _rate(matched_strict, pred_items), _rate(matched_strict, gold_items)
    n_chars = sum(c[0] for c in per_chars.values())
    return {
        "documents": n_docs,
        "leaves": leaves,
        "accuracy": _rate(sum(c[1] for c in per_path.values()), leaves),
        "accuracy_strict": _rate(sum(c[2] for c in per_path.values()), leaves),
        "exact_match": _rate(sum(bool(s["exact"]) for s in scores), n_docs),
        "exact_match_strict": _rate(sum(bool(s["exact_strict"]) for s in scores), n_docs),
        "json_parse_rate": _rate(sum(bool(s["parsed"]) for s in scores), n_docs),
        "schema_valid_rate": _rate(sum(bool(s["schema_valid"]) for s in scores), n_docs),
        "items": {
            "gold": gold_items,
            "predicted": pred_items,
            "matched": matched,
            "matched_strict": matched_strict,
        },
        "item_precision": precision,
        "item_recall": recall,
        "item_f1": _f1(precision, recall),
        "item_precision_strict": precision_s,
        "item_recall_strict": recall_s,
        "item_f1_strict": _f1(precision_s, recall_s),
        "char_similarity": _rate(sum(c[1] for c in per_chars.values()), n_chars),
        "per_path": {
            path: {"n": n, "accuracy": ok / n, "accuracy_strict": ok_s / n}
            for path, (n, ok, ok_s) in per_path.items()
        },
        "per_array": {
            path: {
                "gold": g,
                "predicted": p,
                "matched": m,
                "precision": _rate(m, p),
                "recall": _rate(m, g),
                "f1": _f1(_rate(m, p), _rate(m, g)),
            }
            for path, (g, p, m, _) in per_array.items()
        },
        "per_path_char_similarity": {path: total / n for path, (n, total) in per_chars.items()},
    }
