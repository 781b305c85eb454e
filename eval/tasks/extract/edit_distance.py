"""Character similarity of long free text: 1 - Levenshtein distance / length of the longer text.

The distance is computed with Hyyro's bit-parallel form of Myers' algorithm: one pass over the
longer text with the shorter one's columns packed in a Python integer, so a page of markdown
(thousands of characters) costs milliseconds, not the seconds of the textbook O(n m) table.
"""

from __future__ import annotations

__all__ = ["char_similarity", "levenshtein"]


def levenshtein(a: str, b: str) -> int:
    """Edit distance: the fewest single-character insertions, deletions and substitutions.

    Args:
        a (str): one text.
        b (str): the other.

    Returns:
        int: the distance (0 when equal).
    """
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    masks: dict[str, int] = {}
    for i, ch in enumerate(b):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << m) - 1
    last = 1 << (m - 1)
    pv, mv, score = full, 0, m  # vertical +1 / -1 deltas of the current column; its last cell
    for ch in a:
        eq = masks.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def char_similarity(a: str, b: str) -> float:
    """``1 - levenshtein(a, b) / max(len(a), len(b))``; 1.0 for two empty texts.

    Args:
        a (str): one text (normalise both first if case or spacing should not count).
        b (str): the other.

    Returns:
        float: in [0, 1]; 1.0 means equal.
    """
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest
