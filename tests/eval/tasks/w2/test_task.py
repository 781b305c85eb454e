"""The W-2 task: what a row becomes (image first, the one prompt, the unwrapped ground truth)."""

import base64
from pathlib import Path

import pytest

from eval.core.client import data_url
from eval.core.splits import InputError
from eval.core.task import CONTENT_ORDER, openai_user_content
from eval.tasks.w2 import PROMPT
from eval.tasks.w2.task import W2Task


def test_w2_sample_is_image_then_prompt_and_unwraps_gt_parse(tmp_path: Path, kit) -> None:
    rec = kit.w2_record(0)
    images = [kit.png_bytes(0), kit.png_bytes(1), b"broken", kit.png_bytes(3), kit.png_bytes(4)]
    gts = [rec, {"gt_parse": rec}, rec, "{not json", "[1, 2]"]
    task = W2Task()
    split = task.load(kit.save_split(tmp_path / "test", gts, images=images))
    ex0 = task.sample(split.row(0), 0)
    ex1 = task.sample(split.row(1), 1)
    assert ex0.target == rec and ex1.target == rec  # {"gt_parse": {...}} unwrapped
    assert ex0.prompt == PROMPT and ex0.image == images[0] and ex0.mime == "image/png"
    assert task.answer(ex0.target) == task.answer(ex1.target)
    content = openai_user_content(data_url(ex0.image, ex0.mime), ex0.prompt)
    assert CONTENT_ORDER == ("image", "text")
    assert [p["type"] for p in content] == ["image_url", "text"]
    assert content[1]["text"] == PROMPT
    url = content[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == images[0]
    with pytest.raises(InputError, match=r"^row 2: column 'image': image does not decode"):
        task.sample(split.row(2), 2)
    with pytest.raises(InputError, match=r"^row 3: column 'ground_truth': is not valid JSON"):
        task.sample(split.row(3), 3)
    with pytest.raises(InputError, match=r"^row 4: column 'ground_truth': is a JSON list, not an object"):
        task.sample(split.row(4), 4)


def test_a_row_with_a_missing_or_unknown_key_is_an_input_error(tmp_path: Path, kit) -> None:
    """Scored over 44 or 46 fields before; training rejects the same rows with the same reason."""
    rec = kit.w2_record(0)
    missing = {k: v for k, v in rec.items() if k != "box_3_social_security_wages"}
    unknown = {**rec, "box_99_unknown": "x"}
    wrong_type = {**rec, "box_1_wages": "lots"}
    wrapped_with_more = {"gt_parse": rec, "meta": {"source": "scan"}}  # unwrapped, as the reference does
    task = W2Task()
    split = task.load(kit.save_split(tmp_path / "test", [missing, unknown, wrong_type, wrapped_with_more]))
    with pytest.raises(
        InputError,
        match=r"^row 0: column 'ground_truth': does not match W2Form: box_3_social_security_wages: Field required$",
    ):
        task.sample(split.row(0), 0)
    with pytest.raises(
        InputError,
        match=r"^row 1: column 'ground_truth': does not match W2Form: box_99_unknown: Extra inputs are not permitted$",
    ):
        task.sample(split.row(1), 1)
    with pytest.raises(
        InputError, match=r"^row 2: column 'ground_truth': does not match W2Form: box_1_wages: "
    ):
        task.sample(split.row(2), 2)
    assert task.sample(split.row(3), 3).target == rec


def test_prompt_mismatch_warns(tmp_path: Path, kit, capsys) -> None:
    W2Task().load(kit.save_split(tmp_path / "test", [kit.w2_record(0)], prompt="Describe the image."))
    assert "differs from the W-2 prompt" in capsys.readouterr().err
