"""w2_dataset: answer-only labels, parity with torchtune's vqa_dataset, bad-row errors."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from torchtune.data import CROSS_ENTROPY_IGNORE_IDX, Message, padded_collate_tiled_images_and_mask

from eval.tasks.w2 import FIELDS, PROMPT, target_json
from torchtune_ext.data.prepare_w2 import prepare_w2
from torchtune_ext.data.synth.w2 import make_w2, write_w2_dataset
from torchtune_ext.datasets import W2DataError, W2Dataset, w2_dataset
from torchtune_ext.datasets._w2 import _check_image
from torchtune_ext.models import llama3_2_vision_transform


@pytest.fixture(scope="module")
def transform(tiny_checkpoint: Path):
    """The tiny model's transform, built from its checkpoint files as configs/tiny/*_w2.yaml do."""
    return llama3_2_vision_transform(
        str(tiny_checkpoint / "original" / "tokenizer.model"),
        special_tokens_path=str(tiny_checkpoint / "tokenizer.json"),
        tile_size=56,
        max_num_tiles=4,
        patch_size=14,
        image_dtype="float32",
    )


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("w2") / "raw"
    write_w2_dataset(out, 8, 0, splits="train=4,validation=2,test=2")
    return out


@pytest.fixture(scope="module")
def prepared_dir(raw_dir: Path) -> Path:
    out = raw_dir.parent / "prepared"
    prepare_w2(str(raw_dir), train_ratio=0.5, seed=42, output_dir=out)
    return out


def _flat_gt(ds_dir: Path, split: str, row: int) -> dict[str, Any]:
    import datasets

    gt = json.loads(datasets.load_from_disk(str(ds_dir))[split][row]["ground_truth"])
    return gt.get("gt_parse", gt)


def test_loss_is_only_on_the_answer(transform, prepared_dir: Path) -> None:
    ds = w2_dataset(transform, data_dir=str(prepared_dir), split="train")
    assert len(ds) == 3
    tok = transform.tokenizer
    for i in range(len(ds)):
        sample = ds[i]
        tokens, labels, mask = sample["tokens"], sample["labels"], sample["mask"]
        assert len(tokens) == len(labels) == len(mask)
        for t, label, m in zip(tokens, labels, mask, strict=True):
            assert label == (CROSS_ENTROPY_IGNORE_IDX if m else t)
        answer = [t for t in labels if t != CROSS_ENTROPY_IGNORE_IDX]
        target = target_json(_flat_gt(prepared_dir, "train", ds.row_index(i)))
        assert ds.target(i) == target
        # Exactly the assistant turn: header, the canonical JSON, end of turn.
        assert answer == tok.tokenize_message(Message(role="assistant", content=target))
        assert transform.decode(answer) == target
        assert transform.decode(answer, skip_special_tokens=False) == (
            f"<|start_header_id|>assistant<|end_header_id|>\n\n{target}<|eot_id|>"
        )
        # The masked prompt: the image token first, then the one prompt.
        first_answer = labels.index(answer[0])
        prompt = tokens[:first_answer]
        assert prompt.count(tok.image_id) == 1
        text = tok.encode(PROMPT, add_bos=False, add_eos=False)
        start = prompt.index(tok.image_id) + 1
        assert prompt[start : start + len(text)] == text
        assert tokens[-1] == tok.eos_id and labels[-1] == CROSS_ENTROPY_IGNORE_IDX
        images = sample["encoder_input"]["images"]
        assert len(images) == 1 and images[0].dtype == torch.float32 and images[0].shape[1:] == (3, 56, 56)


def test_identical_to_stock_vqa_dataset(transform, prepared_dir: Path, tmp_path: Path) -> None:
    from torchtune.datasets.multimodal import vqa_dataset

    ours = w2_dataset(transform, data_dir=str(prepared_dir), split="test")
    stock = vqa_dataset(
        transform,
        source="arrow",
        data_files=str(prepared_dir / "test" / "data-00000-of-00001.arrow"),
        split="train",
        column_map={"input": "input", "output": "ground_truth", "image": "image"},
        cache_dir=str(tmp_path / "hf_cache"),
    )
    assert len(ours) == len(stock) == 3
    for i in range(len(ours)):
        a, b = ours[i], stock[i]
        assert a["tokens"] == b["tokens"] and a["labels"] == b["labels"]
        assert torch.equal(a["encoder_mask"][0], b["encoder_mask"][0])
        assert torch.equal(a["encoder_input"]["images"][0], b["encoder_input"]["images"][0])
        assert torch.equal(a["encoder_input"]["aspect_ratio"][0], b["encoder_input"]["aspect_ratio"][0])


