"""The extract builder: the task's prompt, the target JSON in schema order (Arabic unescaped), bad rows."""

import json
from pathlib import Path

import pytest
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX

from eval.core.records import DatasetRowError
from eval.tasks.extract.task import ExtractTask
from torchtune_ext.datasets import extract_dataset
from torchtune_ext.models import llama3_2_vision_transform


@pytest.fixture(scope="module")
def transform(tiny_checkpoint: Path):
    return llama3_2_vision_transform(
        path=str(tiny_checkpoint / "original" / "tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        max_seq_len=8192,
        tile_size=56,
        image_dtype="float32",
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from torchtune_ext.data.documents.ingest import ingest
    from torchtune_ext.data.documents.split import split_documents
    from torchtune_ext.data.synth.extract import generate_extract

    root = tmp_path_factory.mktemp("extract")
    invoices = generate_extract(root / "invoices", documents=3, seed=0, arabic_share=1.0)
    ingest([invoices / "pdfs"], root / "pages", labels_dir=invoices / "labels", dpi=40, workers=1)
    split_documents(root / "pages", invoices / "schema.json", root / "data", test=0.0)
    return root / "data"


def test_tokens_labels_prompt_and_answer(transform, data: Path) -> None:
    ds = extract_dataset(transform, source=str(data / "train"), schema=str(data / "schema.json"))
    task = ExtractTask(data / "schema.json")
    rows = [json.loads(x) for x in (data / "train" / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(ds) == len(rows)
    sample = ds[0]
    tokens, labels = sample["tokens"], [int(v) for v in sample["labels"]]
    first = next(i for i, v in enumerate(labels) if v != CROSS_ENTROPY_IGNORE_IDX)
    answer = transform.decode(tokens[first:-1], skip_special_tokens=True)
    assert answer == json.dumps(task.schema.canonical(rows[0]["target"]), ensure_ascii=False)
    assert "\\u" not in answer and any("\u0600" <= ch <= "\u06ff" for ch in answer)  # Arabic, not escaped
    prompt = transform.decode(tokens[:first], skip_special_tokens=False)
    assert prompt.index("<|image|>") < prompt.index(task.instruction()[:30])


def test_prompt_file_and_bad_rows(transform, data: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Read this invoice page. Fields:\n{fields}")
    ds = extract_dataset(
        transform, source=str(data / "train"), schema=str(data / "schema.json"), prompt_file=str(prompt)
    )
    text = transform.decode(ds[0]["tokens"], skip_special_tokens=False)
    assert "Read this invoice page. Fields:\n- invoice_number (text)" in text
    lines = (data / "train" / "data.jsonl").read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[0])
    bad["target"]["items"] = "none"
    bad["id"] = "bad"
    path = data / "train" / "bad.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(bad, ensure_ascii=False)]) + "\n", encoding="utf-8")
    with pytest.raises(
        DatasetRowError,
        match=r"bad.jsonl:2: 'target' does not match the schema .*: items: 'none' is not of type 'array'",
    ):
        extract_dataset(transform, source=str(path), schema=str(data / "schema.json"))
    assert (
        len(extract_dataset(transform, source=str(path), schema=str(data / "schema.json"), skip_invalid=True))
        == 1
    )
    path.unlink()
    with pytest.raises(ValueError, match="packing"):
        extract_dataset(transform, source=str(data / "train"), schema=str(data / "schema.json"), packed=True)
