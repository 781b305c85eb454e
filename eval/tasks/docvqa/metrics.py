"""DocVQA metrics: ANLS and exact match.

**Normalisation** (both metrics): lowercase (``str.lower``), strip, collapse every run of
whitespace to one space. Nothing else (punctuation and articles are kept), as in the
official DocVQA evaluation.

**ANLS** (Biten et al., 2019): for a prediction ``p`` and a gold answer ``g``, the normalised
Levenshtein distance is ``NL = lev(p, g) / max(len(p), len(g))`` (0 if both are empty); the
similarity is ``1 - NL`` if ``NL < tau`` else 0, with ``tau = 0.5``. A question scores the
maximum over its gold answers; ANLS is the mean over questions. A failed request is the
empty prediction.

**Exact match**: the normalised prediction equals one of the normalised gold answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["TAU", "normalize_answer", "levenshtein", "anls", "exact_match", "DocVQAScores", "score_docvqa"]

#: ANLS threshold on the normalised Levenshtein distance.
TAU = 0.5


def normalize_answer(text: str) -> str:
    """Lowercase, strip, collapse whitespace.

    Args:
        text (str): an answer.

    Returns:
        str: the normalised answer.
    """
    return " ".join(text.lower().split())


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1).

    Args:
        a (str): first string.
        b (str): second string.

    Returns:
        int: the distance.
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _similarity(pred: str, gold: str, tau: float) -> float:
    longest = max(len(pred), len(gold))
    if longest == 0:
        return 1.0
    nl = levenshtein(pred, gold) / longest
    return 1.0 - nl if nl < tau else 0.0


def anls(pred: str, golds: Sequence[str], tau: float = TAU) -> float:
    """ANLS of one prediction: the best similarity over the gold answers.

    Args:
        pred (str): the predicted answer.
        golds (Sequence[str]): the gold answers (at least one).
        tau (float): threshold on the normalised distance.

    Returns:
        float: the score in [0, 1].

    Raises:
        ValueError: if there is no gold answer.
    """
    if not golds:
        raise ValueError("ANLS needs at least one gold answer")
    p = normalize_answer(pred)
    return max(_similarity(p, normalize_answer(g), tau) for g in golds)


def exact_match(pred: str, golds: Sequence[str]) -> bool:
    """Whether the normalised prediction equals a normalised gold answer.

    Args:
        pred (str): the predicted answer.
        golds (Sequence[str]): the gold answers.

    Returns:
        bool: True on a match.
    """
    p = normalize_answer(pred)
    return any(p == normalize_answer(g) for g in golds)


@dataclass(frozen=True)
class DocVQAScores:
    """Dataset-level DocVQA metrics.

    Attributes:
        n (int): questions scored.
        anls (float): mean ANLS.
        exact_match (float): share of exact matches.
        tau (float): the ANLS threshold used.
    """

    n: int
    anls: float
    exact_match: float
    tau: float

    def as_dict(self) -> dict[str, Any]:
        """Return the metrics as a JSON-ready dict.

        Returns:
            dict[str, Any]: every attribute.
        """
        return dict(self.__dict__)


def score_docvqa(preds: Sequence[str], golds: Sequence[Sequence[str]], tau: float = TAU) -> DocVQAScores:
    """Score predictions against gold answer lists.

    Args:
        preds (Sequence[str]): one predicted answer per question ("" for failures).
        golds (Sequence[Sequence[str]]): the gold answers per question.
        tau (float): ANLS threshold.

    Returns:
        DocVQAScores: mean ANLS and exact-match rate (0 for an empty set).

    Raises:
        ValueError: if the lengths differ or a question has no gold answer.
    """
    if len(preds) != len(golds):
        raise ValueError(f"{len(golds)} questions but {len(preds)} predictions")
    n = len(preds)
    total_anls = sum(anls(p, g, tau) for p, g in zip(preds, golds, strict=True))
    total_em = sum(exact_match(p, g) for p, g in zip(preds, golds, strict=True))
    return DocVQAScores(
        n=n, anls=total_anls / n if n else 0.0, exact_match=total_em / n if n else 0.0, tau=tau
    )
