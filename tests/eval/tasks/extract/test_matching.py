"""Optimal assignment and edit distance, each against a brute-force reference."""

import itertools
import random

import pytest

from eval.tasks.extract.assignment import max_weight_assignment
from eval.tasks.extract.edit_distance import char_similarity, levenshtein


def _brute_best(weights: list[list[float]]) -> float:
    n, m = len(weights), len(weights[0]) if weights else 0
    k = min(n, m)
    return max(
        (
            sum(weights[i][j] for i, j in zip(rows, cols, strict=True))
            for rows in itertools.combinations(range(n), k)
            for cols in itertools.permutations(range(m), k)
        ),
        default=0,
    )


def test_assignment_is_optimal_against_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(1500):
        n, m = rng.randint(0, 5), rng.randint(0, 5)
        weights = [[rng.choice([0, 0, 1, 2, 3, 2.5, -1]) for _ in range(m)] for _ in range(n)]
        pairs = max_weight_assignment(weights)
        assert len(pairs) == min(n, m)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs)  # one to one
        assert sum(weights[i][j] for i, j in pairs) == pytest.approx(_brute_best(weights))


def test_assignment_prefers_the_better_partner_not_the_first() -> None:
    # greedy (row 0 takes its best column 0) would total 3 + 0; the optimum is 2 + 2
    assert max_weight_assignment([[3, 2], [2, 0]]) == [(0, 1), (1, 0)]
    assert max_weight_assignment([[1], [5], [2]]) == [(1, 0)]  # more rows than columns
    assert max_weight_assignment([]) == [] and max_weight_assignment([[], []]) == []
    with pytest.raises(ValueError, match="same length"):
        max_weight_assignment([[1, 2], [1]])


def _dp_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_levenshtein_matches_the_textbook_table() -> None:
    rng = random.Random(1)
    alphabet = "abcé شر "
    for _ in range(2000):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert levenshtein(a, b) == _dp_distance(a, b), (a, b)
    # longer than one machine word on both sides
    a = "".join(rng.choice("ab") for _ in range(700))
    b = a[:300] + "x" + a[310:]
    assert levenshtein(a, b) == _dp_distance(a, b)


def test_char_similarity_values() -> None:
    assert char_similarity("", "") == 1.0
    assert char_similarity("abcd", "abcd") == 1.0
    assert char_similarity("abcd", "abxd") == 0.75  # 1 substitution / 4
    assert char_similarity("abc", "") == 0.0
    assert char_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
