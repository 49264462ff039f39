"""LangChain's own standard retriever tests (langchain-tests), run as a partner package runs them."""

from __future__ import annotations

from typing import Any

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_rerankers import Rerank, TwoStageRetriever
from tests.conftest import KeywordScorer

TEXTS = [f"document {i} about reset password and account login" for i in range(12)]


def _vector_retriever(k: int = 4) -> BaseRetriever:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(page_content=text, metadata={"n": i}) for i, text in enumerate(TEXTS)])
    return store.as_retriever(search_kwargs={"k": k})


class TestTwoStageRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[TwoStageRetriever]:
        return TwoStageRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": _vector_retriever(), "reranker": KeywordScorer()}

    @property
    def retriever_query_example(self) -> str:
        return "reset password"


class _RerankingRetriever(ContextualCompressionRetriever):
    """A ContextualCompressionRetriever over our compressor, with ``k`` as its result count."""

    def __init__(self, k: int = 4, **kwargs: Any) -> None:
        super().__init__(base_compressor=Rerank(scorer=KeywordScorer(), top_n=k),
                         base_retriever=_vector_retriever(k=12), **kwargs)

    def _top(self, k: int | None) -> ContextualCompressionRetriever:
        """This retriever, or a copy whose reranker keeps ``k`` documents (``invoke(query, k=...)``)."""
        if k is None:
            return self
        return self.model_copy(update={"base_compressor": self.base_compressor.model_copy(update={"top_n": k})})

    def _get_relevant_documents(self, query: str, *, run_manager: Any, k: int | None = None) -> list[Document]:
        return ContextualCompressionRetriever._get_relevant_documents(self._top(k), query, run_manager=run_manager)

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any, k: int | None = None) -> list[Document]:
        return await ContextualCompressionRetriever._aget_relevant_documents(
            self._top(k), query, run_manager=run_manager
        )


class TestContextualCompressionOverOurReranker(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return _RerankingRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {}

    @property
    def retriever_query_example(self) -> str:
        return "reset password"
