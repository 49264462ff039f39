"""TwoStageRetriever, FusionRetriever and EmbeddingRerank inside real LangChain pipelines."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.tools import create_retriever_tool
from langchain_core.vectorstores import InMemoryVectorStore

from langchain_rerankers import EmbeddingRerank, FusionRetriever, Rerank, TwoStageRetriever
from tests.conftest import KeywordScorer

DOCS = [
    Document(page_content="router lights blink after a factory reset", metadata={"source": "router"}),
    Document(page_content="reset your password from the login page", metadata={"source": "password"}),
    Document(page_content="password rules need twelve characters", metadata={"source": "rules"}),
    Document(page_content="coffee and tea in the kitchen", metadata={"source": "kitchen"}),
]
QUERY = "reset your password"


class ListRetriever(BaseRetriever):
    """A first stage that returns the first ``k`` of a fixed list and remembers the ``k`` it was asked for."""

    documents: list[Document]
    k: int = 2
    seen_k: list[int] = []

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        self.seen_k.append(self.k)
        return self.documents[: self.k]


def test_returns_the_reranked_top_k_with_merged_metadata(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(retriever=ListRetriever(documents=DOCS), reranker=keyword_scorer, k=2)

    results = retriever.invoke(QUERY)

    assert [d.metadata["source"] for d in results] == ["password", "router"]
    assert results[0].metadata == {
        "source": "password",
        "relevance_score": 3.0,
        "original_index": 1,
        "rerank_model": "KeywordScorer",
    }
    assert DOCS[1].metadata == {"source": "password"}  # the caller's documents are not mutated


def test_the_first_stage_is_asked_for_the_candidate_count(keyword_scorer: KeywordScorer) -> None:
    first_stage = ListRetriever(documents=DOCS, k=2, seen_k=[])

    default = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=3)
    default.invoke(QUERY)
    explicit = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=3, candidates=50)
    explicit.invoke(QUERY)

    assert first_stage.seen_k == [20, 50]  # max(4 * 3, 20), then as given
    assert first_stage.k == 2
    assert default.candidate_count == 20


def test_a_compressor_keeps_its_threshold_and_k_replaces_its_top_n(keyword_scorer: KeywordScorer) -> None:
    compressor = Rerank(scorer=keyword_scorer, top_n=1, score_threshold=1.0)
    retriever = TwoStageRetriever(retriever=ListRetriever(documents=DOCS), reranker=compressor, k=3)

    assert [d.metadata["source"] for d in retriever.invoke(QUERY)] == ["password", "router", "rules"]


def test_vector_store_retrievers_get_the_count_through_search_kwargs(keyword_scorer: KeywordScorer) -> None:
    store = InMemoryVectorStore.from_documents(DOCS, DeterministicFakeEmbedding(size=16))
    retriever = TwoStageRetriever(retriever=store.as_retriever(), reranker=keyword_scorer, k=1, candidates=4)

    (best,) = retriever.invoke(QUERY)

    assert best.metadata["source"] == "password"
    assert best.id is not None


def test_works_inside_an_lcel_chain(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(retriever=ListRetriever(documents=DOCS), reranker=keyword_scorer, k=1)
    chain = RunnableParallel(
        context=retriever | RunnableLambda(lambda docs: docs[0].page_content), question=RunnablePassthrough()
    )

    assert chain.invoke(QUERY) == {"context": DOCS[1].page_content, "question": QUERY}


def test_works_as_an_agent_tool(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(retriever=ListRetriever(documents=DOCS), reranker=keyword_scorer, k=2)
    tool = create_retriever_tool(retriever, "help_center", "Search the help center.")

    answer = tool.invoke({"query": QUERY})

    assert answer.index(DOCS[1].page_content) < answer.index(DOCS[0].page_content)


async def test_async_matches_sync(keyword_scorer: KeywordScorer) -> None:
    retriever = TwoStageRetriever(retriever=ListRetriever(documents=DOCS), reranker=keyword_scorer, k=2)

    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)


def test_fusion_merges_duplicates_and_orders_by_rrf() -> None:
    bm25 = ListRetriever(documents=[DOCS[0], DOCS[1]], k=2)
    vector = ListRetriever(documents=[DOCS[1], DOCS[2]], k=2)
    fusion = FusionRetriever(retrievers=[bm25, vector], rrf_k=1)

    fused = fusion.invoke(QUERY)

    assert [d.metadata["source"] for d in fused] == ["password", "router", "rules"]
    assert [d.metadata["fusion_score"] for d in fused] == [1 / 3 + 1 / 2, 1 / 2, 1 / 3]


async def test_two_stage_over_fusion_sets_each_retrievers_count(keyword_scorer: KeywordScorer) -> None:
    bm25 = ListRetriever(documents=DOCS, k=1, seen_k=[])
    vector = ListRetriever(documents=list(reversed(DOCS)), k=1, seen_k=[])
    retriever = TwoStageRetriever(
        retriever=FusionRetriever(retrievers=[bm25, vector]), reranker=keyword_scorer, k=2, candidates=4
    )

    results = await retriever.ainvoke(QUERY)

    assert bm25.seen_k == [4] and vector.seen_k == [4]
    assert [d.metadata["source"] for d in results] == ["password", "router"]
    assert "fusion_score" in results[0].metadata


def test_mmr_skips_a_near_duplicate(keyword_scorer: KeywordScorer) -> None:
    twin = Document(page_content="reset your password from the login screen", metadata={"source": "twin"})
    first_stage = ListRetriever(documents=[DOCS[1], twin, DOCS[0]], k=3)

    plain = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=2)
    diverse = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=2, mmr_lambda=0.3)

    assert [d.metadata["source"] for d in plain.invoke(QUERY)] == ["password", "twin"]
    assert [d.metadata["source"] for d in diverse.invoke(QUERY)] == ["password", "router"]


def test_embedding_rerank_wraps_langchain_embeddings() -> None:
    embeddings = DeterministicFakeEmbedding(size=8)
    compressor = EmbeddingRerank(embeddings=embeddings, top_n=4)

    results = compressor.compress_documents(DOCS, QUERY)

    assert compressor.reranker.scorer.name == "DeterministicFakeEmbedding"
    assert {d.metadata["source"] for d in results} == {d.metadata["source"] for d in DOCS}
    assert [d.metadata["relevance_score"] for d in results] == sorted(
        (d.metadata["relevance_score"] for d in results), reverse=True
    )


def test_passage_size_scores_long_documents_by_their_best_passage(keyword_scorer: KeywordScorer) -> None:
    scattered = Document(page_content="reset " + "filler " * 40 + "password", metadata={"source": "scattered"})
    together = Document(page_content="filler " * 40 + "reset password", metadata={"source": "together"})
    first_stage = ListRetriever(documents=[scattered, together], k=2)

    whole = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=2)
    max_p = TwoStageRetriever(retriever=first_stage, reranker=keyword_scorer, k=2, passage_size=10)

    assert [d.metadata["relevance_score"] for d in whole.invoke("reset password")] == [2.0, 2.0]
    assert [d.metadata["source"] for d in max_p.invoke("reset password")] == ["together", "scattered"]
    assert [d.metadata["relevance_score"] for d in max_p.invoke("reset password")] == [2.0, 1.0]
