"""LangChain document compressors over the rerank-kit core: map Documents to texts and results back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Optional

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr

from rerank_kit import DEFAULT_TOP_N, Reranker, RerankResult, Scorer, UsageMeter
from rerank_kit.adapter_support import scorer_options
from rerank_kit.reranker import Normalize


class BaseRerank(BaseDocumentCompressor):
    """Shared policy fields and Document mapping; subclasses only say how to build their scorer.

    Returns new Documents (same ``page_content`` and ``id``, a copy of the metadata plus
    ``relevance_score`` and ``original_index``), best first; the caller's Documents are never mutated.
    """

    top_n: int | None = Field(default=DEFAULT_TOP_N, description="How many documents to return; None for all.")
    score_threshold: float | None = Field(default=None, description="Drop documents scoring below this.")
    normalize: Normalize = Field(default="none", description="'none', 'sigmoid' or 'minmax' score scaling.")
    cache: bool | None = Field(default=None, description="Score cache; None: on for local models only.")

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    _scorer: Scorer = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._scorer = self._build_scorer()
        self.reranker  # validates the policy fields at construction

    #: The core scorer this reranker configures; its keyword arguments are the subclass's own fields.
    scorer_class: ClassVar[Optional[type[Scorer]]] = None

    def _build_scorer(self) -> Scorer:
        if self.scorer_class is None:
            raise NotImplementedError(f"{type(self).__name__} must set scorer_class or override _build_scorer")
        config = {name: getattr(self, name) for name in type(self).model_fields}
        return self.scorer_class(**scorer_options(config, BaseRerank.model_fields))

    @property
    def reranker(self) -> Reranker:
        """The core policy with this compressor's current settings."""
        return Reranker(
            self._scorer,
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            normalize=self.normalize,
            cache=self.cache,
        )

    @property
    def usage(self) -> UsageMeter:
        """What the provider reported it charged: the last call's counts and running totals."""
        return self._scorer.usage

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and return the best, best first."""
        results = self.reranker.rerank(query, _texts(documents))
        return _ranked_documents(documents, results)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` on the scorer's native async path."""
        results = await self.reranker.arerank(query, _texts(documents))
        return _ranked_documents(documents, results)


class Rerank(BaseRerank):
    """Reranks with any rerank-kit scorer: ``Rerank(scorer=CrossEncoderScorer(...), top_n=3)``."""

    scorer: Scorer = Field(description="The rerank_kit.Scorer that scores documents.")

    def _build_scorer(self) -> Scorer:
        return self.scorer


def _texts(documents: Sequence[Document]) -> list[str]:
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise TypeError(f"documents[{position}] must be a langchain Document, got {type(document).__name__}")
    return [document.page_content for document in documents]


def _ranked_documents(documents: Sequence[Document], results: Sequence[RerankResult]) -> list[Document]:
    return [
        Document(
            page_content=documents[r.index].page_content,
            id=documents[r.index].id,
            metadata={**documents[r.index].metadata, "relevance_score": r.score, "original_index": r.index},
        )
        for r in results
    ]
