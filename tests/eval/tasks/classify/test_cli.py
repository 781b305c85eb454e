"""`python -m eval.classify` on the shared runner, against the fault-injecting server.

Answers are scripted per image; the metrics must equal the values counted by hand below.
"""

import csv
import json
import math
import re

import pytest
from testing_utils import eval_cli_args

from eval.classify import main
from eval.tasks.classify import prompt
from torchtune_ext.data.synth.classify import generate_classify


@pytest.fixture
def cls_data(tmp_path):
    # 4 test images, labels Acme, Borealis, Acme, Borealis (labels.txt: "Acme | ACME Corp", "Borealis")
    return generate_classify(tmp_path / "cls", train=0, test=4, num_labels=2)


def _payloads(kit, root):
    rows = [json.loads(x) for x in (root / "test" / "data.jsonl").read_text().splitlines()]
    return {kit.b64((root / "test" / r["image"]).read_bytes()): i for i, r in enumerate(rows)}


def _args(url, root, out, *extra):
    labels = ("--labels", str(root / "labels.txt"))
    return eval_cli_args(url, root / "test", out, *labels, *extra, retries=2, timeout=5, max_workers=2)


def test_metrics_files_and_structured_request(tmp_path, kit, fault_server, cls_data, capsys):
    srv = fault_server(
        _payloads(kit, cls_data),
        {
            0: [kit.ok('{"label": "Acme"}')],  # correct
            1: [kit.ok('```json\n{"label": "borealis"}\n```')],  # correct after canonicalisation
            2: [kit.ok("I think it is Borealis")],  # invalid: a sentence is never guessed
            3: [kit.status(503), kit.ok('{"label": "ACME Corp"}')],  # retried; alias of Acme: wrong
        },
    )
    out = tmp_path / "out"
    assert main(_args(srv.url, cls_data, out, "--structured")) == 0
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["invalid_rate"] == pytest.approx(1 / 4)
    # Acme: predicted for rows 0, 3 -> P 1/2; true rows 0, 2 -> R 1/2; F1 1/2.
    # Borealis: predicted row 1 -> P 1; true rows 1, 3 -> R 1/2; F1 2/3.
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["confusion"]["counts"] == [[1, 0, 1], [1, 1, 0]]
    rows = list(csv.reader((out / "confusion_matrix.csv").open()))
    assert rows == [
        ["true\\pred", "Acme", "Borealis", "invalid"],
        ["Acme", "1", "0", "1"],
        ["Borealis", "1", "1", "0"],
    ]
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert report["files"]["confusion_csv"] == "confusion_matrix.csv"
    assert report["counts"]["ok"] == 4 and len(srv.requests_for(3)) == 2
    body = srv.requests_for(0)[0].body
    content = body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image_url", "text"]  # image first, as in training
    assert content[1]["text"] == prompt(["Acme", "Borealis"])
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["Acme", "Borealis"]
    assert "accuracy" in capsys.readouterr().out
    # The token budget is the longest valid answer, {"label": "Borealis"}, with margin; not 8192.
    assert body["max_tokens"] == 91 == math.ceil(1.25 * len('{"label": "Borealis"}')) + 64
    assert report["args"]["max_tokens"] == 91


def test_progress_line_says_what_is_slow(tmp_path, kit, fault_server, cls_data, capsys):
    srv = fault_server(
        _payloads(kit, cls_data),
        {0: [kit.ok('{"label": "Acme"}', tokens=12, delay=0.2)]},
        default=kit.ok("Acme " * 20, finish_reason="length", tokens=91, delay=0.2),
    )
    args = [a for a in _args(srv.url, cls_data, tmp_path / "out") if a != "--no_progress"]
    assert main([*args, "--max_workers", "1"]) == 0
    line = capsys.readouterr().err.strip().split("\r")[-1]
    found = re.search(r"(\d+\.\d) s/answer, (\d+\.\d) tok/s, (\d+) tok/answer of max 91, 3 cut at max", line)
    assert found, line
    assert int(found.group(3)) == round((12 + 3 * 91) / 4)  # 71
    assert 0.2 <= float(found.group(1)) < 5 and 20 < float(found.group(2)) < 500


def test_resume_keeps_results_and_sends_nothing_new(tmp_path, kit, fault_server, cls_data, monkeypatch):
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)
    srv = fault_server(_payloads(kit, cls_data), {}, default=kit.ok('{"label": "Acme"}'))
    out = tmp_path / "out"
    assert main(_args(srv.url, cls_data, out, "--limit", "2")) == 0
    assert main(_args(srv.url, cls_data, out, "--resume")) == 0  # only rows 2 and 3 are sent
    assert len(srv.seen) == 4
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["accuracy"] == 0.5 and report["counts"]["recorded"] == 4


def test_bad_input_is_one_line_error(tmp_path, cls_data, capsys):
    assert (
        main(_args("http://127.0.0.1:9/v1", cls_data, tmp_path / "o", "--labels", str(tmp_path / "none.txt")))
        == 2
    )
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "two.txt").write_text("Acme\n")  # Borealis rows are not in this label set
    assert (
        main(_args("http://127.0.0.1:9/v1", cls_data, tmp_path / "o", "--labels", str(tmp_path / "two.txt")))
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "data.jsonl:2: label 'Borealis' is not in the label set" in err


def test_resume_refuses_another_label_set(tmp_path, kit, fault_server, cls_data, capsys, monkeypatch):
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)
    srv = fault_server(_payloads(kit, cls_data), {}, default=kit.ok('{"label": "Acme"}'))
    out = tmp_path / "out"
    assert main(_args(srv.url, cls_data, out, "--limit", "1")) == 0
    (tmp_path / "more.txt").write_text("Acme\nBorealis\nCobalt\n")  # another prompt: not the same run
    assert main(_args(srv.url, cls_data, out, "--resume", "--labels", str(tmp_path / "more.txt"))) == 2
    assert "holds a different run" in capsys.readouterr().err


def test_a_truncated_jpeg_is_an_input_error_not_sent(tmp_path, kit, fault_server, cls_data):
    from support.images import truncated_jpeg

    rows = [json.loads(x) for x in (cls_data / "test" / "data.jsonl").read_text().splitlines()]
    (cls_data / "test" / rows[2]["image"]).write_bytes(truncated_jpeg())
    srv = fault_server(_payloads(kit, cls_data), {}, default=kit.ok('{"label": "Acme"}'))
    out = tmp_path / "out"
    assert main(_args(srv.url, cls_data, out)) == 0
    records = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert records[2]["status"] == "input_error"
    assert records[2]["error"].startswith(
        "row 2: column 'image': image does not decode (OSError: image file is truncated"
    )
    assert sorted(s.row for s in srv.seen) == [0, 1, 3]
    assert json.loads((out / "report.json").read_text())["metrics"]["accuracy"] == pytest.approx(1 / 3)
