"""Golden tests for detection matching and metrics (hand-computed values in the comments)."""

import pytest

from eval.tasks.detect.metrics import aggregate_detection, iou, match_boxes, score_detection

G0, G1 = (0, 0, 100, 100), (200, 200, 300, 300)


def test_iou_values():
    assert iou((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(25 / 175)
    assert iou((0, 0, 10, 10), (0, 0, 10, 20)) == pytest.approx(0.5)
    assert iou(G0, G0) == 1.0
    assert iou(G0, G1) == 0.0
    assert iou((5, 5, 5, 9), (5, 5, 5, 9)) == 0.0  # degenerate: empty union


def test_threshold_is_inclusive():
    assert match_boxes([(0, 0, 10, 20)], [(0, 0, 10, 10)]) == [(0, 0, 0.5)]
    assert match_boxes([(0, 0, 10, 21)], [(0, 0, 10, 10)]) == []


def test_greedy_takes_highest_iou_first_not_output_order():
    p0, p1 = (0, 0, 100, 120), (0, 0, 100, 100)  # IoU with G0: 10000/12000, 1.0
    assert match_boxes([p0, p1], [G0]) == [(1, 0, 1.0)]


def test_duplicate_predictions_tie_goes_to_earlier_prediction():
    r = score_detection([G0, G0], [G0])
    assert (r.tp, r.fp, r.fn) == (1, 1, 0)
    assert match_boxes([G0, G0], [G0]) == [(0, 0, 1.0)]


def test_golden_dataset():
    images = [
        # P0, P1 duplicate G0 (IoU 1); P2 vs G1: 10000 / 20000 = 0.5; P3 hits nothing.
        score_detection([G0, G0, (200, 200, 300, 400), (500, 500, 600, 600)], [G0, G1]),
        score_detection(None, [G0]),  # unparsable: one miss, no false positive
        score_detection([], []),  # nothing to find, nothing found
        score_detection([(0, 0, 10, 10)], []),  # no ground truth: a false positive
    ]
    assert [(r.tp, r.fp, r.fn) for r in images] == [(2, 2, 0), (0, 0, 1), (0, 0, 0), (0, 1, 0)]
    s = aggregate_detection(images)
    assert (s.tp, s.fp, s.fn) == (2, 3, 1)
    assert s.precision == pytest.approx(2 / 5)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(0.5)  # 2 * (2/5)(2/3) / (2/5 + 2/3) = (8/15) / (16/15)
    assert s.mean_iou == pytest.approx(0.75)
    assert s.mean_best_iou == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert s.parse_rate == pytest.approx(3 / 4)


def test_empty_denominators():
    assert aggregate_detection([score_detection([], [])]).f1 == 1.0
    nothing_found = aggregate_detection([score_detection([], [G0])])
    assert (nothing_found.precision, nothing_found.recall, nothing_found.f1) == (0.0, 0.0, 0.0)
    assert nothing_found.mean_iou is None and nothing_found.mean_best_iou == 0.0
    only_false = aggregate_detection([score_detection([G0], [])])
    assert (only_false.precision, only_false.recall) == (0.0, 0.0)
    assert aggregate_detection([]).n == 0


def test_per_image_f1():
    assert score_detection([G0, G1], [G0]).f1 == pytest.approx(2 / 3)  # P 1/2, R 1
