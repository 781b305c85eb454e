"""`eval.classify`, `eval.detect` and `eval.docvqa` end to end against `transformers serve`.

Uses the eval suite's shared ``tiny_server`` fixture (the tiny Llama 3.2 Vision checkpoint).
The random tiny model answers garbage: each run must score every row, not crash, and write
its report and task files.
"""

import json

import pytest
from testing_utils import run_cmd

from torchtune_ext.data.synth.classify import generate_classify
from torchtune_ext.data.synth.detect import generate_detect
from torchtune_ext.data.synth.docvqa import generate_docvqa

pytestmark = pytest.mark.slow


def _run(module, server, dataset, out, *extra):
    cmd = [
        "python",
        "-m",
        module,
        "--server_url",
        server.base_url,
        "--model",
        server.model_name,
        "--dataset",
        str(dataset),
        "--output_dir",
        str(out),
        "--max_tokens",
        "12",
        "--max_workers",
        "2",
        "--timeout",
        "120",
        "--no_progress",
        *extra,
    ]
    proc = run_cmd(cmd, timeout=300)
    report = json.loads((out / "report.json").read_text())
    counts = report["counts"]
    assert counts["selected"] == counts["recorded"] == counts["scored"] == counts["ok"] and report["complete"]
    for line in (out / "predictions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        assert rec["usage"]["completion_tokens"] <= 12 and rec["finish_reason"] in ("stop", "length")
    return proc.stdout, report


def test_classify(tmp_path, tiny_server):
    root = generate_classify(tmp_path / "cls", train=0, test=2, num_labels=3)
    stdout, report = _run(
        "eval.classify",
        tiny_server,
        root / "test",
        tmp_path / "out",
        "--labels",
        str(root / "labels.txt"),
        "--structured",
    )
    m = report["metrics"]
    assert m["n"] == 2 and 0 <= m["accuracy"] <= 1 and m["correct"] + m["invalid"] <= 2
    assert sum(map(sum, m["confusion"]["counts"])) == 2
    assert (tmp_path / "out" / "confusion_matrix.png").is_file() and "macro-F1" in stdout


def test_detect(tmp_path, tiny_server):
    root = generate_detect(tmp_path / "det", train=0, test=2)
    stdout, report = _run("eval.detect", tiny_server, root / "test", tmp_path / "out", "--overlays", "1")
    m = report["metrics"]
    gt = sum(len(json.loads(x)["boxes"]) for x in (root / "test" / "data.jsonl").read_text().splitlines())
    assert m["n"] == 2 and m["tp"] + m["fn"] == gt
    assert len(list((tmp_path / "out" / "overlays").iterdir())) == 1 and "F1@0.5" in stdout


def test_docvqa(tmp_path, tiny_server):
    root = generate_docvqa(tmp_path / "dv", train=0, test=1, questions_per_page=2)
    stdout, report = _run("eval.docvqa", tiny_server, root / "test", tmp_path / "out")
    m = report["metrics"]
    assert m["n"] == 2 and 0 <= m["exact_match"] <= m["anls"] <= 1 and "ANLS" in stdout
