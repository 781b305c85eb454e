"""`python -m eval.w2` end to end against the fault-injecting server.

Every run must complete, record every id, count each failure by kind, and give metrics equal
to the values counted by hand below; `--resume` must send only what is left.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testing_utils import REPO, eval_cli_args

from eval.tasks.w2 import PROMPT, W2Form, target_json
from eval.w2 import main


@pytest.fixture
def no_chart(monkeypatch):
    """Skip the matplotlib chart (about a second per run on a busy 2-core machine) where it is not checked."""
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)


def _args(url: str, split: Path, out: Path, *extra: str) -> list[str]:
    return eval_cli_args(url, split, out, *extra, retries=2, timeout=2, max_workers=4)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_every_fault_is_survived_and_scored(tmp_path: Path, kit, fault_server, capsys, monkeypatch) -> None:
    n = 10
    gts = [kit.w2_record(i) for i in range(n)]
    images = [kit.png_bytes(i) for i in range(n)]
    images[8] = b"not an image"  # an input error: recorded, not sent, not scored
    split = kit.save_split(tmp_path / "data" / "test", gts, images=images)

    doc2 = dict(gts[2])
    doc2["box_1_wages"] = f"${gts[2]['box_1_wages']:,.2f}"  # strict wrong, normalised right, schema-invalid
    doc2["box_c_employer_name"] = gts[2]["box_c_employer_name"].upper()  # strict wrong, normalised right
    doc9 = dict(gts[9])
    doc9["box_d_control_number"] = str(gts[9]["box_d_control_number"])  # strict wrong, schema-invalid
    actions = {
        0: [kit.ok(target_json(gts[0]))],
        1: [kit.status(500), kit.status(503), kit.ok("```json\n" + target_json(gts[1]) + "\n```")],
        2: [kit.status(429, "slow down", {"Retry-After": "0"}), kit.ok("Sure! " + json.dumps(doc2))],
        3: [kit.hang(6.0), kit.ok(target_json(gts[3]))],  # first attempt exceeds --timeout 2
        4: [kit.TRUNCATED, kit.ok('{"box_1_wages": 1')],  # then invalid JSON with finish_reason stop
        5: [kit.NONJSON],  # every attempt: request_failed after 1 + 2 retries
        6: [kit.status(400, "This model's maximum context length is 9000 tokens")],
        7: [kit.ok('{"box_b_employer_identification_number": "12-34', finish_reason="length")],
        9: [kit.ok(json.dumps(doc9))],
    }
    srv = fault_server({kit.b64(b): i for i, b in enumerate(images)}, actions)
    monkeypatch.setenv("EVAL_TEST_SECRET", "sk-sentinel-7f3a")
    out = tmp_path / "out"
    rc = main(_args(srv.url, split, out, "--api-key-env", "EVAL_TEST_SECRET"))
    assert rc == 1  # one request failed after retries
    assert "1 request(s) failed after retries; rerun with --resume" in capsys.readouterr().err

    records = {r["id"]: r for r in _lines(out)}
    assert sorted(records) == list(range(n))  # every id, once
    assert [records[i]["status"] for i in range(n)] == [
        "ok",
        "ok",
        "ok",
        "ok",
        "ok",
        "request_failed",
        "http_error",
        "ok",
        "input_error",
        "ok",
    ]
    assert [records[i]["attempts"] for i in (0, 1, 2, 3, 4, 5, 6)] == [1, 3, 2, 2, 2, 3, 1]
    assert records[5]["error"].startswith("response body is not JSON")
    assert records[6]["error"] == "This model's maximum context length is 9000 tokens"
    assert records[6]["http_status"] == 400
    assert records[8]["error"].startswith("row 8: column 'image': image does not decode")
    assert srv.requests_for(8) == []

    # Every request: image first, then the training prompt; seed-compatible sampling; the key from the env.
    for seen in srv.seen:
        (msg,) = seen.body["messages"]
        assert [p["type"] for p in msg["content"]] == ["image_url", "text"]
        assert msg["content"][1]["text"] == PROMPT
        assert (seen.body["temperature"], seen.body["seed"], seen.body["max_tokens"]) == (
            0.0,
            42,
            3941,
        )  # the W-2 token budget
        assert "response_format" not in seen.body
        assert seen.headers.get("authorization") == "Bearer sk-sentinel-7f3a"
    for file in out.iterdir():
        assert b"sk-sentinel-7f3a" not in file.read_bytes(), file

    report = _report(out)
    m = report["metrics"]
    # Scored: 9 documents (row 8 is an input error), 45 fields each = 405.
    assert m["documents"] == 9 and m["fields"] == 405
    # Strict right: 0:45, 1:45, 2:43, 3:45, 4:0, 5:0, 6:0, 7:0, 9:44 = 222.
    assert m["accuracy_strict"] == pytest.approx(222 / 405)
    # Normalised right: 0, 1, 2, 3, 9 fully = 225.
    assert m["accuracy"] == pytest.approx(225 / 405)
    assert m["exact_match"] == pytest.approx(5 / 9)
    assert m["exact_match_strict"] == pytest.approx(3 / 9)
    assert m["json_parse_rate"] == pytest.approx(5 / 9)
    assert m["schema_valid_rate"] == pytest.approx(3 / 9)  # 0, 1, 3
    assert m["per_field_accuracy_strict"]["box_1_wages"] == pytest.approx(4 / 9)  # 0, 1, 3, 9
    assert m["per_field_accuracy"]["box_1_wages"] == pytest.approx(5 / 9)
    assert report["failures"] == {
        "request_failed": 1,
        "http_error": 1,
        "truncated": 1,
        "invalid_json": 1,
        "schema_violation": 2,
        "input_error": 1,
    }
    assert report["counts"] == {
        "selected": 10,
        "recorded": 10,
        "missing": 0,
        "scored": 9,
        "ok": 7,
        "request_failed": 1,
        "http_error": 1,
        "input_error": 1,
    }
    assert report["http_errors"][0]["message"] == "This model's maximum context length is 9000 tokens"
    assert report["http_errors"][0]["ids"] == [6]
    assert report["serving"]["output_tokens"] == 70 and report["serving"]["answers_with_usage"] == 7
    assert report["complete"] is False
    assert report["dataset"]["rows"] == 10 and len(report["dataset"]["sha256"]) == 64
    assert report["versions"]["openai"] and report["args"]["api_key_env"] == "EVAL_TEST_SECRET"
    assert (out / "w2_per_field.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_structured_sends_the_schema(tmp_path: Path, kit, fault_server, no_chart) -> None:
    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))]})
    assert (
        main(_args(srv.url, split, tmp_path / "out", "--structured", "--seed", "-1", "--max_tokens", "64"))
        == 0
    )
    (seen,) = srv.seen
    assert seen.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "W2Form", "schema": W2Form.model_json_schema(), "strict": True},
    }
    assert "seed" not in seen.body and seen.body["max_tokens"] == 64
    assert _report(tmp_path / "out")["metrics"]["accuracy"] == 1.0


def test_resume_after_the_server_died(tmp_path: Path, kit, fault_server, no_chart) -> None:
    n = 6
    gts = [kit.w2_record(i) for i in range(n)]
    split = kit.save_split(tmp_path / "test", gts)
    ids = {kit.b64(kit.png_bytes(i)): i for i in range(n)}
    answers = {i: [kit.ok(target_json(gts[i]))] for i in range(n)}
    dying = fault_server(ids, answers, drop_after=3)  # answers 3 requests, then drops every connection
    out = tmp_path / "out"
    assert main(_args(dying.url, split, out, "--max_workers", "1", "--retries", "1")) == 1
    first = _report(out)
    assert first["counts"]["ok"] == 3 and first["counts"]["request_failed"] == 3 and not first["complete"]
    assert first["metrics"]["accuracy"] == pytest.approx(3 / 6)  # failed requests score every field wrong

    healthy = fault_server(ids, answers)
    assert main(_args(healthy.url, split, out, "--resume")) == 0
    assert sorted(s.row for s in healthy.seen) == [3, 4, 5]  # only what was left
    lines = _lines(out)
    assert len(lines) == 9 and {r["id"] for r in lines} == set(range(n))
    final = _report(out)
    assert final["complete"] is True
    assert final["metrics"]["accuracy"] == 1.0 and final["metrics"]["accuracy_strict"] == 1.0
    assert final["run"]["sent"] == 3 and final["run"]["skipped_already_done"] == 3

    # Nothing left: a further --resume sends nothing and reports the same.
    assert main(_args(healthy.url, split, out, "--resume")) == 0
    assert len(healthy.seen) == 3 and _report(out)["metrics"] == final["metrics"]


def test_limit_then_resume_the_rest(tmp_path: Path, kit, fault_server, no_chart) -> None:
    n = 5
    gts = [kit.w2_record(i) for i in range(n)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(n)}, {i: [kit.ok(target_json(gts[i]))] for i in range(n)}
    )
    out = tmp_path / "out"
    assert main(_args(srv.url, split, out, "--limit", "2")) == 0
    assert _report(out)["counts"]["selected"] == 2
    assert main(_args(srv.url, split, out, "--resume", "--limit", "-1")) == 0
    assert sorted(s.row for s in srv.seen) == [0, 1, 2, 3, 4]  # each row once
    assert _report(out)["counts"]["selected"] == 5 and _report(out)["metrics"]["exact_match"] == 1.0


def test_output_dir_is_protected(tmp_path: Path, kit, fault_server, capsys, no_chart) -> None:
    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))]})
    out = tmp_path / "out"
    assert main(_args(srv.url, split, out)) == 0
    capsys.readouterr()
    assert main(_args(srv.url, split, out)) == 2
    assert (
        "already holds 1 result(s); pass --resume to finish that run or --overwrite"
        in capsys.readouterr().err
    )
    assert main(_args(srv.url, split, out, "--resume", "--structured")) == 2
    assert "holds a different run (structured: False -> True)" in capsys.readouterr().err
    assert main(_args(srv.url, split, out, "--resume", "--overwrite")) == 2
    assert len(srv.seen) == 1
    assert main(_args(srv.url, split, out, "--overwrite")) == 0
    assert len(srv.seen) == 2 and len(_lines(out)) == 1


def test_bad_input_is_one_clear_error(tmp_path: Path, kit, capsys, no_chart) -> None:
    split = kit.save_split(tmp_path / "test", [kit.w2_record(0)])
    from eval.serve import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert main(_args(dead, split, tmp_path / "o1")) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(f"error: cannot reach the server at {dead}")
    )
    assert main(_args(dead, tmp_path / "missing", tmp_path / "o2")) == 2
    assert "error: " in capsys.readouterr().err
    assert main(_args("localhost:8001/v1", split, tmp_path / "o3")) == 2
    assert "--server_url must start with http://" in capsys.readouterr().err
    assert main(_args(dead, split, tmp_path / "o4", "--max_workers", "0")) == 2


def test_wait_for_server_waits_for_a_server_that_is_still_starting(
    tmp_path: Path, kit, fault_server, no_chart
) -> None:
    import threading

    from eval.serve import free_port
    from eval.tasks.w2 import target_json

    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    starting = threading.Timer(
        1.5,
        lambda: fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))]}, port=port),
    )
    starting.start()
    try:
        assert main(_args(url, split, tmp_path / "o", "--wait_for_server", "30")) == 0
    finally:
        starting.join()
    assert main(_args(url, split, tmp_path / "o2", "--wait_for_server", "-1")) == 2


def test_wandb_is_optional_and_logged(tmp_path: Path, kit, fault_server, monkeypatch, capsys) -> None:
    gts = [kit.w2_record(0)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server({kit.b64(kit.png_bytes(0)): 0}, {0: [kit.ok(target_json(gts[0]))]})
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    assert main(_args(srv.url, split, tmp_path / "o1", "--wandb")) == 2
    assert "--wandb needs the wandb package" in capsys.readouterr().err
    assert srv.seen == []  # refused before sending anything

    stub = tmp_path / "stub" / "wandb"
    stub.mkdir(parents=True)
    log = tmp_path / "wandb_calls.json"
    stub.joinpath("__init__.py").write_text(
        "import json\n"
        f"LOG = {str(log)!r}\n"
        "calls = []\n"
        "class Image:\n    def __init__(self, path): self.path = path\n"
        "class _Run:\n"
        "    summary = {}\n"
        "    def log(self, d): calls.append(['log', {k: getattr(v, 'path', v) for k, v in d.items()}])\n"
        "    def finish(self): json.dump(calls, open(LOG, 'w'))\n"
        "def init(**kw): calls.append(['init', kw['project'], kw['config']['model']]); return _Run()\n"
    )
    monkeypatch.delitem(sys.modules, "wandb")
    monkeypatch.syspath_prepend(str(stub.parent))
    assert main(_args(srv.url, split, tmp_path / "o2", "--wandb", "--wandb_project", "p1")) == 0
    calls = json.loads(log.read_text())
    assert calls[0] == ["init", "p1", "fault"]
    logged = calls[1][1]
    assert logged["metrics/accuracy"] == 1.0 and logged["failures/request_failed"] == 0
    assert logged["per_field_chart"].endswith("w2_per_field.png")


def test_ctrl_c_keeps_every_result_and_resume_finishes(tmp_path: Path, kit, fault_server) -> None:
    n = 5
    gts = [kit.w2_record(i) for i in range(n)]
    split = kit.save_split(tmp_path / "test", gts)
    ids = {kit.b64(kit.png_bytes(i)): i for i in range(n)}
    answers = {i: [kit.ok(target_json(gts[i]))] for i in range(n)}
    stuck = fault_server(ids, {0: answers[0], 1: answers[1], **{i: [kit.hang(60.0)] for i in range(2, n)}})
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "eval.w2",
        *_args(stuck.url, split, out, "--timeout", "120", "--max_workers", "1"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ((out / "predictions.jsonl").exists() and len(_lines(out)) >= 2 and len(stuck.seen) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # while row 2 hangs
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: 2 of 5 rows have results; rerun the same command with --resume" in stderr
    assert sorted(r["id"] for r in _lines(out)) == [0, 1]
    assert _report(out)["complete"] is False and _report(out)["run"]["interrupted"] is True

    healthy = fault_server(ids, answers)
    assert main(_args(healthy.url, split, out, "--resume")) == 0
    assert sorted(s.row for s in healthy.seen) == [2, 3, 4]
    assert sorted(r["id"] for r in _lines(out)) == list(range(n))
    assert _report(out)["metrics"]["accuracy_strict"] == 1.0


def test_an_oversized_image_is_its_rows_input_error_and_resume_works(
    tmp_path: Path, kit, fault_server, no_chart
) -> None:
    from support.images import oversized_png

    n = 4
    gts = [kit.w2_record(i) for i in range(n)]
    images = [kit.png_bytes(i) for i in range(n)]
    images[1] = oversized_png(12000)  # over the policy's limit; Pillow alone only warns
    images[2] = oversized_png(14000)  # over Pillow's own limit: DecompressionBombError
    split = kit.save_split(tmp_path / "test", gts, images=images)
    srv = fault_server(
        {kit.b64(b): i for i, b in enumerate(images)}, {i: [kit.ok(target_json(gts[i]))] for i in range(n)}
    )
    out = tmp_path / "out"
    assert main(_args(srv.url, split, out)) == 0
    records = {r["id"]: r for r in _lines(out)}
    assert [records[i]["status"] for i in range(n)] == ["ok", "input_error", "input_error", "ok"]
    assert records[1]["error"] == (
        "row 1: column 'image': image is too large: 12000x12000 = 144,000,000 pixels, over the limit of 89,478,485"
    )
    assert records[2]["error"].startswith("row 2: column 'image': image is too large: 196,000,000 pixels")
    assert sorted(s.row for s in srv.seen) == [0, 3]  # never sent
    report = _report(out)
    assert report["counts"]["input_error"] == 2 and report["metrics"]["documents"] == 2
    assert report["metrics"]["accuracy"] == 1.0 and report["complete"] is True
    assert [e["ids"] for e in report["input_errors"]] == [[1], [2]]
    assert main(_args(srv.url, split, out, "--resume")) == 0  # the same rows are final: nothing to send
    assert len(srv.seen) == 2 and _report(out)["metrics"] == report["metrics"]


def test_a_second_evaluator_on_the_same_output_dir_is_refused(
    tmp_path: Path, kit, fault_server, capsys
) -> None:
    """The directory is locked while a run is in it; the lock does not outlive a killed run."""
    n = 3
    gts = [kit.w2_record(i) for i in range(n)]
    split = kit.save_split(tmp_path / "test", gts)
    ids = {kit.b64(kit.png_bytes(i)): i for i in range(n)}
    answers = {i: [kit.ok(target_json(gts[i]))] for i in range(n)}
    stuck = fault_server(ids, {0: answers[0], **{i: [kit.hang(60.0)] for i in range(1, n)}})
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "eval.w2",
        *_args(stuck.url, split, out, "--timeout", "120", "--max_workers", "1"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len(stuck.seen) < 2:  # row 0 answered, row 1 hanging
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.1)
        for extra in ((), ("--resume",), ("--overwrite",)):
            assert main(_args(stuck.url, split, out, *extra)) == 2
            err = capsys.readouterr().err
            assert err == (
                f"error: {out} is in use by another evaluator (pid {first.pid}); "
                "wait for it to finish, or use another --output_dir\n"
            )
        assert len(stuck.seen) == 2  # the refused runs sent nothing
        assert [r["id"] for r in _lines(out)] == [0]  # and --overwrite deleted nothing
        first.kill()  # SIGKILL: no cleanup runs
        first.communicate(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    healthy = fault_server(ids, answers)
    assert main(_args(healthy.url, split, out, "--resume")) == 0
    assert sorted(s.row for s in healthy.seen) == [1, 2]


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path: Path, kit, capsys) -> None:
    split = kit.save_split(tmp_path / "test", [kit.w2_record(0)])
    taken = tmp_path / "results.txt"
    taken.write_text("not a directory")
    assert main(_args("http://127.0.0.1:9/v1", split, taken)) == 2
    assert capsys.readouterr().err == f"error: --output_dir {taken} is a file, not a directory\n"
    assert main(_args("http://127.0.0.1:9/v1", split, taken / "sub")) == 2
    assert (
        capsys.readouterr().err
        == f"error: --output_dir {taken / 'sub'}: cannot create it ({taken} is a file)\n"
    )
    assert taken.read_text() == "not a directory"


def test_credentials_in_the_server_url_are_never_printed_or_written(
    tmp_path: Path, kit, fault_server, capsys
) -> None:
    gts = [kit.w2_record(i) for i in range(2)]
    split = kit.save_split(tmp_path / "test", gts)
    srv = fault_server(
        {kit.b64(kit.png_bytes(i)): i for i in range(2)},
        {0: [kit.ok(target_json(gts[0]))], 1: [kit.DROP]},  # row 1: a connection error, recorded
    )
    secret = "s3cr3t-Pa55"
    url = srv.url.replace("http://", f"http://alice:{secret}@")
    out = tmp_path / "out"
    assert main(_args(url, split, out)) == 1
    printed = capsys.readouterr()
    assert main(_args(url.removesuffix("/v1"), split, tmp_path / "o2")) == 1  # warns about the missing /v1
    printed2 = capsys.readouterr()
    dead = f"http://alice:{secret}@127.0.0.1:9/v1"
    assert main(_args(dead, split, tmp_path / "o3")) == 2
    printed3 = capsys.readouterr()
    assert "cannot reach the server at http://alice:***@127.0.0.1:9/v1" in printed3.err
    assert "does not end in /v1" in printed2.err and "alice:***@" in printed2.err
    for text in (printed.out, printed.err, printed2.out, printed2.err, printed3.out, printed3.err):
        assert secret not in text
    for file in [*out.iterdir(), *(tmp_path / "o2").iterdir()]:
        assert secret.encode() not in file.read_bytes(), file
    report = _report(out)
    assert report["args"]["server_url"] == srv.url.replace("http://", "http://alice:***@")
    assert report["counts"]["request_failed"] == 1  # the URL with credentials worked
