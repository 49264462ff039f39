"""LlamaIndex node postprocessors over the rerank-kit core: map nodes to texts and results back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, List, Optional

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rerank_kit import DEFAULT_TOP_N, Reranker, RerankResult, Scorer, UsageMeter
from rerank_kit.adapter_support import scorer_options
from rerank_kit.reranker import Normalize

dispatcher = get_dispatcher(__name__)

RETRIEVAL_SCORE_KEY = "retrieval_score"


class BaseRerank(BaseNodePostprocessor):
    """Shared policy fields, node mapping and instrumentation; subclasses only build their scorer.

    Returns new ``NodeWithScore`` objects whose ``score`` is the rerank score, best first. With
    ``keep_retrieval_score`` the returned node is a copy whose metadata also holds the first-stage score
    under ``retrieval_score``; the caller's nodes are never mutated.
    """

    top_n: Optional[int] = Field(default=DEFAULT_TOP_N, description="How many nodes to return; None for all.")
    score_threshold: Optional[float] = Field(default=None, description="Drop nodes scoring below this.")
    normalize: Normalize = Field(default="none", description="'none', 'sigmoid' or 'minmax' score scaling.")
    cache: Optional[bool] = Field(default=None, description="Score cache; None: on for local models only.")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata is part of the text the model reads."
    )
    keep_retrieval_score: bool = Field(
        default=False, description="Keep the first-stage score in the returned node's metadata."
    )

    _scorer: Scorer = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._scorer = self._build_scorer()
        self.reranker  # validates the policy fields at construction

    #: The core scorer this reranker configures; its keyword arguments are the subclass's own fields.
    scorer_class: ClassVar[Optional[type[Scorer]]] = None

    def _build_scorer(self) -> Scorer:
        if self.scorer_class is None:
            raise NotImplementedError(f"{type(self).__name__} must set scorer_class or override _build_scorer")
        config = {name: getattr(self, name) for name in type(self).model_fields}
        return self.scorer_class(**scorer_options(config, BaseRerank.model_fields))

    @classmethod
    def class_name(cls) -> str:
        return "RerankKitBaseRerank"

    @property
    def reranker(self) -> Reranker:
        """The core policy with this postprocessor's current settings."""
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

    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        with self._events(nodes, query_bundle) as finish:
            return finish(self.reranker.rerank(query, texts))

    async def _apostprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        with self._events(nodes, query_bundle) as finish:
            return finish(await self.reranker.arerank(query, texts))

    def _inputs(self, nodes: Sequence[NodeWithScore], query_bundle: Optional[QueryBundle]) -> tuple[str, list[str]]:
        if query_bundle is None:
            raise ValueError("a query is required: pass query_bundle or query_str to postprocess_nodes")
        texts = []
        for position, node in enumerate(nodes):
            if not isinstance(node, NodeWithScore):
                raise TypeError(f"nodes[{position}] must be a NodeWithScore, got {type(node).__name__}")
            text = node.node.get_content(metadata_mode=self.metadata_mode)
            if not isinstance(text, str):
                raise TypeError(f"nodes[{position}] has no text content ({type(node.node).__name__})")
            texts.append(text)
        return query_bundle.query_str, texts

    def _events(self, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> "_RerankEvents":
        return _RerankEvents(self, nodes, query_bundle)

    def _ranked_nodes(self, nodes: Sequence[NodeWithScore], results: Sequence[RerankResult]) -> List[NodeWithScore]:
        return [NodeWithScore(node=self._result_node(nodes[r.index]), score=r.score) for r in results]

    def _result_node(self, node: NodeWithScore) -> Any:
        if not self.keep_retrieval_score:
            return node.node
        metadata = {**node.node.metadata, RETRIEVAL_SCORE_KEY: node.score}
        return copy_with_metadata(node.node, metadata, hidden=[RETRIEVAL_SCORE_KEY])


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


class _RerankEvents:
    """Emits the ReRankStart/End dispatcher events and the RERANKING callback event around one call."""

    def __init__(self, owner: BaseRerank, nodes: List[NodeWithScore], query_bundle: QueryBundle) -> None:
        self.owner, self.nodes, self.query_bundle = owner, nodes, query_bundle

    def __enter__(self) -> Any:
        owner = self.owner
        top_n = owner.top_n if owner.top_n is not None else len(self.nodes)
        dispatcher.event(
            ReRankStartEvent(query=self.query_bundle, nodes=self.nodes, top_n=top_n, model_name=owner._scorer.name)
        )
        self._callback = owner.callback_manager.event(
            CBEventType.RERANKING,
            payload={
                EventPayload.NODES: self.nodes,
                EventPayload.MODEL_NAME: owner._scorer.name,
                EventPayload.QUERY_STR: self.query_bundle.query_str,
                EventPayload.TOP_K: top_n,
            },
        )
        event = self._callback.__enter__()

        def finish(results: Sequence[RerankResult]) -> List[NodeWithScore]:
            new_nodes = owner._ranked_nodes(self.nodes, results)
            event.on_end(payload={EventPayload.NODES: new_nodes})
            dispatcher.event(ReRankEndEvent(nodes=new_nodes))
            return new_nodes

        return finish

    def __exit__(self, *exc_info: Any) -> None:
        self._callback.__exit__(*exc_info)


class Rerank(BaseRerank):
    """Reranks with any rerank-kit scorer: ``Rerank(scorer=CrossEncoderScorer(...), top_n=3)``."""

    scorer: Scorer = Field(description="The rerank_kit.Scorer that scores nodes.")

    @classmethod
    def class_name(cls) -> str:
        return "RerankKitRerank"

    def _build_scorer(self) -> Scorer:
        return self.scorer
