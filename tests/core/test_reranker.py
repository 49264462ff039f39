"""The reranking policy every adapter and backend shares."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from rerank_kit import LRUScoreCache, Reranker, RerankResult, Scorer, ScorerError, SQLiteScoreCache
from tests.conftest import KeywordScorer


class FixedScorer(Scorer):
    """Returns preset scores by text."""

    def __init__(self, scores: dict[str, float]) -> None:
        super().__init__()
        self.scores = scores
        self.calls = 0

    @property
    def cache_key(self) -> str:
        return "fixed"

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        self.calls += 1
        return [self.scores[text] for text in texts]


def test_results_are_sorted_by_score_descending_and_point_into_the_input():
    reranker = Reranker(KeywordScorer(), top_n=None)
    texts = ["nothing here", "reset password", "reset"]
    assert reranker.rerank("reset password", texts) == [
        RerankResult(index=1, score=2.0),
        RerankResult(index=2, score=1.0),
        RerankResult(index=0, score=0.0),
    ]


def test_ties_keep_input_order():
    reranker = Reranker(FixedScorer({"a": 1.0, "b": 2.0, "c": 1.0, "d": 2.0}), top_n=None)
    assert [r.index for r in reranker.rerank("q", ["a", "b", "c", "d"])] == [1, 3, 0, 2]


def test_top_n_cuts_after_sorting_and_a_larger_top_n_returns_everything():
    texts = ["reset", "reset password", "x"]
    assert [r.index for r in Reranker(KeywordScorer(), top_n=1).rerank("reset password", texts)] == [1]
    assert len(Reranker(KeywordScorer(), top_n=10).rerank("reset password", texts)) == 3


def test_default_top_n_is_five():
    texts = [f"reset {i}" for i in range(8)]
    assert len(Reranker(KeywordScorer()).rerank("reset", texts)) == 5


def test_threshold_applies_before_top_n():
    reranker = Reranker(KeywordScorer(), top_n=3, score_threshold=1.0)
    results = reranker.rerank("reset password", ["reset password", "x", "reset", "y"])
    assert [r.index for r in results] == [0, 2]


def test_duplicate_texts_are_scored_once_and_share_the_score():
    scorer = KeywordScorer()
    results = Reranker(scorer, top_n=None, cache=False).rerank("reset", ["reset", "x", "reset"])
    assert scorer.calls == [("reset", ["reset", "x"])]
    assert [(r.index, r.score) for r in results] == [(0, 1.0), (2, 1.0), (1, 0.0)]


def test_empty_candidates_give_empty_result_without_scoring():
    scorer = KeywordScorer()
    assert Reranker(scorer).rerank("reset", []) == []
    assert scorer.calls == []


@pytest.mark.parametrize("query", ["", "   ", "\n\t"])
def test_blank_query_is_rejected(query):
    with pytest.raises(ValueError, match="query is empty"):
        Reranker(KeywordScorer()).rerank(query, ["a"])


def test_non_string_query_is_rejected():
    with pytest.raises(TypeError, match="query must be a str"):
        Reranker(KeywordScorer()).rerank(None, ["a"])


def test_non_text_candidate_is_rejected_with_its_position():
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got int"):
        Reranker(KeywordScorer()).rerank("q", ["a", 3])


def test_a_bare_string_is_not_taken_for_a_list_of_texts():
    with pytest.raises(TypeError, match="sequence of str"):
        Reranker(KeywordScorer()).rerank("q", "abc")


@pytest.mark.parametrize("top_n", [0, -1])
def test_non_positive_top_n_fails_at_construction(top_n):
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        Reranker(KeywordScorer(), top_n=top_n)


def test_invalid_settings_fail_at_construction():
    with pytest.raises(TypeError, match="rerank_kit.Scorer"):
        Reranker(object())
    with pytest.raises(ValueError, match="normalize"):
        Reranker(KeywordScorer(), normalize="softmax")
    with pytest.raises(ValueError, match="score_threshold must be finite"):
        Reranker(KeywordScorer(), score_threshold=math.nan)


def test_sigmoid_normalization_maps_logits_to_probabilities():
    reranker = Reranker(FixedScorer({"a": 0.0, "b": 2.0}), top_n=None, normalize="sigmoid")
    results = reranker.rerank("q", ["a", "b"])
    assert results[0].score == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert results[1].score == pytest.approx(0.5)


def test_minmax_normalization_spans_zero_to_one_and_threshold_uses_the_normalized_scale():
    reranker = Reranker(FixedScorer({"a": -3.0, "b": 5.0, "c": 1.0}), top_n=None, normalize="minmax",
                        score_threshold=0.5)
    assert [(r.index, r.score) for r in reranker.rerank("q", ["a", "b", "c"])] == [(1, 1.0), (2, 0.5)]


class BrokenScorer(Scorer):
    def __init__(self, answer: list[float]) -> None:
        super().__init__()
        self.answer = answer

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        return self.answer


def test_scorer_returning_the_wrong_count_is_an_error_not_a_shorter_list():
    with pytest.raises(ScorerError, match="returned 1 scores for 2 texts"):
        Reranker(BrokenScorer([1.0])).rerank("q", ["a", "b"])


def test_scorer_returning_nan_is_an_error():
    with pytest.raises(ScorerError, match="non-finite"):
        Reranker(BrokenScorer([1.0, math.nan])).rerank("q", ["a", "b"])


def test_scores_are_python_floats():
    import numpy as np

    results = Reranker(BrokenScorer([np.float32(0.5)])).rerank("q", ["a"])
    assert type(results[0].score) is float


def test_rerank_many_ranks_each_query_on_its_own():
    results = Reranker(KeywordScorer(), top_n=None).rerank_many(
        [("reset", ["x", "reset"]), ("python error", ["python error", "python", "y"])]
    )
    assert [[r.index for r in rs] for rs in results] == [[1, 0], [0, 1, 2]]


async def test_arerank_matches_rerank():
    reranker = Reranker(KeywordScorer(), top_n=None)
    texts = ["nothing", "reset password", "reset"]
    assert await reranker.arerank("reset password", texts) == reranker.rerank("reset password", texts)


def test_cache_serves_repeated_calls_and_counts_hits():
    scorer = FixedScorer({"a": 1.0, "b": 2.0})
    cache = LRUScoreCache(max_entries=10)
    reranker = Reranker(scorer, top_n=None, cache=cache)
    first = reranker.rerank("q", ["a", "b"])
    second = reranker.rerank("q", ["b", "a"])
    assert scorer.calls == 1
    assert [r.score for r in second] == [r.score for r in first]
    assert (cache.hits, cache.misses) == (2, 2)


class CacheableKeywordScorer(KeywordScorer):
    @property
    def cache_key(self) -> str:
        return "keyword"


def test_cache_scores_only_the_texts_it_has_not_seen():
    scorer = CacheableKeywordScorer()
    reranker = Reranker(scorer, top_n=None, cache=True)
    reranker.rerank("reset", ["reset", "x"])
    reranker.rerank("reset", ["x", "reset it", "reset"])
    assert scorer.calls[1] == ("reset", ["reset it"])


def test_lru_cache_evicts_the_least_recently_used():
    cache = LRUScoreCache(max_entries=2)
    cache.put_many([(("s", "q", "a"), 1.0), (("s", "q", "b"), 2.0)])
    cache.get_many([("s", "q", "a")])
    cache.put_many([(("s", "q", "c"), 3.0)])
    assert cache.get_many([("s", "q", "a"), ("s", "q", "b"), ("s", "q", "c")]) == [1.0, None, 3.0]


def test_sqlite_cache_persists_across_instances(tmp_path):
    path = tmp_path / "scores.sqlite"
    first = FixedScorer({"a": 1.0, "b": 2.0})
    cache = SQLiteScoreCache(path)
    Reranker(first, cache=cache).rerank("q", ["a", "b"])
    cache.close()
    second = FixedScorer({"a": 1.0, "b": 2.0})
    reopened = SQLiteScoreCache(path)
    results = Reranker(second, top_n=None, cache=reopened).rerank("q", ["a", "b"])
    assert second.calls == 0 and reopened.hits == 2
    assert [r.index for r in results] == [1, 0]


def test_scorers_without_cache_key_are_never_cached():
    scorer = KeywordScorer()
    reranker = Reranker(scorer, cache=True)
    reranker.rerank("reset", ["reset"])
    reranker.rerank("reset", ["reset"])
    assert len(scorer.calls) == 2
