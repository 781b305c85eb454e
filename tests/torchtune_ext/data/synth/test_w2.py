"""Synthetic W-2 generator: determinism, schema validity, internal consistency, CLI."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.tasks.w2 import FIELDS, MONEY_FIELDS, W2Form
from torchtune_ext.data.synth.__main__ import main as synth_main
from torchtune_ext.data.synth.scan import ScanNoise
from torchtune_ext.data.synth.w2 import build_w2_dataset, iter_w2, make_w2, parse_splits
from torchtune_ext.data.synth.w2_layout import _template, render_w2
from torchtune_ext.data.synth.w2_values import (
    BOX12_CODES,
    CITIES,
    NO_INCOME_TAX_STATES,
    RETIREMENT_CODES,
    SS_WAGE_BASE,
    box_field,
    sample_w2,
    state_field,
)

# USPS first-three-digit ZIP ranges per state (independent of the generator's city table).
ZIP3 = {
    "AL": [(350, 369)], "AK": [(995, 999)], "AZ": [(850, 865)], "AR": [(716, 729)], "CA": [(900, 961)],
    "CO": [(800, 816)], "CT": [(60, 69)], "DE": [(197, 199)], "DC": [(200, 205)], "FL": [(320, 349)],
    "GA": [(300, 319), (398, 399)], "HI": [(967, 968)], "ID": [(832, 838)], "IL": [(600, 629)],
    "IN": [(460, 479)], "IA": [(500, 528)], "KS": [(660, 679)], "KY": [(400, 427)], "LA": [(700, 714)],
    "ME": [(39, 49)], "MD": [(206, 219)], "MA": [(10, 27), (55, 55)], "MI": [(480, 499)],
    "MN": [(550, 567)], "MS": [(386, 397)], "MO": [(630, 658)], "MT": [(590, 599)], "NE": [(680, 693)],
    "NV": [(889, 898)], "NH": [(30, 38)], "NJ": [(70, 89)], "NM": [(870, 884)],
    "NY": [(100, 149), (5, 5), (63, 63)], "NC": [(270, 289)], "ND": [(580, 588)], "OH": [(430, 458)],
    "OK": [(730, 749)], "OR": [(970, 979)], "PA": [(150, 196)], "RI": [(28, 29)], "SC": [(290, 299)],
    "SD": [(570, 577)], "TN": [(370, 385)], "TX": [(750, 799), (733, 733), (885, 885)],
    "UT": [(840, 847)], "VT": [(50, 59)], "VA": [(201, 201), (220, 246)], "WA": [(980, 994)],
    "WV": [(247, 268)], "WI": [(530, 549)], "WY": [(820, 831)],
}  # fmt: skip
CITY_STATE_ZIP = re.compile(r"^(?P<city>[A-Za-z. ]+), (?P<state>[A-Z]{2}) (?P<zip>\d{5})(-\d{4})?$")
LOCALITIES = {(c.locality, c.state) for c in CITIES if c.locality}


def main(argv: list[str]) -> int:
    return synth_main(["w2", *argv])


def _zip_in_state(zip_code: str, state: str) -> bool:
    z3 = int(zip_code[:3])
    return any(lo <= z3 <= hi for lo, hi in ZIP3[state])


def _samples(n: int = 400, seed: int = 7):
    return [sample_w2(np.random.default_rng([seed, i])) for i in range(n)]


def test_city_table_zips_match_states() -> None:
    for city in CITIES:
        assert _zip_in_state(f"{city.zip_lo:05d}", city.state), city
        assert _zip_in_state(f"{city.zip_hi:05d}", city.state), city


def test_records_follow_schema_and_dataset_conventions() -> None:
    for s in _samples(200):
        rec = s.record
        assert list(rec) == list(FIELDS)
        W2Form.model_validate(rec)
        for key, value in rec.items():
            assert value is not None and value != "", key  # empty boxes are the string "None"
            if key in MONEY_FIELDS:
                assert type(value) is float and round(value, 2) == value, (key, value)
        assert type(rec[box_field("d")]) is int


def test_records_are_internally_consistent() -> None:
    seen_codes: set[str] = set()
    for s in _samples(400):
        rec = s.record
        wages, ss, medicare = rec[box_field("1")], rec[box_field("3")], rec[box_field("5")]
        tips = rec[box_field("7")]
        # Payroll arithmetic.
        assert rec[box_field("4")] == round(0.062 * (ss + tips), 2)
        assert rec[box_field("6")] == round(0.0145 * medicare + 0.009 * max(0.0, medicare - 200000), 2)
        assert ss + tips <= SS_WAGE_BASE[s.tax_year] + 0.005
        assert 0 < wages <= medicare + 0.005 and ss <= medicare + 0.005
        assert rec[box_field("2")] < wages
        # Identifiers.
        assert re.fullmatch(r"\d{2}-\d{7}", rec[box_field("b")])
        ssn = rec[box_field("a")]
        assert re.fullmatch(r"\d{3}-\d{2}-\d{4}", ssn) and ssn[:3] not in {"000", "666"} and ssn[0] != "9"
        # Addresses: state code matches the ZIP.
        states = set()
        for box in ("c", "e"):
            m = CITY_STATE_ZIP.match(rec[box_field(box, "zip")])
            assert m, rec[box_field(box, "zip")]
            assert _zip_in_state(m["zip"], m["state"]), m.group(0)
            states.add(m["state"])
        # Box 12: IRS codes, distinct, an empty slot has no amount, filled slots come first.
        codes = [rec[box_field(f"12{x}", "code")] for x in "abcd"]
        values = [rec[box_field(f"12{x}", "value")] for x in "abcd"]
        filled = [c for c in codes if c != "None"]
        assert codes == filled + ["None"] * (4 - len(filled))
        assert set(filled) <= set(BOX12_CODES) and len(set(filled)) == len(filled)
        for code, value in zip(codes, values, strict=True):
            assert (code == "None") == (value == 0.0), (code, value)
        seen_codes.update(filled)
        # Box 13 agrees with box 12.
        if set(filled) & RETIREMENT_CODES:
            assert rec[box_field("13", "retirement")] == "x"
        for name in ("statut", "retirement", "sick"):
            assert rec[box_field("13", name)] in {"x", "None"}
        # State and local rows.
        for row in (1, 2):
            state = rec[state_field("15_state", row)]
            amounts = [rec[state_field(b, row)] for b in ("16", "17", "18", "19")]
            locality = rec[state_field("20", row)]
            if state == "None":
                assert amounts == [0.0] * 4 and locality == "None"
                assert rec[state_field("15_id", row)] == "None"
                continue
            assert state in states and state not in NO_INCOME_TAX_STATES
            assert 0 < amounts[0] <= medicare + 0.005 and 0 < amounts[1] < 0.134 * amounts[0]
            assert (locality != "None") == (amounts[2] > 0) == (amounts[3] > 0)
            if locality != "None":
                assert (locality, state) in LOCALITIES
        if rec[state_field("15_state", 1)] == "None":
            assert rec[state_field("15_state", 2)] == "None"
    assert len(seen_codes) >= 8  # the generator exercises the code list


def test_make_w2_is_deterministic_and_seed_dependent() -> None:
    a = make_w2(3, 11)
    assert a == make_w2(3, 11)
    assert make_w2(4, 11) != a
    image = Image.open(io.BytesIO(a[0]))
    assert image.format == "PNG" and image.size == (612, 792)
    gt = json.loads(a[1])
    assert list(gt) == ["gt_parse"] and list(gt["gt_parse"]) == list(FIELDS)


def test_worker_count_does_not_change_output() -> None:
    kwargs = {"width": 160, "height": 200}
    serial = list(iter_w2(40, 5, workers=1, **kwargs))
    parallel = list(iter_w2(40, 5, workers=2, **kwargs))
    assert serial == parallel


def test_values_are_printed_in_their_boxes() -> None:
    rng = np.random.default_rng(0)
    sample = sample_w2(rng)
    sample.record[box_field("8")] = 0.0  # a blank box
    sample.record[box_field("1")] = 123456.78
    img = np.asarray(render_w2(sample, np.random.default_rng(1)))
    blank, layout = _template(612, 792, sample.tax_year)
    blank = np.asarray(blank)
    slots = layout.slots()

    def region(key: str, arr: np.ndarray) -> np.ndarray:
        s = slots[key]
        return arr[int(s.y) : int(s.y + 0.6 * layout.row), int(s.x) + 2 : int(s.x + s.w) - 2]

    assert (region("1", img) != region("1", blank)).any()
    assert (region("a", img) != region("a", blank)).any()
    assert (region("8", img) == region("8", blank)).all()
    # The second copy carries the same values.
    offset = int(round(layout.y0s[1] - layout.y0s[0]))
    s = slots["1"]
    y0, y1, x0, x1 = int(s.y), int(s.y + 0.6 * layout.row), int(s.x), int(s.x + s.w)
    np.testing.assert_array_equal(img[y0:y1, x0:x1], img[y0 + offset : y1 + offset, x0:x1])


def test_scan_noise_changes_pixels_deterministically() -> None:
    clean = make_w2(0, 1)
    scan = ScanNoise(rotate=1.0, blur=0.6, noise=5.0, contrast=0.2, jpeg_quality=80)
    noisy = make_w2(0, 1, scan=scan)
    assert noisy == make_w2(0, 1, scan=scan)
    assert noisy[1] == clean[1]  # same ground truth
    img = Image.open(io.BytesIO(noisy[0]))
    assert img.format == "JPEG" and img.size == (612, 792)
    assert not np.array_equal(np.asarray(img), np.asarray(Image.open(io.BytesIO(clean[0]))))
    with pytest.raises(ValueError, match="jpeg_quality"):
        ScanNoise(jpeg_quality=120)


@pytest.mark.parametrize(
    ("spec", "num", "expected"),
    [
        ("train=1800,validation=100,test=100", 2000, {"train": 1800, "validation": 100, "test": 100}),
        ("train=0.9,validation=0.05,test=0.05", 2000, {"train": 1800, "validation": 100, "test": 100}),
        ("train=0.9,validation=0.05,test=0.05", 7, {"train": 7, "validation": 0, "test": 0}),
        ("train=0.5,test=0.5", 5, {"train": 3, "test": 2}),
    ],
)
def test_parse_splits(spec: str, num: int, expected: dict[str, int]) -> None:
    assert parse_splits(spec, num) == expected


@pytest.mark.parametrize(
    "spec", ["train=10,test=10", "train=0.5,test=0.4", "train", "train=a", "train=5,train=5", "tr ain=10"]
)
def test_parse_splits_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_splits(spec, 10)


def test_build_dataset_columns_and_splits() -> None:
    dd = build_w2_dataset(6, 2, splits="train=4,validation=1,test=1", width=96, height=128)
    assert {k: len(v) for k, v in dd.items()} == {"train": 4, "validation": 1, "test": 1}
    assert dd["train"].column_names == ["image", "ground_truth"]
    assert type(dd["train"].features["image"]).__name__ == "Image"
    assert json.loads(dd["test"][0]["ground_truth"]) == json.loads(make_w2(2, 5, 96, 128)[1])
    assert dd["test"][0]["image"].size == (96, 128)


def test_cli_writes_dataset_and_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import datasets

    out = tmp_path / "w2"
    args = ["--num", "5", "--output-dir", str(out), "--width", "96", "--height", "128", "--workers", "1"]
    assert main([*args, "--splits", "train=3,validation=1,test=1", "--scan-noise"]) == 0
    assert "wrote 5 W-2 forms (train 3, validation 1, test 1)" in capsys.readouterr().out
    dd = datasets.load_from_disk(str(out))
    assert {k: len(v) for k, v in dd.items()} == {"train": 3, "validation": 1, "test": 1}
    for split in dd.values():
        for gt in split["ground_truth"]:
            W2Form.model_validate(json.loads(gt)["gt_parse"])
    assert dd["train"][0]["image"].format == "JPEG"  # the preset stores JPEG

    assert main(args) == 2  # output exists: nothing overwritten
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "exists" in err and err.count("\n") == 1
    assert main(["--num", "5", "--output-dir", str(tmp_path / "x"), "--splits", "train=4,test=4"]) == 2
    assert "splits" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
