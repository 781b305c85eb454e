"""Synthetic task-data generators: layout, determinism, readable by the task readers."""

import hashlib

import pytest
from PIL import Image

from eval.tasks.classify import load_classify
from eval.tasks.detect import load_detect
from eval.tasks.docvqa import load_docvqa
from torchtune_ext.data.synth.__main__ import main
from torchtune_ext.data.synth.classify import generate_classify
from torchtune_ext.data.synth.detect import generate_detect
from torchtune_ext.data.synth.docvqa import generate_docvqa


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "generate, kwargs",
    [
        (generate_classify, {"train": 6, "test": 3}),
        (generate_detect, {"train": 4, "test": 2}),
        (generate_docvqa, {"train": 2, "test": 1}),
    ],
)
def test_deterministic_per_seed(tmp_path, generate, kwargs):
    a = _digest(generate(tmp_path / "a", seed=3, **kwargs))
    assert a == _digest(generate(tmp_path / "b", seed=3, **kwargs))
    assert a != _digest(generate(tmp_path / "c", seed=4, **kwargs))


def test_classify_layout(tmp_path):
    out = generate_classify(tmp_path, train=8, test=4, num_labels=4)
    assert (out / "labels.txt").read_text().splitlines()[0] == "Acme | ACME Corp"
    loaded = load_classify(out / "train", out / "labels.txt")
    assert [r.label for r in loaded] == ["Acme", "Borealis", "Cobalt", "Dynamo"] * 2
    assert loaded.records[1].image == (out / "train" / "Borealis" / "00001.jpg").resolve()
    # the folder tree alone gives the same examples
    (out / "test" / "data.jsonl").unlink()
    tree = load_classify(out / "test", out / "labels.txt")
    assert sorted(r.label for r in tree) == ["Acme", "Borealis", "Cobalt", "Dynamo"]
    with pytest.raises(ValueError, match="num_labels"):
        generate_classify(tmp_path / "x", num_labels=1)


def test_detect_boxes_mark_the_table(tmp_path):
    out = generate_detect(tmp_path, train=12, test=1)
    loaded = load_detect(out / "train")
    counts = [len(r.boxes) for r in loaded]
    assert 1 in counts and all(0 <= c <= 2 for c in counts)
    for record in (r for r in loaded if r.boxes):
        with Image.open(record.image) as im:
            rgb = im.convert("RGB")
        for x1, y1, x2, y2 in record.boxes:
            px = [round(v * s / 1000) for v, s in zip((x1, y1, x2, y2), rgb.size * 2, strict=True)]
            hist = rgb.crop(px).convert("L").histogram()
            white = sum(hist[240:]) / sum(hist)
            assert white > 0.6, (record.id, white)  # the box is the white table panel
            assert max(rgb.getpixel((px[0], (px[1] + px[3]) // 2))) < 60  # its black left border


def test_docvqa_answers_are_printed_fields(tmp_path):
    out = generate_docvqa(tmp_path, train=3, test=1, questions_per_page=3)
    loaded = load_docvqa(out / "train")
    assert len(loaded) == 9
    assert len({r.image for r in loaded}) == 3
    assert all(r.question.endswith("?") and r.answers[0] for r in loaded)


def test_cli(tmp_path, capsys):
    assert main(["detect", "--output-dir", str(tmp_path / "d"), "--train", "2", "--test", "1"]) == 0
    assert "wrote 2 rows" in capsys.readouterr().out
    assert main(["classify", "--output-dir", str(tmp_path / "c"), "--num-labels", "99"]) == 2
    assert "error: num_labels" in capsys.readouterr().err
