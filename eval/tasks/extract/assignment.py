"""Optimal one-to-one matching of gold items to predicted items (the Hungarian algorithm).

Arrays in an answer are matched order-insensitively: every gold item is paired with at most one
predicted item, and the pairing maximises the total weight (for the metrics: the number of gold
leaves the pairing gets right). This is the O(n^2 m) shortest-augmenting-path form of the
Hungarian algorithm (Kuhn-Munkres with potentials), exact for any real weights; no scipy needed.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["max_weight_assignment"]


def max_weight_assignment(weights: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """Pair rows with columns, each used at most once, maximising the summed weight.

    ``min(rows, columns)`` pairs are returned (a pair may have weight 0: every row of the
    smaller side is paired).

    Args:
        weights (Sequence[Sequence[float]]): ``weights[i][j]`` = value of pairing row ``i``
            with column ``j``; every row has the same length.

    Returns:
        list[tuple[int, int]]: ``(row, column)`` pairs, sorted by row.

    Raises:
        ValueError: if the rows have different lengths.
    """
    n = len(weights)
    m = len(weights[0]) if n else 0
    if any(len(row) != m for row in weights):
        raise ValueError("every row of the weight matrix must have the same length")
    if n == 0 or m == 0:
        return []
    if n > m:  # the algorithm below needs rows <= columns
        return sorted(
            (i, j) for j, i in max_weight_assignment([list(col) for col in zip(*weights, strict=True)])
        )
    top = max(max(row) for row in weights)
    cost = [[top - w for w in row] for row in weights]  # minimise cost = maximise weight
    inf = float("inf")
    u = [0.0] * (n + 1)  # row potentials
    v = [0.0] * (m + 1)  # column potentials
    owner = [0] * (m + 1)  # owner[j]: row (1-based) matched to column j; column 0 is a sentinel
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        min_reduced = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:  # grow a shortest augmenting path from row i
            used[j0] = True
            i0 = owner[j0]
            delta = inf
            j1 = 0
            row = cost[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = row[j - 1] - u[i0] - v[j]
                    if reduced < min_reduced[j]:
                        min_reduced[j] = reduced
                        way[j] = j0
                    if min_reduced[j] < delta:
                        delta = min_reduced[j]
                        j1 = j
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += delta
                    v[j] -= delta
                else:
                    min_reduced[j] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    return sorted((owner[j] - 1, j - 1) for j in range(1, m + 1) if owner[j])
