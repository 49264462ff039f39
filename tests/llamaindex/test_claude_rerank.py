"""LlamaIndex ClaudeRerank against a scripted Messages API, through the real anthropic SDK."""

from __future__ import annotations

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode
from pydantic import SecretStr

from llamaindex_rerankers import ClaudeRerank
from rerank_kit import ProviderAuthError, ProviderResponseError
from rerank_kit.scorers.llm.claude import ClaudeAnswerWarning
from tests import messages_server as api
from tests.loopback import LoopbackServer, sequence

QUERY = "capital of france"
TEXTS = ["cats purr", "paris is the capital of france", "rain in paris", "dogs bark"]


def make_nodes(texts: list[str]) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.5) for i, t in enumerate(texts)]


def rerank(server: LoopbackServer, **options: object) -> ClaudeRerank:
    return ClaudeRerank(api_key="test-key", base_url=server.url, metadata_mode=MetadataMode.NONE, **options)


def test_nodes_come_back_in_the_models_order_with_rank_scores(serve) -> None:
    server = serve(sequence(api.ranking([2, 3, 1, 4])))
    out = rerank(server, top_n=2).postprocess_nodes(make_nodes(TEXTS), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [("n1", 1.0), ("n2", 0.75)]
    body = server.requests[0].json
    assert body["tool_choice"] == {"type": "tool", "name": "submit_ranking"}
    assert api.passages_in(server.requests[0]) == TEXTS


def test_a_broken_permutation_still_returns_every_node_once(serve) -> None:
    server = serve(sequence(api.ranking([0, 3, 3, 5])))
    with pytest.warns(ClaudeAnswerWarning):
        out = rerank(server, top_n=None).postprocess_nodes(make_nodes(TEXTS), query_str=QUERY)
    assert [n.node.node_id for n in out] == ["n2", "n0", "n1", "n3"]


def test_a_hundred_nodes_go_in_windows_of_twenty(serve) -> None:
    server = serve(api.ranking_by(api.number_in))
    nodes = make_nodes([f"passage number {i}" for i in range(100)])
    out = rerank(server, top_n=10).postprocess_nodes(nodes, query_str=QUERY)
    assert [len(api.passages_in(r)) for r in server.requests] == [20] * 9
    assert [n.node.node_id for n in out] == [f"n{i}" for i in range(99, 89, -1)]


def test_pointwise_grades_become_node_scores(serve) -> None:
    grades = {"cats purr": 0, "paris is the capital of france": 9.5, "rain in paris": 4, "dogs bark": 1}
    server = serve(api.grading_by(grades.__getitem__))
    out = rerank(server, mode="pointwise", top_n=2).postprocess_nodes(make_nodes(TEXTS), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [("n1", 9.5), ("n2", 4.0)]
    assert server.requests[0].json["tool_choice"]["name"] == "submit_scores"


def test_the_key_is_a_secret_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    postprocessor = ClaudeRerank()
    assert isinstance(postprocessor.api_key, SecretStr)
    assert "env-key" not in repr(postprocessor)
    assert postprocessor.class_name() == "RerankKitClaudeRerank"


def test_a_bad_key_raises_an_auth_error(serve) -> None:
    server = serve(sequence(api.unauthorized()))
    with pytest.raises(ProviderAuthError):
        rerank(server).postprocess_nodes(make_nodes(TEXTS), query_str=QUERY)


async def test_async_survives_an_overload_and_reports_usage(serve) -> None:
    server = serve(sequence(api.overloaded(), api.ranking([4, 1, 2, 3])))
    postprocessor = rerank(server, top_n=2)
    out = await postprocessor.apostprocess_nodes(make_nodes(TEXTS), query_bundle=QueryBundle(QUERY))
    assert [n.node.node_id for n in out] == ["n3", "n0"]
    assert len(server.requests) == 2
    assert postprocessor.usage.last["output_tokens"] == 15


async def test_async_text_answer_is_parsed_with_a_warning(serve) -> None:
    server = serve(sequence(api.text("2, 1, 4, 3")))
    with pytest.warns(ClaudeAnswerWarning, match="parsing its text"):
        out = await rerank(server, top_n=1).apostprocess_nodes(make_nodes(TEXTS), query_bundle=QueryBundle(QUERY))
    assert [n.node.node_id for n in out] == ["n1"]


async def test_async_empty_ranking_is_a_clear_error(serve) -> None:
    server = serve(sequence(api.ranking([])))
    with pytest.raises(ProviderResponseError, match="no usable answer"):
        await rerank(server).apostprocess_nodes(make_nodes(TEXTS), query_bundle=QueryBundle(QUERY))
