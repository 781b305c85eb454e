"""`python -m eval.docvqa` on the shared runner, against the fault-injecting server."""

import json

import pytest
from PIL import Image
from testing_utils import eval_cli_args

from eval.docvqa import main
from eval.tasks.docvqa import prompt


def test_anls_and_exact_match(tmp_path, kit, fault_server):
    root = tmp_path / "dv"
    root.mkdir()
    rows = [
        {"image": "0.png", "question": "What is the total?", "answers": ["$1,234", "1234"]},
        {"image": "1.png", "question": "Who signed?", "answers": ["kitten"]},
        {"image": "2.png", "question": "What is the date?", "answers": ["x"]},
    ]
    for i, color in enumerate(("white", "gray", "black")):
        Image.new("RGB", (64, 64), color).save(root / f"{i}.png")
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    payloads = {kit.b64((root / f"{i}.png").read_bytes()): i for i in range(3)}
    srv = fault_server(
        payloads,
        {
            0: [kit.ok("  $1,234 \n")],  # exact after normalisation: 1
            1: [kit.ok('{"answer": "sitting"}')],  # lev 3 / 7 -> 1 - 3/7
            2: [kit.status(500)],  # fails after retries: the empty answer, 0
        },
    )
    out = tmp_path / "out"
    args = eval_cli_args(srv.url, root, out, retries=1, timeout=5)
    assert main(args) == 1  # one request failed after retries
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["anls"] == pytest.approx((1 + 4 / 7 + 0) / 3)
    assert report["metrics"]["exact_match"] == pytest.approx(1 / 3)
    assert report["counts"]["request_failed"] == 1
    content = srv.requests_for(1)[0].body["messages"][0]["content"]
    assert content[0]["type"] == "image_url" and content[1]["text"] == prompt("Who signed?")
    # the server recovers: --resume sends only the failed row
    srv.actions[2] = [kit.ok("x")]
    srv.seen.clear()
    assert main([*args, "--resume"]) == 0
    assert [s.row for s in srv.seen] == [2]
    assert json.loads((out / "report.json").read_text())["metrics"]["anls"] == pytest.approx((2 + 4 / 7) / 3)


def test_a_non_utf8_dataset_is_one_line_naming_file_and_line(tmp_path, capsys):
    root = tmp_path / "dv"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "0.png")
    row = json.dumps({"image": "0.png", "question": "Who?", "answers": ["x"]}).encode()
    (root / "data.jsonl").write_bytes(row + b"\n" + row.replace(b"Who?", b"Wh\xff?") + b"\n")
    assert main(eval_cli_args("http://127.0.0.1:9/v1", root, tmp_path / "out", retries=0, timeout=1)) == 2
    err = capsys.readouterr().err
    assert err == f"error: {root / 'data.jsonl'}:2: not UTF-8 text (byte 0xff at column 35)\n"
