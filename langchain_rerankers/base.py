"""LangChain document compressors over the rerank-kit core: map Documents to texts and results back."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Optional, Union

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from pydantic import ConfigDict, Field, model_validator

from rerank_kit import RerankResult
from rerank_kit.adapter_support import GivenScorerModel, RerankerModel
from rerank_kit.document_text import check_document_text_options, document_text
from rerank_kit.metadata import RELEVANCE_SCORE_KEY, call_facts, result_metadata

RerankInput = Union[str, Document, dict]

#: Callbacks of the rerank run in progress: a chat model called while scoring (``LLMRerank``) nests under it.
RERANK_RUN_CALLBACKS: ContextVar[Callbacks] = ContextVar("rerank_kit_rerank_run_callbacks", default=None)


class BaseRerank(RerankerModel, BaseDocumentCompressor):
    """A rerank-kit reranker as a LangChain ``BaseDocumentCompressor``; backends add their options.

    Returns new Documents (same ``page_content`` and ``id``, a deep copy of the metadata plus
    ``relevance_score``, ``original_index`` and ``reranker_backend``), best first; the caller's Documents
    are never mutated. With ``keep_retrieval_score`` an incoming ``relevance_score`` (from an earlier
    stage) is kept as ``retrieval_score``. Each call is a child run named after the class in LangChain
    callbacks and traces, ending with the call's backend, counts, latency, cache hits and usage.
    """

    rank_fields: Optional[list[str]] = Field(
        default=None, description="Metadata fields scored with the text, as YAML-style 'field: value' lines."
    )
    document_template: Optional[str] = Field(
        default=None, description="Text to score, e.g. '{title}\\n{page_content}'; fields from metadata."
    )

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", validate_assignment=True)

    @model_validator(mode="after")
    def _document_text_options(self) -> BaseRerank:
        check_document_text_options(self.rank_fields, self.document_template)
        return self

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Rerank ``documents`` against ``query`` and return the best, best first."""
        run = CallbackManager.configure(inheritable_callbacks=callbacks).on_chain_start(
            None, {"query": query, "documents": len(documents)}, name=type(self).__name__
        )
        token = RERANK_RUN_CALLBACKS.set(run.get_child())
        try:
            results = self.reranker.rerank(query, self._texts(documents))
        except BaseException as error:
            run.on_chain_error(error)
            raise
        finally:
            RERANK_RUN_CALLBACKS.reset(token)
        run.on_chain_end(self._facts(results, len(documents)))
        return self._ranked_documents(documents, results)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents` on the scorer's native async path."""
        run = await AsyncCallbackManager.configure(inheritable_callbacks=callbacks).on_chain_start(
            None, {"query": query, "documents": len(documents)}, name=type(self).__name__
        )
        token = RERANK_RUN_CALLBACKS.set(run.get_child())
        try:
            results = await self.reranker.arerank(query, self._texts(documents))
        except BaseException as error:
            await run.on_chain_error(error)
            raise
        finally:
            RERANK_RUN_CALLBACKS.reset(token)
        await run.on_chain_end(self._facts(results, len(documents)))
        return self._ranked_documents(documents, results)

    def rerank(self, documents: Sequence[RerankInput], query: str, *, top_n: Optional[int] = None) -> list[dict]:
        """langchain-cohere's ``rerank``: ``[{"index": i, "relevance_score": s}, ...]`` best first.

        ``documents`` are strings, Documents or dicts with ``page_content`` or ``text``; ``top_n`` overrides the
        reranker's for this call.
        """
        reranker = self.reranker if top_n is None else self.reranker.replace(top_n=top_n)
        results = reranker.rerank(query, self._texts([_as_document(item, i) for i, item in enumerate(documents)]))
        return [{"index": r.index, "relevance_score": r.score} for r in results]

    def as_runnable(self) -> Runnable[dict, list[Document]]:
        """An LCEL step: ``{"query": str, "documents": [Document, ...]}`` in, the reranked Documents out."""

        def run(given: dict, config: RunnableConfig) -> list[Document]:
            query, documents = _step_input(given)
            return list(self.compress_documents(documents, query, callbacks=config.get("callbacks")))

        async def arun(given: dict, config: RunnableConfig) -> list[Document]:
            query, documents = _step_input(given)
            return list(await self.acompress_documents(documents, query, callbacks=config.get("callbacks")))

        return RunnableLambda(run, afunc=arun, name=type(self).__name__)

    def _texts(self, documents: Sequence[Document]) -> list[str]:
        for position, document in enumerate(documents):
            if not isinstance(document, Document):
                raise TypeError(f"documents[{position}] must be a langchain Document, got {type(document).__name__}")
        return [
            document_text(d.page_content, d.metadata, rank_fields=self.rank_fields, template=self.document_template)
            for d in documents
        ]

    def _facts(self, results: Sequence[RerankResult], n_in: int) -> dict[str, Any]:
        return call_facts(results, n_in, self._scorer.name, self._scorer.usage.last)

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


def _as_document(item: RerankInput, position: int) -> Document:
    if isinstance(item, Document):
        return item
    if isinstance(item, str):
        return Document(page_content=item)
    if isinstance(item, dict):
        text = item.get("page_content", item.get("text"))
        if isinstance(text, str):
            metadata = {key: value for key, value in item.items() if key not in ("page_content", "text")}
            return Document(page_content=text, metadata=metadata)
    raise TypeError(f"documents[{position}] must be a str, a Document or a dict with 'page_content' or 'text'")


def _step_input(given: Any) -> tuple[str, Sequence[Document]]:
    if not isinstance(given, dict) or "query" not in given or "documents" not in given:
        raise TypeError("the rerank step takes {'query': str, 'documents': [Document, ...]}")
    return given["query"], given["documents"]
