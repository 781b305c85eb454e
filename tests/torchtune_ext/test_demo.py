"""``make demo``'s job (``python -m torchtune_ext.demo``) end to end, small: every step runs, reruns
reuse what still matches and redo what a changed flag affects, and the named checkpoint is the one served."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from testing_utils import run_cmd

from eval.core.task import Response
from eval.tasks import get_task
from torchtune_ext.demo import format_table, loss_curve, prior_answer, reading_report

STEPS = ["-m torchtune_ext.models.make_tiny", "-m torchtune_ext.data.synth w2", "-m torchtune_ext.data.prepare_w2",
         "run torchtune_ext/recipes/full_finetune_vision.py", "-m torchtune_ext.export", "-m eval.serve"]  # fmt: skip


@pytest.mark.slow
def test_demo_runs_then_redoes_only_what_a_changed_flag_affects(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["python", "-m", "torchtune_ext.demo", "--output-dir", str(out), "--forms", "24", "--epochs", "1",
            "--eval-limit", "2", "--serve-limit", "1", "--max-new-tokens", "8", "--port", "0"]  # fmt: skip
    first = run_cmd(args, timeout=900).stdout
    assert [s for s in STEPS if s not in first] == []
    assert first.index(STEPS[0]) < first.index(STEPS[3]) < first.index(STEPS[4]) < first.index(STEPS[5])
    best = out / "tiny_full_w2" / "best"
    assert f"fine-tuned checkpoint: {best} (best validation: accuracy" in first
    step = json.loads((best / "best.json").read_text())["step"]
    table = [line.split("|")[1].strip() for line in first.splitlines() if line.startswith("| ")]
    assert table == ["model", "base tiny checkpoint", "prior only (most common training value)",
                     f"fine-tuned (best/, step {step})"]  # fmt: skip
    assert "points of normalised accuracy" in first and "What the tiny model can and cannot read" in first
    # The table's numbers are the stored evaluator-format records, re-scorable as such.
    scores = json.loads((out / "scores" / "scores.json").read_text())
    assert (out / "scores" / "fine-tuned" / "predictions.jsonl").is_file()
    assert scores["fine-tuned"]["max_new_tokens"] == 8
    # The checkpoint named is the one exported and served.
    manifest = json.loads((out / "tiny_full_w2_hf" / "export_manifest.json").read_text())
    assert Path(manifest["checkpoint_dir"]) == best
    report = json.loads((out / "eval_w2" / "report.json").read_text())
    assert report["counts"]["selected"] == report["counts"]["recorded"] == 1

    # A changed --epochs is never ignored: what it affects is redone, the rest is reused, and it says so.
    second = run_cmd([*args[:7], "--epochs", "2", *args[9:]], timeout=900).stdout
    assert "reusing the base checkpoint" in second and "reusing the 24 synthetic forms" in second
    assert "epochs 1 -> 2" in second
    assert [s for s in STEPS[:3] if s in second] == [] and all(s in second for s in STEPS[3:])
    assert (
        "epochs=2" in second
        and json.loads((out / "demo.json").read_text())["steps"]["train"]["settings"]["epochs"] == 2
    )


def test_loss_curve_reads_the_torchtune_log(tmp_path: Path) -> None:
    (tmp_path / "log_1.txt").write_text(
        "Step 1 | loss:4.0 lr:1e-4\nStep 2 | loss:2.0 lr:1e-4\nStep 2 | val/accuracy:0.1\n"
    )
    assert loss_curve(tmp_path, width=4).splitlines() == ["    1    4.000  ####", "    2    2.000  ##"]
    (tmp_path / "log_2.txt").write_text("".join(f"Step {s} | loss:{10 - s}.0\n" for s in range(2, 10)))
    assert [int(line.split()[0]) for line in loss_curve(tmp_path, max_lines=3).splitlines()] == [1, 4, 7, 9]
    with pytest.raises(FileNotFoundError, match="no training log"):
        loss_curve(tmp_path / "missing")


def test_prior_answer_is_each_fields_most_common_value(w2_data: Path) -> None:
    task = get_task("w2").from_options()
    train = task.load(w2_data / "train")
    prior = prior_answer(task, train)
    targets = [task.sample(train.row(i), i).target for i in range(len(train))]
    assert list(prior) == list(targets[0])
    for field, value in prior.items():
        counts = collections.Counter(json.dumps(t[field]) for t in targets)
        assert counts[json.dumps(value)] == max(counts.values())
    score = task.score(task.sample(train.row(0), 0), Response(status="ok", content=task.answer(prior)))
    assert score["parsed"] and score["schema_valid"]


def test_table_rows() -> None:
    m = {"json_parse_rate": 1.0, "accuracy": 0.4598, "accuracy_strict": 0.45}
    table = format_table(
        [("prior", m), ("base", {"json_parse_rate": 0.0, "accuracy": 0.0, "accuracy_strict": None})]
    )
    assert table.splitlines()[2] == "| prior |     100.0 % |                46.0 % |            45.0 % |"
    assert table.splitlines()[3].endswith("|               n/a |")


def test_a_field_counts_as_read_only_if_it_changes_with_the_form_and_beats_the_prior() -> None:
    tuned = {"state": 0.75, "wages": 0.25, "code": 0.5, "tips": 0.25, "plan": 0.5}
    prior = {"state": 0.25, "wages": 0.25, "code": 0.25, "tips": 0.5, "plan": 0.5}
    distinct = {"state": 3, "wages": 4, "code": 1, "tips": 1, "plan": 1}
    assert reading_report(tuned, prior, distinct, forms=4) == {
        "read": ["state"],
        "varies": ["wages"],
        "constant_better": ["code"],
        "constant_worse": ["tips"],
    }


def test_rerun_reuses_matching_steps_and_redoes_a_changed_one_and_all_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchtune_ext.demo import _Manifest, _reuse_or_redo

    manifest = _Manifest(tmp_path)
    done = tmp_path / "done"
    done.touch()
    for step in ("base", "data", "train", "scores"):
        manifest.record(step, {"forms": 24})
    again = _Manifest(tmp_path)  # read back from demo.json
    assert _reuse_or_redo(again, "base", {"forms": 24}, "the base", [done])
    assert "reusing the base from an earlier run" in capsys.readouterr().out
    assert not _reuse_or_redo(again, "data", {"forms": 48}, "the forms", [done])
    assert (
        "the forms: settings changed (forms 24 -> 48); redoing it and every step after it"
        in capsys.readouterr().out
    )
    assert list(_Manifest(tmp_path).steps) == ["base"]
    assert not _reuse_or_redo(_Manifest(tmp_path), "base", {"forms": 24}, "the base", [tmp_path / "missing"])
