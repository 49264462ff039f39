"""Failure behaviour of the core: keep-order fallback, immutable rerankers, pickling, closing, no socket leaks."""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Sequence

import pytest

from rerank_kit import ProviderUnavailableError, Reranker, RerankResult, Scorer
from rerank_kit.scorers.remote.cohere import CohereScorer
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from rerank_kit.scorers.wrappers.fallback import FallbackScorer
from tests.api_servers import SECRET_KEY, cohere_handler, tei_handler
from tests.conftest import KeywordScorer
from tests.loopback import LoopbackServer, Reply


class DownScorer(Scorer):
    """A provider that is always down."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        raise ProviderUnavailableError("Down", "temporarily unavailable")


def test_keep_order_returns_the_input_order_with_the_reason() -> None:
    results = Reranker(DownScorer(), top_n=2, on_error="keep_order", score_threshold=100.0).rerank("q", ["a", "b", "c"])
    assert [r.index for r in results] == [0, 1]
    assert [r.score for r in results] == [1.0, pytest.approx(2 / 3)]
    assert all(r.error is not None and "ProviderUnavailableError" in r.error for r in results)


async def test_keep_order_async_and_raise_by_default() -> None:
    assert [r.index for r in await Reranker(DownScorer(), on_error="keep_order").arerank("q", ["a", "b"])] == [0, 1]
    with pytest.raises(ProviderUnavailableError):
        await Reranker(DownScorer()).arerank("q", ["a", "b"])
    with pytest.raises(ValueError, match="on_error"):
        Reranker(DownScorer(), on_error="ignore")  # type: ignore[arg-type]


def test_a_bug_is_never_hidden_by_keep_order() -> None:
    class Broken(Scorer):
        def score(self, query: str, texts: Sequence[str]) -> list[float]:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        Reranker(Broken(), on_error="keep_order").rerank("q", ["a"])


def test_reranker_is_immutable_and_replace_returns_a_changed_copy() -> None:
    reranker = Reranker(KeywordScorer(), top_n=2)
    with pytest.raises(AttributeError, match="replace"):
        reranker.top_n = 3  # type: ignore[misc]
    changed = reranker.replace(top_n=None, normalize="minmax")
    assert (changed.top_n, changed.normalize, reranker.top_n) == (None, "minmax", 2)
    assert changed.scorer is reranker.scorer and changed.cache is reranker.cache
    with pytest.raises(TypeError, match="no setting"):
        reranker.replace(topn=3)


def test_each_result_names_the_scorer_that_answered_even_under_concurrency() -> None:
    chain = FallbackScorer([DownScorer(), KeywordScorer()])
    reranker = Reranker(chain, top_n=None)

    async def many() -> list[list[RerankResult]]:
        return list(await asyncio.gather(*(reranker.arerank("reset", ["reset", "x"]) for _ in range(20))))

    for results in asyncio.run(many()):
        assert {r.backend for r in results} == {"KeywordScorer"}


def test_scorers_pickle_as_their_options_and_keep_working() -> None:
    with LoopbackServer(cohere_handler()) as server:
        scorer = CohereScorer(api_key=SECRET_KEY, base_url=server.url, max_retries=0)
        scorer.score("reset", ["reset password", "cat"])
        clone = pickle.loads(pickle.dumps(scorer))
        assert clone.options == scorer.options and clone is not scorer
        assert clone.score("reset", ["reset password", "cat"]) == scorer.score("reset", ["reset password", "cat"])
    assert SECRET_KEY not in repr(clone)


@pytest.mark.parametrize(("handler", "build"), [
    (cohere_handler, lambda url: CohereScorer(api_key=SECRET_KEY, base_url=url)),
    (tei_handler, lambda url: HTTPRerankScorer(url)),
], ids=["cohere", "tei"])
def test_repeated_asyncio_run_does_not_leak_sockets(handler, build) -> None:
    with LoopbackServer(handler(), max_requests=1000) as server:
        scorer = build(server.url)
        asyncio.run(scorer.ascore("reset", ["reset password", "cat"]))
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(200):
            asyncio.run(scorer.ascore("reset", ["reset password", "cat"]))
        after = len(os.listdir("/proc/self/fd"))
        scorer.close()
    assert after <= before + 2


def test_close_releases_and_a_closed_scorer_reopens() -> None:
    with LoopbackServer(tei_handler()) as server:
        with HTTPRerankScorer(server.url) as scorer:
            first = scorer.score("reset", ["reset password", "cat"])
        assert scorer.score("reset", ["reset password", "cat"]) == first


def test_a_trickling_answer_is_bounded_by_the_timeout_as_a_whole() -> None:
    def trickle(request):
        return Reply(200, {"ok": True}, delay=5.0)

    with LoopbackServer(trickle) as server:
        scorer = HTTPRerankScorer(server.url, timeout=0.3, max_retries=0)
        with pytest.raises(ProviderUnavailableError, match="timeout"):
            scorer.score("q", ["a"])


def test_a_lone_surrogate_is_sent_as_a_replacement_character_and_cached_as_given() -> None:
    from rerank_kit import LRUScoreCache

    with LoopbackServer(tei_handler()) as server:
        reranker = Reranker(HTTPRerankScorer(server.url), cache=LRUScoreCache(), top_n=None)
        texts = ["reset \ud800 password", "cat"]
        first = reranker.rerank("reset \udfff", texts)
        assert reranker.rerank("reset \udfff", texts) == first
        assert reranker.cache.hits == 2
        assert server.requests[0].json["texts"][0] == "reset \ufffd password"
