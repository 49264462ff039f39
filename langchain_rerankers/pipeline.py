"""LangChain retrievers for two-stage retrieval: rerank any retriever's candidates, fuse several retrievers.

Both are ``BaseRetriever``s, so they work in LCEL chains and as agent tools (``create_retriever_tool``).
The policy lives in :mod:`rerank_kit.pipeline.two_stage`; this module only maps Documents in and out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Optional, Union

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_rerankers.base import BaseRerank
from rerank_kit import DEFAULT_TOP_N, Scorer
from rerank_kit.pipeline.fusion import DEFAULT_RRF_K, check_fusion_settings
from rerank_kit.metadata import FUSION_SCORE_KEY
from rerank_kit.pipeline.two_stage import Candidate, Ranked, TwoStage, fuse_candidates


class TwoStageRetriever(BaseRetriever):
    """Fetches ``candidates`` documents from ``retriever`` and returns the reranked best ``k``.

    ``reranker`` is a rerank-kit compressor (its threshold, normalization and cache apply; its ``top_n`` is
    replaced by ``k``) or a ``rerank_kit.Scorer``. ``candidates`` defaults to ``max(4 * k, 20)``; it is applied
    to retrievers with a ``k`` field (BM25, TF-IDF, :class:`FusionRetriever`) or ``search_kwargs`` (vector
    stores), others are used as configured. Documents with the same text are one candidate. Results are new
    Documents whose metadata is the candidate's plus ``relevance_score``, ``original_index`` (first-stage
    position) and ``rerank_model``. ``mmr_lambda`` (1 = relevance only) diversifies the results, using
    ``embeddings`` when given, else word overlap. ``passage_size`` (words) scores long documents by their
    best overlapping passage instead of truncating them.
    """

    retriever: BaseRetriever = Field(description="The first stage.")
    reranker: Union[BaseRerank, Scorer] = Field(description="A rerank-kit compressor or rerank_kit.Scorer.")
    k: int = Field(default=DEFAULT_TOP_N, description="How many documents to return.")
    candidates: Optional[int] = Field(default=None, description="How many to fetch; None: max(4 * k, 20).")
    mmr_lambda: Optional[float] = Field(default=None, description="MMR trade-off in [0, 1]; None: no MMR.")
    embeddings: Optional[Embeddings] = Field(default=None, description="Embeddings for MMR similarity.")
    passage_size: Optional[int] = Field(default=None, description="Max-p passage length in words; None: whole text.")
    passage_overlap: Optional[int] = Field(default=None, description="Words shared by passages; None: a quarter.")

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _two_stage: TwoStage = PrivateAttr()
    _first_stage: BaseRetriever = PrivateAttr()

    def model_post_init(self, context: object, /) -> None:
        self._two_stage, self._first_stage = self._stages(self.k, self.candidates)

    def _stages(self, k: int, candidates: Optional[int]) -> tuple[TwoStage, BaseRetriever]:
        """The rerank stage for ``k`` results and the first stage configured to fetch its candidates."""
        reranker = self.reranker.reranker if isinstance(self.reranker, BaseRerank) else self.reranker
        embed = self.embeddings.embed_documents if self.embeddings is not None else None
        two_stage = TwoStage(
            reranker,
            k=k,
            candidates=candidates,
            mmr_lambda=self.mmr_lambda,
            embed=embed,
            passage_size=self.passage_size,
            passage_overlap=self.passage_overlap,
        )
        return two_stage, with_candidate_count(self.retriever, two_stage.candidates)

    def _for_call(self, k: Optional[int]) -> tuple[TwoStage, BaseRetriever]:
        """The stages for one call: ``invoke(query, k=...)`` overrides ``k`` (and the default candidate count)."""
        if k is None or k == self.k:
            return self._two_stage, self._first_stage
        return self._stages(k, self.candidates if self.candidates is None or self.candidates >= k else k)

    @property
    def candidate_count(self) -> int:
        """How many candidates the first stage is asked for."""
        return self._two_stage.candidates

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: Optional[int] = None
    ) -> list[Document]:
        two_stage, first_stage = self._for_call(k)
        found = first_stage.invoke(query, config={"callbacks": run_manager.get_child()})
        return _documents(two_stage.rank(query, _candidates(found)))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, k: Optional[int] = None
    ) -> list[Document]:
        two_stage, first_stage = self._for_call(k)
        found = await first_stage.ainvoke(query, config={"callbacks": run_manager.get_child()})
        return _documents(await two_stage.arank(query, _candidates(found)))


class FusionRetriever(BaseRetriever):
    """Reciprocal rank fusion of several retrievers (for example BM25 + vector search), best first.

    With ``k`` set, each retriever is asked for ``k`` documents and the best ``k`` fused ones are returned;
    with ``None`` the retrievers run as configured and every fused document is returned. Documents with the
    same text are one document; its metadata gains ``fusion_score``.
    """

    retrievers: list[BaseRetriever] = Field(description="The retrievers to fuse.")
    k: Optional[int] = Field(default=None, description="Documents per retriever and fused; None: as configured.")
    weights: Optional[list[float]] = Field(default=None, description="One weight per retriever; None: equal.")
    rrf_k: int = Field(default=DEFAULT_RRF_K, description="RRF constant: score = sum(weight / (rrf_k + rank)).")

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def model_post_init(self, context: object, /) -> None:
        if not self.retrievers:
            raise ValueError("retrievers must name at least one retriever")
        check_fusion_settings(len(self.retrievers), k=self.rrf_k, weights=self.weights)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        config = {"callbacks": run_manager.get_child()}
        found = [retriever.invoke(query, config=config) for retriever in self._configured()]
        return self._fused(found)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        config = {"callbacks": run_manager.get_child()}
        found = await asyncio.gather(*(retriever.ainvoke(query, config=config) for retriever in self._configured()))
        return self._fused(found)

    def _configured(self) -> list[BaseRetriever]:
        if self.k is None:
            return list(self.retrievers)
        return [with_candidate_count(retriever, self.k) for retriever in self.retrievers]

    def _fused(self, found: Sequence[Sequence[Document]]) -> list[Document]:
        fused = fuse_candidates(
            [_candidates(documents) for documents in found], rrf_k=self.rrf_k, weights=self.weights, limit=self.k
        )
        return [
            Document(
                page_content=c.item.page_content, id=c.item.id, metadata={**c.item.metadata, FUSION_SCORE_KEY: score}
            )
            for c, score in fused
        ]


def with_candidate_count(retriever: BaseRetriever, count: int) -> BaseRetriever:
    """A copy of ``retriever`` that fetches ``count`` documents, when it has a known setting for it."""
    fields = type(retriever).model_fields
    if "search_kwargs" in fields:
        return retriever.model_copy(update={"search_kwargs": {**retriever.search_kwargs, "k": count}})
    if "k" in fields:
        return retriever.model_copy(update={"k": count})
    return retriever


def _candidates(documents: Sequence[Document]) -> list[Candidate[Document]]:
    for position, document in enumerate(documents):
        if not isinstance(document, Document):
            raise TypeError(f"the retriever returned {type(document).__name__} at {position}, not a Document")
    return [Candidate(item=d, text=d.page_content, metadata=d.metadata) for d in documents]


def _documents(ranked: Sequence[Ranked[Document]]) -> list[Document]:
    return [Document(page_content=r.item.page_content, id=r.item.id, metadata=r.metadata) for r in ranked]
