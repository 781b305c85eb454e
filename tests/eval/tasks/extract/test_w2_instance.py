"""W-2 as an instance of the extract task: same schema, same prompt, same scores where the rules coincide."""

import json
import random
from pathlib import Path

import pytest

from eval.tasks.extract import load_schema, read_prompt_file
from eval.tasks.extract.from_task import main as from_task
from eval.tasks.extract.metrics import aggregate_extract, score_extract
from eval.tasks.w2 import ID_NUMBER_FIELDS, PROMPT, json_schema
from eval.tasks.w2.metrics import aggregate_w2, score_w2


def _perturb(record: dict, rng: random.Random) -> dict:
    """A reply with the kinds of differences both scorers must judge alike."""
    pred = dict(record)
    for key, value in record.items():
        roll = rng.random()
        if roll < 0.1:
            pred.pop(key)  # missing
        elif roll < 0.2 and isinstance(value, float):
            pred[key] = f"${value:,.2f}"  # money as text: normalised equal, strictly not
        elif roll < 0.3 and isinstance(value, float):
            pred[key] = value + 1  # wrong
        elif roll < 0.4 and isinstance(value, str):
            pred[key] = value.upper() if value != "None" else None  # case; "None" vs null
        elif roll < 0.5 and key in ID_NUMBER_FIELDS:
            pred[key] = value.replace("-", "")  # digits only
        elif roll < 0.55 and isinstance(value, int):
            pred[key] = float(value)  # 40000 == 40000.0
    return pred


@pytest.mark.parametrize("with_digits", [True, False])
def test_extract_scores_w2_replies_like_the_w2_task(tmp_path: Path, kit, with_digits: bool) -> None:
    compare = [f"--compare={name}=digits" for name in sorted(ID_NUMBER_FIELDS)] if with_digits else []
    assert (
        from_task(
            [
                "w2",
                "--output",
                str(tmp_path / "w2.json"),
                "--prompt-output",
                str(tmp_path / "w2.txt"),
                *compare,
            ]
        )
        == 0
    )
    schema = load_schema(tmp_path / "w2.json")
    assert schema.response_schema() == json_schema()  # what --structured sends is W2Form's schema
    assert read_prompt_file(tmp_path / "w2.txt", schema) == PROMPT
    rng = random.Random(0)
    w2_scores, extract_scores = [], []
    for i in range(40):
        gold = kit.w2_record(i)
        reply = json.dumps(_perturb(gold, rng)) if i % 10 else "not json"
        w2_scores.append(score_w2(gold, reply))
        extract_scores.append(score_extract(schema, gold, reply))
        assert extract_scores[-1]["schema_valid"] == w2_scores[-1]["schema_valid"]
    w2, ex = aggregate_w2(w2_scores), aggregate_extract(extract_scores)
    assert ex["accuracy_strict"] == w2["accuracy_strict"]
    assert {k: v["accuracy_strict"] for k, v in ex["per_path"].items()} == w2["per_field_accuracy_strict"]
    same = {k for k in w2["per_field_accuracy"] if with_digits or k not in ID_NUMBER_FIELDS}
    per_path = {k: v["accuracy"] for k, v in ex["per_path"].items()}
    assert {k: per_path[k] for k in same} == {k: w2["per_field_accuracy"][k] for k in same}
    if with_digits:
        assert ex["accuracy"] == w2["accuracy"] and ex["exact_match"] == w2["exact_match"]
    else:  # without x-compare the ID numbers compare as text: dashes then count
        assert any(per_path[k] < w2["per_field_accuracy"][k] for k in ID_NUMBER_FIELDS)
    assert (
        ex["json_parse_rate"] == w2["json_parse_rate"] and ex["schema_valid_rate"] == w2["schema_valid_rate"]
    )


def test_from_task_errors(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "s.json")
    assert from_task(["ocr", "--output", out]) == 2
    assert "unknown task 'ocr'" in capsys.readouterr().err
    assert from_task(["w2", "--output", out, "--compare", "nope=digits"]) == 2
    assert "the w2 schema has no property 'nope'" in capsys.readouterr().err
    assert from_task(["docvqa", "--output", out, "--prompt-output", str(tmp_path / "p.txt")]) == 2
    assert "has no fixed prompt" in capsys.readouterr().err
