"""Golden tests for the classification metrics (values computed by hand in the comments)."""

import csv

import pytest

from eval.tasks.classify import LabelSet
from eval.tasks.classify.metrics import plot_confusion, score_classification, write_confusion_csv

LABELS = LabelSet(("A", "B", "C", "D"))
# Confusion (rows true, cols A B C D invalid):
#   A: 2 1 0 0 0     B: 0 1 0 0 1     C: 1 0 0 0 0     D: no support, never predicted
GOLDS = ["A", "A", "A", "B", "B", "C"]
PREDS = ["A", "A", "B", "B", None, "A"]


def test_golden_metrics():
    s = score_classification(GOLDS, PREDS, LABELS)
    assert s.n == 6 and s.correct == 3 and s.invalid == 1
    assert s.accuracy == pytest.approx(3 / 6)
    assert s.invalid_rate == pytest.approx(1 / 6)
    # A: P = 2/3 (3 predicted A), R = 2/3 -> F1 2/3; B: P = 1/2, R = 1/2 -> 1/2; C: 0; D excluded.
    assert s.per_label["A"]["f1"] == pytest.approx(2 / 3)
    assert s.per_label["B"]["precision"] == pytest.approx(1 / 2)
    assert s.per_label["B"]["recall"] == pytest.approx(1 / 2)
    assert s.per_label["C"]["f1"] == 0.0
    assert s.per_label["D"]["support"] == 0
    assert s.macro_f1 == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert s.confusion == ((2, 1, 0, 0, 0), (0, 1, 0, 0, 1), (1, 0, 0, 0, 0), (0, 0, 0, 0, 0))


def test_string_outside_label_set_is_invalid():
    s = score_classification(["A", "B"], ["A", "Z"], LABELS)
    assert s.invalid == 1 and s.accuracy == 0.5
    assert s.confusion[1][-1] == 1


def test_perfect_and_all_invalid():
    assert score_classification(["A", "B"], ["A", "B"], LABELS).macro_f1 == 1.0
    s = score_classification(["A", "B"], [None, None], LABELS)
    assert s.accuracy == 0.0 and s.invalid_rate == 1.0 and s.macro_f1 == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="record 1"):
        score_classification(["A", "Q"], ["A", "A"], LABELS)
    with pytest.raises(ValueError, match="2 ground-truth labels but 1"):
        score_classification(["A", "B"], ["A"], LABELS)


def test_confusion_csv_and_png(tmp_path):
    s = score_classification(GOLDS, PREDS, LABELS)
    rows = list(csv.reader(write_confusion_csv(s, tmp_path / "cm.csv").open()))
    assert rows[0] == ["true\\pred", "A", "B", "C", "D", "invalid"]
    assert rows[2] == ["B", "0", "1", "0", "0", "1"]
    png = plot_confusion(s, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
