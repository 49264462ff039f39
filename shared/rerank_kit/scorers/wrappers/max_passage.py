"""Max-passage (max-p) scoring: a long text scores as its best overlapping passage, so nothing is truncated away."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from rerank_kit.errors import ScorerError
from rerank_kit.scorer import CanEmbed, ScoreRequest, Scorer
from rerank_kit.validation import check_positive_int

Unit = Literal["words", "chars"]
_WORD = re.compile(r"\S+")


def split_passages(text: str, *, size: int, overlap: int, unit: Unit = "words") -> list[str]:
    """Cut ``text`` into windows of ``size`` words (or characters) starting every ``size - overlap`` units.

    A text no longer than one window is returned whole; the last window ends at the end of the text.
    """
    check_positive_int("size", size)
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
        raise ValueError(f"overlap must be an int in [0, size), got {overlap!r} for size {size}")
    spans = [(i, i + 1) for i in range(len(text))] if unit == "chars" else [m.span() for m in _WORD.finditer(text)]
    if len(spans) <= size:
        return [text]
    step = size - overlap
    starts = list(range(0, len(spans) - size, step)) + [len(spans) - size]
    return [text[spans[start][0] : spans[start + size - 1][1]] for start in starts]


class MaxPassageScorer(Scorer):
    """Wraps a scorer: each text is split into overlapping passages, all passages of all texts are scored
    in one call to the inner scorer, and each text gets its best passage score.

    Use it when documents are longer than the model's max length (cross-encoders read about 512 tokens,
    the rest is cut off): a relevant paragraph deep in a long document still counts. ``passage_size`` and
    ``overlap`` (default: a quarter of ``passage_size``) are in ``unit`` (words by default; about 1.3 tokens
    per English word), and a passage plus the query should fit the model's max length. Usage and caching
    follow the inner scorer.
    """

    def __init__(
        self, scorer: Scorer, *, passage_size: int = 200, overlap: int | None = None, unit: Unit = "words"
    ) -> None:
        super().__init__()
        if not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a rerank_kit.Scorer, got {type(scorer).__name__}")
        if unit not in ("words", "chars"):
            raise ValueError(f"unit must be 'words' or 'chars', got {unit!r}")
        check_positive_int("passage_size", passage_size)
        overlap = passage_size // 4 if overlap is None else overlap
        split_passages("", size=passage_size, overlap=overlap, unit=unit)
        self.scorer = scorer
        self.passage_size = passage_size
        self.overlap = overlap
        self.unit = unit
        self.usage = scorer.usage
        self.cache_by_default = scorer.cache_by_default

    @property
    def embed_texts(self) -> Callable[[list[str]], list[list[float]]]:
        """The wrapped scorer's ``embed_texts`` when it can embed (see :class:`~rerank_kit.scorer.CanEmbed`)."""
        if isinstance(self.scorer, CanEmbed):
            return self.scorer.embed_texts
        raise AttributeError("embed_texts")

    @property
    def name(self) -> str:
        return f"{self.scorer.name} (max-p)"

    @property
    def cache_key(self) -> str | None:
        inner = self.scorer.cache_key
        return None if inner is None else f"max-p|{self.passage_size}|{self.overlap}|{self.unit}|{inner}"

    def passages(self, text: str) -> list[str]:
        """The passages ``text`` is scored by."""
        return split_passages(text, size=self.passage_size, overlap=self.overlap, unit=self.unit)

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self.score_many([(query, texts)])[0]

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        return (await self.ascore_many([(query, texts)]))[0]

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        plans = [_PassagePlan(query, texts, self) for query, texts in requests]
        scored = self.scorer.score_many([(plan.query, plan.distinct) for plan in plans])
        return [plan.best(scores) for plan, scores in zip(plans, scored)]

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        plans = [_PassagePlan(query, texts, self) for query, texts in requests]
        scored = await self.scorer.ascore_many([(plan.query, plan.distinct) for plan in plans])
        return [plan.best(scores) for plan, scores in zip(plans, scored)]

    def __repr__(self) -> str:
        return (
            f"MaxPassageScorer({self.scorer!r}, passage_size={self.passage_size}, "
            f"overlap={self.overlap}, unit={self.unit!r})"
        )


class _PassagePlan:
    """One request's passages, each distinct passage scored once, and the way back to per-text maxima."""

    def __init__(self, query: str, texts: Sequence[str], owner: MaxPassageScorer) -> None:
        self.query = query
        positions: dict[str, int] = {}
        self.slots = [[positions.setdefault(p, len(positions)) for p in owner.passages(text)] for text in texts]
        self.distinct = list(positions)
        self.owner = owner

    def best(self, scores: Sequence[float]) -> list[float]:
        if len(scores) != len(self.distinct):
            raise ScorerError(
                f"{self.owner.scorer.name} returned {len(scores)} scores for {len(self.distinct)} passages"
            )
        return [max(float(scores[slot]) for slot in slots) for slots in self.slots]
