"""How far our ``accuracy_strict`` and the reference evaluator's accuracy can be apart, and why.

Both count a field right iff ``field in pred and pred[field] == gt[field]`` and micro-average
over all ground-truth fields, a reply that does not parse counting all of its document's
fields wrong. They differ only in how a reply is read:

* ours (:func:`eval.core.replies.extract_json_object`): the whole reply, else the first
  balanced ``{...}`` that is valid JSON; nothing is repaired;
* the reference (llama-cookbook, branch ``image-finetuning``, commit ad959117,
  ``getting-started/finetuning/vision/evaluate.py``: ``extract_json_from_response`` and
  ``clean_json_string``): the first fenced block, else the first object with at most one
  level of nesting, else first ``{`` to last ``}``; then regex repairs (trailing commas,
  unquoted keys, ``'...'`` to ``"..."``, ``: None,`` to ``null``, newlines in a value joined,
  control characters dropped) before ``json.loads``.

:func:`reference_parse` and :func:`reference_accuracy` reimplement that parse step and
metric here, for comparison only (the evaluator never repairs a reply: a repaired reply scores
fields the model never wrote correctly). The test set is synthetic W-2 ground truth
(``torchtune_ext.data.synth.w2_values``), each document answered with its own correct values
written in one reply style; so every difference between the two numbers is the parser's.

Usage::

    python benchmarks/w2_reference_parser.py [--docs 200] [--seed 0] [--json OUT] [--readme FILE]

Prints one row per reply style: our accuracy_strict, the reference's accuracy, and the gap
in points; then a mixed set where each document's style is drawn at random. ``--readme FILE``
also writes the table into FILE between its ``<!-- table:w2_reference_parser -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from readme_tables import markdown_table, publish, readme_argument  # noqa: E402  (benchmarks/ is sys.path[0])

from eval.tasks.w2.metrics import aggregate_w2, score_w2  # noqa: E402
from eval.tasks.w2.schema import target_json  # noqa: E402

# --- the reference's parse step, reimplemented (same patterns, same order) --------------------

_REF_FENCE = re.compile(r"```(?:json)?\s*([\s\S]*?)\s*```", re.DOTALL)
_REF_FLAT_OBJECT = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}", re.DOTALL)
_REF_REPAIRS: list[tuple[str, str, int]] = [
    (r"```(?:json)?\s*", "", 0),  # fence markers
    (r"\s*```", "", 0),
    (r':\s*",\s*"\s*,', ': "",', 0),  # "field": ",\n" ,
    (r':\s*"([^"]*)\n([^"]*)",', r': "\1\2",', 0),  # a newline inside a value: joined
    (r':\s*"([^"]*)\n"\s*,', r': "\1",', 0),
    (r",(\s*[}\]])", r"\1", 0),  # trailing commas
    (r"([{,]\s*)([a-zA-Z_][a-zA-Z0-9_]*)\s*:", r'\1"\2":', 0),  # unquoted keys
    (r"'([^']*)'", r'"\1"', 0),  # single quotes (also inside values: O'Brien ... Macy's)
]
_REF_NULLS: list[tuple[str, str, int]] = [
    (r":\s*None\s*,", ": null,", re.IGNORECASE),
    (r":\s*undefined\s*,", ": null,", re.IGNORECASE),
]


def _reference_clean(text: str) -> str:
    for pattern, repl, flags in _REF_REPAIRS:
        text = re.sub(pattern, repl, text, flags=flags)
    text = "".join(ch for ch in text if ord(ch) >= 32 or ch in "\t\r ")  # drops \n too
    for pattern, repl, flags in _REF_NULLS:
        text = re.sub(pattern, repl, text, flags=flags)
    return text


def reference_parse(reply: str | None) -> tuple[dict[str, Any], bool]:
    """The reference's reading of a reply: ``(object, parse_error)``.

    Args:
        reply (str | None): the model's reply.

    Returns:
        tuple[dict[str, Any], bool]: the object (``{}`` on error) and whether parsing failed.
    """
    if not reply or not reply.strip():
        return {}, True
    fence = _REF_FENCE.search(reply)
    if fence:
        candidate = fence.group(1)
    else:
        flat = _REF_FLAT_OBJECT.search(reply)
        if flat:
            candidate = flat.group(0)
        else:
            start, end = reply.find("{"), reply.rfind("}")
            if start == -1 or end == -1 or end <= start:
                return {}, True
            candidate = reply[start : end + 1]
    cleaned = _reference_clean(candidate)
    attempts: list[Callable[[str], Any]] = [
        json.loads,
        lambda s: json.loads(s.strip()),
        lambda s: json.loads(s.replace("\\\\", "\\").replace('\\"', '"')),
    ]
    for attempt in attempts:
        try:
            value = attempt(cleaned)
        except Exception:  # the reference catches everything here
            continue
        if isinstance(value, dict):
            return value, False
    return {}, True


def reference_accuracy(pairs: Sequence[tuple[dict[str, Any], str | None]]) -> float:
    """The reference's ``calculate_metrics`` accuracy over ``(ground truth, reply)`` pairs.

    Args:
        pairs (Sequence[tuple[dict[str, Any], str | None]]): flat ground truth and reply.

    Returns:
        float: correct fields / ground-truth fields.
    """
    total = correct = 0
    for gt, reply in pairs:
        pred, error = reference_parse(reply)
        total += len(gt)
        if not error:
            correct += sum(1 for k in gt if k in pred and pred[k] == gt[k])
    return correct / total if total else 0.0


def ours_strict(pairs: Sequence[tuple[dict[str, Any], str | None]]) -> float:
    """Our ``accuracy_strict`` over ``(ground truth, reply)`` pairs.

    Args:
        pairs (Sequence[tuple[dict[str, Any], str | None]]): flat ground truth and reply.

    Returns:
        float: the metric.
    """
    return aggregate_w2([score_w2(gt, reply) for gt, reply in pairs])["accuracy_strict"]


# --- the test set: correct values, written in the styles models use ----------------------------


def _pretty(gt: dict[str, Any]) -> str:
    return json.dumps(gt, indent=2, ensure_ascii=False)


def _five_wrong(gt: dict[str, Any]) -> str:
    """Compact JSON with the first five values wrong (kept to their type)."""
    wrong = {
        k: (v + 1 if isinstance(v, (int, float)) else f"{v}X") if i < 5 else v
        for i, (k, v) in enumerate(gt.items())
    }
    return target_json(wrong)


def _line_break_in_address(gt: dict[str, Any]) -> str:
    """Compact JSON with a raw line break inside the employee's street address (invalid JSON)."""
    text, street = target_json(gt), json.dumps(gt["box_e_employee_street_address"], ensure_ascii=False)
    return text.replace(street, street.replace(" ", "\n", 1))


