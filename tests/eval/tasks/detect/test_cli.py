"""`python -m eval.detect` on the shared runner, against the fault-injecting server."""

import json

import pytest
from PIL import Image
from testing_utils import eval_cli_args

from eval.detect import main
from eval.tasks.detect import prompt


@pytest.fixture
def det_data(tmp_path):
    """Three 200x100 images with known pixel boxes; on the grid the box is [250, 250, 750, 750]."""
    root = tmp_path / "det"
    root.mkdir()
    rows = []
    for i, color in enumerate(("white", "gray", "black")):
        Image.new("RGB", (200, 100), color).save(root / f"{i}.png")
        rows.append({"id": f"img{i}", "image": f"{i}.png", "boxes": [[50, 25, 150, 75]]})
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _args(url, root, out, *extra):
    return eval_cli_args(url, root, out, *extra, retries=1, timeout=5)


def test_metrics_and_overlays(tmp_path, kit, fault_server, det_data):
    payloads = {kit.b64((det_data / f"{i}.png").read_bytes()): i for i in range(3)}
    srv = fault_server(
        payloads,
        {
            0: [kit.ok('{"boxes": [[250, 250, 750, 750]]}')],  # TP, IoU 1
            # the true box plus a duplicate of it: 1 TP (IoU 0.5: [250,0,750,1000]), 1 FP
            1: [kit.ok("```json\n[[250, 0, 750, 1000], [250, 0, 750, 1000]]\n```")],
            2: [kit.ok("I cannot see any table")],  # unparsable: 1 FN
        },
    )
    out = tmp_path / "out"
    assert main(_args(srv.url, det_data, out, "--overlays", "2")) == 0
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["mean_iou"] == pytest.approx(0.75)  # (1 + 0.5) / 2
    assert m["mean_best_iou"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert m["parse_rate"] == pytest.approx(2 / 3)
    assert report["failures"]["invalid_json"] == 1
    # worst two: row 2 (F1 0), then row 1 (F1 2/3); drawn as PNGs named by row
    assert sorted(p.name for p in (out / "overlays").iterdir()) == ["000001.png", "000002.png"]
    assert report["files"]["overlays"] == "overlays"
    content = srv.requests_for(0)[0].body["messages"][0]["content"]
    assert content[0]["type"] == "image_url" and content[1]["text"] == prompt()


def test_threshold_and_object_flags(tmp_path, kit, fault_server, det_data, monkeypatch):
    import eval.core.report

    monkeypatch.setattr(eval.core.report, "plot_bars", lambda *a, **k: None)
    srv = fault_server({}, {}, default=kit.ok("[[250, 0, 750, 1000]]"))  # IoU 0.5 everywhere
    out = tmp_path / "out"
    assert main(_args(srv.url, det_data, out, "--iou_threshold", "0.6", "--object_name", "logo")) == 0
    m = json.loads((out / "report.json").read_text())["metrics"]
    assert (m["tp"], m["fp"], m["fn"], m["threshold"]) == (0, 3, 3, 0.6)
    assert srv.seen[0].body["messages"][0]["content"][1]["text"] == prompt("logo")
    assert main(_args(srv.url, det_data, tmp_path / "o2", "--iou_threshold", "1.5")) == 2


def test_bad_row_is_one_line_error(tmp_path, det_data, capsys):
    (det_data / "data.jsonl").write_text('{"image": "0.png", "boxes": [[150, 25, 50, 75]]}\n')
    assert main(_args("http://127.0.0.1:9/v1", det_data, tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "data.jsonl:1: box 0:" in err and err.count("\n") == 1


def test_unusable_images_are_their_rows_input_errors(tmp_path, kit, fault_server, det_data):
    """An oversized image (its size is needed for pixel boxes) and a truncated JPEG: reported, not sent."""
    from support.images import oversized_png, truncated_jpeg

    (det_data / "big.png").write_bytes(oversized_png(14000))
    (det_data / "cut.jpg").write_bytes(truncated_jpeg())
    with (det_data / "data.jsonl").open("a") as f:
        f.write(json.dumps({"id": "big", "image": "big.png", "boxes": [[50, 25, 150, 75]]}) + "\n")
        f.write(
            json.dumps({"id": "cut", "image": "cut.jpg", "boxes": [[1, 2, 3, 4]], "width": 64, "height": 48})
            + "\n"
        )
    srv = fault_server({}, {}, default=kit.ok('{"boxes": [[250, 250, 750, 750]]}'))
    out = tmp_path / "out"
    assert main(_args(srv.url, det_data, out)) == 0
    records = {r["id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    assert [records[i]["status"] for i in range(5)] == ["ok", "ok", "ok", "input_error", "input_error"]
    assert records[3]["error"].startswith("row 3: column 'image': image is too large: 196,000,000 pixels")
    assert records[4]["error"].startswith("row 4: column 'image': image does not decode (OSError")
    assert len(srv.seen) == 3
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["input_error"] == 2 and report["metrics"]["f1"] == 1.0
