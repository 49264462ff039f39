"""LlamaIndex CohereRerank, VoyageRerank, HTTPRerank and FallbackRerank over loopback wire-format servers."""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from llamaindex_rerankers import CohereRerank, FallbackRerank, HTTPRerank, VoyageRerank
from rerank_kit import ProviderAuthError, ProviderResponseError
from tests.api_servers import (
    SECRET_KEY,
    cohere_handler,
    infinity_handler,
    overlap_score,
    scripted,
    tei_handler,
    voyage_handler,
)
from tests.conftest import KeywordScorer
from tests.loopback import LoopbackServer, Reply

QUERY = "reset password account"
TEXTS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
FAST = {"backoff": 0.01, "max_retries": 2}

PROVIDERS = {
    "cohere": (cohere_handler, lambda url, **kw: CohereRerank(api_key=SECRET_KEY, base_url=url, **FAST, **kw)),
    "voyage": (voyage_handler, lambda url, **kw: VoyageRerank(api_key=SECRET_KEY, base_url=f"{url}/v1", **FAST, **kw)),
    "tei": (tei_handler, lambda url, **kw: HTTPRerank(base_url=url, api_key=SECRET_KEY, **FAST, **kw)),
    "infinity": (infinity_handler,
                 lambda url, **kw: HTTPRerank(base_url=url, protocol="infinity", api_key=SECRET_KEY, **FAST, **kw)),
}


def nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=text, id_=f"n{i}"), score=0.1 * i) for i, text in enumerate(TEXTS)]


def assert_ranked(ranked: list[NodeWithScore]) -> None:
    assert [n.node.node_id for n in ranked] == ["n2", "n1"]
    assert ranked[0].score == overlap_score(QUERY, TEXTS[2])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_then_success_is_retried(provider):
    handler, build = PROVIDERS[provider]
    with LoopbackServer(scripted(Reply(500, {"message": "boom", "detail": "boom"}), then=handler())) as server:
        ranked = build(server.url, top_n=2).postprocess_nodes(nodes(), query_str=QUERY)
    assert len(server.requests) == 2
    assert_ranked(ranked)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_401_fails_at_once_sync_and_async(provider):
    _, build = PROVIDERS[provider]
    reply = Reply(401, {"message": f"bad key {SECRET_KEY}", "detail": f"bad key {SECRET_KEY}"})
    with LoopbackServer(lambda request: reply) as server:
        reranker = build(server.url)
        with pytest.raises(ProviderAuthError) as sync_error:
            reranker.postprocess_nodes(nodes(), query_str=QUERY)
        with pytest.raises(ProviderAuthError) as async_error:
            await reranker.apostprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY))
    assert len(server.requests) == 2
    assert SECRET_KEY not in str(sync_error.value) + str(async_error.value)


@pytest.mark.parametrize("provider", ["voyage", "infinity"])
def test_malformed_json_is_an_error_not_an_empty_result(provider):
    _, build = PROVIDERS[provider]
    with LoopbackServer(lambda request: Reply(200, raw=b"not json")) as server:
        with pytest.raises(ProviderResponseError):
            build(server.url).postprocess_nodes(nodes(), query_str=QUERY)


def test_usage_is_readable_after_the_call():
    with LoopbackServer(voyage_handler()) as server:
        reranker = VoyageRerank(api_key=SECRET_KEY, base_url=f"{server.url}/v1")
        reranker.postprocess_nodes(nodes(), query_str=QUERY)
    assert reranker.usage.last == {"total_tokens": 28}


def test_fallback_answers_with_the_next_reranker_when_the_api_is_down():
    with LoopbackServer(lambda request: Reply(503, {"message": "down"})) as server:
        fallback = FallbackRerank(scorers=[CohereRerank(api_key=SECRET_KEY, base_url=server.url, **FAST),
                                           KeywordScorer()], top_n=2)
        ranked = fallback.postprocess_nodes(nodes(), query_str=QUERY)
    assert [n.node.node_id for n in ranked] == ["n2", "n1"]
    assert fallback.last_scorer_name == "KeywordScorer"


async def test_fallback_async_uses_the_first_healthy_scorer():
    with LoopbackServer(infinity_handler()) as server:
        fallback = FallbackRerank(scorers=[HTTPRerank(base_url=server.url, protocol="infinity"), KeywordScorer()],
                                  top_n=2)
        ranked = await fallback.apostprocess_nodes(nodes(), query_bundle=QueryBundle(QUERY))
    assert_ranked(ranked)
    assert fallback.last_scorer_name == f"Infinity {server.url}"
