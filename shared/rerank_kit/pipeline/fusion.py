"""Reciprocal rank fusion: merge several rankings (for example BM25 and vector search) into one."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from rerank_kit.validation import check_positive_int

#: The constant from Cormack et al. (2009); it damps the weight of the very first ranks.
DEFAULT_RRF_K = 60

Key = TypeVar("Key", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]], *, k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[Key, float]]:
    """Fuse ranked id lists: each id scores ``sum(weight / (k + rank))`` over the lists it is in (rank from 1).

    Returns every id once, best first; equal scores keep the order in which ids were first seen. An id
    listed twice in one ranking counts once, at its best rank.
    """
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence):
        raise TypeError(f"rankings must be a sequence of ranked id lists, got {type(rankings).__name__}")
    weights = check_fusion_settings(len(rankings), k=k, weights=weights)
    scores: dict[Key, float] = {}
    for ranking, weight in zip(rankings, weights):
        seen: set[Key] = set()
        for rank, key in enumerate(ranking, start=1):
            if key in seen:
                continue
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    first_seen = {key: position for position, key in enumerate(scores)}
    return sorted(scores.items(), key=lambda item: (-item[1], first_seen[item[0]]))


def check_fusion_settings(count: int, *, k: int = DEFAULT_RRF_K, weights: Sequence[float] | None = None) -> list[float]:
    """Validate ``k`` and the weights of ``count`` rankings; return the weights (all 1.0 when ``None``)."""
    check_positive_int("k", k)
    if weights is None:
        return [1.0] * count
    values = [float(w) for w in weights]
    if len(values) != count:
        raise ValueError(f"got {len(values)} weights for {count} rankings")
    if any(w < 0 for w in values):
        raise ValueError(f"weights must be >= 0, got {values}")
    return values
