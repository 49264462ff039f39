"""HTTPRerankScorer against loopback servers speaking TEI's and Infinity's /rerank wire formats."""

from __future__ import annotations

import pytest

from rerank_kit import ProviderRequestError, ProviderResponseError, Reranker
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from tests.api_servers import SECRET_KEY, InFlight, infinity_handler, overlap_score, rewrite, tei_handler
from tests.loopback import LoopbackServer, Reply


DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
QUERY = "reset password account"
HANDLERS = {"tei": tei_handler, "infinity": infinity_handler}


def scorer(server: LoopbackServer, protocol: str = "tei", **options) -> HTTPRerankScorer:
    options = {"max_retries": 3, "backoff": 0.01, **options}
    return HTTPRerankScorer(server.url, protocol=protocol, **options)


def expected(docs: list[str]) -> list[float]:
    return [overlap_score(QUERY, d) for d in docs]


def test_tei_request_body():
    with LoopbackServer(tei_handler()) as server:
        scores = scorer(server, truncate=False, raw_scores=True).score(QUERY, DOCS)
    request = server.requests[0]
    assert (request.method, request.path) == ("POST", "/rerank")
    assert request.json == {"query": QUERY, "texts": DOCS, "truncate": False, "raw_scores": True}
    assert "authorization" not in request.headers
    assert scores == expected(DOCS)


def test_infinity_request_body_and_usage():
    with LoopbackServer(infinity_handler()) as server:
        infinity = scorer(server, "infinity", model="mixedbread-ai/mxbai-rerank-xsmall-v1", api_key=SECRET_KEY)
        scores = infinity.score(QUERY, DOCS)
    request = server.requests[0]
    assert request.json == {"query": QUERY, "documents": DOCS, "top_n": 4, "return_documents": False,
                            "model": "mixedbread-ai/mxbai-rerank-xsmall-v1"}
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert scores == expected(DOCS)
    assert infinity.usage.last == {"prompt_tokens": 16, "total_tokens": 16}


@pytest.mark.parametrize("protocol", ["tei", "infinity"])
def test_sorted_answers_are_mapped_back_by_index(protocol):
    with LoopbackServer(HANDLERS[protocol]()) as server:
        results = Reranker(scorer(server, protocol), top_n=3).rerank(QUERY, DOCS)
    assert [r.index for r in results] == [2, 1, 0]


def test_tei_splits_at_32_texts_by_default():
    docs = [f"doc {i} reset" if i % 4 == 0 else f"doc {i}" for i in range(70)]
    with LoopbackServer(tei_handler()) as server:
        scores = scorer(server).score(QUERY, docs)
    assert sorted(len(r.json["texts"]) for r in server.requests) == [6, 32, 32]
    assert scores == expected(docs)


def test_infinity_splits_at_2048_documents_and_sums_usage():
    docs = [f"doc {i}" for i in range(2100)]
    with LoopbackServer(infinity_handler()) as server:
        infinity = scorer(server, "infinity")
        scores = infinity.score(QUERY, docs)
    assert sorted(len(r.json["documents"]) for r in server.requests) == [52, 2048]
    assert scores == expected(docs)
    assert infinity.usage.last == {"prompt_tokens": 4200, "total_tokens": 4200}


async def test_async_split_parts_run_together_up_to_max_concurrency():
    docs = [f"doc {i} password" if i % 3 == 0 else f"doc {i}" for i in range(50)]
    handler = InFlight(tei_handler(), hold=0.05)
    with LoopbackServer(handler) as server:
        scores = await scorer(server, max_batch_size=5, max_concurrency=3).ascore(QUERY, docs)
    assert len(server.requests) == 10
    assert handler.peak == 3
    assert scores == expected(docs)


async def test_concurrency_limit_is_shared_by_concurrent_calls():
    handler = InFlight(tei_handler(), hold=0.05)
    with LoopbackServer(handler) as server:
        tei = scorer(server, max_concurrency=2)
        await Reranker(tei).arerank_many([(f"{QUERY} {i}", DOCS) for i in range(6)])
    assert len(server.requests) == 6
    assert handler.peak == 2


def test_413_says_to_lower_the_batch_size():
    with LoopbackServer(lambda request: Reply(413, {"error": "batch size 32 > maximum allowed batch size 16"})) as s:
        with pytest.raises(ProviderRequestError, match="lower the batch size"):
            scorer(s).score(QUERY, DOCS)
    assert len(s.requests) == 1


def test_infinity_body_without_results_is_a_response_error():
    with LoopbackServer(lambda request: Reply(200, {"object": "rerank"})) as server:
        with pytest.raises(ProviderResponseError, match="Infinity"):
            scorer(server, "infinity").score(QUERY, DOCS)


async def test_async_out_of_range_index_in_a_later_part_is_a_response_error():
    def shift(reply: Reply) -> Reply:
        if len(reply.body) < 2:
            reply.body[0]["index"] = 1
        return reply

    docs = [f"doc {i}" for i in range(3)]
    with LoopbackServer(rewrite(tei_handler(), shift)) as server:
        with pytest.raises(ProviderResponseError, match="out of range"):
            await scorer(server, max_batch_size=2).ascore(QUERY, docs)


def test_bad_settings_fail_early():
    with pytest.raises(ValueError, match="protocol"):
        HTTPRerankScorer("http://127.0.0.1:9", protocol="grpc")
    with pytest.raises(ValueError, match="base_url"):
        HTTPRerankScorer("127.0.0.1:8080")
    with pytest.raises(ValueError, match="max_batch_size"):
        HTTPRerankScorer("http://127.0.0.1:9", max_batch_size=0)
