"""LangChain compressors: cross-encoder scores, input errors, and real LangChain pipelines."""

from __future__ import annotations

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.tools import create_retriever_tool
from langchain_core.vectorstores import InMemoryVectorStore
from sentence_transformers import CrossEncoder

from langchain_rerankers import CrossEncoderRerank, Rerank
from tests.conftest import KeywordScorer

CORPUS = [
    ("reset password account login", {"source": "kb/1"}),
    ("python error traceback keyerror", {"source": "kb/2"}),
    ("forgot password email reset", {"source": "kb/3"}),
    ("the cat and the dog", {"source": "kb/4"}),
]


@pytest.fixture
def documents() -> list[Document]:
    return [Document(page_content=text, metadata=meta, id=f"doc-{i}") for i, (text, meta) in enumerate(CORPUS)]


@pytest.fixture
def retriever():
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(page_content=t, metadata=m, id=f"doc-{i}") for i, (t, m) in enumerate(CORPUS)])
    return store.as_retriever(search_kwargs={"k": 4})


def test_cross_encoder_scores_match_predict(tiny_cross_encoder, documents):
    compressor = CrossEncoderRerank(model=tiny_cross_encoder, local_files_only=True, top_n=None)
    out = compressor.compress_documents(documents, "reset my password")
    expected = CrossEncoder(tiny_cross_encoder).predict([("reset my password", d.page_content) for d in documents])
    for document in out:
        assert document.metadata["relevance_score"] == pytest.approx(float(expected[document.metadata["original_index"]]), abs=1e-5)
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)


def test_empty_documents_give_empty_result_and_load_nothing(tmp_path):
    compressor = CrossEncoderRerank(model=str(tmp_path / "never-loaded"), local_files_only=True)
    assert compressor.compress_documents([], "reset password") == []


def test_bad_input_is_rejected_with_a_clear_error(documents):
    with pytest.raises(ValueError, match="top_n must be >= 1"):
        Rerank(scorer=KeywordScorer(), top_n=0)
    with pytest.raises(ValueError, match="query is empty"):
        Rerank(scorer=KeywordScorer()).compress_documents(documents, "  ")
    with pytest.raises(TypeError, match=r"documents\[0\] must be a langchain Document"):
        Rerank(scorer=KeywordScorer()).compress_documents(["plain string"], "reset")


def test_inside_contextual_compression_retriever(retriever):
    pipeline = ContextualCompressionRetriever(
        base_compressor=Rerank(scorer=KeywordScorer(), top_n=2), base_retriever=retriever
    )
    out = pipeline.invoke("reset password email")
    assert [d.id for d in out] == ["doc-2", "doc-0"]
    assert out[0].metadata["source"] == "kb/3"


async def test_inside_contextual_compression_retriever_async(retriever, tiny_cross_encoder):
    pipeline = ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(model=tiny_cross_encoder, local_files_only=True, top_n=2),
        base_retriever=retriever,
    )
    out = await pipeline.ainvoke("reset password")
    assert len(out) == 2
    assert out[0].metadata["relevance_score"] >= out[1].metadata["relevance_score"]


def test_usable_as_an_agent_retriever_tool(retriever):
    pipeline = ContextualCompressionRetriever(
        base_compressor=Rerank(scorer=KeywordScorer(), top_n=1), base_retriever=retriever
    )
    tool = create_retriever_tool(pipeline, "search_kb", "Searches the knowledge base.")
    assert tool.invoke({"query": "python keyerror"}) == "python error traceback keyerror"
