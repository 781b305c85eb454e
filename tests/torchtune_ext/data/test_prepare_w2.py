"""prepare_w2: seed-compatible split sizes, rows and columns on a stand-in of the real layout."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from eval.tasks.w2 import FIELDS, PROMPT
from torchtune_ext.data import prepare_w2 as prep
from torchtune_ext.data.prepare_w2 import PrepareError, default_output_name, main, prepare_w2
from torchtune_ext.data.synth.w2 import write_w2_dataset


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real dataset's shape: 1,800 / 100 / 100 rows (64x64 images: only rows matter here)."""
    out = tmp_path_factory.mktemp("standin") / "fake-w2-us-tax-form-dataset"
    write_w2_dataset(
        out, 2000, 0, splits="train=1800,validation=100,test=100", width=64, height=64, workers=2
    )
    return out


@pytest.fixture(scope="module")
def prepared(standin: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("prepared") / "out"
    counts = prepare_w2(str(standin), train_ratio=0.3, seed=42, output_dir=out)
    return out, counts


def _flat(gt: str) -> str:
    return json.dumps(json.loads(gt)["gt_parse"])


def test_split_sizes_and_columns(standin: Path, prepared: tuple[Path, dict[str, int]]) -> None:
    import datasets

    out, counts = prepared
    assert counts == {"train": 570, "validation": 100, "test": 1330}
    dd = datasets.load_from_disk(str(out))
    assert {k: len(v) for k, v in dd.items()} == counts
    for split in dd.values():
        assert split.column_names == ["image", "ground_truth", "input"]
        assert type(split.features["image"]).__name__ == "Image"
        assert set(list(split["input"])) == {PROMPT}
        gt = json.loads(split[0]["ground_truth"])
        assert list(gt) == list(FIELDS)  # gt_parse unwrapped
    assert (out / "train" / "data-00000-of-00001.arrow").exists()  # what `source: arrow` configs read


def test_rows_match_the_reference_recipe(standin: Path, prepared: tuple[Path, dict[str, int]]) -> None:
    """Rebuild the split the way the cookbook does: load_dataset(split="train+test") + train_test_split."""
    import datasets

    out, _ = prepared
    dd = datasets.load_from_disk(str(out))
    src = datasets.load_from_disk(str(standin))
    files = {s: str(standin / s / "data-00000-of-00001.arrow") for s in ("train", "test")}
    merged = datasets.load_dataset(
        "arrow", data_files=files, split="train+test", cache_dir=str(out.parent / "hf_cache")
    )
    assert len(merged) == 1900
    ref = merged.train_test_split(train_size=0.3, seed=42)
    for name in ("train", "test"):
        assert list(dd[name]["ground_truth"]) == [_flat(g) for g in list(ref[name]["ground_truth"])]
    # HF's split is a numpy permutation of the merged rows: test first, then train.
    perm = np.random.default_rng(42).permutation(1900)
    merged_gt = list(src["train"]["ground_truth"]) + list(src["test"]["ground_truth"])
    assert list(dd["test"]["ground_truth"]) == [_flat(merged_gt[i]) for i in perm[:1330]]
    assert list(dd["train"]["ground_truth"]) == [_flat(merged_gt[i]) for i in perm[1330:]]
    # Validation kept, in order; nothing lost or duplicated.
    assert list(dd["validation"]["ground_truth"]) == [
        _flat(g) for g in list(src["validation"]["ground_truth"])
    ]
    assert Counter(list(dd["train"]["ground_truth"]) + list(dd["test"]["ground_truth"])) == Counter(
        map(_flat, merged_gt)
    )
    # Images travel with their rows.
    i = int(perm[1330])
    assert (
        dd["train"][0]["image"].tobytes()
        == (src["train"][i]["image"] if i < 1800 else src["test"][i - 1800]["image"]).tobytes()
    )


def test_source_directory_is_left_untouched(standin: Path, prepared: tuple[Path, dict[str, int]]) -> None:
    assert sorted(p.name for p in (standin / "train").iterdir()) == [
        "data-00000-of-00001.arrow",
        "dataset_info.json",
        "state.json",
    ]


def test_default_output_name() -> None:
    assert (
        default_output_name("singhsays/fake-w2-us-tax-form-dataset", 0.3)
        == "fake_w2_us_tax_form_dataset_train30_test70"
    )
    assert default_output_name("/data/my forms/", 0.25) == "my_forms_train25_test75"


def _write(path: Path, splits: dict[str, dict[str, list]]) -> Path:
    import datasets

    dd = datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in splits.items()})
    dd.save_to_disk(str(path))
    return path


def test_errors_are_one_line_and_name_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt = json.dumps({"gt_parse": {"box_1_wages": 1.0}})
    good = {"image": [None] * 3, "ground_truth": [gt] * 3}
    bad = {**good, "ground_truth": [gt, "{", gt]}
    cases = [
        (str(tmp_path / "nowhere"), "does not exist"),
        (str(_write(tmp_path / "nosplit", {"train": good, "test": good})), "lacks split(s) validation"),
        (
            str(_write(tmp_path / "nocol", {s: {"image": [None]} for s in ("train", "validation", "test")})),
            "split train lacks column(s) ground_truth",
        ),
        (
            str(_write(tmp_path / "badjson", {"train": good, "validation": good, "test": bad})),
            "test row 1: ground_truth is not valid JSON",
        ),
    ]  # fmt: skip
    for source, message in cases:
        with pytest.raises(PrepareError, match=re.escape(message)) as info:
            prepare_w2(source, output_dir=tmp_path / "out")
        assert "\n" not in str(info.value)
        assert not (tmp_path / "out").exists()

    monkeypatch.setattr(prep, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(PrepareError, match="cannot load HF dataset 'nobody/no-such-w2-dataset'") as info:
        prepare_w2("nobody/no-such-w2-dataset", output_dir=tmp_path / "out")
    assert "\n" not in str(info.value)


def test_cli(standin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prepared"
    args = ["--source", str(standin), "--train-ratio", "0.5", "--seed", "1", "--output-dir", str(out)]
    assert main(args) == 0
    assert "train 950, validation 100, test 950" in capsys.readouterr().out
    assert main(args) == 2  # refuses to overwrite
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "exists" in err and err.count("\n") == 1
    assert main(["--source", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "o2")]) == 2
    assert "does not exist" in capsys.readouterr().err
