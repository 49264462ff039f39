"""LlamaIndex node postprocessors over the rerank-kit core: map nodes to texts and results back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, List, Optional

from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rerank_kit import RerankResult
from rerank_kit.adapter_support import GivenScorerModel, RerankerModel
from rerank_kit.metadata import ADDED_KEYS, result_metadata
from rerank_kit.results import at_positions

dispatcher = get_dispatcher(__name__)


class BaseRerank(RerankerModel, BaseNodePostprocessor):
    """A rerank-kit reranker as a LlamaIndex ``BaseNodePostprocessor``; backends add their options.

    Returns new ``NodeWithScore`` objects whose ``score`` is the rerank score, best first. Each returned
    node is a copy whose metadata (deep-copied) also holds ``relevance_score``, ``original_index``,
    ``reranker_backend`` and, with ``keep_retrieval_score``, the first-stage ``retrieval_score``; these keys
    are hidden from the LLM and embedding text. The caller's nodes are never mutated. A node without text
    (an image-only node) is an error unless ``skip_non_text=True``, which leaves it out of the results.
    """

    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata is part of the text the model reads."
    )
    skip_non_text: bool = Field(
        default=False, description="Leave nodes without text (image-only) out instead of raising an error."
    )

    @classmethod
    def class_name(cls) -> str:
        return f"RerankKit{cls.__name__}"

    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        query, texts, positions = self._inputs(nodes, query_bundle)
        with self._events(nodes, query_bundle) as finish:
            return finish(self._ranked_nodes(nodes, at_positions(self.reranker.rerank(query, texts), positions)))

    async def _apostprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        query, texts, positions = self._inputs(nodes, query_bundle)
        with self._events(nodes, query_bundle) as finish:
            results = at_positions(await self.reranker.arerank(query, texts), positions)
            return finish(self._ranked_nodes(nodes, results))

    def _inputs(
        self, nodes: Sequence[NodeWithScore], query_bundle: Optional[QueryBundle]
    ) -> tuple[str, list[str], list[int]]:
        """The query, the texts that are scored and the positions of their nodes in ``nodes``."""
        if query_bundle is None:
            raise ValueError("a query is required: pass query_bundle or query_str to postprocess_nodes")
        positions, texts = [], []
        for position, node in enumerate(nodes):
            if not isinstance(node, NodeWithScore):
                raise TypeError(f"nodes[{position}] must be a NodeWithScore, got {type(node).__name__}")
            text = node.node.get_content(metadata_mode=self.metadata_mode)
            if not isinstance(text, str) or not _has_text(node.node):
                if self.skip_non_text:
                    continue
                raise ValueError(
                    f"nodes[{position}] ({type(node.node).__name__} {node.node.node_id}) has no text to score; "
                    "pass skip_non_text=True to leave such nodes out"
                )
            positions.append(position)
            texts.append(text)
        return query_bundle.query_str, texts, positions

    def _events(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> RerankEvents:
        top_n = self.top_n if self.top_n is not None else len(nodes)
        return RerankEvents(self.callback_manager, self._scorer.name, top_n, nodes, query_bundle)

    def _ranked_nodes(self, nodes: Sequence[NodeWithScore], results: Sequence[RerankResult]) -> List[NodeWithScore]:
        return [NodeWithScore(node=self._result_node(nodes[r.index], r), score=r.score) for r in results]

    def _result_node(self, node: NodeWithScore, result: RerankResult) -> Any:
        metadata = result_metadata(node.node.metadata, result, retrieval_score=node.score,
                                   keep_retrieval_score=self.keep_retrieval_score)
        return copy_with_metadata(node.node, metadata, hidden=ADDED_KEYS)


def _has_text(node: Any) -> bool:
    """Whether a node carries text (an ImageNode with only an image has none)."""
    text = getattr(node, "text", None)
    if text is None:
        text_resource = getattr(node, "text_resource", None)
        text = getattr(text_resource, "text", None)
    return isinstance(text, str) and bool(text)


def copy_with_metadata(inner: Any, metadata: dict[str, Any], hidden: Sequence[str]) -> Any:
    """A copy of node ``inner`` with ``metadata``; the ``hidden`` keys stay out of embedding and LLM text."""
    return inner.model_copy(
        update={
            "metadata": metadata,
            "excluded_embed_metadata_keys": _with_keys(inner.excluded_embed_metadata_keys, hidden),
            "excluded_llm_metadata_keys": _with_keys(inner.excluded_llm_metadata_keys, hidden),
        }
    )


def _with_keys(keys: Sequence[str], added: Sequence[str]) -> list[str]:
    return [*keys, *(key for key in added if key not in keys)]


class RerankEvents:
    """Emits the ReRankStart/End dispatcher events and the RERANKING callback event around one rerank call."""

    def __init__(self, callback_manager: Any, model_name: str, top_n: int, nodes: List[NodeWithScore],
                 query_bundle: QueryBundle) -> None:
        self.callback_manager, self.model_name, self.top_n = callback_manager, model_name, top_n
        self.nodes, self.query_bundle = nodes, query_bundle

    def __enter__(self) -> Any:
        dispatcher.event(ReRankStartEvent(query=self.query_bundle, nodes=self.nodes, top_n=self.top_n,
                                          model_name=self.model_name))
        self._callback = self.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: self.nodes,
                EventPayload.MODEL_NAME: self.model_name,
                EventPayload.QUERY_STR: self.query_bundle.query_str,
                EventPayload.TOP_K: self.top_n,
            },
        )
        event = self._callback.__enter__()

        def finish(new_nodes: List[NodeWithScore]) -> List[NodeWithScore]:
            event.on_end(payload={EventPayload.NODES: new_nodes})
            dispatcher.event(ReRankEndEvent(nodes=new_nodes))
            return new_nodes

        return finish

    def __exit__(self, *exc_info: Any) -> None:
        self._callback.__exit__(*exc_info)


class Rerank(GivenScorerModel, BaseRerank):
    """Reranks with any rerank-kit scorer: ``Rerank(scorer=CrossEncoderScorer(...), top_n=3)``."""
