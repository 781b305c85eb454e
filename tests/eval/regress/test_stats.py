"""The paired comparison and the verdict rule, against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from eval.regress.stats import (
    IMPROVED,
    REGRESSED,
    WITHIN_NOISE,
    Rule,
    compare_paired,
    overall_verdict,
    se_of_mean,
    verdict,
)

# 10 items: the fine-tuned model loses items 2, 5 and 9 and gains none.
BASE = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
TUNED = [1, 0, 0, 1, 0, 0, 0, 1, 1, 0]


def test_paired_numbers_by_hand() -> None:
    c = compare_paired(BASE, TUNED, Rule())
    assert (c.n, c.base, c.tuned) == (10, 0.7, 0.4)
    assert c.delta == pytest.approx(-0.3)
    # d = three -1 and seven 0: sample variance (3 * 0.49 + 7 * 0.09) / 9 = 2.1 / 9
    assert c.se == pytest.approx(math.sqrt(2.1 / 9 / 10))
    assert c.se_base == pytest.approx(math.sqrt(2.1 / 9 / 10))
    assert c.se_tuned == pytest.approx(math.sqrt(2.4 / 9 / 10))
    assert c.se_unpaired == pytest.approx(math.sqrt(0.05))  # (2.1 + 2.4) / 90
    assert c.ci == pytest.approx((-0.3 - 1.96 * c.se, -0.3 + 1.96 * c.se))
    # 0.3 > 1.96 x 0.15275 = 0.2994: just outside the noise, and far above the 0.01 minimum
    assert c.verdict == REGRESSED
    assert compare_paired(BASE, TUNED, Rule(z=2.0)).verdict == WITHIN_NOISE  # 2 x SE = 0.3055
    # the pairing matters: the unpaired SE (0.2236) would call this within noise at z = 1.96
    assert abs(c.delta) < 1.96 * c.se_unpaired


def test_direction_min_effect_and_symmetry() -> None:
    assert compare_paired(TUNED, BASE, Rule()).verdict == IMPROVED
    # lower is better (e.g. a perplexity): the same drop is an improvement
    assert compare_paired(BASE, TUNED, Rule(), higher_is_better=False).verdict == IMPROVED
    label, reason = verdict(-0.3, 0.01, Rule(min_effect=0.5))
    assert (label, reason) == (WITHIN_NOISE, "|delta| < min effect 0.5")
    assert verdict(-0.3, 0.2, Rule()) == (WITHIN_NOISE, "|delta| <= 1.96 x SE")
    # every item moved the same way: SE 0, any drop that reaches the minimum effect is a regression
    assert verdict(-0.01, 0.0, Rule())[0] == REGRESSED
    assert verdict(0.0, 0.0, Rule())[0] == WITHIN_NOISE
    assert verdict(-0.5, None, Rule()) == (WITHIN_NOISE, "fewer than 2 paired items: no standard error")


def test_se_matches_lm_eval_and_edge_cases() -> None:
    metrics = pytest.importorskip("lm_eval.api.metrics")
    values = [0.0, 1.0, 1.0, 0.5, 0.25, 1.0]
    assert se_of_mean(values) == pytest.approx(metrics.mean_stderr(values))
    assert se_of_mean([1.0]) is None
    single = compare_paired([1.0], [0.0], Rule())
    assert single.se is None and single.verdict == WITHIN_NOISE and single.ci is None
    with pytest.raises(ValueError, match="differ in length"):
        compare_paired([1, 0], [1], Rule())
    with pytest.raises(ValueError, match="no paired items"):
        compare_paired([], [], Rule())
    with pytest.raises(ValueError, match="z must be > 0"):
        Rule(z=0)
    assert overall_verdict([WITHIN_NOISE, IMPROVED, REGRESSED]) == REGRESSED
    assert overall_verdict([WITHIN_NOISE, IMPROVED]) == IMPROVED
    assert overall_verdict([WITHIN_NOISE]) == WITHIN_NOISE
