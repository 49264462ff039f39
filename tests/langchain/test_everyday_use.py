"""What LangChain users reach for: langchain-cohere's ``rerank``, an LCEL step, structured documents, traces."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from langchain_rerankers import Rerank
from rerank_kit import ProviderUnavailableError
from tests.conftest import KeywordScorer
from tests.core.test_reliability import DownScorer

DOCS = [
    Document(page_content="the cat sat", metadata={"title": "pets", "year": 2020}),
    Document(page_content="reset your password here", metadata={"title": "account help", "year": 2024}),
    Document(page_content="password rules", metadata={"title": "security", "year": 2023}),
]


def test_rerank_returns_index_and_relevance_score_like_langchain_cohere() -> None:
    reranker = Rerank(scorer=KeywordScorer(), top_n=5)
    inputs = ["the cat sat", DOCS[1], {"text": "password rules", "title": "x"}]
    assert reranker.rerank(inputs, "reset password") == [
        {"index": 1, "relevance_score": 2.0}, {"index": 2, "relevance_score": 1.0}, {"index": 0, "relevance_score": 0.0},
    ]
    assert reranker.rerank(inputs, "reset password", top_n=1) == [{"index": 1, "relevance_score": 2.0}]
    with pytest.raises(TypeError, match=r"documents\[0\]"):
        reranker.rerank([42], "q")  # type: ignore[list-item]


async def test_the_reranker_is_an_lcel_step_without_a_retriever() -> None:
    step = Rerank(scorer=KeywordScorer(), top_n=1).as_runnable()
    chain = RunnableLambda(lambda query: {"query": query, "documents": DOCS}) | step
    assert [d.page_content for d in chain.invoke("reset password")] == ["reset your password here"]
    assert [d.page_content for d in await chain.ainvoke("reset password")] == ["reset your password here"]
    with pytest.raises(TypeError, match="query"):
        step.invoke({"documents": DOCS})


def test_rank_fields_score_chosen_metadata_as_yaml_lines() -> None:
    scorer = KeywordScorer()
    Rerank(scorer=scorer, rank_fields=["title", "year"]).compress_documents(DOCS, "account help")
    assert scorer.calls[0][1][1] == "title: account help\nyear: 2024\npage_content: reset your password here"


def test_a_document_template_fills_fields_and_names_a_missing_one() -> None:
    scorer = KeywordScorer()
    out = Rerank(scorer=scorer, document_template="{title}: {page_content}").compress_documents(DOCS, "pets")
    assert scorer.calls[0][1][0] == "pets: the cat sat" and out[0].page_content == "the cat sat"
    with pytest.raises(ValueError, match="'author'"):
        Rerank(scorer=KeywordScorer(), document_template="{author}").compress_documents(DOCS, "q")
    with pytest.raises(ValueError, match="either rank_fields or document_template"):
        Rerank(scorer=KeywordScorer(), rank_fields=["title"], document_template="{title}")


class Runs(BaseCallbackHandler):
    """Records chain runs: name at start, outputs at end, the error on failure."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[dict[str, Any]] = []
        self.failed: list[BaseException] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.started.append(kwargs.get("name"))

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.ended.append(outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.failed.append(error)


async def test_each_rerank_is_a_child_run_in_callbacks_with_its_facts() -> None:
    runs = Runs()
    reranker = Rerank(scorer=KeywordScorer(), top_n=2)
    reranker.compress_documents(DOCS, "reset password", callbacks=[runs])
    await reranker.acompress_documents(DOCS, "reset password", callbacks=[runs])
    assert runs.started == ["Rerank", "Rerank"]
    facts = runs.ended[0]
    assert (facts["backend"], facts["documents_in"], facts["documents_out"]) == ("KeywordScorer", 3, 2)
    assert facts["latency_ms"] >= 0 and facts["cache_hits"] == 0 and facts["failed"] is False
    with pytest.raises(ProviderUnavailableError):
        Rerank(scorer=DownScorer()).compress_documents(DOCS, "q", callbacks=[runs])
    assert isinstance(runs.failed[0], ProviderUnavailableError)


def test_cohere_api_key_is_accepted_as_langchain_cohere_spells_it() -> None:
    from langchain_rerankers import CohereRerank

    reranker = CohereRerank(cohere_api_key="spelled-like-langchain-cohere")
    assert reranker.api_key.get_secret_value() == "spelled-like-langchain-cohere"
    assert "spelled-like" not in repr(reranker) + reranker.model_dump_json()
