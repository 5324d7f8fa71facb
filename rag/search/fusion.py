"""Rank fusion of retriever hit lists: pure functions over rows and scores."""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Hit


def rrf(rankings: Sequence[Sequence[Hit]], weights: Sequence[float], k: int = 60
        ) -> list[tuple[int, float]]:
    """Weighted reciprocal-rank fusion: sum of w / (k + rank), best first."""
    fused: dict[int, float] = {}
    for hits, w in zip(rankings, weights):
        for h in hits:
            fused[h.row] = fused.get(h.row, 0.0) + w / (k + h.rank)
    return sorted(fused.items(), key=lambda rs: (-rs[1], rs[0]))


def minmax(hits: Sequence[Hit]) -> dict[int, float]:
    """Scores rescaled to [0, 1] within one list (all 1.0 when they are equal)."""
    if not hits:
        return {}
    lo = min(h.score for h in hits)
    hi = max(h.score for h in hits)
    span = hi - lo
    return {h.row: (h.score - lo) / span if span > 0 else 1.0 for h in hits}


def max_scaled(hits: Sequence[Hit]) -> dict[int, float]:
    """Scores divided by the list's best score (keeps how far apart they are from zero)."""
    if not hits:
        return {}
    hi = max(h.score for h in hits)
    return {h.row: (h.score / hi if hi > 0 else 0.0) for h in hits}


def score_fusion(rankings: Sequence[Sequence[Hit]], weights: Sequence[float],
                 normalize: str = "minmax") -> list[tuple[int, float]]:
    """Convex combination of per-list normalised scores; a row absent from a list gets 0."""
    norms = {"minmax": minmax, "max": max_scaled}
    if normalize not in norms:
        raise ValueError(f"normalize={normalize!r} is not one of {', '.join(norms)}")
    norm = norms[normalize]
    fused: dict[int, float] = {}
    for hits, w in zip(rankings, weights):
        for row, s in norm(hits).items():
            fused[row] = fused.get(row, 0.0) + w * s
    return sorted(fused.items(), key=lambda rs: (-rs[1], rs[0]))
