"""LangChain document compressors over the rerank-kit core: map Documents to texts and results back."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from rerank_kit import RerankResult
from rerank_kit.adapter_support import GivenScorerModel, RerankerModel
from rerank_kit.metadata import RELEVANCE_SCORE_KEY, result_metadata


class BaseRerank(RerankerModel, BaseDocumentCompressor):
    """A rerank-kit reranker as a LangChain ``BaseDocumentCompressor``; backends add their options.

    Returns new Documents (same ``page_content`` and ``id``, a deep copy of the metadata plus
    ``relevance_score``, ``original_index`` and ``reranker_backend``), best first; the caller's Documents
    are never mutated. With ``keep_retrieval_score`` an incoming ``relevance_score`` (from an earlier
    stage) is kept as ``retrieval_score``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and return the best, best first."""
        results = self.reranker.rerank(query, _texts(documents))
        return self._ranked_documents(documents, results)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` on the scorer's native async path."""
        results = await self.reranker.arerank(query, _texts(documents))
        return self._ranked_documents(documents, results)

    def _ranked_documents(self, documents: Sequence[Document], results: Sequence[RerankResult]) -> list[Document]:
        return [
            Document(
                page_content=documents[r.index].page_content,
                id=documents[r.index].id,
                metadata=result_metadata(
                    documents[r.index].metadata, r,
                    retrieval_score=documents[r.index].metadata.get(RELEVANCE_SCORE_KEY),
                    keep_retrieval_score=self.keep_retrieval_score,
                ),
            )
            for r in results
        ]


class Rerank(GivenScorerModel, BaseRerank):
    """Reranks with any rerank-kit scorer: ``Rerank(scorer=CrossEncoderScorer(...), top_n=3)``."""


def _texts(documents: Sequence[Document]) -> list[str]:
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise TypeError(f"documents[{position}] must be a langchain Document, got {type(document).__name__}")
    return [document.page_content for document in documents]


__all__ = ["BaseRerank", "Rerank"]
