"""TwoStageRetriever, FusionRetriever and EmbeddingRerank inside real LlamaIndex pipelines."""

from __future__ import annotations

from typing import List

from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import RetrieverTool

from llamaindex_rerankers import EmbeddingRerank, FusionRetriever, Rerank, TwoStageRetriever
from tests.conftest import KeywordScorer

NODES = [
    TextNode(id_="router", text="router lights blink after a factory reset", metadata={"source": "router"}),
    TextNode(id_="password", text="reset your password from the login page", metadata={"source": "password"}),
    TextNode(id_="rules", text="password rules need twelve characters", metadata={"source": "rules"}),
    TextNode(id_="kitchen", text="coffee and tea in the kitchen", metadata={"source": "kitchen"}),
]
QUERY = "reset your password"


class ListRetriever(BaseRetriever):
    """A first stage that returns the first ``similarity_top_k`` of a fixed list, scored 1/position."""

    def __init__(self, nodes: List[TextNode], similarity_top_k: int = 2) -> None:
        self.nodes = nodes
        self.similarity_top_k = similarity_top_k
        self.seen_k: list[int] = []
        super().__init__()

    def _retrieve(self, query_bundle: QueryBundle) -> List[NodeWithScore]:
        self.seen_k.append(self.similarity_top_k)
        return [NodeWithScore(node=n, score=1 / (i + 1)) for i, n in enumerate(self.nodes[: self.similarity_top_k])]


