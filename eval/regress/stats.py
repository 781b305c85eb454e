"""Paired comparison of two evaluations on the same items, and the verdict rule.

Both models answer the same items, so the comparison is paired: with per-item scores ``b_i``
(base) and ``t_i`` (fine-tuned) on the ``n`` items both runs scored,

* ``delta = mean(t) - mean(b)``,
* ``SE(delta) = sd(t_i - b_i) / sqrt(n)`` (sample standard deviation, ``n - 1`` in the
  denominator). This is the combined standard error of the two means,
  ``sqrt(SE_b^2 + SE_t^2 - 2 cov(b, t) / n)``, with the correlation of the two runs on the same
  items accounted for; the unpaired ``sqrt(SE_b^2 + SE_t^2)`` is reported beside it.

Verdict (:func:`verdict`), with ``gain = delta`` when higher is better (else ``-delta``):

* **regressed** if ``gain < -z * SE`` and ``|delta| >= min_effect``;
* **improved** if ``gain > z * SE`` and ``|delta| >= min_effect``;
* **within noise** otherwise (including fewer than two paired items, where SE is undefined).

Defaults: ``z = 1.96`` (a two-sided 95 % interval) and ``min_effect = 0.01`` (one point on a
0-1 metric): a difference must be both outside the noise and large enough to matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Optional

__all__ = [
    "IMPROVED",
    "REGRESSED",
    "WITHIN_NOISE",
    "Comparison",
    "Rule",
    "compare_paired",
    "mean",
    "overall_verdict",
    "se_of_mean",
    "verdict",
]

REGRESSED = "regressed"
WITHIN_NOISE = "within noise"
IMPROVED = "improved"

# Differences this close to the threshold count as reaching it (sums of 0/1 scores are inexact).
_EPS = 1e-12


@dataclass(frozen=True)
class Rule:
    """When a difference counts as a regression or an improvement.

    Attributes:
        z (float): multiple of the standard error a difference must exceed (1.96: 95 %, two-sided).
        min_effect (float): smallest absolute difference that counts, in the metric's units.
    """

    z: float = 1.96
    min_effect: float = 0.01

    def __post_init__(self) -> None:
        if not self.z > 0:
            raise ValueError(f"z must be > 0, got {self.z}")
        if not self.min_effect >= 0:
            raise ValueError(f"min_effect must be >= 0, got {self.min_effect}")

    def describe(self) -> str:
        """str: the rule in one sentence."""
        return (
            f"regressed if the fine-tuned score is worse by more than {self.z:g} x SE of the paired "
            f"difference and by at least {self.min_effect:g}; improved if better by the same; "
            "within noise otherwise"
        )

    def to_dict(self) -> dict[str, Any]:
        """dict: ``z``, ``min_effect``, ``se`` (how SE is computed) and ``text``."""
        return {
            "z": self.z,
            "min_effect": self.min_effect,
            "se": "paired: sd(tuned_i - base_i) / sqrt(n) over the items both runs scored",
            "text": self.describe(),
        }


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean.

    Args:
        values (Sequence[float]): at least one value.

    Returns:
        float: the mean.

    Raises:
        ValueError: if ``values`` is empty.
    """
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def se_of_mean(values: Sequence[float]) -> Optional[float]:
    """Standard error of the mean: sample standard deviation (``n - 1``) over ``sqrt(n)``.

    This is lm_eval's ``mean_stderr``.

    Args:
        values (Sequence[float]): the per-item values.

    Returns:
        Optional[float]: the standard error, or None for fewer than two values.
    """
    n = len(values)
    if n < 2:
        return None
    mu = mean(values)
    variance = math.fsum((x - mu) ** 2 for x in values) / (n - 1)
    return math.sqrt(variance / n)


