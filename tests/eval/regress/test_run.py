"""``eval.regress run`` against a scripted server: what the chat requests carry, where replies are
cut, the run directory's resume rules, and the one-line errors. (The real servers are in
test_regress_servers.py.)

The task here is a user task the way the README shows it: ``dataset_path: json`` with
``data_files``, found through ``--include_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.regress.__main__ import main

TASK_YAML = """\
task: echo_chat
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
output_type: generate_until
test_split: test
doc_to_text: "{{{{question}}}}"
doc_to_target: answer
generation_kwargs:
  until: ["\\n\\n", "STOP1", "STOP2", "STOP3", "STOP4"]
  max_gen_toks: 8
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def user_tasks(tmp_path: Path) -> Path:
    """A folder with one generate-until task over three local items."""
    data = tmp_path / "echo.jsonl"
    rows = [{"question": f"q{i}", "answer": "12"} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "echo_chat.yaml").write_text(TASK_YAML.format(data=data))
    return folder


def _run(url: str, tasks: Path, out: Path, *extra: str) -> int:
    return main(["run", "--server_url", url, "--model", "m", "--tasks", "echo_chat", "--include_path", str(tasks),
                 "--output_dir", str(out), "--retries", "0", "--num_concurrent", "2", *extra])  # fmt: skip


def _responses(out: Path) -> list:
    lines = (out / "samples" / "echo_chat.jsonl").read_text().splitlines()
    return [json.loads(line)["response"] for line in lines]


def test_stop_strings_are_applied_here_not_sent(tmp_path: Path, user_tasks: Path, kit, fault_server) -> None:
    srv = fault_server({}, {}, default=kit.ok("12 STOP4 tail\n\nmore"))
    out = tmp_path / "run"
    assert _run(srv.url, user_tasks, out) == 0
    bodies = [s.body for s in srv.seen]
    assert len(bodies) == 3 and all("stop" not in b for b in bodies)
    assert all(b["messages"] == [{"role": "user", "content": b["messages"][0]["content"]}] for b in bodies)
    assert all(b["max_tokens"] == 8 and b["temperature"] == 0 for b in bodies)
    # all five stop strings apply (lm_eval sends only the first four)
    assert _responses(out) == ["12 "] * 3
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == {"echo_chat": "done"} and run["tasks"] == {"echo_chat": ["echo_chat"]}
    assert run["identity"]["stop"] == "client" and run["identity"]["server_quantization"] is None
    assert run["identity"]["server"] == {"kind": "other", "version": None}  # no /version: not vLLM
    assert json.loads((out / "results.json").read_text())["tasks"]["echo_chat"]["endpoint"] == "chat"

    srv2 = fault_server({}, {}, default=kit.ok("12 STOP4 tail\n\nmore"))
    out2 = tmp_path / "run2"
    assert _run(srv2.url, user_tasks, out2, "--stop", "server", "--server_quantization", "fp8") == 0
    assert all(s.body["stop"] == ["\n\n", "STOP1", "STOP2", "STOP3"] for s in srv2.seen)
    assert _responses(out2) == ["12 STOP4 tail\n\nmore"] * 3  # the server is trusted to stop
    assert json.loads((out2 / "run.json").read_text())["identity"]["server_quantization"] == "fp8"


