"""Reading prepared splits: ids, undecoded images, content hash, and per-row input errors."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from eval.core.splits import DatasetError, InputError, load_arrow_split, parse_json_column, read_image_bytes
from eval.tasks.w2.task import W2Task


def test_rows_keep_the_stored_image_bytes(tmp_path: Path, kit) -> None:
    images = [kit.png_bytes(i) for i in range(3)]
    split = load_arrow_split(
        kit.save_split(tmp_path / "test", [kit.w2_record(i) for i in range(3)], images=images)
    )
    assert len(split) == 3 and split.image_column == "image"
    assert set(split.columns) == {"image", "ground_truth", "input"}
    for i in range(3):
        row = split.row(i)
        assert row["image"]["bytes"] == images[i]  # undecoded: no re-encoding on the way to the server
        assert json.loads(row["ground_truth"]) == kit.w2_record(i)


def test_hash_is_stable_and_content_sensitive(tmp_path: Path, kit) -> None:
    a = kit.save_split(tmp_path / "a", [kit.w2_record(i) for i in range(2)])
    b = kit.save_split(tmp_path / "b", [kit.w2_record(i) for i in range(2)])
    c = kit.save_split(tmp_path / "c", [kit.w2_record(i) for i in (0, 2)])
    assert load_arrow_split(a).sha256() == load_arrow_split(b).sha256()
    assert len(load_arrow_split(a).sha256()) == 64
    assert load_arrow_split(a).sha256() != load_arrow_split(c).sha256()


def test_dataset_errors_name_the_path(tmp_path: Path, kit) -> None:
    with pytest.raises(DatasetError, match="no such dataset directory"):
        load_arrow_split(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: not a dataset saved with save_to_disk"):
        load_arrow_split(tmp_path / "empty")
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict({"x": [1]})
    DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(
        DatasetError, match=r"holds several splits \(train, test\); pass one of them, e\.g\. .*dd/test"
    ):
        load_arrow_split(tmp_path / "dd")
    ds.save_to_disk(str(tmp_path / "nocols"))
    with pytest.raises(DatasetError, match=r"missing column\(s\) image, ground_truth \(have x\)"):
        W2Task().load(tmp_path / "nocols")


def _png(mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (8, 6), 128).save(buf, format=fmt)
    return buf.getvalue()


def test_read_image_bytes_formats_and_errors(tmp_path: Path) -> None:
    png = _png()
    assert read_image_bytes({"bytes": png, "path": None}, 0) == (png, "image/png")
    jpeg = _png(fmt="JPEG")
    assert read_image_bytes(jpeg, 0) == (jpeg, "image/jpeg")
    bmp_data, mime = read_image_bytes(_png(fmt="BMP"), 0)  # servers may not take BMP: re-encoded
    assert mime == "image/png" and Image.open(io.BytesIO(bmp_data)).size == (8, 6)
    pil_data, mime = read_image_bytes(Image.new("RGB", (5, 4)), 0)
    assert mime == "image/png" and Image.open(io.BytesIO(pil_data)).size == (5, 4)
    (tmp_path / "img.png").write_bytes(png)
    assert read_image_bytes({"bytes": None, "path": str(tmp_path / "img.png")}, 0) == (png, "image/png")
    with pytest.raises(InputError, match=r"^row 4: column 'image': image does not decode"):
        read_image_bytes(b"not an image", 4)
    with pytest.raises(InputError, match=r"^row 5: column 'image': image does not decode"):
        read_image_bytes(png[: len(png) // 2], 5)  # truncated PNG
    with pytest.raises(InputError, match=r"^row 6: column 'image': no image"):
        read_image_bytes({"bytes": None, "path": None}, 6)
    with pytest.raises(InputError, match=r"^row 7: column 'image': cannot read"):
        read_image_bytes({"bytes": None, "path": str(tmp_path / "missing.png")}, 7)


def test_read_image_bytes_applies_the_image_policy() -> None:
    from support.images import half_transparent_png, oversized_png, truncated_jpeg

    with pytest.raises(
        InputError, match=r"^row 3: column 'scan': image is too large: 12000x12000 = 144,000,000"
    ):
        read_image_bytes({"bytes": oversized_png(12000), "path": None}, 3, "scan")
    with pytest.raises(InputError, match=r"^row 4: column 'image': image is too large: 196,000,000 pixels"):
        read_image_bytes(oversized_png(14000), 4)
    with pytest.raises(InputError, match=r"^row 5: column 'image': image does not decode \(OSError"):
        read_image_bytes(truncated_jpeg(), 5)  # a valid header: only decoding finds it
    with pytest.raises(InputError, match=r"^row 6: column 'image': image is too large"):
        read_image_bytes(Image.new("1", (10000, 9000)), 6)
    # Transparency is composited on white before sending, as training sees it.
    sent, mime = read_image_bytes(half_transparent_png(), 7)
    image = Image.open(io.BytesIO(sent))
    assert mime == "image/png" and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 127, 127) and image.getpixel((32, 24)) == (0, 0, 255)


def test_parse_json_column() -> None:
    assert parse_json_column('{"a": 1}', 0, "ground_truth") == {"a": 1}
    assert parse_json_column({"a": 1}, 0, "ground_truth") == {"a": 1}
    with pytest.raises(InputError, match=r"^row 3: column 'ground_truth': not valid JSON"):
        parse_json_column("{oops", 3, "ground_truth")
    with pytest.raises(
        InputError, match=r"^row 3: column 'ground_truth': expected a JSON string, got NoneType"
    ):
        parse_json_column(None, 3, "ground_truth")


def _broken_splits(root: Path, kit) -> dict[str, tuple[Path, str]]:
    """A split directory broken in each way a copy or a crash leaves one, and the error expected."""
    from datasets import Dataset

    empty = root / "empty"
    Dataset.from_dict({"image": [], "ground_truth": []}).save_to_disk(str(empty))
    bad_state = kit.save_split(root / "bad_state", [kit.w2_record(0)])
    (bad_state / "state.json").write_text('{"_data_files": [')
    truncated = kit.save_split(root / "truncated", [kit.w2_record(i) for i in range(20)])
    arrow = next(truncated.glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    missing = kit.save_split(root / "missing", [kit.w2_record(0)])
    gone = next(missing.glob("*.arrow"))
    gone.unlink()
    return {
        "empty split": (empty, rf"^{empty}: the split is empty \(saved from 0 rows\)$"),
        "corrupt state.json": (bad_state, rf"^{bad_state / 'state.json'}: not valid JSON \(.*\)$"),
        "truncated .arrow": (
            truncated,
            rf"^{arrow}: cannot read the Arrow data, truncated or corrupt \(.*\)$",
        ),
        "missing .arrow": (missing, rf"^{gone}: missing \(listed in state.json\)$"),
    }


def test_broken_split_directories_are_one_line_naming_the_path(tmp_path: Path, kit, capsys) -> None:
    from eval.w2 import main

    for name, (path, message) in _broken_splits(tmp_path, kit).items():
        with pytest.raises(DatasetError, match=message):
            load_arrow_split(path)
        out = tmp_path / f"out_{path.name}"
        assert (
            main(["--model", "m", "--dataset", str(path), "--output_dir", str(out), "--no_progress"]) == 2
        ), name
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and str(path) in err, (name, err)
