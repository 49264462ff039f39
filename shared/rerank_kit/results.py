"""The value every reranker returns: a position in the caller's list, its score and who produced it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True, slots=True)
class RerankResult:
    """One ranked candidate: ``index`` points into the caller's input list.

    ``backend`` names the scorer that produced the score; ``error`` is set (and the order is the input
    order) when scoring failed and the reranker was asked to keep the first-stage order; ``cached`` and
    ``latency_ms`` are facts of the call, for metadata and logs.
    """

    index: int
    score: float
    backend: Optional[str] = field(default=None, compare=False)
    error: Optional[str] = None
    #: Whether the score came from the score cache.
    cached: bool = field(default=False, compare=False)
    #: Wall time of the whole rerank call that produced this result, in milliseconds.
    latency_ms: Optional[float] = field(default=None, compare=False)


def at_positions(results: Sequence[RerankResult], positions: Sequence[int]) -> list[RerankResult]:
    """``results`` of a subset of a list, pointing into the whole list (``positions[i]`` is item ``i``'s place)."""
    return [dataclasses.replace(result, index=positions[result.index]) for result in results]
