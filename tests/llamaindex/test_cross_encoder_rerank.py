"""LlamaIndex postprocessors: node mapping, events, immutability, and a real query engine."""

from __future__ import annotations

import copy

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.llms import MockLLM
from llama_index.core.schema import Document, MetadataMode, NodeWithScore, QueryBundle, TextNode
from sentence_transformers import CrossEncoder

from llamaindex_rerankers import CrossEncoderRerank, Rerank
from tests.conftest import KeywordScorer

TEXTS = ["reset password account login", "python error traceback keyerror", "forgot password email reset", "the cat"]


@pytest.fixture
def nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=text, id_=f"n{i}", metadata={"source": f"kb/{i}"}), score=0.5 - i / 10)
        for i, text in enumerate(TEXTS)
    ]


@pytest.fixture
def index() -> VectorStoreIndex:
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    return VectorStoreIndex.from_documents([Document(text=t, id_=f"d{i}") for i, t in enumerate(TEXTS)])


def test_text_includes_embed_metadata_by_default(nodes):
    scorer = KeywordScorer()
    Rerank(scorer=scorer).postprocess_nodes(nodes[:1], query_str="reset")
    assert scorer.calls[0][1] == [nodes[0].node.get_content(metadata_mode=MetadataMode.EMBED)]
    assert "source: kb/0" in scorer.calls[0][1][0]


def test_keep_retrieval_score_copies_instead_of_mutating(nodes):
    before = copy.deepcopy(nodes)
    out = Rerank(scorer=KeywordScorer(), top_n=1, keep_retrieval_score=True).postprocess_nodes(
        nodes, query_str="python keyerror"
    )
    assert out[0].node.metadata == {"source": "kb/1", "retrieval_score": 0.4, "relevance_score": 2.0,
                                    "original_index": 1, "reranker_backend": "KeywordScorer",
                                    "rerank_cache_hit": False,
                                    "rerank_latency_ms": out[0].node.metadata["rerank_latency_ms"]}
    assert "retrieval_score" not in out[0].node.get_content(metadata_mode=MetadataMode.EMBED)
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]


def test_cross_encoder_scores_match_predict(tiny_cross_encoder, nodes):
    out = CrossEncoderRerank(model=tiny_cross_encoder, local_files_only=True, top_n=None).postprocess_nodes(
        nodes, query_str="reset my password"
    )
    texts = {n.node.node_id: n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes}
    expected = CrossEncoder(tiny_cross_encoder).predict([("reset my password", texts[n.node.node_id]) for n in out])
    assert [n.score for n in out] == pytest.approx(expected.tolist(), abs=1e-5)


def test_missing_query_is_a_clear_error(nodes):
    with pytest.raises(ValueError, match="a query is required"):
        Rerank(scorer=KeywordScorer()).postprocess_nodes(nodes)


def test_empty_nodes_give_empty_result_and_load_nothing(tmp_path):
    postprocessor = CrossEncoderRerank(model=str(tmp_path / "never-loaded"), local_files_only=True)
    assert postprocessor.postprocess_nodes([], query_bundle=QueryBundle("reset")) == []


class _Recorder(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event, **kwargs) -> None:
        self.events.append(event)


def test_emits_rerank_start_and_end_events(nodes):
    recorder = _Recorder(events=[])
    get_dispatcher().add_event_handler(recorder)
    try:
        out = Rerank(scorer=KeywordScorer(), top_n=2).postprocess_nodes(nodes, query_str="reset")
    finally:
        get_dispatcher().event_handlers.remove(recorder)
    names = [e.class_name() for e in recorder.events if "ReRank" in e.class_name()]
    assert names == ["ReRankStartEvent", "ReRankEndEvent"]
    start, end = [e for e in recorder.events if "ReRank" in e.class_name()]
    assert start.top_n == 2 and start.model_name == "KeywordScorer"
    assert end.nodes == out


def test_inside_a_query_engine(index):
    engine = index.as_query_engine(
        similarity_top_k=4, node_postprocessors=[Rerank(scorer=KeywordScorer(), top_n=2, metadata_mode=MetadataMode.NONE)]
    )
    response = engine.query("reset password email")
    assert [n.node.get_content() for n in response.source_nodes] == [TEXTS[2], TEXTS[0]]
    assert [n.score for n in response.source_nodes] == [3.0, 2.0]


async def test_inside_a_query_engine_async(index, tiny_cross_encoder):
    engine = index.as_query_engine(
        similarity_top_k=4,
        node_postprocessors=[CrossEncoderRerank(model=tiny_cross_encoder, local_files_only=True, top_n=3)],
    )
    response = await engine.aquery("reset password")
    scores = [n.score for n in response.source_nodes]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_an_image_only_node_is_an_error_unless_skipped(nodes):
    from llama_index.core.schema import ImageNode

    image = NodeWithScore(node=ImageNode(image="aGVsbG8=", id_="img"), score=0.9)
    with pytest.raises(ValueError, match="nodes\\[1\\].*img.*no text.*skip_non_text"):
        Rerank(scorer=KeywordScorer(), top_n=None).postprocess_nodes([nodes[0], image], query_str="python")
    out = Rerank(scorer=KeywordScorer(), top_n=None, skip_non_text=True).postprocess_nodes(
        [nodes[0], image, nodes[1]], query_str="python keyerror"
    )
    assert [n.node.node_id for n in out] == [nodes[1].node.node_id, nodes[0].node.node_id]
    assert [n.node.metadata["original_index"] for n in out] == [2, 0]
