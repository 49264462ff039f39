"""MMR against hand-worked examples: relevance against redundancy, with embeddings or word overlap."""

from __future__ import annotations

import pytest

from rerank_kit import RerankResult
from rerank_kit.pipeline.mmr import cosine_similarity_matrix, mmr_rerank, mmr_select, text_overlap_matrix

RELEVANCE = [1.0, 0.7, 0.0]
SIMILARITY = [[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]]


def test_balanced_lambda_skips_the_near_duplicate() -> None:
    # step 2: doc1 = 0.5*0.7 - 0.5*0.9 = -0.10, doc2 = 0.5*0.0 - 0.5*0.1 = -0.05 -> doc2
    assert mmr_select(RELEVANCE, SIMILARITY, mmr_lambda=0.5) == [0, 2, 1]


def test_relevance_heavy_lambda_keeps_the_relevance_order() -> None:
    # step 2: doc1 = 0.8*0.7 - 0.2*0.9 = 0.38, doc2 = 0.0 - 0.2*0.1 = -0.02 -> doc1
    assert mmr_select(RELEVANCE, SIMILARITY, mmr_lambda=0.8) == [0, 1, 2]
    assert mmr_select(RELEVANCE, SIMILARITY, mmr_lambda=1.0) == [0, 1, 2]


def test_relevance_scale_does_not_change_the_choice() -> None:
    logits = [23.0, 17.0, 3.0]  # 20 * RELEVANCE + 3: the same after rescaling to [0, 1]

    assert mmr_select(logits, SIMILARITY, mmr_lambda=0.5) == [0, 2, 1]


def test_k_limits_the_selection() -> None:
    assert mmr_select(RELEVANCE, SIMILARITY, mmr_lambda=0.5, k=2) == [0, 2]


@pytest.mark.parametrize("bad", [-0.1, 1.5, True])
def test_lambda_outside_0_1_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="mmr_lambda"):
        mmr_select(RELEVANCE, SIMILARITY, mmr_lambda=bad)


def test_text_overlap_is_word_jaccard() -> None:
    matrix = text_overlap_matrix(["Reset the password", "reset THE router", "coffee"])

    assert matrix[0][1] == pytest.approx(2 / 4)
    assert matrix[0][2] == 0.0
    assert matrix[1][1] == 1.0


def test_cosine_matrix() -> None:
    matrix = cosine_similarity_matrix([[1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])

    assert matrix[0][1] == pytest.approx(0.6)
    assert matrix[1][1] == pytest.approx(1.0)
    assert matrix[2][0] == 0.0


def test_mmr_rerank_without_embeddings_diversifies_by_words() -> None:
    texts = ["reset your password from the login page", "reset your password from the login screen", "call support"]
    results = [RerankResult(0, 0.9), RerankResult(1, 0.6), RerankResult(2, 0.1)]

    reordered = mmr_rerank(results, texts, mmr_lambda=0.5, k=2)

    # relevance rescaled: 1, 0.625, 0; overlap(0, 1) = 6/8 -> doc1 = 0.3125 - 0.375 < doc2 = 0
    assert reordered == [RerankResult(0, 0.9), RerankResult(2, 0.1)]


def test_mmr_rerank_uses_embeddings_when_given() -> None:
    texts = ["a", "b", "c"]  # word overlap would see no redundancy at all
    embeddings = [[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]
    results = [RerankResult(0, 0.9), RerankResult(1, 0.85), RerankResult(2, 0.1)]

    assert [r.index for r in mmr_rerank(results, texts, mmr_lambda=0.5, embeddings=embeddings)] == [0, 2, 1]
    assert [r.index for r in mmr_rerank(results, texts, mmr_lambda=0.5)] == [0, 1, 2]
