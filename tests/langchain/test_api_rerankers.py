"""LangChain CohereRerank, VoyageRerank, HTTPRerank and FallbackRerank over loopback wire-format servers."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from langchain_rerankers import CohereRerank, FallbackRerank, HTTPRerank, VoyageRerank
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
DOCS = [
    Document(page_content="the cat", metadata={"source": "a"}, id="a"),
    Document(page_content="reset my password", metadata={"source": "b"}, id="b"),
    Document(page_content="how do i reset my password for my account", metadata={"source": "c"}, id="c"),
    Document(page_content="python error", metadata={"source": "d"}, id="d"),
]
FAST = {"backoff": 0.01, "max_retries": 2}

PROVIDERS = {
    "cohere": (cohere_handler, lambda url, **kw: CohereRerank(api_key=SECRET_KEY, base_url=url, **FAST, **kw)),
    "voyage": (voyage_handler, lambda url, **kw: VoyageRerank(api_key=SECRET_KEY, base_url=f"{url}/v1", **FAST, **kw)),
    "tei": (tei_handler, lambda url, **kw: HTTPRerank(base_url=url, api_key=SECRET_KEY, **FAST, **kw)),
    "infinity": (infinity_handler,
                 lambda url, **kw: HTTPRerank(base_url=url, protocol="infinity", api_key=SECRET_KEY, **FAST, **kw)),
}


def assert_ranked(documents: list[Document]) -> None:
    assert [d.id for d in documents] == ["c", "b"]
    assert [d.metadata["original_index"] for d in documents] == [2, 1]
    assert documents[0].metadata["relevance_score"] == overlap_score(QUERY, DOCS[2].page_content)
    assert documents[0].metadata["source"] == "c"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_then_success_is_retried(provider):
    handler, build = PROVIDERS[provider]
    with LoopbackServer(scripted(Reply(500, {"message": "boom", "detail": "boom"}), then=handler())) as server:
        compressed = build(server.url, top_n=2).compress_documents(DOCS, QUERY)
    assert len(server.requests) == 2
    assert_ranked(list(compressed))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_401_fails_at_once_sync_and_async(provider):
    _, build = PROVIDERS[provider]
    reply = Reply(401, {"message": f"bad key {SECRET_KEY}", "detail": f"bad key {SECRET_KEY}"})
    with LoopbackServer(lambda request: reply) as server:
        reranker = build(server.url)
        with pytest.raises(ProviderAuthError) as sync_error:
            reranker.compress_documents(DOCS, QUERY)
        with pytest.raises(ProviderAuthError) as async_error:
            await reranker.acompress_documents(DOCS, QUERY)
    assert len(server.requests) == 2
    assert SECRET_KEY not in str(sync_error.value) + str(async_error.value)


@pytest.mark.parametrize("provider", ["cohere", "tei"])
def test_malformed_json_is_an_error_not_an_empty_result(provider):
    _, build = PROVIDERS[provider]
    with LoopbackServer(lambda request: Reply(200, raw=b"not json")) as server:
        with pytest.raises(ProviderResponseError):
            build(server.url).compress_documents(DOCS, QUERY)


def test_usage_is_readable_after_the_call():
    with LoopbackServer(cohere_handler()) as server:
        reranker = CohereRerank(api_key=SECRET_KEY, base_url=server.url)
        reranker.compress_documents(DOCS, QUERY)
    assert reranker.usage.last == {"search_units": 1}


def test_voyage_instruction_reaches_the_wire():
    with LoopbackServer(voyage_handler()) as server:
        VoyageRerank(api_key=SECRET_KEY, base_url=f"{server.url}/v1", instruction="Prefer FAQs.").compress_documents(
            DOCS, QUERY
        )
    assert server.requests[0].json["query"] == f"Prefer FAQs.\n{QUERY}"


def test_fallback_answers_with_the_next_reranker_when_the_api_is_down():
    with LoopbackServer(lambda request: Reply(503, {"message": "down"})) as server:
        fallback = FallbackRerank(scorers=[CohereRerank(api_key=SECRET_KEY, base_url=server.url, **FAST),
                                           KeywordScorer()], top_n=2)
        compressed = fallback.compress_documents(DOCS, QUERY)
    assert [d.id for d in compressed] == ["c", "b"]
    assert fallback.last_scorer_name == "KeywordScorer"


async def test_fallback_async_uses_the_first_healthy_scorer():
    with LoopbackServer(tei_handler()) as server:
        fallback = FallbackRerank(scorers=[HTTPRerank(base_url=server.url), KeywordScorer()], top_n=2)
        compressed = await fallback.acompress_documents(DOCS, QUERY)
    assert_ranked(list(compressed))
    assert fallback.last_scorer_name == f"TEI {server.url}"


def test_fallback_rejects_unknown_members():
    with pytest.raises(TypeError, match=r"scorers\[0\]"):
        FallbackRerank(scorers=["cohere"])
