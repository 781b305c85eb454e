"""LLaMA-Factory export and import: both spellings, dataset_info.json, and import(export(x)) == x."""

import json
import shutil
from pathlib import Path

import pytest

from eval.tasks.extract import load_extract, load_schema
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.data.documents.ingest import ingest
from torchtune_ext.data.documents.sharegpt import export_sharegpt, main, read_sharegpt
from torchtune_ext.data.documents.split import split_documents


@pytest.fixture(scope="module")
def dataset(invoices: Path, labelled_pages: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    split_documents(labelled_pages, invoices / "schema.json", out, test=0.0)
    return out


def _pages(path: Path) -> dict[str, tuple]:
    """id -> (doc_id, page, target, image bytes): what a round trip must keep."""
    loaded = load_extract(path, None, require_target=False)
    return {r.id: (r.doc_id, r.page, r.target, r.image.read_bytes()) for r in loaded}


@pytest.mark.parametrize("style", ["messages", "conversations"])
def test_round_trip(dataset: Path, tmp_path: Path, style: str) -> None:
    lf = tmp_path / "lf"
    path = export_sharegpt(dataset / "train", dataset / "schema.json", lf, "invoices_train", style=style)
    reimported = tmp_path / "pages"
    report = ingest([path], reimported)
    assert report.problems == [] and report.pages == 6
    assert _pages(reimported) == _pages(dataset / "train")


def test_export_layout_and_dataset_info(dataset: Path, tmp_path: Path) -> None:
    lf = tmp_path / "lf"
    lf.mkdir()
    (lf / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}))
    assert main(["--data", str(dataset / "train"), "--schema", str(dataset / "schema.json"),
                 "--output-dir", str(lf), "--name", "inv"]) == 0  # fmt: skip
    main(["--data", str(dataset / "train"), "--schema", str(dataset / "schema.json"),
          "--output-dir", str(lf), "--name", "inv_c", "--style", "conversations"])  # fmt: skip
    info = json.loads((lf / "dataset_info.json").read_text())
    assert info["other"] == {"file_name": "other.json"}  # kept
    assert info["inv"] == {
        "file_name": "inv.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }
    assert info["inv_c"] == {"file_name": "inv_c.json", "formatting": "sharegpt",
                             "columns": {"messages": "conversations", "images": "images"}}  # fmt: skip
    rows = json.loads((lf / "inv.json").read_text(encoding="utf-8"))
    task = ExtractTask(dataset / "schema.json")
    user, assistant = rows[0]["messages"]
    assert user == {"role": "user", "content": "<image>" + task.instruction()}  # image first, as in training
    record = load_extract(dataset / "train", load_schema(dataset / "schema.json")).records[0]
    assert assistant["content"] == task.answer(task.sample_target(record))
    assert (lf / rows[0]["images"][0]).read_bytes() == record.image.read_bytes()
    conv = json.loads((lf / "inv_c.json").read_text(encoding="utf-8"))[0]["conversations"]
    assert [t["from"] for t in conv] == ["human", "gpt"]


def test_bad_rows_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    rows = [
        {"messages": [{"role": "user", "content": "<image>x"}, {"role": "assistant", "content": "not json"}], "images": ["a.png"]},
        {"conversations": [{"from": "human", "value": "x"}], "images": ["a.png"]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "{}"}], "images": ["a.png", "a.png"]},
        {"text": "?"},
    ]  # fmt: skip
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    pages, bad = read_sharegpt(path)
    assert pages == [] and len(bad) == 4
    assert bad[0].startswith(f"{path}#0: the assistant turn is not JSON")
    assert bad[1] == f"{path}#1: needs a user turn and an assistant turn"
    assert bad[2] == f"{path}#2: 'images' must list exactly one image path (one page per row)"
    assert bad[3] == f"{path}#3: a row needs 'messages' or 'conversations'"


def test_export_rejects_bad_names_and_broken_dataset_info(dataset: Path, tmp_path: Path, capsys) -> None:
    args = [
        "--data",
        str(dataset / "train"),
        "--schema",
        str(dataset / "schema.json"),
        "--output-dir",
        str(tmp_path),
    ]
    assert main([*args, "--name", "../x"]) == 2
    (tmp_path / "dataset_info.json").write_text("{broken")
    assert main([*args, "--name", "x"]) == 2
    assert "dataset_info.json: not valid JSON" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "x_images", ignore_errors=True)
