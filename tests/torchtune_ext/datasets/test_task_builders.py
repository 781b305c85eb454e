"""Task dataset builders: tokens and labels (loss only on the answer), image first, bad rows."""

import json

import pytest
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX

from eval.core.records import DatasetRowError
from eval.tasks import classify, detect, docvqa
from torchtune_ext.data.synth.classify import generate_classify
from torchtune_ext.data.synth.detect import generate_detect
from torchtune_ext.data.synth.docvqa import generate_docvqa
from torchtune_ext.datasets import classify_dataset, detect_dataset, docvqa_dataset
from torchtune_ext.models import llama3_2_vision_transform


@pytest.fixture(scope="module")
def transform(tiny_checkpoint):
    return llama3_2_vision_transform(
        path=str(tiny_checkpoint / "original" / "tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        max_seq_len=1024,
        tile_size=56,
        image_dtype="float32",
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("taskdata")
    generate_classify(root / "classify", train=4, test=0, num_labels=2)
    generate_detect(root / "detect", train=3, test=0)
    generate_docvqa(root / "docvqa", train=2, test=0)
    return root


def _answer_and_prompt(transform, sample):
    """Split a sample at the first labelled token; check that only the assistant turn is labelled."""
    tokens, labels = sample["tokens"], [int(v) for v in sample["labels"]]
    assert len(tokens) == len(labels)
    first = next(i for i, v in enumerate(labels) if v != CROSS_ENTROPY_IGNORE_IDX)
    assert all(v == CROSS_ENTROPY_IGNORE_IDX for v in labels[:first])  # nothing of the user turn
    # the assistant turn (header, answer, <|eot_id|>) is labelled; the final <|end_of_text|> is not
    assert labels[first:-1] == tokens[first:-1] and labels[-1] == CROSS_ENTROPY_IGNORE_IDX
    assert tokens[-2] == transform.tokenizer.special_tokens["<|eot_id|>"]
    assert transform.decode(tokens[first : first + 1], skip_special_tokens=False) == "<|start_header_id|>"
    answer = transform.decode(tokens[first:-1], skip_special_tokens=True)  # drops the header text too
    prompt = transform.decode(tokens[:first], skip_special_tokens=False)
    return answer, prompt


def _image_before_text(transform, sample, text):
    image_id = transform.tokenizer.special_tokens["<|image|>"]
    prompt = transform.decode(sample["tokens"], skip_special_tokens=False)
    assert sample["tokens"].count(image_id) == 1
    assert prompt.index("<|image|>") < prompt.index(text[:20])
    assert sample["encoder_input"]["images"][0].ndim == 4  # tiles, C, H, W


def test_classify_tokens_labels(transform, data):
    ds = classify_dataset(transform, source=str(data / "classify" / "train"))
    assert len(ds) == 4 and ds.labels.labels == ("Acme", "Borealis")  # labels.txt found in the parent
    sample = ds[1]
    answer, prompt = _answer_and_prompt(transform, sample)
    assert answer == classify.target_json("Borealis")
    assert classify.prompt(ds.labels) in prompt
    _image_before_text(transform, sample, classify.prompt(ds.labels))


def test_detect_tokens_labels(transform, data):
    ds = detect_dataset(transform, source=str(data / "detect" / "train"))
    rows = [json.loads(x) for x in (data / "detect" / "train" / "data.jsonl").read_text().splitlines()]
    answer, prompt = _answer_and_prompt(transform, ds[0])
    boxes = [detect.to_grid(b, "pixel", rows[0]["width"], rows[0]["height"]) for b in rows[0]["boxes"]]
    assert answer == detect.target_json(boxes)
    assert detect.prompt() in prompt
    assert (
        detect.prompt("logo")
        in _answer_and_prompt(
            transform, detect_dataset(transform, source=str(data / "detect" / "train"), object_name="logo")[0]
        )[1]
    )


def test_docvqa_tokens_labels(transform, data):
    ds = docvqa_dataset(transform, source=str(data / "docvqa" / "train" / "data.jsonl"))
    record = ds._records[1]
    answer, prompt = _answer_and_prompt(transform, ds[1])
    assert answer == record.answers[0]
    assert docvqa.prompt(record.question) in prompt
    _image_before_text(transform, ds[1], docvqa.prompt(record.question))


def test_bad_row_error_and_skip(transform, data, tmp_path):
    lines = (data / "docvqa" / "train" / "data.jsonl").read_text().splitlines()
    bad = json.loads(lines[0]) | {"question": "", "id": "bad"}
    path = data / "docvqa" / "train" / "bad.jsonl"
    path.write_text("\n".join([lines[0], json.dumps(bad), lines[1]]) + "\n")
    with pytest.raises(DatasetRowError, match=r"bad.jsonl:2: 'question' must be a non-empty string"):
        docvqa_dataset(transform, source=str(path))
    ds = docvqa_dataset(transform, source=str(path), skip_invalid=True)
    assert len(ds) == 2 and len(ds.skipped) == 1
    only_bad = tmp_path / "only_bad.jsonl"
    only_bad.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match="no usable examples"):
        docvqa_dataset(transform, source=str(only_bad), skip_invalid=True)


def test_undecodable_image_names_record(transform, data, tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "data.jsonl").write_text(json.dumps({"id": "x7", "image": "broken.jpg", "boxes": []}) + "\n")
    ds = detect_dataset(transform, source=str(tmp_path))
    with pytest.raises(DatasetRowError, match=r"data.jsonl: id x7: image .*broken.jpg cannot be decoded"):
        ds[0]


def test_packed_refused(transform, data):
    with pytest.raises(ValueError, match="packing"):
        classify_dataset(transform, source=str(data / "classify" / "train"), packed=True)