def verdict(delta: float, se: Optional[float], rule: Rule, higher_is_better: bool = True) -> tuple[str, str]:
    """Apply the rule (see the module docstring) to one difference.

    Args:
        delta (float): fine-tuned minus base.
        se (Optional[float]): standard error of ``delta`` (None: undefined).
        rule (Rule): the thresholds.
        higher_is_better (bool): the metric's direction.

    Returns:
        tuple[str, str]: the verdict and the reason, e.g. ``("within noise", "|delta| <= 1.96 x SE")``.
    """
    if se is None:
        return WITHIN_NOISE, "fewer than 2 paired items: no standard error"
    gain = delta if higher_is_better else -delta
    bound = rule.z * se
    if abs(gain) <= bound:
        return WITHIN_NOISE, f"|delta| <= {rule.z:g} x SE"
    if abs(delta) < rule.min_effect - _EPS:
        return WITHIN_NOISE, f"|delta| < min effect {rule.min_effect:g}"
    if gain < 0:
        return REGRESSED, f"worse by more than {rule.z:g} x SE and at least {rule.min_effect:g}"
    return IMPROVED, f"better by more than {rule.z:g} x SE and at least {rule.min_effect:g}"


@dataclass(frozen=True)
class Comparison:
    """One paired comparison.

    Attributes:
        n (int): paired items.
        base (float): base mean.
        tuned (float): fine-tuned mean.
        delta (float): ``tuned - base``.
        se (Optional[float]): paired standard error of ``delta``.
        se_base (Optional[float]): standard error of the base mean.
        se_tuned (Optional[float]): standard error of the fine-tuned mean.
        se_unpaired (Optional[float]): ``sqrt(se_base^2 + se_tuned^2)`` (ignores the pairing).
        ci (Optional[tuple[float, float]]): ``delta -/+ z * se``.
        verdict (str): :data:`REGRESSED`, :data:`WITHIN_NOISE` or :data:`IMPROVED`.
        reason (str): why.
    """

    n: int
    base: float
    tuned: float
    delta: float
    se: Optional[float]
    se_base: Optional[float]
    se_tuned: Optional[float]
    se_unpaired: Optional[float]
    ci: Optional[tuple[float, float]]
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """dict: the fields (``ci`` as a list)."""
        out = asdict(self)
        out["ci"] = list(self.ci) if self.ci is not None else None
        return out


def compare_paired(
    base: Sequence[float], tuned: Sequence[float], rule: Rule, higher_is_better: bool = True
) -> Comparison:
    """Compare per-item scores of the same items (``base[i]`` and ``tuned[i]`` are one item).

    Args:
        base (Sequence[float]): base scores.
        tuned (Sequence[float]): fine-tuned scores, same length and order.
        rule (Rule): the verdict thresholds.
        higher_is_better (bool): the metric's direction.

    Returns:
        Comparison: means, delta, standard errors and verdict.

    Raises:
        ValueError: if the lengths differ or there are no items.
    """
    if len(base) != len(tuned):
        raise ValueError(f"paired scores differ in length: {len(base)} base, {len(tuned)} tuned")
    if not base:
        raise ValueError("no paired items to compare")
    diffs = [t - b for b, t in zip(base, tuned, strict=True)]
    delta = mean(diffs)
    se = se_of_mean(diffs)
    se_b, se_t = se_of_mean(base), se_of_mean(tuned)
    unpaired = math.sqrt(se_b**2 + se_t**2) if se_b is not None and se_t is not None else None
    label, reason = verdict(delta, se, rule, higher_is_better)
    return Comparison(
        n=len(diffs),
        base=mean(base),
        tuned=mean(tuned),
        delta=delta,
        se=se,
        se_base=se_b,
        se_tuned=se_t,
        se_unpaired=unpaired,
        ci=(delta - rule.z * se, delta + rule.z * se) if se is not None else None,
        verdict=label,
        reason=reason,
    )


def overall_verdict(verdicts: Sequence[str]) -> str:
    """The verdict of a whole comparison: regressed if any row regressed, else improved if any
    improved, else within noise.

    Args:
        verdicts (Sequence[str]): the per-row verdicts.

    Returns:
        str: the overall verdict.
    """
    if REGRESSED in verdicts:
        return REGRESSED
    if IMPROVED in verdicts:
        return IMPROVED
    return WITHIN_NOISE
