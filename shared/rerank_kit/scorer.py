"""The scorer contract: every backend turns (query, texts) into one float per text."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rerank_kit.cache import LRUScoreCache
from rerank_kit.options import BackendOptions
from rerank_kit.usage import UsageMeter

ScoreRequest = tuple[str, Sequence[str]]
S = TypeVar("S", bound="ConfiguredScorer")


class Scorer(ABC):
    """Scores texts against a query; higher means more relevant.

    Subclasses implement :meth:`score`. The defaults make :meth:`ascore` run it in a worker thread
    (so the event loop is never blocked) and :meth:`score_many` loop over queries; backends that can
    do better (real async clients, packing many queries into shared batches) override them.
    Scorers receive validated, de-duplicated, non-empty input from :class:`~rerank_kit.Reranker`.
    """

    #: Whether :class:`~rerank_kit.Reranker` puts an in-memory score cache in front by default.
    cache_by_default: bool = False

    def __init__(self) -> None:
        self.usage = UsageMeter()
        self._shared_cache: LRUScoreCache | None = None

    @property
    def shared_cache(self) -> LRUScoreCache:
        """This scorer's in-memory score cache, shared by every reranker built on it."""
        if self._shared_cache is None:
            self._shared_cache = LRUScoreCache()
        return self._shared_cache

    @property
    def name(self) -> str:
        """A short model or service name for events, logs and metadata."""
        return type(self).__name__

    @classmethod
    def default_model_name(cls) -> str | None:
        """The model used when none is given, if the backend has one."""
        return None

    @property
    def cache_key(self) -> str | None:
        """Identity of this scorer and every setting that changes its scores, or ``None`` if not cacheable."""
        return None

    @abstractmethod
    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """Return one relevance score per text, in input order."""

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        """Async :meth:`score`; by default in a worker thread."""
        return await asyncio.to_thread(self.score, query, texts)

    def score_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Score several (query, texts) requests; by default one after another."""
        return [self.score(query, texts) for query, texts in requests]

    async def ascore_many(self, requests: Sequence[ScoreRequest]) -> list[list[float]]:
        """Async :meth:`score_many`; by default the requests run concurrently."""
        return list(await asyncio.gather(*(self.ascore(query, texts) for query, texts in requests)))

    def score_many_traced(self, requests: Sequence[ScoreRequest]) -> tuple[list[list[float]], str]:
        """:meth:`score_many` and the name of the scorer that answered (wrappers such as fallbacks differ)."""
        return self.score_many(requests), self.name

    async def ascore_many_traced(self, requests: Sequence[ScoreRequest]) -> tuple[list[list[float]], str]:
        """Async :meth:`score_many_traced`."""
        return await self.ascore_many(requests), self.name

    def close(self) -> None:
        """Release connections and other resources; the scorer can still be used afterwards (it reopens)."""

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        self.close()

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self: Any) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@runtime_checkable
class CanEmbed(Protocol):
    """A scorer that can also embed texts (used for MMR diversity without a separate embedding model)."""

    def embed_texts(self, texts: list[str]) -> list[list[float]]: ...


RefineRequest = tuple[str, Sequence[str], Sequence[float]]


@runtime_checkable
class CanRefineTop(Protocol):
    """A scorer with an approximate fast pass that can re-score exactly the texts near a ``top_n`` cut.

    :class:`~rerank_kit.Reranker` calls it after scoring when ``refines_top`` is true (an approximate pass
    runs), so fast mode keeps exact mode's top ``n``.
    """

    @property
    def refines_top(self) -> bool:
        """Whether the scores are approximate and :meth:`refine_top` should be called."""
        ...

    def refine_top(self, requests: Sequence[RefineRequest], top_n: int) -> list[list[float]]:
        """For each (query, texts, scores): the scores with those too close to the cut replaced by exact ones."""
        ...


class ConfiguredScorer(Scorer):
    """A scorer whose options are its ``Options`` model: validated once, shared with both adapters.

    ``Scorer(*args, **options)`` validates the options (positionally: ``Options.positional``) and calls
    :meth:`_configure`; :meth:`from_options` builds one from a ready model. Options read as attributes
    (``scorer.model``), and a scorer pickles as its options (clients and loaded models are rebuilt).
    """

    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._check_installed()
        self.options = self.Options.from_call(args, kwargs)
        self._configure(self.options)

    @classmethod
    def from_options(cls: type[S], options: BackendOptions) -> S:
        """The scorer for validated ``options`` (what the adapters call)."""
        scorer = cls.__new__(cls)
        Scorer.__init__(scorer)
        scorer._check_installed()
        scorer.options = options
        scorer._configure(options)
        return scorer

    @classmethod
    def default_model_name(cls) -> str | None:
        return cls.Options.default("model") if "model" in cls.Options.model_fields else None

    def _check_installed(self) -> None:
        """Fail at construction, naming the extra, when the backend's dependencies are missing."""
        from rerank_kit._optional import ensure_installed
        from rerank_kit.backends import backend_for_scorer

        backend = backend_for_scorer(type(self))
        if backend is not None:
            ensure_installed(backend.requires, backend.extra)

    def _configure(self, options: Any) -> None:
        """Check option combinations and set up what the options imply (clients, limits)."""

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("options")
        if options is not None and name in type(options).model_fields:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_options, (self.options,))

    def __repr__(self) -> str:
        fields = type(self.options).model_fields
        shown = ", ".join(
            f"{name}={value!r}" for name, value in self.options.values().items()
            if fields[name].repr and (name in ("model", "base_url") or value != self.Options.default(name))
        )
        return f"{type(self).__name__}({shown})"
