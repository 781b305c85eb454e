"""`python -m eval.extract` on the shared runner, against the fault-injecting server."""

import csv
import json
from pathlib import Path

import pytest
from testing_utils import eval_cli_args

from eval.extract import main
from eval.tasks.extract import default_prompt, load_schema

SCHEMA = {
    "title": "receipt",
    "type": "object",
    "properties": {
        "shop": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
                "required": ["name", "price"],
                "additionalProperties": False,
            },
        },
        "note": {"type": ["string", "null"], "x-compare": "chars"},
    },
    "required": ["shop", "items", "note"],
    "additionalProperties": False,
}
TARGETS = [
    {
        "shop": "متجر الأمل",
        "items": [{"name": "خبز", "price": 2.5}, {"name": "Milk", "price": 1.0}],
        "note": None,
    },
    {"shop": "Corner Shop", "items": [{"name": "Tea", "price": 3.0}], "note": "paid in cash"},
    {"shop": "Kiosk", "items": [], "note": None},
]


@pytest.fixture
def data(tmp_path: Path, kit) -> Path:
    root = tmp_path / "data"
    (root / "test" / "images").mkdir(parents=True)
    (root / "schema.json").write_text(json.dumps(SCHEMA, ensure_ascii=False), encoding="utf-8")
    rows = []
    for i, target in enumerate(TARGETS):
        (root / "test" / "images" / f"{i}.png").write_bytes(kit.png_bytes(i))
        rows.append(
            {"id": f"d{i}-p1", "image": f"images/{i}.png", "doc_id": f"d{i}", "page": 1, "target": target}
        )
    (root / "test" / "data.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return root


def _payloads(kit) -> dict[str, int]:
    return {kit.b64(kit.png_bytes(i)): i for i in range(len(TARGETS))}


def _args(url: str, data: Path, out: Path, *extra: str) -> list[str]:
    schema = ("--schema", str(data / "schema.json"))
    return eval_cli_args(url, data / "test", out, *schema, *extra, retries=1, timeout=5, max_workers=2)


def test_scores_files_and_structured_request(tmp_path: Path, kit, fault_server, data: Path, capsys) -> None:
    reply0 = {
        "shop": "متجر الأمل",
        "items": [{"name": "milk", "price": 1}, {"name": "خبز", "price": 2.5}],
        "note": None,
    }
    srv = fault_server(
        _payloads(kit),
        {
            0: [kit.ok(json.dumps(reply0, ensure_ascii=False))],  # right, items in another order
            1: [kit.ok('{"shop": "Corner Shop", "items": [], "note": "paid in cash!"}')],
            2: [kit.status(503), kit.ok("no idea")],  # retried, then not JSON
        },
    )
    out = tmp_path / "out"
    assert main(_args(srv.url, data, out, "--structured")) == 0
    report = json.loads((out / "report.json").read_text())
    m = report["metrics"]
    # leaves: page 0: shop + 2 x 2 item fields + note = 6; page 1: 4; page 2: 2 -> 12
    # correct: page 0: 6 (milk/1 normalised); page 1: shop = 1; page 2: 0
    assert m["leaves"] == 12 and m["accuracy"] == pytest.approx(7 / 12)
    assert m["accuracy_strict"] == pytest.approx(6 / 12)  # "milk" != "Milk" strictly (1 == 1.0 counts)
    assert m["items"] == {"gold": 3, "predicted": 2, "matched": 2, "matched_strict": 1}
    assert m["json_parse_rate"] == pytest.approx(2 / 3) and m["schema_valid_rate"] == pytest.approx(2 / 3)
    assert m["per_path_char_similarity"]["note"] == pytest.approx(
        (1 + (1 - 1 / 13) + 0) / 3
    )  # page 2: no answer
    assert report["failures"]["invalid_json"] == 1 and len(srv.requests_for(2)) == 2
    body = srv.requests_for(0)[0].body
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    assert content[1]["text"] == default_prompt(load_schema(data / "schema.json"))
    fmt = body["response_format"]["json_schema"]
    assert fmt["name"] == "receipt" and fmt["strict"] is True
    assert "x-compare" not in json.dumps(fmt["schema"])  # extension keywords stay here
    rows = list(csv.reader((out / "per_path.csv").open(encoding="utf-8")))
    assert rows[0] == ["path", "leaves", "accuracy", "accuracy_strict", "char_similarity"]
    assert ["items[].name", "3", "0.6667", "0.3333", ""] in rows
    assert ["items[]", "3", "2", "2", "1.0000", "0.6667", "0.8000"] in rows
    assert report["files"]["per_path_csv"] == "per_path.csv"
    printed = capsys.readouterr().out
    assert "items precision / recall / F1" in printed and "character similarity" in printed
    records = [json.loads(x) for x in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    record = next(r for r in records if r["id"] == 0)  # written as answers arrive: any order
    assert "متجر الأمل" in json.dumps(record["score"]["prediction"], ensure_ascii=False)


def test_server_rejecting_the_schema_is_reported(tmp_path: Path, kit, fault_server, data: Path) -> None:
    message = "Invalid JSON schema: unsupported keyword"
    srv = fault_server(_payloads(kit), {}, default=kit.status(400, message))
    out = tmp_path / "out"
    assert main(_args(srv.url, data, out, "--structured")) == 1
    report = json.loads((out / "report.json").read_text())
    assert report["http_errors"] == [{"http_status": 400, "message": message, "count": 3, "ids": [0, 1, 2]}]
    assert len(srv.seen) == 3  # a 400 is final: not retried


def test_resume_sends_only_failed_rows_and_checks_the_schema(
    tmp_path: Path, kit, fault_server, data: Path
) -> None:
    good = json.dumps(TARGETS[1])
    srv = fault_server(_payloads(kit), {0: [kit.status(500)]}, default=kit.ok(good))
    out = tmp_path / "out"
    assert main(_args(srv.url, data, out, "--retries", "0")) == 1  # row 0 failed
    srv.actions[0] = [kit.status(500), kit.ok(good)]
    assert main(_args(srv.url, data, out, "--resume")) == 0
    assert len(srv.requests_for(0)) == 2 and len(srv.requests_for(1)) == 1
    changed = json.loads((data / "schema.json").read_text())
    changed["title"] = "other"
    (data / "schema.json").write_text(json.dumps(changed))
    assert main(_args(srv.url, data, out, "--resume")) == 2  # another schema: another run


def test_bad_inputs_are_one_line_errors(tmp_path: Path, data: Path, capsys) -> None:
    args = [
        "--model",
        "m",
        "--dataset",
        str(data / "test"),
        "--output_dir",
        str(tmp_path / "o"),
        "--no_progress",
    ]
    assert main(args) == 2
    assert (
        capsys.readouterr().err.strip()
        == "error: the extract task needs a JSON Schema file (--schema, or the schema option)"
    )
    (data / "bad.json").write_text('{"type": "object", "properties": {"a": {"type": "nope"}}}')
    assert main([*args, "--schema", str(data / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {data / 'bad.json'}: not a valid JSON Schema at properties/a/type"
    )
    rows = (data / "test" / "data.jsonl").read_text().splitlines()
    broken = json.loads(rows[1])
    broken["target"]["items"][0]["price"] = "three"
    rows[1] = json.dumps(broken)
    (data / "test" / "data.jsonl").write_text("\n".join(rows) + "\n")
    assert main([*args, "--schema", str(data / "schema.json"), "--server_url", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {data / 'test' / 'data.jsonl'}:2: 'target' does not match the schema")
    assert err.endswith("items[0].price: 'three' is not of type 'number'") and "\n" not in err
