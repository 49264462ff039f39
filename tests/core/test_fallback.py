"""FallbackScorer: keep answering while an API is down, and say who answered."""

from __future__ import annotations

import pytest

from rerank_kit import ProviderUnavailableError, Reranker
from rerank_kit.scorers.remote.cohere import CohereScorer
from rerank_kit.scorers.wrappers.fallback import FallbackScorer
from tests.api_servers import SECRET_KEY, cohere_handler
from tests.conftest import KeywordScorer
from tests.loopback import LoopbackServer, Reply

DOCS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
QUERY = "reset password account"


def cohere(server: LoopbackServer) -> CohereScorer:
    return CohereScorer(api_key=SECRET_KEY, base_url=server.url, max_retries=1, backoff=0.01)


def test_first_scorer_answers_when_healthy():
    with LoopbackServer(cohere_handler()) as server:
        fallback = FallbackScorer([cohere(server), KeywordScorer()])
        results = Reranker(fallback, top_n=2).rerank(QUERY, DOCS)
    assert [r.index for r in results] == [2, 1]
    assert fallback.last_scorer_name == "rerank-v3.5"
    assert fallback.last_failures == []
    assert fallback.usage.last == {"search_units": 1}


def test_moves_to_the_next_scorer_after_retries_run_out():
    keyword = KeywordScorer()
    with LoopbackServer(lambda request: Reply(503, {"message": "down"})) as server:
        fallback = FallbackScorer([cohere(server), keyword])
        results = Reranker(fallback, top_n=1).rerank(QUERY, DOCS)
    assert len(server.requests) == 2
    assert results[0].index == 2
    assert fallback.last_scorer_name == "KeywordScorer"
    assert [type(e).__name__ for e in fallback.last_failures] == ["ProviderUnavailableError"]
    assert len(keyword.calls) == 1


def test_auth_failure_also_falls_back():
    with LoopbackServer(lambda request: Reply(401, {"message": "revoked"})) as server:
        fallback = FallbackScorer([cohere(server), KeywordScorer()])
        fallback.score(QUERY, DOCS)
    assert fallback.last_scorer_name == "KeywordScorer"
    assert fallback.last_failures[0].status_code == 401


async def test_async_path_falls_back_too():
    with LoopbackServer(lambda request: Reply(500, {"message": "boom"})) as server:
        fallback = FallbackScorer([cohere(server), KeywordScorer()])
        results = await Reranker(fallback, top_n=1).arerank(QUERY, DOCS)
    assert results[0].index == 2
    assert fallback.last_scorer_name == "KeywordScorer"


def test_every_failure_is_listed_when_all_fail():
    with LoopbackServer(lambda request: Reply(503, {"message": "down"})) as first, \
            LoopbackServer(lambda request: Reply(401, {"message": "bad key"})) as second:
        fallback = FallbackScorer([cohere(first), cohere(second)])
        with pytest.raises(ProviderUnavailableError, match=r"every scorer failed: \[0\].*503.*\[1\].*401"):
            fallback.score(QUERY, DOCS)
    assert fallback.last_scorer_name is None
    assert len(fallback.last_failures) == 2


def test_non_provider_errors_are_not_swallowed():
    class Broken(KeywordScorer):
        def score(self, query, texts):
            raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        FallbackScorer([Broken(), KeywordScorer()]).score(QUERY, DOCS)


def test_bad_configuration_fails_early():
    with pytest.raises(ValueError, match="at least one"):
        FallbackScorer([])
    with pytest.raises(TypeError, match=r"scorers\[1\]"):
        FallbackScorer([KeywordScorer(), "cohere"])


def test_deadline_bounds_the_whole_chain_including_fallbacks() -> None:
    import time

    class Slow(KeywordScorer):
        def score(self, query, texts):
            time.sleep(3.0)
            return super().score(query, texts)

    chain = FallbackScorer([Slow(), KeywordScorer()], deadline=0.2)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailableError, match="0.2s deadline"):
        Reranker(chain).rerank("reset", ["reset password", "cat"])
    assert time.monotonic() - started < 2.0  # well before the slow scorer's 3 s
    assert Reranker(FallbackScorer([KeywordScorer()], deadline=5)).rerank("reset", ["cat", "reset"])[0].index == 1