def test_reads_wrapped_and_flat_ground_truth(transform, raw_dir: Path, prepared_dir: Path) -> None:
    raw = w2_dataset(transform, data_dir=str(raw_dir), split="validation")
    flat = w2_dataset(transform, data_dir=str(prepared_dir), split="validation")
    assert [raw.target(i) for i in range(2)] == [flat.target(i) for i in range(2)]
    assert raw[1]["tokens"] == flat[1]["tokens"]
    assert list(json.loads(raw.target(0))) == list(FIELDS)


def test_usable_from_a_config_and_collates(transform, prepared_dir: Path) -> None:
    from omegaconf import OmegaConf
    from torchtune import config

    cfg = OmegaConf.create(
        {"_component_": "torchtune_ext.datasets.w2_dataset", "data_dir": str(prepared_dir), "split": "train"}
    )
    ds = config.instantiate(cfg, transform)
    assert isinstance(ds, W2Dataset) and len(ds) == 3
    batch = padded_collate_tiled_images_and_mask([ds[0], ds[1]], pad_direction="right")
    assert batch["tokens"].shape == batch["labels"].shape and batch["tokens"].shape[0] == 2
    assert batch["encoder_input"]["images"].shape[0] == 2
    with pytest.raises(ValueError, match="packing"):
        w2_dataset(transform, data_dir=str(prepared_dir), packed=True)


def test_filter_fn(transform, prepared_dir: Path) -> None:
    ds = w2_dataset(
        transform, data_dir=str(prepared_dir), split="test", filter_fn=lambda row: "x" in row["ground_truth"]
    )
    expected = [
        i for i in range(3) if "x" in json.dumps(_flat_gt(prepared_dir, "test", i))
    ]  # fmt: skip
    assert [ds.row_index(i) for i in range(len(ds))] == expected


# --- bad rows -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_row() -> tuple[bytes, dict[str, Any]]:
    image, gt = make_w2(9, 0, 128, 160)
    return image, json.loads(gt)["gt_parse"]


