"""Splitting one rerank call at a provider's limits, and merging the answers back by global index."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rerank_kit.errors import ProviderResponseError


@dataclass(frozen=True)
class Chunk:
    """A slice ``texts[start:stop]`` sent as one request."""

    start: int
    stop: int


@dataclass
class ChunkAnswer:
    """One request's answer: (index within the chunk, score) pairs and the usage the provider reported."""

    pairs: list[tuple[object, object]]
    usage: dict[str, float] = field(default_factory=dict)


def plan_chunks(
    texts: Sequence[str],
    max_documents: int,
    *,
    cost: Callable[[str], int] | None = None,
    max_cost: int | None = None,
) -> list[Chunk]:
    """Consecutive slices of at most ``max_documents`` texts and (if given) ``max_cost`` summed cost.

    A single text costing more than ``max_cost`` still goes alone in its own request; the provider
    truncates or rejects it, and nothing is dropped here.
    """
    chunks: list[Chunk] = []
    start, spent = 0, 0
    for position, text in enumerate(texts):
        price = cost(text) if cost is not None else 0
        full = position - start >= max_documents
        over = max_cost is not None and position > start and spent + price > max_cost
        if full or over:
            chunks.append(Chunk(start, position))
            start, spent = position, 0
        spent += price
    if start < len(texts):
        chunks.append(Chunk(start, len(texts)))
    return chunks


def merge_answers(provider: str, total: int, chunks: Sequence[Chunk], answers: Sequence[ChunkAnswer]) -> list[float]:
    """Scores for all ``total`` texts in input order; any bad, repeated or missing index is an error."""
    scores: list[float | None] = [None] * total
    for chunk, answer in zip(chunks, answers, strict=True):
        size = chunk.stop - chunk.start
        for pair in answer.pairs:
            index, score = checked_pair(provider, *pair, size)
            slot = chunk.start + index
            if scores[slot] is not None:
                raise ProviderResponseError(provider, f"result index {index} appears twice in one response")
            scores[slot] = score
    missing = [i for i, score in enumerate(scores) if score is None]
    if missing:
        raise ProviderResponseError(
            provider, f"{len(missing)} of {total} documents have no result (first missing: {missing[:5]})"
        )
    return [score for score in scores if score is not None]


def checked_pair(provider: str, index: object, score: object, size: int | None) -> tuple[int, float]:
    """``(index, score)`` of one result once the index is an int in ``[0, size)`` and the score a finite number."""
    valid = isinstance(index, int) and not isinstance(index, bool) and index >= 0 and (size is None or index < size)
    if not valid:
        where = "" if size is None else f" for a request of {size} documents"
        raise ProviderResponseError(provider, f"result index {index!r} is out of range{where}")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ProviderResponseError(provider, f"result {index} has a non-numeric score {score!r}")
    return index, float(score)


def summed_usage(answers: Sequence[ChunkAnswer]) -> dict[str, float]:
    """The usage of every request of one call, added up key by key."""
    total: dict[str, float] = {}
    for answer in answers:
        for key, value in answer.usage.items():
            total[key] = total.get(key, 0) + value
    return total
