"""Dataset readers: valid rows, one clear error per bad row, skip_invalid counting."""

import json

import pytest
from PIL import Image

from eval.core.records import DatasetRowError
from eval.tasks.classify import load_classify
from eval.tasks.detect import load_detect
from eval.tasks.docvqa import load_docvqa


@pytest.fixture
def images(tmp_path):
    Image.new("RGB", (200, 100), "white").save(tmp_path / "a.png")
    return tmp_path


def _write(root, rows, name="data.jsonl"):
    (root / name).write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return root / name


def test_detect_conversion_and_size_from_image(images):
    _write(
        images,
        [
            {"image": "a.png", "boxes": [[50, 25, 150, 75]]},  # pixel; size read from the file
            {"image": "a.png", "boxes": [[0.1, 0.1, 0.5, 0.5]], "box_format": "normalized", "id": "n"},
            {"image": "a.png", "boxes": []},
        ],
    )
    loaded = load_detect(images)
    assert [r.boxes for r in loaded] == [((250, 250, 750, 750),), ((100, 100, 500, 500),), ()]
    assert [r.id for r in loaded] == ["1", "n", "3"]


@pytest.mark.parametrize(
    "row, message",
    [
        ('{"image": "a.png", "boxes": [[10, 10, 5, 20]]}', r"data.jsonl:2: box 0: .*x1 < x2"),
        ('{"image": "missing.png", "boxes": []}', r"data.jsonl:2: image not found"),
        ('{"image": "a.png", "boxes": "none"}', r"data.jsonl:2: 'boxes' must be a list"),
        ('{"image": "a.png", "boxes": [], "box_format": "polar"}', r"data.jsonl:2: box_format 'polar'"),
        ("{not json", r"data.jsonl:2: not valid JSON"),
        ("[1, 2]", r"data.jsonl:2: expected a JSON object"),
        ('{"image": "a.png", "boxes": [], "id": "1"}', r"data.jsonl:2: duplicate id '1'"),
    ],
)
def test_detect_bad_row_names_file_and_line(images, row, message):
    _write(images, ['{"image": "a.png", "boxes": []}', row, '{"image": "a.png", "boxes": []}'])
    with pytest.raises(DatasetRowError, match=message):
        load_detect(images)
    if "not valid JSON" not in message:  # a broken line cannot be skipped: the file is corrupt
        loaded = load_detect(images, skip_invalid=True)
        assert len(loaded) == 2 and len(loaded.skipped) == 1 and ":2:" in loaded.skipped[0]


def test_classify_jsonl(images):
    path = _write(images, [{"image": "a.png", "label": "acme corp"}, {"image": "a.png", "label": "Zeta"}])
    (images / "labels.txt").write_text("Acme | ACME Corp\nBorealis\n")
    with pytest.raises(DatasetRowError, match=r"data.jsonl:2: label 'Zeta' is not in the label set"):
        load_classify(path, images / "labels.txt")
    loaded = load_classify(path, images / "labels.txt", skip_invalid=True)
    assert [r.label for r in loaded] == ["Acme"] and loaded.labels.labels == ("Acme", "Borealis")
    # without a labels file the set is the distinct labels found
    assert load_classify(path).labels.labels == ("Zeta", "acme corp")


def test_classify_tree_unknown_folder(tmp_path):
    for label in ("Acme", "Other"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "x.jpg")
    (tmp_path / "Acme" / "notes.txt").write_text("ignored")
    assert [r.id for r in load_classify(tmp_path)] == ["Acme/x.jpg", "Other/x.jpg"]
    with pytest.raises(DatasetRowError, match="folder name 'Other'"):
        load_classify(tmp_path, ["Acme"])
    assert len(load_classify(tmp_path, ["Acme"], skip_invalid=True, limit=5)) == 1


def test_docvqa_rows(images):
    _write(
        images,
        [
            {"image": "a.png", "question": " Q? ", "answers": ["x", "y "]},
            {"image": "a.png", "question": "Q2?", "answers": "single"},
            {"image": "a.png", "question": "Q3?", "answers": []},
        ],
    )
    with pytest.raises(DatasetRowError, match=r"data.jsonl:3: 'answers' must be a non-empty list"):
        load_docvqa(images)
    loaded = load_docvqa(images, skip_invalid=True)
    assert [(r.question, r.answers) for r in loaded] == [("Q?", ("x", "y")), ("Q2?", ("single",))]
    assert len(load_docvqa(images, skip_invalid=True, limit=1)) == 1


def test_missing_dataset(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_docvqa(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="unknown box_format"):
        load_detect(tmp_path, box_format="xywh")


def test_exif_orientation_is_applied(tmp_path):
    from PIL import ExifTags

    from eval.core.records import open_upright, upright_size

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored 200x100, displayed rotated: 100x200
    Image.new("RGB", (200, 100), "white").save(tmp_path / "r.jpg", exif=exif)
    assert upright_size(tmp_path / "r.jpg") == (100, 200)
    assert open_upright(tmp_path / "r.jpg").size == (100, 200)
    _write(tmp_path, [{"image": "r.jpg", "boxes": [[10, 20, 60, 180]]}])
    # pixel boxes are relative to the displayed image: x / 100, y / 200
    assert load_detect(tmp_path).records[0].boxes == ((100, 100, 600, 900),)


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    from eval.core.records import DatasetRowError
    from eval.tasks.classify import load_labels

    good = json.dumps({"image": "a.png", "question": "Q?", "answers": ["x"]}).encode()
    (tmp_path / "a.png").write_bytes(b"")
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good.replace(b"Q?", b"Caf\xe9?") + b"\n")
    with pytest.raises(DatasetRowError, match=rf"^{path}:2: not UTF-8 text \(byte 0xe9 at column 36\)$"):
        load_docvqa(path)
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"Acme\nBor\xe9alis\n")
    with pytest.raises(ValueError, match=rf"^{labels}:2: not UTF-8 text \(byte 0xe9 at column 4\)$"):
        load_labels(labels)
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n")  # a byte-order mark is not an error
    assert [r.question for r in load_docvqa(path)] == ["Q?"]
