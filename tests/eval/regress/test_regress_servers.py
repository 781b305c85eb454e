"""``eval.regress compare`` end to end against two real ``transformers serve`` servers: the tiny
Llama 3.2 Vision checkpoint and a fine-tuned copy of it (its language-model weights moved), on
the shipped offline task and a user task; the report's numbers are recomputed here from the
per-item records both runs wrote.

Also against the real server: what the workaround is for (the stock request with ``stop`` gets
HTTP 500 from ``transformers serve`` on a vision-language model), and the one-line error a
log-likelihood task gets from a server without prompt log-probabilities.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eval.regress.__main__ import main
from eval.regress.harness import SHIPPED_TASKS
from eval.serve import ServerProcess, start_server

pytestmark = pytest.mark.slow

LIMIT = 6

# A user task over the shipped arithmetic questions: is the first digit of the reply the first
# digit of the answer. A random model gets some right, so the scores vary item to item.
DIGIT_TASK = """\
task: first_digit_chat
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer[0]}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 8
filter_list:
  - name: first_digit
    filter:
      - function: regex
        regex_pattern: "([0-9])"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture(scope="module")
def tuned_server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``transformers serve`` on a copy of the tiny checkpoint whose language-model matrices moved."""
    import torch
    from safetensors.torch import load_file, save_file

    tuned = tmp_path_factory.mktemp("tuned") / "tiny-tuned"
    shutil.copytree(tiny_checkpoint, tuned)
    weights = tuned / "model-00001-of-00001.safetensors"
    state = load_file(weights)
    gen = torch.Generator().manual_seed(1)
    for name, value in state.items():
        if name.startswith("language_model.") and value.ndim == 2 and value.is_floating_point():
            noise = torch.randn(value.shape, generator=gen) * 0.5 * value.float().std()
            state[name] = (value.float() + noise).to(value.dtype)
    save_file(state, weights, metadata={"format": "pt"})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path_factory.mktemp("hf_hub_cache"))}
    log = tmp_path_factory.mktemp("tuned_server") / "server.log"
    with start_server(tuned, "transformers", startup_timeout=180, env=env, log_path=log) as server:
        yield server


def _samples(run: Path, task: str) -> dict[int, dict[str, Any]]:
    lines = (run / "samples" / f"{task}.jsonl").read_text().splitlines()
    return {rec["doc_id"]: rec for rec in map(json.loads, lines)}


def test_compare_two_served_checkpoints(
    tiny_server: ServerProcess,
    tuned_server: ServerProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "first_digit_chat.yaml").write_text(
        DIGIT_TASK.format(data=SHIPPED_TASKS / "data" / "arithmetic.jsonl")
    )
    out = tmp_path / "regress"
    rc = main([
        "compare", "--base-url", tiny_server.base_url, "--base-model", tiny_server.model_name,
        "--tuned-url", tuned_server.base_url, "--tuned-model", tuned_server.model_name,
        "--tasks", "local_arith_chat,first_digit_chat", "--include_path", str(tasks), "--limit", str(LIMIT),
        "--num_concurrent", "2", "--output_dir", str(out),
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert (
        report["base"]["model"] == tiny_server.model_name
        and report["tuned"]["model"] == tuned_server.model_name
    )
    assert report["base"]["run"] == str((out / "base").resolve()) and report["skipped"] == []
    assert [(r["task"], r["metric"], r["filter"]) for r in report["rows"]] == [
        ("local_arith_chat", "exact_match", "first_number"),
        ("first_digit_chat", "exact_match", "first_digit"),
    ]
    assert (out / "regression.png").stat().st_size > 0
    z, min_effect = report["rule"]["z"], report["rule"]["min_effect"]
    differ = 0
    for row in report["rows"]:
        task = row["task"]
        base, tuned = _samples(out / "base", task), _samples(out / "tuned", task)
        assert sorted(base) == sorted(tuned) == list(range(LIMIT))
        assert all(base[i]["prompt_hash"] == tuned[i]["prompt_hash"] for i in base)
        b = [base[i]["metrics"]["exact_match"] for i in range(LIMIT)]
        t = [tuned[i]["metrics"]["exact_match"] for i in range(LIMIT)]
        d = [y - x for x, y in zip(b, t, strict=True)]
        assert row["n"] == LIMIT and row["base"] == pytest.approx(sum(b) / LIMIT)
        assert row["tuned"] == pytest.approx(sum(t) / LIMIT)
        assert row["delta"] == pytest.approx(sum(d) / LIMIT)
        se = statistics.stdev(d) / math.sqrt(LIMIT)
        assert row["se"] == pytest.approx(se, abs=1e-12)
        unpaired = math.hypot(statistics.stdev(b), statistics.stdev(t)) / math.sqrt(LIMIT)
        assert row["se_unpaired"] == pytest.approx(unpaired, abs=1e-12)
        if abs(row["delta"]) <= z * se:
            expected = "within noise"
        elif abs(row["delta"]) < min_effect:
            expected = "within noise"
        else:
            expected = "regressed" if row["delta"] < 0 else "improved"
        assert row["verdict"] == expected
        # the run's own result is lm_eval's mean of the same per-item scores
        results = json.loads((out / "base" / "results.json").read_text())["tasks"][task]
        assert results["metrics"][f"exact_match,{row['filter']}"]["value"] == pytest.approx(row["base"])
        # each reply was cut at the task's stop string here, the server never saw one
        assert all(isinstance(rec["reply"], str) and "\n\n" not in rec["reply"] for rec in base.values())
        differ += sum(base[i]["reply"] != tuned[i]["reply"] for i in range(LIMIT))
    assert differ > 0  # two different models answered
    assert "first_digit_chat" in printed and "verdict:" in printed
    overall = {r["verdict"] for r in report["rows"]}
    assert report["verdict"] == (
        "regressed" if "regressed" in overall else "improved" if "improved" in overall else "within noise"
    )


def test_stock_stop_and_loglikelihood_fail_clearly_on_transformers_serve(
    tiny_server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    rc = main([
        "run", "--server_url", tiny_server.base_url, "--model", tiny_server.model_name,
        "--tasks", "local_arith_chat,local_knowledge_mc", "--limit", "2", "--stop", "server", "--retries", "0",
        "--output_dir", str(out),
    ])  # fmt: skip
    assert rc == 1
    status = json.loads((out / "run.json").read_text())["status"]
    # the request with `stop` (what lm_eval's local-chat-completions sends) gets HTTP 500
    assert status["local_arith_chat"].startswith("failed: ") and "500" in status["local_arith_chat"]
    assert status["local_knowledge_mc"] == (
        f"failed: log-likelihood tasks need the server's tokenizer, and {tiny_server.base_url} has no "
        "/tokenizer_info: start vLLM with --enable-tokenizer-info-endpoint (python -m eval.serve ... -- "
        "--enable-tokenizer-info-endpoint), or pass --tokenizer DIR (a local Hugging Face tokenizer)"
    )
    assert "FAILED" in capsys.readouterr().out
