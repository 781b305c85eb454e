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


def _with_bad_images(folder, lines, image_key="image"):
    """Rows 1-3 of a task's JSONL point at a 0-byte, a truncated and a non-image file; row 0 stays good."""
    from support.images import truncated_jpeg

    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(truncated_jpeg())
    (folder / "page.png").write_text("<html>not an image</html>")
    rows = [json.loads(line) | {"id": f"r{i}"} for i, line in enumerate(lines[:4])]
    for row, name in zip(rows[1:], ("empty.png", "cut.jpg", "page.png"), strict=True):
        row[image_key] = name
    return rows


BUILDERS = {
    "classify": (classify_dataset, {"labels": None}),
    "detect": (detect_dataset, {}),
    "docvqa": (docvqa_dataset, {}),
}


@pytest.mark.parametrize("task", list(BUILDERS))
def test_unusable_images_are_found_when_built(transform, data, tmp_path, task):
    """0-byte, truncated and non-image files: one clear error when built, or skipped with skip_invalid."""
    build, extra = BUILDERS[task]
    lines = (data / task / "train" / "data.jsonl").read_text().splitlines()
    folder = tmp_path / task
    folder.mkdir()
    rows = _with_bad_images(folder, lines * 2)
    good = folder / rows[0]["image"]
    good.parent.mkdir(parents=True, exist_ok=True)
    good.write_bytes((data / task / "train" / rows[0]["image"]).read_bytes())
    source = folder / "data.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if task == "classify":
        extra = {"labels": str(data / task / "labels.txt")}
    with pytest.raises(DatasetRowError) as info:
        build(transform, source=str(source), **extra)
    message = str(info.value)
    assert message.startswith(f"{source}: id r1: image {folder / 'empty.png'}: image file "), message
    assert message.endswith("is empty (0 bytes)") and "\n" not in message
    ds = build(transform, source=str(source), skip_invalid=True, **extra)
    assert len(ds) == 1 and len(ds.skipped) == 3
    assert "image does not decode (OSError: image file is truncated" in ds.skipped[1]
    assert "image does not decode (UnidentifiedImageError" in ds.skipped[2]
    assert ds[0]["tokens"]  # the good row still trains
    source.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]))
    with pytest.raises(
        ValueError, match=r"no usable examples \(3 invalid rows skipped\); first: .*empty.png"
    ):
        build(transform, source=str(source), skip_invalid=True, **extra)


def test_an_oversized_detection_image_is_rejected_not_fatal_to_reading(transform, tmp_path):
    from support.images import oversized_png

    (tmp_path / "big.png").write_bytes(oversized_png(14000))
    (tmp_path / "data.jsonl").write_text(
        json.dumps({"id": "x7", "image": "big.png", "boxes": [[1, 2, 3, 4]]}) + "\n"
    )
    with pytest.raises(
        DatasetRowError, match=r"data.jsonl: id x7: image .*big.png: image is too large: 196,000,000"
    ):
        detect_dataset(transform, source=str(tmp_path))


def test_packed_refused(transform, data):
    with pytest.raises(ValueError, match="packing"):
        classify_dataset(transform, source=str(data / "classify" / "train"), packed=True)
