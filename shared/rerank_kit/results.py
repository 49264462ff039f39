"""The value every reranker returns: a position in the caller's list and its score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One ranked candidate: ``index`` points into the caller's input list."""

    index: int
    score: float
