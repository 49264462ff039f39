"""CohereScorer against a loopback server speaking Cohere's v2 rerank wire format, through the real SDK."""

from __future__ import annotations

import logging

import pytest

from rerank_kit import (
    ProviderAuthError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    Reranker,
)
from rerank_kit.scorers.remote.cohere import CohereScorer
from tests.api_servers import SECRET_KEY, cohere_handler, overlap_score, rewrite, scripted
from tests.loopback import LoopbackServer, Reply

DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
QUERY = "reset password account"


def scorer(server: LoopbackServer, **options) -> CohereScorer:
    options = {"max_retries": 3, "backoff": 0.01, **options}
    return CohereScorer(api_key=SECRET_KEY, base_url=server.url, **options)


def test_request_body_and_scores_in_input_order():
    with LoopbackServer(cohere_handler()) as server:
        scores = scorer(server, model="rerank-english-v3.0", max_tokens_per_doc=512).score(QUERY, DOCS)
    request = server.requests[0]
    assert request.path == "/v2/rerank"
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert request.json == {
        "model": "rerank-english-v3.0", "query": QUERY, "documents": DOCS, "top_n": 4, "max_tokens_per_doc": 512,
    }
    assert scores == [overlap_score(QUERY, d) for d in DOCS]


def test_reranker_ranks_by_cohere_scores_and_records_search_units():
    with LoopbackServer(cohere_handler()) as server:
        cohere = scorer(server)
        results = Reranker(cohere, top_n=2).rerank(QUERY, DOCS)
    assert [r.index for r in results] == [2, 1]
    assert cohere.usage.last == {"search_units": 1}


def test_more_than_1000_documents_are_split_and_merged_by_global_index():
    docs = [f"doc {i} " + ("reset password" if i % 700 == 0 else "cat") for i in range(2300)]
    with LoopbackServer(cohere_handler()) as server:
        cohere = scorer(server)
        results = Reranker(cohere, top_n=4).rerank(QUERY, docs)
    assert sorted(len(r.json["documents"]) for r in server.requests) == [300, 1000, 1000]
    assert sorted(r.json["top_n"] for r in server.requests) == [300, 1000, 1000]
    assert sorted(r.index for r in results) == [0, 700, 1400, 2100]
    assert cohere.usage.last == {"search_units": 3}


async def test_async_split_request_merges_the_same_scores():
    docs = [f"doc {i} reset" if i % 3 else f"doc {i}" for i in range(2100)]
    with LoopbackServer(cohere_handler()) as server:
        cohere = scorer(server)
        scores = await cohere.ascore(QUERY, docs)
    assert len(server.requests) == 3
    assert scores == [overlap_score(QUERY, d) for d in docs]


def test_429_is_retried_after_the_retry_after_header(caplog):
    handler = scripted(Reply(429, {"message": "slow down"}, headers={"Retry-After": "1"}), then=cohere_handler())
    with LoopbackServer(handler) as server, caplog.at_level(logging.WARNING, logger="rerank_kit.api"):
        scores = scorer(server).score(QUERY, DOCS)
    assert len(server.requests) == 2
    assert scores == [overlap_score(QUERY, d) for d in DOCS]
    assert "retry 1 of 3 in 1.00s" in caplog.text


def test_500_three_times_then_success():
    handler = scripted(*[Reply(500, {"message": "boom"})] * 3, then=cohere_handler())
    with LoopbackServer(handler) as server:
        scores = scorer(server).score(QUERY, DOCS)
    assert len(server.requests) == 4
    assert scores == [overlap_score(QUERY, d) for d in DOCS]


def test_persistent_503_gives_up_after_max_retries():
    with LoopbackServer(lambda request: Reply(503, {"message": "down"})) as server:
        with pytest.raises(ProviderUnavailableError, match="gave up after 3 attempts") as info:
            scorer(server, max_retries=2).score(QUERY, DOCS)
    assert len(server.requests) == 3
    assert info.value.status_code == 503


def test_timeout_is_retried_then_reported():
    with LoopbackServer(lambda request: Reply(200, {"results": []}, delay=1.0)) as server:
        with pytest.raises(ProviderUnavailableError, match="timeout"):
            scorer(server, timeout=0.2, max_retries=1).score(QUERY, DOCS)
    assert len(server.requests) == 2


