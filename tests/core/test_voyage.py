"""VoyageScorer against a loopback server speaking Voyage's v1 rerank wire format, through the real SDK."""

from __future__ import annotations

from rerank_kit import Reranker
from rerank_kit.scorers.remote.voyage import VoyageScorer
from tests.api_servers import SECRET_KEY, overlap_score, voyage_handler
from tests.loopback import LoopbackServer


DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
QUERY = "reset password account"


def scorer(server: LoopbackServer, **options) -> VoyageScorer:
    options = {"max_retries": 3, "backoff": 0.01, **options}
    return VoyageScorer(api_key=SECRET_KEY, base_url=f"{server.url}/v1", **options)


def test_request_body_and_scores_in_input_order():
    with LoopbackServer(voyage_handler()) as server:
        scores = scorer(server, model="rerank-2.5-lite", truncation=False).score(QUERY, DOCS)
    request = server.requests[0]
    assert request.path == "/v1/rerank"
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert request.json == {"query": QUERY, "documents": DOCS, "model": "rerank-2.5-lite", "top_k": 4,
                            "truncation": False}
    assert scores == [overlap_score(QUERY, d) for d in DOCS]


def test_instruction_is_prepended_to_the_query():
    with LoopbackServer(voyage_handler()) as server:
        scorer(server, instruction="Prefer official help pages.").score(QUERY, DOCS)
    assert server.requests[0].json["query"] == f"Prefer official help pages.\n{QUERY}"


def test_reranker_ranks_by_voyage_scores_and_records_total_tokens():
    with LoopbackServer(voyage_handler()) as server:
        voyage = scorer(server)
        results = Reranker(voyage, top_n=2).rerank(QUERY, DOCS)
    assert [r.index for r in results] == [2, 1]
    assert voyage.usage.last == {"total_tokens": 3 * 4 + 2 + 3 + 9 + 2}


def test_more_than_1000_documents_are_split_and_merged():
    docs = [f"doc {i} reset" if i % 5 == 0 else f"doc {i}" for i in range(1500)]
    with LoopbackServer(voyage_handler()) as server:
        voyage = scorer(server)
        scores = voyage.score(QUERY, docs)
    assert sorted(len(r.json["documents"]) for r in server.requests) == [500, 1000]
    assert scores == [overlap_score(QUERY, d) for d in docs]
    assert voyage.usage.calls == 1


def test_requests_are_split_at_the_total_token_budget():
    docs = ["x" * 250_000, "reset " * 40_000, "y" * 250_000]
    with LoopbackServer(voyage_handler()) as server:
        scores = scorer(server).score(QUERY, docs)
    assert sorted(len(r.json["documents"]) for r in server.requests) == [1, 2]
    assert scores == [overlap_score(QUERY, d) for d in docs]


def test_token_budget_counts_the_query_once_per_document():
    query = "q" * 100
    docs = [f"doc {i}" for i in range(10)]
    with LoopbackServer(voyage_handler()) as server:
        scorer(server, max_tokens_per_request=4 * (100 + 8 + 5)).score(query, docs)
    assert sorted(len(r.json["documents"]) for r in server.requests) == [2, 4, 4]


async def test_async_split_request_merges_the_same_scores():
    docs = [f"doc {i} reset" if i % 3 else f"doc {i}" for i in range(2001)]
    with LoopbackServer(voyage_handler()) as server:
        scores = await scorer(server).ascore(QUERY, docs)
    assert len(server.requests) == 3
    assert scores == [overlap_score(QUERY, d) for d in docs]


def test_key_falls_back_to_environment(monkeypatch):
    monkeypatch.setenv("VOYAGE_API_KEY", SECRET_KEY)
    with LoopbackServer(voyage_handler()) as server:
        VoyageScorer(base_url=f"{server.url}/v1").score(QUERY, DOCS)
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET_KEY}"


def test_cache_key_changes_with_the_instruction():
    plain = VoyageScorer(api_key=SECRET_KEY)
    steered = VoyageScorer(api_key=SECRET_KEY, instruction="Prefer recent documents.")
    assert plain.cache_key != steered.cache_key
