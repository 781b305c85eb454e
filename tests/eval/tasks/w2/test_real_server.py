"""`python -m eval.w2` against a real `transformers serve` with the tiny Llama 3.2 Vision checkpoint.

The forms come from the project's W-2 generator. The random tiny model answers garbage; the
run must score it (every field wrong), not crash, and its report's counts must add up.
"""

import json
from pathlib import Path

import pytest
from testing_utils import run_cmd

from eval.tasks.w2 import FIELDS
from eval.w2 import main

pytestmark = pytest.mark.slow


def test_end_to_end_against_transformers_serve(tmp_path: Path, kit, tiny_server) -> None:
    from torchtune_ext.data.synth.w2 import make_w2

    n = 3
    forms = [make_w2(seed=0, index=i) for i in range(n)]  # rendered 612x792 forms, {"gt_parse": ...} truth
    split = kit.save_split(
        tmp_path / "w2" / "test", [gt for _, gt in forms], images=[img for img, _ in forms]
    )
    out = tmp_path / "out"
    cmd = [
        "python",
        "-m",
        "eval.w2",
        "--server_url",
        tiny_server.base_url,
        "--model",
        tiny_server.model_name,
        "--dataset",
        str(split),
        "--output_dir",
        str(out),
        "--max_tokens",
        "16",
        "--max_workers",
        "2",
        "--timeout",
        "120",
        "--no_progress",
    ]
    proc = run_cmd(cmd, timeout=300)
    assert "accuracy_strict (reference)" in proc.stdout and "w2 evaluation of" in proc.stdout

    report = json.loads((out / "report.json").read_text())
    counts, failures, metrics = report["counts"], report["failures"], report["metrics"]
    assert counts["selected"] == counts["recorded"] == counts["scored"] == n
    assert counts["ok"] + counts["request_failed"] + counts["http_error"] + counts["input_error"] == n
    assert counts["ok"] == n and report["complete"] is True
    assert metrics["documents"] == n and metrics["fields"] == n * len(FIELDS)
    parsed = round(metrics["json_parse_rate"] * n)
    assert failures["truncated"] + failures["invalid_json"] == n - parsed
    assert 0.0 <= metrics["accuracy_strict"] <= metrics["accuracy"] <= 1.0
    assert set(metrics["per_field_accuracy"]) == set(FIELDS)
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == list(range(n))
    for rec in lines:
        assert rec["usage"]["completion_tokens"] <= 16 and rec["finish_reason"] in ("stop", "length")
        assert (rec["score"]["failure"] == "truncated") == (
            not rec["score"]["parsed"] and rec["finish_reason"] == "length"
        )
    assert report["serving"]["latency_p50_s"] > 0 and report["serving"]["output_tokens"] > 0
    assert (out / "w2_per_field.png").is_file()


def test_server_400_keeps_the_servers_message(tmp_path: Path, kit, tiny_server, monkeypatch) -> None:
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)  # not checked here
    split = kit.save_split(tmp_path / "test", [kit.w2_record(0)])
    out = tmp_path / "out"
    rc = main(
        [
            "--server_url",
            tiny_server.base_url,
            "--model",
            "not-the-served-model",
            "--dataset",
            str(split),
            "--output_dir",
            str(out),
            "--max_tokens",
            "4",
            "--no_progress",
        ]
    )
    assert rc == 1
    report = json.loads((out / "report.json").read_text())
    assert report["failures"]["http_error"] == 1
    (err,) = report["http_errors"]
    assert err["http_status"] == 400
    assert (
        err["message"] == f"Server is pinned to '{tiny_server.model_name}'; requested 'not-the-served-model'."
    )