def _with_apostrophes(gt: dict[str, Any]) -> dict[str, Any]:
    """The same form for an employee and an employer whose names hold an apostrophe."""
    return {**gt, "box_e_employee_name": "ERIN O'BRIEN", "box_c_employer_name": "MACY'S INC"}


STYLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "compact JSON (what training teaches)": target_json,
    "compact JSON, five values wrong": _five_wrong,
    "JSON in a code fence": lambda gt: f"```json\n{_pretty(gt)}\n```",
    "JSON after a sentence": lambda gt: f"Here is the extracted data:\n{target_json(gt)}",
    "indented JSON": _pretty,
    "trailing comma": lambda gt: _pretty(gt)[:-2] + ",\n}",
    "unquoted keys": lambda gt: "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in gt.items()) + "}",
    "Python dict repr": lambda gt: repr(gt),
    "raw line break inside a value": _line_break_in_address,
    "apostrophes in two names": lambda gt: target_json(_with_apostrophes(gt)),
    "cut off (max_tokens)": lambda gt: target_json(gt)[: len(target_json(gt)) // 2],
}


def ground_truths(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` synthetic W-2 records (the generator's, reproducible from ``seed``).

    Args:
        n (int): documents.
        seed (int): seed.

    Returns:
        list[dict[str, Any]]: flat ground-truth records.
    """
    import numpy as np

    from torchtune_ext.data.synth.w2_values import sample_w2

    return [sample_w2(np.random.default_rng([seed, i])).record for i in range(n)]


def compare(n: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Both metrics per reply style, and over a mix of the styles.

    Args:
        n (int): documents per style.
        seed (int): seed of the records and of the mix.

    Returns:
        list[dict[str, Any]]: ``{"style", "ours", "reference", "gap_points"}`` rows.
    """
    import random

    gts = ground_truths(n, seed)
    rows = []
    sets: dict[str, list[tuple[dict[str, Any], str]]] = {}
    for name, style in STYLES.items():
        truth = _with_apostrophes if "apostrophes" in name else (lambda gt: gt)
        sets[name] = [(truth(gt), style(gt)) for gt in gts]
    rng = random.Random(seed)
    sets["mix of all styles (random per document)"] = [sets[rng.choice(list(STYLES))][i] for i in range(n)]
    for name, pairs in sets.items():
        ours, ref = ours_strict(pairs), reference_accuracy(pairs)
        rows.append({"style": name, "ours": ours, "reference": ref, "gap_points": 100 * (ref - ours)})
    return rows


def results_table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table of :func:`compare`'s rows.

    Args:
        rows (Sequence[dict[str, Any]]): :func:`compare`'s rows.

    Returns:
        str: the table.
    """
    header = ["reply style", "ours: accuracy_strict", "reference: accuracy", "reference − ours (points)"]
    cells = [
        [r["style"], f"{100 * r['ours']:.2f} %", f"{100 * r['reference']:.2f} %", f"{r['gap_points']:+.2f}"]
        for r in rows
    ]
    return markdown_table(header, cells)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=200, help="documents per style")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    readme_argument(p, "w2_reference_parser")
    args = p.parse_args(argv)
    rows = compare(args.docs, args.seed)
    table = results_table(rows)
    print(
        f"{args.docs} synthetic W-2 documents per row; each reply holds its document's correct values, "
        "in the row's style\n"
    )
    print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    if args.readme:
        command = ["benchmarks/w2_reference_parser.py", *(sys.argv[1:] if argv is None else argv)]
        publish(args.readme, "w2_reference_parser", table, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
