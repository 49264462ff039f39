"""What both framework adapters share: the reranker model they inherit, and their classes built from the registry.

An adapter package only maps its framework's objects (Documents, nodes) to texts and results back; its
``BaseRerank`` inherits :class:`RerankerModel` for everything else, and each backend's ``<Name>Rerank``
class is :func:`rerank_class` of that base and the backend's options model.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from rerank_kit.backends import Backend, backend_for_rerank_class
from rerank_kit.options import RerankOptions
from rerank_kit.reranker import Reranker
from rerank_kit.scorer import Scorer
from rerank_kit.usage import UsageMeter

#: Classes each adapter package defines itself, and the module defining each.
ADAPTER_OWN_EXPORTS = {
    "BaseRerank": ".base",
    "Rerank": ".base",
    "TwoStageRetriever": ".pipeline",
    "FusionRetriever": ".pipeline",
}


class RerankerModel(RerankOptions):
    """The policy fields and scorer handling of every reranker in both adapters.

    The scorer is built from the backend's options at construction; assigning any option later (``model``,
    ``base_url``, ``top_n``, ...) is validated and takes effect on the next call (backend options rebuild
    the scorer). A reranker pickles without its scorer and rebuilds it when loaded; ``close()`` /
    ``aclose()`` (or ``with``) release the scorer's connections.
    """

    #: The registry row this class was built for (``None`` for ``Rerank(scorer=...)``).
    backend: ClassVar[Optional[Backend]] = None

    _scorer: Any = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._scorer = self._build_scorer()

    def _build_scorer(self) -> Scorer:
        backend = type(self).backend
        if backend is None:
            raise NotImplementedError(f"{type(self).__name__} has no backend: override _build_scorer")
        return backend.build_scorer(backend.options_class(**self._scorer_options()))

    def _scorer_options(self) -> dict[str, Any]:
        """The backend's options as this reranker holds them (framework glue may convert some)."""
        return {name: getattr(self, name) for name in type(self).backend.options_class.model_fields}

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self._scorer_fields():
            self._scorer = self._build_scorer()

    @classmethod
    def _scorer_fields(cls) -> frozenset[str]:
        backend = cls.backend
        return frozenset(backend.options_class.model_fields) if backend is not None else frozenset()

    def as_scorer(self) -> Scorer:
        """The core scorer behind this reranker (for example to put it in a fallback chain)."""
        return self._scorer

    @property
    def reranker(self) -> Reranker:
        """The core policy with this reranker's current settings."""
        return Reranker(
            self._scorer,
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            normalize=self.normalize,
            cache=self.cache,
            on_error=self.on_error,
        )

    @property
    def usage(self) -> UsageMeter:
        """What the provider reported it charged: the last call's counts and running totals."""
        return self._scorer.usage

    def close(self) -> None:
        """Release the scorer's connections (it reopens them if used again)."""
        self._scorer.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._scorer.aclose()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private["_scorer"] = None
        return {**state, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        object.__setattr__(self, "__pydantic_private__", {**(self.__pydantic_private__ or {}), "_scorer": None})
        self._scorer = self._build_scorer()


class GivenScorerModel(BaseModel):
    """A reranker over a ready scorer (``Rerank(scorer=...)``); put before the adapter's base class."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    scorer: Scorer = Field(exclude=True, description="The rerank_kit.Scorer that scores.")

    def _build_scorer(self) -> Scorer:
        return self.scorer

    @classmethod
    def _scorer_fields(cls) -> frozenset[str]:
        return frozenset({"scorer"})


class ChatModelGlue:
    """Glue for a backend whose ``llm`` option is a framework chat model: the adapter's ``chat_provider`` turns it
    into the core's ChatProvider when the scorer is built."""

    @staticmethod
    def chat_provider(llm: Any) -> Any:
        raise NotImplementedError

    def _scorer_options(self) -> dict[str, Any]:
        return {**super()._scorer_options(), "llm": self.chat_provider(self.llm)}  # type: ignore[misc, attr-defined]


def rerank_class(base: type, backend: Backend, module: str, glue: tuple[type, ...] = ()) -> type:
    """``<Name>Rerank``: the adapter's ``base`` with the backend's options as fields (after any ``glue`` mixins)."""
    namespace: dict[str, Any] = {
        "__module__": module, "__qualname__": backend.rerank_class, "backend": backend,
        "__doc__": f"{backend.description}\n\nOptions: see ``{backend.scorer_name}``.",
    }
    for attribute in backend.scorer_attributes:
        namespace[attribute] = property(lambda self, name=attribute: getattr(self._scorer, name),
                                        doc=f"The scorer's ``{attribute}``.")
    return type(backend.rerank_class, (*glue, base, backend.options_class), namespace)


def adapter_exports(package: str) -> tuple[Callable[[str], Any], list[str]]:
    """A package ``__getattr__`` and ``__all__``: own classes from submodules, backend classes from the registry."""
    from rerank_kit.backends import BACKENDS

    lock = threading.Lock()

    def __getattr__(name: str) -> Any:
        if name in ADAPTER_OWN_EXPORTS:
            return getattr(importlib.import_module(ADAPTER_OWN_EXPORTS[name], package), name)
        backend = backend_for_rerank_class(name)
        if backend is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = sys.modules[package]
        with lock:
            built = module.__dict__.get(name)
            if built is None and backend.adapter_module is not None:
                built = getattr(importlib.import_module(backend.adapter_module, package), name)
            elif built is None:
                base = importlib.import_module(".base", package).BaseRerank
                built = rerank_class(base, backend, package)
                setattr(module, name, built)
        return built

    return __getattr__, [*ADAPTER_OWN_EXPORTS, *(backend.rerank_class for backend in BACKENDS)]
