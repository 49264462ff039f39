"""CohereScorer against a loopback server speaking Cohere's v2 rerank wire format, through the real SDK."""

from __future__ import annotations

import pytest

from rerank_kit import Reranker
from rerank_kit.scorers.remote.cohere import CohereScorer
from tests.api_servers import SECRET_KEY, cohere_handler, overlap_score
from tests.loopback import LoopbackServer


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
