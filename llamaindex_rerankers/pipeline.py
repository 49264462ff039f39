"""LlamaIndex retrievers for two-stage retrieval: rerank any retriever's candidates, fuse several retrievers.

Both are ``BaseRetriever``s, so they work in ``RetrieverQueryEngine`` and ``RetrieverTool``. The policy
lives in :mod:`rerank_kit.pipeline.two_stage`; this module only maps nodes in and out.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Sequence
from typing import List, Optional, Union

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from llamaindex_rerankers.base import BaseRerank, RerankEvents, copy_with_metadata
from rerank_kit import DEFAULT_TOP_N, Scorer
from rerank_kit.pipeline.fusion import DEFAULT_RRF_K, check_fusion_settings
from rerank_kit.pipeline.two_stage import PIPELINE_METADATA_KEYS, Candidate, Ranked, TwoStage, fuse_candidates
from rerank_kit.validation import check_positive_int


class TwoStageRetriever(BaseRetriever):
    """Fetches ``candidates`` nodes from ``retriever`` and returns the reranked best ``k``.

    ``reranker`` is a rerank-kit postprocessor (its threshold, normalization, cache and metadata mode
    apply; its ``top_n`` is replaced by ``k``) or a ``rerank_kit.Scorer``. ``candidates`` defaults to
    ``max(4 * k, 20)``; it is applied to retrievers with a ``similarity_top_k`` (vector indexes, BM25) or
    a :class:`FusionRetriever`, others are used as configured. Nodes with the same scored text are one candidate.
    Each result's score is the rerank score and its node is a copy whose metadata adds ``relevance_score``,
    ``original_index``, ``rerank_model`` and ``retrieval_score`` (hidden from the LLM and embedding text).
    ``mmr_lambda`` (1 = relevance only) diversifies the results using the nodes' embeddings, else
    ``embed_model``, else word overlap. ``passage_size`` (words) scores long nodes by their best overlapping
    passage instead of truncating them.
    """

    def __init__(
        self,
        retriever: BaseRetriever,
        reranker: Union[BaseRerank, Scorer],
        *,
        k: int = DEFAULT_TOP_N,
        candidates: Optional[int] = None,
        mmr_lambda: Optional[float] = None,
        embed_model: Optional[BaseEmbedding] = None,
        passage_size: Optional[int] = None,
        passage_overlap: Optional[int] = None,
        metadata_mode: Optional[MetadataMode] = None,
        callback_manager: Optional[CallbackManager] = None,
        verbose: bool = False,
    ) -> None:
        if not isinstance(retriever, BaseRetriever):
            raise TypeError(f"retriever must be a llama_index BaseRetriever, got {type(retriever).__name__}")
        is_postprocessor = isinstance(reranker, BaseRerank)
        embed = embed_model.get_text_embedding_batch if embed_model is not None else None
        self._two_stage = TwoStage(
            reranker.reranker if is_postprocessor else reranker,
            k=k,
            candidates=candidates,
            mmr_lambda=mmr_lambda,
            embed=embed,
            passage_size=passage_size,
            passage_overlap=passage_overlap,
        )
        self._metadata_mode = metadata_mode or (reranker.metadata_mode if is_postprocessor else MetadataMode.EMBED)
        self._first_stage = with_candidate_count(retriever, self._two_stage.candidates)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def candidate_count(self) -> int:
        """How many candidates the first stage is asked for."""
        return self._two_stage.candidates

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        found = self._first_stage.retrieve(query_bundle)
        with self._events(found, query_bundle) as finish:
            return finish(_nodes(self._two_stage.rank(query_bundle.query_str, self._candidates(found))))

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        found = await self._first_stage.aretrieve(query_bundle)
        with self._events(found, query_bundle) as finish:
            return finish(_nodes(await self._two_stage.arank(query_bundle.query_str, self._candidates(found))))

    def _events(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> RerankEvents:
        """The rerank events of one retrieval, as LlamaIndex's own rerankers emit them."""
        return RerankEvents(self.callback_manager, self._two_stage.scorer.name, self._two_stage.k, nodes,
                            query_bundle)

    def _candidates(self, nodes: Sequence[NodeWithScore]) -> list[Candidate[NodeWithScore]]:
        candidates = []
        for position, node in enumerate(nodes):
            if not isinstance(node, NodeWithScore):
                raise TypeError(f"the retriever returned {type(node).__name__} at {position}, not a NodeWithScore")
            candidates.append(
                Candidate(
                    item=node,
                    text=node.node.get_content(metadata_mode=self._metadata_mode),
                    metadata=node.node.metadata,
                    retrieval_score=node.score,
                    embedding=node.node.embedding,
                )
            )
        return candidates


class FusionRetriever(BaseRetriever):
    """Reciprocal rank fusion of several retrievers (for example BM25 + vector search), best first.

    With ``k`` set, each retriever is asked for ``k`` nodes and the best ``k`` fused ones are returned; with
    ``None`` the retrievers run as configured and every fused node is returned. Nodes with the same id are
    one node; its score is the fused score.
    """

    def __init__(
        self,
        retrievers: Sequence[BaseRetriever],
        *,
        k: Optional[int] = None,
        weights: Optional[Sequence[float]] = None,
        rrf_k: int = DEFAULT_RRF_K,
        callback_manager: Optional[CallbackManager] = None,
        verbose: bool = False,
    ) -> None:
        if not retrievers:
            raise ValueError("retrievers must name at least one retriever")
        check_fusion_settings(len(retrievers), k=rrf_k, weights=weights)
        self.retrievers = list(retrievers)
        self.k = None if k is None else check_positive_int("k", k)
        self.weights = None if weights is None else list(weights)
        self.rrf_k = rrf_k
        self._configured = [r if k is None else with_candidate_count(r, k) for r in self.retrievers]
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def with_k(self, k: int) -> "FusionRetriever":
        """The same fusion asking each retriever for ``k`` nodes and returning the best ``k``."""
        return FusionRetriever(
            self.retrievers, k=k, weights=self.weights, rrf_k=self.rrf_k, callback_manager=self.callback_manager
        )

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        return self._fused([retriever.retrieve(query_bundle) for retriever in self._configured])

    async def _aretrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        found = await asyncio.gather(*(retriever.aretrieve(query_bundle) for retriever in self._configured))
        return self._fused(found)

    def _fused(self, found: Sequence[Sequence[NodeWithScore]]) -> List[NodeWithScore]:
        rankings = [[Candidate(item=n, text=n.node.get_content()) for n in nodes] for nodes in found]
        fused = fuse_candidates(rankings, rrf_k=self.rrf_k, weights=self.weights, limit=self.k)
        return [NodeWithScore(node=c.item.node, score=score) for c, score in fused]


def with_candidate_count(retriever: BaseRetriever, count: int) -> BaseRetriever:
    """A copy of ``retriever`` that fetches ``count`` nodes, when it has a known setting for it."""
    if isinstance(retriever, FusionRetriever):
        return retriever.with_k(count)
    if hasattr(retriever, "similarity_top_k"):
        configured = copy.copy(retriever)
        configured.similarity_top_k = count
        return configured
    return retriever


def _nodes(ranked: Sequence[Ranked[NodeWithScore]]) -> List[NodeWithScore]:
    return [
        NodeWithScore(
            node=copy_with_metadata(
                r.item.node, r.metadata, hidden=[key for key in PIPELINE_METADATA_KEYS if key in r.metadata]
            ),
            score=r.score,
        )
        for r in ranked
    ]