def _bad_rows(good_row: tuple[bytes, dict[str, Any]]) -> list[tuple[str, dict[str, Any] | None, Any, str]]:
    from support.images import oversized_png, truncated_jpeg

    image, gt = good_row
    wrong_type = {**gt, FIELDS[9]: "lots"}
    missing = {k: v for k, v in gt.items() if k != FIELDS[3]}
    extra = {**gt, "box_14_other": "x"}
    ok = json.dumps(gt)
    return [
        ("missing image", None, ok, "image is missing"),
        ("garbage image", {"bytes": b"not an image", "path": None}, ok, "image does not decode"),
        ("truncated image", {"bytes": image[: len(image) // 2], "path": None}, ok, "image does not decode"),
        ("truncated jpeg", {"bytes": truncated_jpeg(), "path": None}, ok, "image does not decode (OSError"),
        (
            "oversized image",
            {"bytes": oversized_png(12000), "path": None},
            ok,
            "image is too large: 12000x12000 = 144,000,000 pixels, over the limit of 89,478,485",
        ),
        ("not json", {"bytes": image, "path": None}, "{box_1: 3", "ground_truth is not valid JSON"),
        ("not an object", {"bytes": image, "path": None}, "[1, 2]", "ground_truth is a JSON list"),
        ("no ground truth", {"bytes": image, "path": None}, None, "ground_truth is missing"),
        (
            "missing field",
            {"bytes": image, "path": None},
            json.dumps(missing),
            f"{FIELDS[3]}: Field required",
        ),
        (
            "wrong type",
            {"bytes": image, "path": None},
            json.dumps(wrong_type),
            f"{FIELDS[9]}: Input should be",
        ),
        ("extra key", {"bytes": image, "path": None}, json.dumps(extra), "box_14_other: Extra inputs"),
    ]


def _write(path: Path, cells: list[Any], truths: list[Any]) -> Path:
    import datasets

    features = datasets.Features({"image": datasets.Image(), "ground_truth": datasets.Value("string")})
    split = datasets.Dataset.from_dict({"image": cells, "ground_truth": truths}, features=features)
    datasets.DatasetDict({"train": split}).save_to_disk(str(path))
    return path


def test_training_and_evaluation_reject_the_same_ground_truth(transform, good_row, tmp_path: Path) -> None:
    """One validation (eval.tasks.w2.ground_truth) for the builder and the evaluator: same rows, same reason."""
    from eval.core.splits import InputError
    from eval.tasks.w2.task import W2Task

    image, gt = good_row
    cell = {"bytes": image, "path": None}
    truths = [t for _, c, t, problem in _bad_rows(good_row) if c == cell and not problem.startswith("image")]
    assert len(truths) == 6
    truths.append(json.dumps({**gt, "box_99_unknown": "x"}))
    for i, truth in enumerate(truths):
        path = _write(tmp_path / f"gt{i}", [cell], [truth])
        with pytest.raises(W2DataError) as trained:
            w2_dataset(transform, data_dir=str(path))
        task = W2Task()
        split = task.load(path / "train")
        with pytest.raises(InputError) as evaluated:
            task.sample(split.row(0), 0)
        reason = str(trained.value).split(" row 0: ground_truth ", 1)[1]
        assert str(evaluated.value) == f"row 0: column 'ground_truth': {reason}", truth


def test_path_only_image_cells_are_checked(tmp_path: Path, good_row) -> None:
    """save_to_disk embeds image bytes, but an in-memory HF Image cell may hold only a path."""
    missing = tmp_path / "gone.png"
    with pytest.raises(W2DataError, match=f"image file {missing} does not exist"):
        _check_image({"bytes": None, "path": str(missing)})
    present = tmp_path / "form.png"
    present.write_bytes(good_row[0])
    _check_image({"bytes": None, "path": str(present)})


def test_each_bad_row_raises_one_clear_error(transform, good_row, tmp_path: Path) -> None:
    image, gt = good_row
    good_cell = {"bytes": image, "path": None}
    for i, (name, cell, truth, problem) in enumerate(_bad_rows(good_row)):
        path = _write(
            tmp_path / f"bad{i}", [good_cell, cell, good_cell], [json.dumps(gt), truth, json.dumps(gt)]
        )
        with pytest.raises(W2DataError) as info:
            w2_dataset(transform, data_dir=str(path))
        message = str(info.value)
        assert message.startswith(f"{path} split train row 1: "), (name, message)
        assert problem in message, (name, message)
        assert "\n" not in message, name


def test_skip_invalid_counts_and_logs_once(transform, good_row, tmp_path: Path, caplog) -> None:
    image, gt = good_row
    bad = _bad_rows(good_row)
    cells = [{"bytes": image, "path": None}] + [c for _, c, _, _ in bad] + [{"bytes": image, "path": None}]
    truths = [json.dumps({"gt_parse": gt})] + [t for _, _, t, _ in bad] + [json.dumps(gt)]
    path = _write(tmp_path / "mixed", cells, truths)
    with caplog.at_level(logging.WARNING, logger="torchtune_ext.datasets._w2"):
        ds = w2_dataset(transform, data_dir=str(path), skip_invalid=True)
    assert len(ds) == 2 and [ds.row_index(i) for i in range(2)] == [0, len(cells) - 1]
    assert [row for row, _ in ds.skipped] == list(range(1, len(cells) - 1))
    records = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(records) == 1
    assert re.search(rf"skipped {len(bad)} of {len(cells)} rows of .* split train", records[0].getMessage())
    assert ds[1]["tokens"] == ds[0]["tokens"]  # same form, flat and wrapped ground truth


def test_directory_split_and_column_errors(transform, prepared_dir: Path, tmp_path: Path) -> None:
    import datasets

    with pytest.raises(W2DataError, match="does not exist"):
        w2_dataset(transform, data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(W2DataError, match="has no split 'dev'; it has train, validation, test"):
        w2_dataset(transform, data_dir=str(prepared_dir), split="dev")
    with pytest.raises(W2DataError, match="has no column 'answer'"):
        w2_dataset(transform, data_dir=str(prepared_dir), ground_truth_column="answer")
    paths = tmp_path / "paths"
    datasets.Dataset.from_dict({"image": ["a.png"], "ground_truth": ["{}"]}).save_to_disk(str(paths))
    with pytest.raises(W2DataError, match="expected datasets.Image"):
        w2_dataset(transform, data_dir=str(paths))  # a single-split directory is accepted as is


def test_every_row_invalid_is_an_error_even_when_skipping(transform, good_row, tmp_path: Path) -> None:
    """skip_invalid must not turn a dataset of bad rows into an empty one that trains 0 steps."""
    image, gt = good_row
    bad = _bad_rows(good_row)[1:4]
    path = _write(tmp_path / "all_bad", [c for _, c, _, _ in bad], [t for _, _, t, _ in bad])
    with pytest.raises(W2DataError) as info:
        w2_dataset(transform, data_dir=str(path), skip_invalid=True)
    message = str(info.value)
    assert message.startswith(f"{path} split train: no usable rows: all 3 rows were skipped (skip_invalid); ")
    assert "first: row 0: image does not decode" in message and "row 1: image does not decode" in message
    assert "\n" not in message
    kept_none = _write(tmp_path / "filtered", [{"bytes": image, "path": None}], [json.dumps(gt)])
    with pytest.raises(W2DataError, match=r"split train: no usable rows: filter_fn kept none of 1 rows$"):
        w2_dataset(transform, data_dir=str(kept_none), filter_fn=lambda row: False)


def test_decoding_matches_hf_including_exif_orientation(good_row, tmp_path: Path) -> None:
    import datasets

    from torchtune_ext.datasets._w2 import _ImageCells

    image, gt = good_row
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    rotated = io.BytesIO()
    Image.open(io.BytesIO(image)).convert("RGB").save(rotated, format="JPEG", exif=exif)
    path = _write(
        tmp_path / "exif",
        [{"bytes": image, "path": None}, {"bytes": rotated.getvalue(), "path": None}],
        [json.dumps(gt)] * 2,
    )
    split = datasets.load_from_disk(str(path))["train"]
    cells = _ImageCells(split, "image")
    for row in range(2):
        ours, theirs = cells.decode(row), split[row]["image"]
        assert ours.size == theirs.size and ours.mode == theirs.mode
        assert ours.tobytes() == theirs.tobytes()
    assert cells.decode(1).size == (160, 128)  # transposed from 128x160


def test_broken_directories_are_one_line_naming_the_path(transform, good_row, tmp_path: Path) -> None:
    image, gt = good_row
    empty = _write(tmp_path / "empty", [], [])
    bad_state = _write(tmp_path / "bad_state", [{"bytes": image, "path": None}], [json.dumps(gt)])
    (bad_state / "train" / "state.json").write_text("{")
    bad_dict = _write(tmp_path / "bad_dict", [{"bytes": image, "path": None}], [json.dumps(gt)])
    (bad_dict / "dataset_dict.json").write_bytes(b"\xff\xfe")
    truncated = _write(tmp_path / "truncated", [{"bytes": image, "path": None}] * 8, [json.dumps(gt)] * 8)
    arrow = next((truncated / "train").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    # a broken split the run does not use does not stop it
    other = _write(tmp_path / "other", [{"bytes": image, "path": None}], [json.dumps(gt)])
    (other / "test").mkdir()
    (other / "test" / "state.json").write_text("{")
    (other / "dataset_dict.json").write_text('{"splits": ["train", "test"]}')
    assert len(w2_dataset(transform, data_dir=str(other))) == 1
    cases = {
        empty: rf"^{empty / 'train'}: the split is empty \(saved from 0 rows\)$",
        bad_state: rf"^{bad_state / 'train' / 'state.json'}: not valid JSON \(.*\)$",
        bad_dict: rf"^{bad_dict / 'dataset_dict.json'}: not valid JSON \(.*\)$",
        truncated: rf"^{arrow}: cannot read the Arrow data, truncated or corrupt \(.*\)$",
    }
    for path, message in cases.items():
        with pytest.raises(W2DataError, match=message):
            w2_dataset(transform, data_dir=str(path))