def _ids(nodes: List[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


def test_returns_the_reranked_top_k_with_merged_metadata(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(ListRetriever(NODES), keyword_scorer, k=2)

    results = retriever.retrieve(QUERY)

    assert _ids(results) == ["password", "router"]
    assert [r.score for r in results] == [3.0, 1.0]
    assert results[0].node.metadata == {
        "source": "password",
        "relevance_score": 3.0,
        "original_index": 1,
        "rerank_model": "KeywordScorer",
        "retrieval_score": 0.5,
    }
    assert "relevance_score" not in results[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert NODES[1].metadata == {"source": "password"}  # the caller's nodes are not mutated


def test_the_first_stage_is_asked_for_the_candidate_count(keyword_scorer: KeywordScorer) -> None:
    first_stage = ListRetriever(NODES, similarity_top_k=2)

    TwoStageRetriever(first_stage, keyword_scorer, k=3).retrieve(QUERY)
    TwoStageRetriever(first_stage, keyword_scorer, k=3, candidates=50).retrieve(QUERY)

    assert first_stage.seen_k == [20, 50]  # max(4 * 3, 20), then as given
    assert first_stage.similarity_top_k == 2  # a configured copy ran; the caller's retriever is untouched


def test_a_vector_index_retriever_fetches_the_candidate_count(keyword_scorer: KeywordScorer) -> None:
    index = VectorStoreIndex(NODES, embed_model=MockEmbedding(embed_dim=8))
    vector = index.as_retriever(similarity_top_k=1)
    retriever = TwoStageRetriever(vector, keyword_scorer, k=4, candidates=4)

    results = retriever.retrieve(QUERY)

    assert _ids(results)[0] == "password"
    assert sorted(_ids(results)) == sorted(n.node_id for n in NODES)  # all 4 fetched, not 1
    assert vector.similarity_top_k == 1


def test_a_postprocessor_keeps_its_threshold_and_k_replaces_its_top_n(keyword_scorer: KeywordScorer) -> None:
    postprocessor = Rerank(scorer=keyword_scorer, top_n=1, score_threshold=1.0)
    retriever = TwoStageRetriever(ListRetriever(NODES, similarity_top_k=4), postprocessor, k=3)

    assert _ids(retriever.retrieve(QUERY)) == ["password", "router", "rules"]


def test_works_in_a_retriever_query_engine(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(ListRetriever(NODES), keyword_scorer, k=1)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())

    response = engine.query(QUERY)

    assert _ids(response.source_nodes) == ["password"]


def test_works_as_a_retriever_tool(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(ListRetriever(NODES), keyword_scorer, k=2)
    tool = RetrieverTool.from_defaults(retriever=retriever, name="help_center", description="Search the help center.")

    content = tool.call(QUERY).content

    assert content.index("login page") < content.index("factory reset")


async def test_async_matches_sync(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(ListRetriever(NODES), keyword_scorer, k=2)

    assert _ids(await retriever.aretrieve(QUERY)) == _ids(retriever.retrieve(QUERY))


def test_fusion_merges_duplicates_and_orders_by_rrf() -> None:
    fusion = FusionRetriever([ListRetriever([NODES[0], NODES[1]]), ListRetriever([NODES[1], NODES[2]])], rrf_k=1)

    fused = fusion.retrieve(QUERY)

    assert _ids(fused) == ["password", "router", "rules"]
    assert [n.score for n in fused] == [1 / 3 + 1 / 2, 1 / 2, 1 / 3]


async def test_two_stage_over_fusion_sets_each_retrievers_count(keyword_scorer: KeywordScorer) -> None:
    bm25, vector = ListRetriever(NODES, similarity_top_k=1), ListRetriever(list(reversed(NODES)), similarity_top_k=1)
    fusion = FusionRetriever([bm25, vector])
    retriever = TwoStageRetriever(fusion, keyword_scorer, k=2, candidates=4)

    results = await retriever.aretrieve(QUERY)

    assert _ids(results) == ["password", "router"]
    assert results[0].node.metadata["retrieval_score"] > 0  # the fused score
    assert bm25.similarity_top_k == 1 and fusion.k is None


def test_mmr_uses_node_embeddings(keyword_scorer: KeywordScorer) -> None:
    twin = TextNode(id_="twin", text="reset your password from the login screen", embedding=[1.0, 0.0])
    password = NODES[1].model_copy(update={"embedding": [1.0, 0.01]})
    router = NODES[0].model_copy(update={"embedding": [0.0, 1.0]})
    first_stage = ListRetriever([password, twin, router], similarity_top_k=3)

    plain = TwoStageRetriever(first_stage, keyword_scorer, k=2)
    diverse = TwoStageRetriever(first_stage, keyword_scorer, k=2, mmr_lambda=0.3)

    assert _ids(plain.retrieve(QUERY)) == ["password", "twin"]
    assert _ids(diverse.retrieve(QUERY)) == ["password", "router"]


def test_embedding_rerank_wraps_a_llamaindex_embedding() -> None:
    postprocessor = EmbeddingRerank(embed_model=MockEmbedding(embed_dim=4), top_n=2)

    results = postprocessor.postprocess_nodes([NodeWithScore(node=n) for n in NODES], query_str=QUERY)

    assert len(results) == 2
    assert all(r.score is not None for r in results)


def test_passage_size_scores_long_nodes_by_their_best_passage(keyword_scorer: KeywordScorer) -> None:
    scattered = TextNode(id_="scattered", text="reset " + "filler " * 40 + "password")
    together = TextNode(id_="together", text="filler " * 40 + "reset password")
    retriever = TwoStageRetriever(ListRetriever([scattered, together]), keyword_scorer, k=2, passage_size=10)

    results = retriever.retrieve("reset password")

    assert _ids(results) == ["together", "scattered"]
    assert [r.score for r in results] == [2.0, 1.0]


def test_nodes_with_the_same_text_are_one_candidate_as_in_langchain(keyword_scorer: KeywordScorer) -> None:
    copy_of_password = TextNode(id_="password-copy", text=NODES[1].text, metadata=dict(NODES[1].metadata))
    retriever = TwoStageRetriever(ListRetriever([NODES[1], copy_of_password, NODES[2]], 3), keyword_scorer, k=3)

    assert _ids(retriever.retrieve(QUERY)) == ["password", "rules"]


def test_the_two_stage_retriever_emits_the_rerank_events(keyword_scorer: KeywordScorer) -> None:
    from llama_index.core.instrumentation import get_dispatcher

    from tests.llamaindex.test_cross_encoder_rerank import _Recorder

    recorder = _Recorder(events=[])
    get_dispatcher().add_event_handler(recorder)
    try:
        results = TwoStageRetriever(ListRetriever(NODES, 4), keyword_scorer, k=2).retrieve(QUERY)
    finally:
        get_dispatcher().event_handlers.remove(recorder)
    start, end = [e for e in recorder.events if "ReRank" in e.class_name()]
    assert (start.class_name(), end.class_name()) == ("ReRankStartEvent", "ReRankEndEvent")
    assert start.top_n == 2 and start.model_name == "KeywordScorer" and len(start.nodes) == 4
    assert end.nodes == results