def test_401_fails_at_once_without_echoing_the_key():
    reply = Reply(401, {"message": f"invalid api token {SECRET_KEY}"})
    with LoopbackServer(lambda request: reply) as server:
        with pytest.raises(ProviderAuthError, match="check the API key") as info:
            scorer(server).score(QUERY, DOCS)
    assert len(server.requests) == 1
    assert SECRET_KEY not in str(info.value)
    assert info.value.status_code == 401


def test_400_fails_at_once_with_the_provider_message():
    with LoopbackServer(lambda request: Reply(400, {"message": "invalid model"})) as server:
        with pytest.raises(ProviderRequestError, match="invalid model"):
            scorer(server).score(QUERY, DOCS)
    assert len(server.requests) == 1


def test_malformed_json_is_a_response_error():
    with LoopbackServer(lambda request: Reply(200, raw=b"<html>oops")) as server:
        with pytest.raises(ProviderResponseError, match="Cohere"):
            scorer(server).score(QUERY, DOCS)


def test_out_of_range_index_is_a_response_error():
    def shift(reply: Reply) -> Reply:
        reply.body["results"][0]["index"] = 99
        return reply

    with LoopbackServer(rewrite(cohere_handler(), shift)) as server:
        with pytest.raises(ProviderResponseError, match="Cohere: result index 99 is out of range"):
            scorer(server).score(QUERY, DOCS)


def test_missing_result_is_a_response_error_not_a_shorter_list():
    def drop(reply: Reply) -> Reply:
        reply.body["results"].pop()
        return reply

    with LoopbackServer(rewrite(cohere_handler(), drop)) as server:
        with pytest.raises(ProviderResponseError, match="1 of 4 documents have no result"):
            scorer(server).score(QUERY, DOCS)


def test_duplicate_index_is_a_response_error():
    def duplicate(reply: Reply) -> Reply:
        reply.body["results"][1]["index"] = reply.body["results"][0]["index"]
        return reply

    with LoopbackServer(rewrite(cohere_handler(), duplicate)) as server:
        with pytest.raises(ProviderResponseError, match="appears twice"):
            scorer(server).score(QUERY, DOCS)


async def test_async_429_then_success():
    handler = scripted(Reply(429, {"message": "slow"}, headers={"Retry-After": "0"}), then=cohere_handler())
    with LoopbackServer(handler) as server:
        scores = await scorer(server).ascore(QUERY, DOCS)
    assert len(server.requests) == 2
    assert scores == [overlap_score(QUERY, d) for d in DOCS]


async def test_async_401_fails_at_once():
    with LoopbackServer(lambda request: Reply(401, {"message": "no"})) as server:
        with pytest.raises(ProviderAuthError):
            await scorer(server).ascore(QUERY, DOCS)
    assert len(server.requests) == 1


def test_key_never_appears_in_repr():
    cohere = CohereScorer(api_key=SECRET_KEY, base_url="http://127.0.0.1:9")
    assert SECRET_KEY not in repr(cohere)
    assert SECRET_KEY not in repr(vars(cohere))


def test_key_falls_back_to_environment(monkeypatch):
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", SECRET_KEY)
    with LoopbackServer(cohere_handler()) as server:
        CohereScorer(base_url=server.url).score(QUERY, DOCS)
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET_KEY}"


def test_missing_key_is_an_early_error(monkeypatch):
    monkeypatch.delenv("CO_API_KEY", raising=False)
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CO_API_KEY"):
        CohereScorer()


def test_cache_true_answers_repeats_without_a_request():
    with LoopbackServer(cohere_handler()) as server:
        reranker = Reranker(scorer(server), top_n=None, cache=True)
        first = reranker.rerank(QUERY, DOCS)
        second = reranker.rerank(QUERY, DOCS)
    assert first == second
    assert len(server.requests) == 1


def test_ready_client_is_used():
    import cohere

    with LoopbackServer(cohere_handler()) as server:
        client = cohere.ClientV2(api_key=SECRET_KEY, base_url=server.url)
        scores = CohereScorer(client=client).score(QUERY, DOCS)
    assert scores == [overlap_score(QUERY, d) for d in DOCS]
