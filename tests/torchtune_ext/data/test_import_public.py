"""Importers for the public layouts, tested on small stand-ins built with the same features."""

import io
import json

import datasets
import pytest
from PIL import Image

from eval.tasks.classify import load_classify
from eval.tasks.detect import load_detect
from eval.tasks.docvqa import load_docvqa
from torchtune_ext.data.import_public import (
    PublicImportError,
    import_docvqa,
    import_openfoodfacts,
    import_stanford_cars,
    main,
)


def _jpeg(color, size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return {"bytes": buf.getvalue(), "path": None}


def _parquet(root, split, ds):
    """Write a split the way the hub stores it: data/<split>-00000-of-00001.parquet."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))


def test_stanford_cars_classlabel_and_maker(tmp_path):
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=["AM General Hummer SUV 2000", "BMW X5 SUV 2007"]),
            "maker": datasets.Value("string"),
        }
    )
    src = tmp_path / "src"
    for split, n in (("train", 3), ("test", 2)):
        ds = datasets.Dataset.from_dict(
            {
                "image": [_jpeg("red")] * n,
                "label": [i % 2 for i in range(n)],
                "maker": ["AM General", "BMW", "AM General"][:n],
            },
            features=features,
        )
        _parquet(src, split, ds)
    out = import_stanford_cars(src, tmp_path / "cars")
    assert (out / "labels.txt").read_text().splitlines() == ["AM General Hummer SUV 2000", "BMW X5 SUV 2007"]
    loaded = load_classify(out / "train", out / "labels.txt")
    hummer, bmw = "AM General Hummer SUV 2000", "BMW X5 SUV 2007"
    assert [r.label for r in loaded] == [hummer, bmw, hummer]
    first = loaded.records[0].image
    assert first.parent.name == "AM_General_Hummer_SUV_2000" and first.suffix == ".jpg"
    assert first.read_bytes() == _jpeg("red")["bytes"]  # copied, not re-encoded
    makers = import_stanford_cars(src, tmp_path / "makers", label_column="maker", splits=["test"])
    assert (makers / "labels.txt").read_text().splitlines() == ["AM General", "BMW"]
    with pytest.raises(PublicImportError, match="no column 'brand'"):
        import_stanford_cars(src, tmp_path / "x", label_column="brand")


def test_openfoodfacts_layout(tmp_path):
    features = datasets.Features(
        {
            "image_id": datasets.Value("string"),
            "image": datasets.Image(),
            "width": datasets.Value("int64"),
            "height": datasets.Value("int64"),
            "meta": {
                "barcode": datasets.Value("string"),
                "off_image_id": datasets.Value("string"),
                "image_url": datasets.Value("string"),
            },
            "objects": {
                "bbox": datasets.Sequence(datasets.Sequence(datasets.Value("float32"))),
                "category_id": datasets.Sequence(datasets.Value("int64")),
                "category_name": datasets.Sequence(datasets.Value("string")),
            },
        }
    )
    meta = {"barcode": "0001", "off_image_id": "1", "image_url": "https://example.invalid/1.jpg"}
    ds = datasets.Dataset.from_dict(
        {
            "image_id": ["0001_1", "0002_3"],
            "image": [_jpeg("white", (200, 100)), _jpeg("gray", (200, 100))],
            "width": [200, 200],
            "height": [100, 100],
            "meta": [meta, meta],
            # (y_min, x_min, y_max, x_max), normalised
            "objects": [
                {"bbox": [[0.25, 0.1, 0.75, 0.5]], "category_id": [0], "category_name": ["nutrition-table"]},
                {"bbox": [], "category_id": [], "category_name": []},
            ],
        },
        features=features,
    )
    src = tmp_path / "src"
    datasets.DatasetDict({"val": ds}).save_to_disk(str(src))  # the save_to_disk form
    out = import_openfoodfacts(src, tmp_path / "off", splits=["val"])
    row = json.loads((out / "val" / "data.jsonl").read_text().splitlines()[0])
    assert row["boxes"] == [pytest.approx([0.1, 0.25, 0.5, 0.75])] and row["box_format"] == "normalized"
    loaded = load_detect(out / "val")
    assert [r.boxes for r in loaded] == [((100, 250, 500, 750),), ()]
    assert [r.id for r in loaded] == ["0001_1", "0002_3"]
    with pytest.raises(PublicImportError, match=r"no split 'train'"):
        import_openfoodfacts(src, tmp_path / "x", splits=["train"])


def test_docvqa_layout(tmp_path, capsys):
    langs = {k: datasets.Value("string") for k in ("de", "en", "es", "fr", "it")}
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "image": datasets.Image(),
            "query": langs,
            "answers": datasets.Sequence(datasets.Value("string")),
        }
    )
    q = {"de": "Wie?", "en": "What is the date?", "es": "?", "fr": "?", "it": "?"}
    ds = datasets.Dataset.from_dict(
        {
            "id": ["q/1", "q2"],
            "image": [_jpeg("white")] * 2,
            "query": [q, {**q, "en": ""}],
            "answers": [["1/2/99", "Jan 2, 1999"], ["x"]],
        },
        features=features,
    )
    src = tmp_path / "src"
    _parquet(src, "test", ds)
    with pytest.raises(PublicImportError, match=r"\[test\] row 1: no 'en' question"):
        import_docvqa(src, tmp_path / "dv", splits=["test"])
    out = import_docvqa(src, tmp_path / "dv", splits=["test"], limit=1)
    (record,) = load_docvqa(out / "test").records
    assert (record.id, record.question, record.answers) == (
        "q_1",
        "What is the date?",
        ("1/2/99", "Jan 2, 1999"),
    )
    assert (
        main(
            [
                "docvqa",
                "--source",
                str(src),
                "--output-dir",
                str(tmp_path / "cli"),
                "--splits",
                "test",
                "--language",
                "de",
            ]
        )
        == 0
    )
    assert main(["docvqa", "--source", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "e")]) == 2
    assert "no such directory" in capsys.readouterr().err
