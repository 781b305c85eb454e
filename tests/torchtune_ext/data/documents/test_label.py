"""The teacher's checks, the remote-endpoint guard and the review merge (no server needed here)."""

import json
import shutil
from pathlib import Path

import pytest

from eval.core.task import Response, Sample
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.data.documents.label import TeacherTask, is_local_url, main
from torchtune_ext.data.documents.merge_review import main as merge_main
from torchtune_ext.data.documents.rules import load_rules


@pytest.fixture(scope="module")
def teacher(invoices: Path) -> TeacherTask:
    task = ExtractTask(invoices / "schema.json")
    return TeacherTask(task, load_rules(invoices / "rules.json", task.schema))


def _truth(invoices: Path) -> dict:
    return json.loads((invoices / "labels" / "invoice-0000.json").read_text(encoding="utf-8"))[0]


def _verdict(teacher: TeacherTask, **response: object) -> dict:
    sample = Sample(id=0, image=b"", mime="image/png", prompt="p", target={"page_id": "abc-p1"})
    return teacher.score(sample, Response(**response))


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8001/v1", True),
        ("http://127.8.9.10/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("https://api.example.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),  # another machine, even on a private network
        ("http://127.0.0.1.example.com/v1", False),
    ],
)
def test_local_urls(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_verdicts(teacher: TeacherTask, invoices: Path) -> None:
    truth = _truth(invoices)
    ok = _verdict(teacher, status="ok", content=json.dumps(truth, ensure_ascii=False), finish_reason="stop")
    assert ok["accepted"] and ok["reason"] is None and ok["label"] == truth and ok["page_id"] == "abc-p1"
    wrong_rule = {**truth, "invoice_number": "12345"}
    v = _verdict(teacher, status="ok", content=json.dumps(wrong_rule), finish_reason="stop")
    assert (
        not v["accepted"]
        and v["reason"] == "rules: invoice_number: \"12345\" does not match '^INV-[0-9]{6}$'"
    )
    assert v["label"] == wrong_rule and v["schema_valid"]
    v = _verdict(teacher, status="ok", content=json.dumps({**truth, "currency": "GBP"}), finish_reason="stop")
    assert v["reason"].startswith("schema: currency: 'GBP' is not one of") and not v["schema_valid"]
    v = _verdict(teacher, status="ok", content='{"invoice_number": "INV-0', finish_reason="length")
    assert (
        v["reason"] == "truncated at --max_tokens"
        and v["reply"] == '{"invoice_number": "INV-0'
        and v["label"] is None
    )
    v = _verdict(teacher, status="ok", content="I cannot read this page.", finish_reason="stop")
    assert v["reason"] == "no JSON object in the reply (invalid_json)"
    v = _verdict(teacher, status="http_error", error="Lookbehind is not supported yet.", http_status=400)
    assert v["reason"] == "HTTP 400: Lookbehind is not supported yet." and not v["accepted"]


def _args(pages: Path, invoices: Path, url: str, *extra: str) -> list[str]:
    return ["--pages", str(pages), "--schema", str(invoices / "schema.json"), "--rules", str(invoices / "rules.json"),
            "--server_url", url, "--model", "teacher", "--no_progress", *extra]  # fmt: skip


def test_remote_endpoint_needs_confirmation(
    invoices: Path, labelled_pages: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    pages = tmp_path / "pages"
    shutil.copytree(labelled_pages, pages)
    rows = [json.loads(x) for x in (pages / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in rows[:4]:
        del row["target"]
    (pages / "data.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    assert main(_args(pages, invoices, "https://api.example.com/v1")) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: refusing to send 4 page images to api.example.com, which is not this machine: documents are "
        "often confidential; pass --allow_remote if this endpoint may see them"
    )
    assert not (pages / "teacher").exists()  # nothing was sent or written
    # confirmed: the warning names the endpoint before anything is sent (stopped at the preflight here:
    # no request leaves this machine in a test)
    import eval.core.cli

    asked = []

    def stop(url: str, timeout: float) -> None:
        asked.append(url)
        raise eval.core.cli.CLIError(f"stopped before {url}")

    monkeypatch.setattr(eval.core.cli, "preflight", stop)
    assert main(_args(pages, invoices, "https://api.example.com/v1", "--allow_remote")) == 2
    err = capsys.readouterr().err
    assert f"warning: sending 4 page images of {pages} to https://api.example.com/v1" in err
    assert asked == ["https://api.example.com/v1"] and "error: stopped before" in err


def test_merge_review_moves_fixed_and_dropped_rows(
    invoices: Path, labelled_pages: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    pages = tmp_path / "pages"
    shutil.copytree(labelled_pages, pages)
    rows = [json.loads(x) for x in (pages / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    truth = [row.pop("target") for row in rows]
    (pages / "data.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    review = [
        {**rows[0], "target": truth[0], "reason": "rules: fixed by hand since"},  # fixed
        {**rows[1], "target": {**truth[1], "date": "soon"}, "reason": "schema: ..."},  # still wrong
        {**rows[2], "target": None, "reason": "no JSON object", "reply": "???"},  # not done yet
        {**rows[3], "target": None, "reason": "HTTP 400", "drop": True},  # not a usable page
    ]
    (pages / "review.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review))
    args = [
        "--pages",
        str(pages),
        "--schema",
        str(invoices / "schema.json"),
        "--rules",
        str(invoices / "rules.json"),
    ]
    assert merge_main(args) == 0
    assert "1 pages accepted" in capsys.readouterr().out
    reviewed = [json.loads(x) for x in (pages / "reviewed.jsonl").read_text(encoding="utf-8").splitlines()]
    assert reviewed == [{**rows[0], "target": truth[0], "labelled_by": "review"}]
    left = [json.loads(x) for x in (pages / "review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in left] == [rows[1]["id"], rows[2]["id"]]
    assert (
        left[0]["reason"].startswith("schema: date: 'soon' is not a 'date'")
        and left[1]["reason"] == "no target yet"
    )
    dropped = [json.loads(x) for x in (pages / "dropped.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in dropped] == [rows[3]["id"]]
    # the teacher asks only the two pages no file holds yet
    assert main(_args(pages, invoices, "https://api.example.com/v1")) == 2
    assert "refusing to send 2 page images" in capsys.readouterr().err