def test_resume_overwrite_and_refusals(
    tmp_path: Path, user_tasks: Path, kit, fault_server, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = fault_server({}, {}, default=kit.ok("12"))
    out = tmp_path / "run"
    assert _run(srv.url, user_tasks, out) == 0
    assert json.loads((out / "results.json").read_text())["tasks"]["echo_chat"]["metrics"][
        "exact_match,none"
    ]["value"] == 1.0  # fmt: skip
    capsys.readouterr()
    assert _run(srv.url, user_tasks, out) == 2
    assert "already holds a run (1 task(s) done); pass --resume" in capsys.readouterr().err
    sent = len(srv.seen)
    assert _run(srv.url, user_tasks, out, "--resume") == 0 and len(srv.seen) == sent  # nothing left to do
    assert _run(srv.url, user_tasks, out, "--resume", "--limit", "2") == 2
    assert "holds a different run (limit: None -> 2)" in capsys.readouterr().err
    assert _run(srv.url, user_tasks, out, "--overwrite", "--limit", "2") == 0 and len(srv.seen) == sent + 2
    assert len(_responses(out)) == 2


def test_failures_are_recorded_and_errors_are_one_line(
    tmp_path: Path, user_tasks: Path, kit, fault_server, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = fault_server({}, {}, default=kit.status(500, "Internal Server Error"))
    out = tmp_path / "run"
    assert _run(srv.url, user_tasks, out) == 1
    status = json.loads((out / "run.json").read_text())["status"]["echo_chat"]
    assert status.startswith("failed: ") and "500" in status
    assert "FAILED" in capsys.readouterr().out
    assert _run("http://127.0.0.1:9/v1", user_tasks, tmp_path / "r2") == 2
    assert "error: cannot reach the server at http://127.0.0.1:9/v1" in capsys.readouterr().err
    ok = fault_server({}, {}, default=kit.ok("12"))
    assert main(["run", "--server_url", ok.url, "--model", "m", "--tasks", "local_arith_cht",
                 "--output_dir", str(tmp_path / "r3")]) == 2  # fmt: skip
    assert "error: unknown task 'local_arith_cht'; did you mean local_arith_chat" in capsys.readouterr().err
    assert main(["run", "--server_url", ok.url, "--model", "m", "--tasks", "echo_chat",
                 "--include_path", str(tmp_path / "none"), "--output_dir", str(tmp_path / "r4")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--include_path" in err and "not a directory" in err
    assert not (tmp_path / "r3").exists() and not (tmp_path / "r4").exists()  # nothing written on bad input


def test_a_prefilled_reply_is_flagged_on_a_server_that_cannot_continue_it(
    tmp_path: Path, user_tasks: Path, kit, fault_server, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml = (user_tasks / "echo_chat.yaml").read_text().replace("task: echo_chat", "task: echo_prefill")
    (user_tasks / "echo_prefill.yaml").write_text(yaml + 'gen_prefix: "The answer is"\n')
    srv = fault_server({}, {}, default=kit.ok("12"))
    out = tmp_path / "run"
    rc = main(["run", "--server_url", srv.url, "--model", "m", "--tasks", "echo_prefill", "--limit", "1",
               "--include_path", str(user_tasks), "--output_dir", str(out)])  # fmt: skip
    assert rc == 0
    assert "warning: echo_prefill prefills the model's reply (gen_prefix)" in capsys.readouterr().out
    (seen,) = srv.seen
    assert seen.body["messages"][-1] == {"role": "assistant", "content": "The answer is"}
    assert "continue_final_message" not in seen.body  # only vLLM is asked to continue
    assert (
        json.loads((out / "results.json").read_text())["tasks"]["echo_prefill"]["prefill"] == "not continued"
    )


def test_chat_payload_per_server_kind() -> None:
    from eval.regress.harness import chat_model_class

    chat = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "The answer is"}]
    gen = {"until": ["\n\n", "a", "b", "c", "d"], "max_gen_toks": 5}
    cls = chat_model_class()
    vllm = cls(
        model="m", base_url="http://127.0.0.1:9/v1/chat/completions", send_stop=True, continue_prefill=True
    )
    payload = vllm._create_payload(chat, generate=True, gen_kwargs=dict(gen))
    assert payload["continue_final_message"] is True and payload["add_generation_prompt"] is False
    assert payload["stop"] == ["\n\n", "a", "b", "c"] and payload["max_tokens"] == 5
    plain = cls(model="m", base_url="http://127.0.0.1:9/v1/chat/completions")
    payload = plain._create_payload(chat, generate=True, gen_kwargs=dict(gen))
    assert "stop" not in payload and "continue_final_message" not in payload
    assert plain.stop_sequences(gen) == ["\n\n", "a", "b", "c", "d"] and gen["until"] == [
        "\n\n",
        "a",
        "b",
        "c",
        "d",
    ]
    payload = vllm._create_payload(chat[:1], generate=True, gen_kwargs=dict(gen))
    assert "continue_final_message" not in payload  # nothing to continue
