"""``compare`` on saved run directories: pairing, pooling, refusals and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from eval.regress.__main__ import main
from eval.regress.compare import CompareError, compare_runs, format_report
from eval.regress.runs import RunError, load_run, samples_path, write_samples
from eval.regress.stats import REGRESSED, WITHIN_NOISE, Rule

BASE = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
TUNED = [1, 0, 0, 1, 0, 0, 0, 1, 1, 0]


def write_run(
    root: Path,
    model: str,
    tasks: dict[str, dict[str, list[float]]],
    *,
    aggregation: str = "mean",
    prompt: str = "p",
    unfinished: tuple[str, ...] = (),
    extra_metric: Optional[str] = None,
    groups: tuple[str, ...] = (),
    filters: Optional[dict[str, str]] = None,
) -> Path:
    """A run directory as ``eval.regress run`` writes it: spec → {leaf: per-item exact_match}."""
    root.mkdir(parents=True)
    results: dict[str, Any] = {}
    status: dict[str, str] = {}
    for leaves in tasks.values():
        for leaf, scores in leaves.items():
            if leaf in unfinished:
                status[leaf] = "failed: HTTPError: 500"
                continue
            status[leaf] = "done"
            filt = (filters or {}).get(leaf, "strict")
            metrics = {
                f"exact_match,{filt}": {
                    "metric": "exact_match", "filter": filt, "value": sum(scores) / len(scores),
                    "stderr": None, "aggregation": aggregation, "higher_is_better": True,
                }
            }  # fmt: skip
            if extra_metric:
                metrics[f"{extra_metric},none"] = {
                    "metric": extra_metric, "filter": "none", "value": 1.0, "stderr": None,
                    "aggregation": "bleu", "higher_is_better": True,
                }  # fmt: skip
            results[leaf] = {"output_type": "generate_until", "n": len(scores), "metrics": metrics}
            write_samples(
                samples_path(root, leaf),
                [
                    {"doc_id": i, "filter": filt, "prompt_hash": f"{prompt}{leaf}{i}", "target": "x",
                     "response": "y", "metrics": {"exact_match": s}}
                    for i, s in enumerate(scores)
                ],
            )  # fmt: skip
    identity = {"model": model, "server_url": "http://127.0.0.1:1/v1", "tasks": list(tasks), "limit": None}
    meta = {"identity": identity, "tasks": {k: list(v) for k, v in tasks.items()}, "groups": list(groups),
            "status": status}  # fmt: skip
    (root / "run.json").write_text(json.dumps(meta))
    (root / "results.json").write_text(json.dumps({"tasks": results}))
    return root


def test_rows_pair_items_pool_groups_and_split_tags(tmp_path: Path) -> None:
    base_tasks = {
        "arith": {"arith": BASE},
        "grp": {"g1": [1, 1, 0], "g2": [0, 1]},
        "tag": {"x": [1, 0], "y": [1]},
    }
    tuned_tasks = {
        "arith": {"arith": TUNED},
        "grp": {"g1": [1, 0, 0], "g2": [0, 1]},
        "tag": {"x": [1, 1], "y": [0]},
    }
    base = write_run(tmp_path / "b", "base", base_tasks, groups=("grp",))
    tuned = write_run(tmp_path / "t", "ft", tuned_tasks, groups=("grp",))
    report = compare_runs(load_run(base), load_run(tuned), Rule())
    arith, grp, x, y = report["rows"]
    # a tag is its tasks, one row each
    assert (x["task"], x["requested"], x["n"], x["delta"]) == ("x", "tag", 2, 0.5)
    assert (y["task"], y["n"], y["delta"], y["se"]) == ("y", 1, -1.0, None)
    assert (arith["task"], arith["metric"], arith["filter"], arith["n"]) == (
        "arith",
        "exact_match",
        "strict",
        10,
    )
    assert arith["delta"] == pytest.approx(-0.3) and arith["verdict"] == REGRESSED and arith["scale"] == 100
    # the group pools its 5 items: base 3/5, tuned 2/5, one item lost
    assert (grp["tasks"], grp["n"], grp["base"], grp["tuned"]) == (["g1", "g2"], 5, 0.6, 0.4)
    assert grp["se"] == pytest.approx((0.2 * 0.8 * 5 / 4) ** 0.5 / 5**0.5)  # sd of [0,-1,0,0,0]
    assert grp["verdict"] == WITHIN_NOISE
    assert report["verdict"] == REGRESSED and report["counts"] == {
        "regressed": 1,
        "within noise": 3,
        "improved": 0,
    }
    assert report["base"]["model"] == "base" and report["tuned"]["model"] == "ft"
    table = format_report(report)
    assert "REGRESSED" in table and "-30.00" in table and "verdict: REGRESSED" in table


def test_items_only_one_run_scored_are_left_out(tmp_path: Path) -> None:
    base = write_run(tmp_path / "b", "base", {"arith": {"arith": BASE}})
    tuned = write_run(tmp_path / "t", "ft", {"arith": {"arith": TUNED[:6]}})  # another --limit
    (row,) = compare_runs(load_run(base), load_run(tuned), Rule())["rows"]
    assert (row["n"], row["n_base"], row["n_tuned"]) == (6, 10, 6)
    assert row["base"] == pytest.approx(sum(BASE[:6]) / 6) and row["delta"] == pytest.approx(-2 / 6)


def test_refusals_and_skips(tmp_path: Path) -> None:
    base = load_run(
        write_run(tmp_path / "b", "base", {"a": {"a": BASE}, "c": {"c": BASE}}, extra_metric="bleu")
    )
    other_prompts = load_run(write_run(tmp_path / "p", "ft", {"a": {"a": TUNED}}, prompt="q"))
    with pytest.raises(CompareError, match="a item 0: the two runs sent different prompts"):
        compare_runs(base, other_prompts, Rule())
    regrouped = load_run(write_run(tmp_path / "g", "ft", {"a": {"a": TUNED, "a2": TUNED}}))
    with pytest.raises(CompareError, match="a: the runs expanded it to different tasks"):
        compare_runs(base, regrouped, Rule())
    failed = load_run(
        write_run(tmp_path / "f", "ft", {"a": {"a": TUNED}, "c": {"c": TUNED}}, unfinished=("c",))
    )
    report = compare_runs(base, failed, Rule())
    assert [r["task"] for r in report["rows"]] == ["a"]
    assert {"task": "c", "reason": "c did not finish in the fine-tuned run"} in report["skipped"]
    assert {"task": "a", "reason": "metric bleu,none is not aggregated by a mean (no paired comparison)"} in (
        report["skipped"]
    )
    assert compare_runs(base, failed, Rule(), tasks=["zz", "a"])["skipped"][0] == {
        "task": "zz",
        "reason": "not in the base run",
    }
    with pytest.raises(CompareError, match="nothing to compare"):
        compare_runs(base, failed, Rule(), tasks=["c"])
    mixed = {"g": {"g1": [1, 0], "g2": [0, 1]}, "a": {"a": BASE}}
    mixed_b = load_run(write_run(tmp_path / "mb", "b", mixed, groups=("g",), filters={"g2": "loose"}))
    mixed_t = load_run(write_run(tmp_path / "mt", "t", mixed, groups=("g",), filters={"g2": "loose"}))
    report = compare_runs(mixed_b, mixed_t, Rule())
    assert [r["task"] for r in report["rows"]] == ["a"]
    assert {"task": "g", "reason": "its tasks share no metric aggregated by a mean"} in report["skipped"]
    with pytest.raises(RunError, match="not a directory"):
        load_run(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{")
    with pytest.raises(RunError, match=r"run\.json: not valid JSON"):
        load_run(tmp_path / "bad")


def test_cli_compare_saved_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_run(tmp_path / "b", "base", {"arith": {"arith": BASE}})
    tuned = write_run(tmp_path / "t", "ft", {"arith": {"arith": TUNED}})
    out = tmp_path / "out"
    assert main(["compare", "--base", str(base), "--tuned", str(tuned), "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verdict: REGRESSED" in printed and f"report: {out / 'report.json'}" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["rule"]["z"] == 1.96 and report["rule"]["min_effect"] == 0.01
    assert report["files"] == {"report": "report.json", "plot": "regression.png"}
    assert (out / "regression.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    args = ["compare", "--base", str(base), "--tuned", str(tuned), "--output_dir", str(out)]
    assert main([*args, "--fail-on-regression"]) == 1
    assert main([*args, "--fail-on-regression", "--z", "2"]) == 0  # within noise at z = 2
    capsys.readouterr()
    assert main(["compare", "--base", str(base), "--base-url", "http://h/v1", "--tuned", str(tuned)]) == 2
    assert "give either --base RUN_DIR or --base-url URL" in capsys.readouterr().err
    assert main(["compare", "--base", str(base), "--tuned-url", "http://h/v1"]) == 2
    assert "--tuned-url needs --tuned-model" in capsys.readouterr().err
    assert main(["compare", "--base", str(tmp_path / "nope"), "--tuned", str(tuned)]) == 2
    assert "not a directory" in capsys.readouterr().err
