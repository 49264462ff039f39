"""Reciprocal rank fusion against hand-worked examples, and candidate fusion with dedupe."""

from __future__ import annotations

import pytest

from rerank_kit.pipeline.fusion import reciprocal_rank_fusion
from rerank_kit.pipeline.two_stage import Candidate, fuse_candidates


def test_rrf_matches_the_hand_worked_example_with_k_60() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]])

    assert [key for key, _ in fused] == ["a", "c", "b", "d"]
    expected = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    assert dict(fused) == pytest.approx(expected)


def test_small_k_rewards_agreement_between_rankings() -> None:
    fused = reciprocal_rank_fusion([["x", "y"], ["y", "z"]], k=1)

    assert [key for key, _ in fused] == ["y", "x", "z"]
    assert [score for _, score in fused] == pytest.approx([1 / 3 + 1 / 2, 1 / 2, 1 / 3])


def test_weights_scale_each_ranking() -> None:
    fused = reciprocal_rank_fusion([["p"], ["q"]], k=1, weights=[1.0, 3.0])

    assert fused == [("q", 1.5), ("p", 0.5)]


def test_equal_scores_keep_first_seen_order() -> None:
    assert [key for key, _ in reciprocal_rank_fusion([["p"], ["q"]])] == ["p", "q"]


def test_an_id_repeated_in_one_ranking_counts_once_at_its_best_rank() -> None:
    assert reciprocal_rank_fusion([["a", "b", "a"]], k=1) == [("a", 1 / 2), ("b", 1 / 3)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"k": 0}, "k must be"), ({"weights": [1.0]}, "1 weights for 2 rankings"), ({"weights": [1.0, -1.0]}, ">= 0")],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion([["a"], ["b"]], **kwargs)


def test_fused_candidates_are_deduplicated_by_text_keeping_the_first_object() -> None:
    bm25 = [Candidate(item="bm25-a", text="A"), Candidate(item="bm25-b", text="B")]
    vector = [Candidate(item="vec-b", text="B"), Candidate(item="vec-c", text="C")]

    fused = fuse_candidates([bm25, vector], rrf_k=1)

    assert [c.item for c, _ in fused] == ["bm25-b", "bm25-a", "vec-c"]
    assert [score for _, score in fused] == pytest.approx([1 / 3 + 1 / 2, 1 / 2, 1 / 3])


def test_fused_candidates_can_be_limited() -> None:
    lists = [[Candidate(item=i, text=str(i)) for i in range(5)]]

    assert [c.item for c, _ in fuse_candidates(lists, limit=2)] == [0, 1]
