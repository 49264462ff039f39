"""Max-passage scoring: split long texts, score every passage in one call, keep each text's best passage."""

from __future__ import annotations

import pytest

from rerank_kit import Reranker, ScorerError
from rerank_kit.scorers.wrappers.max_passage import MaxPassageScorer, split_passages
from rerank_kit.scorer import Scorer
from rerank_kit.scorers.local.cross_encoder import CrossEncoderScorer
from tests.conftest import KeywordScorer

WORDS = "a b c d e f g h i j".split()


def test_words_are_cut_into_overlapping_windows() -> None:
    assert split_passages(" ".join(WORDS), size=4, overlap=1) == ["a b c d", "d e f g", "g h i j"]


def test_the_last_window_ends_at_the_end_of_the_text() -> None:
    assert split_passages(" ".join(WORDS), size=4, overlap=0) == ["a b c d", "e f g h", "g h i j"]


def test_a_short_text_is_one_passage_unchanged() -> None:
    assert split_passages("  keep   spacing ", size=4, overlap=1) == ["  keep   spacing "]


def test_character_windows() -> None:
    assert split_passages("abcdefg", size=4, overlap=2, unit="chars") == ["abcd", "cdef", "defg"]


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (4, 4), (4, -1)])
def test_bad_window_settings_are_rejected(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        MaxPassageScorer(KeywordScorer(), passage_size=size, overlap=overlap)


def test_each_text_gets_its_best_passage_score_from_one_inner_call(keyword_scorer: KeywordScorer) -> None:
    long_text = "filler " * 30 + "reset password link"
    scorer = MaxPassageScorer(keyword_scorer, passage_size=10, overlap=2)

    scores = scorer.score("reset password", [long_text, "nothing here"])

    assert scores == [2.0, 0.0]
    assert len(keyword_scorer.calls) == 1
    assert keyword_scorer.calls[0][1] == [*dict.fromkeys(scorer.passages(long_text)), "nothing here"]


def test_repeated_passages_are_scored_once(keyword_scorer: KeywordScorer) -> None:
    scorer = MaxPassageScorer(keyword_scorer, passage_size=2, overlap=0)

    scorer.score("x", ["x y x y x y"])

    assert keyword_scorer.calls == [("x", ["x y"])]


async def test_async_path_gives_the_same_scores(keyword_scorer: KeywordScorer) -> None:
    scorer = MaxPassageScorer(keyword_scorer, passage_size=3, overlap=1)
    texts = ["a b c reset d e f password", "g h"]

    assert await scorer.ascore("reset password", texts) == scorer.score("reset password", texts)


def test_wrong_inner_count_is_an_error() -> None:
    class Short(Scorer):
        def score(self, query: str, texts: list[str]) -> list[float]:
            return [1.0]

    with pytest.raises(ScorerError, match="1 scores for 2 passages"):
        MaxPassageScorer(Short(), passage_size=2, overlap=0).score("q", ["a b c d"])


def test_cache_key_and_usage_follow_the_inner_scorer(tiny_cross_encoder: str) -> None:
    inner = CrossEncoderScorer(tiny_cross_encoder)
    scorer = MaxPassageScorer(inner, passage_size=50, overlap=10)

    assert scorer.usage is inner.usage
    assert scorer.cache_by_default is True
    assert scorer.cache_key is not None and inner.cache_key in scorer.cache_key
    assert MaxPassageScorer(KeywordScorer()).cache_key is None


def test_max_p_finds_a_passage_past_the_models_max_length(tiny_cross_encoder: str) -> None:
    """The tiny model reads 64 tokens: the end of a long document is invisible to it unless split."""
    cross_encoder = CrossEncoderScorer(tiny_cross_encoder, max_length=64)
    query = "reset password"
    sentence_a = "how do i reset my password when i forgot the email of my account and the login"
    sentence_b = "the capital city of france is paris and the river there is not a coffee or tea bank"
    low, high = sorted([sentence_a, sentence_b], key=lambda s: cross_encoder.score(query, [s])[0])
    head = " ".join([low] * 5)  # about 85 words: far past 64 tokens
    document = f"{head} {high}"

    truncated = cross_encoder.score(query, [document])[0]
    max_p = MaxPassageScorer(cross_encoder, passage_size=len(low.split()), overlap=0).score(query, [document])[0]

    assert truncated == pytest.approx(cross_encoder.score(query, [head])[0])  # the tail changed nothing
    assert max_p == pytest.approx(cross_encoder.score(query, [high])[0], abs=1e-4)  # batch padding noise
    assert max_p > truncated


def test_reranker_on_max_p_ranks_by_best_passage(keyword_scorer: KeywordScorer) -> None:
    deep = "intro " * 50 + "reset password"
    shallow = "reset " + "filler " * 50
    reranker = Reranker(MaxPassageScorer(keyword_scorer, passage_size=20, overlap=5), top_n=None)

    assert [r.index for r in reranker.rerank("reset password", [shallow, deep])] == [1, 0]
