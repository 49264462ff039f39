"""LangChain ClaudeRerank against a scripted Messages API, through the real anthropic SDK."""

from __future__ import annotations

import anthropic
import pytest
from langchain_core.documents import Document
from pydantic import SecretStr

from langchain_rerankers import ClaudeRerank
from rerank_kit import ProviderAuthError, ProviderResponseError
from rerank_kit.scorers.llm.claude import ClaudeAnswerWarning
from tests import messages_server as api
from tests.loopback import LoopbackServer, sequence

QUERY = "capital of france"


@pytest.fixture
def documents() -> list[Document]:
    texts = ["cats purr", "paris is the capital of france", "rain in paris", "dogs bark"]
    return [Document(page_content=t, metadata={"source": f"kb/{i}"}, id=f"doc-{i}") for i, t in enumerate(texts)]


def rerank(server: LoopbackServer, **options: object) -> ClaudeRerank:
    return ClaudeRerank(api_key="test-key", base_url=server.url, **options)


def test_documents_come_back_in_the_models_order_with_rank_scores(serve, documents) -> None:
    server = serve(sequence(api.ranking([2, 3, 1, 4])))
    out = rerank(server, top_n=2).compress_documents(documents, QUERY)
    assert [d.id for d in out] == ["doc-1", "doc-2"]
    assert out[0].metadata == {"source": "kb/1", "relevance_score": 1.0, "original_index": 1,
                               "reranker_backend": "claude-haiku-5-5", "rerank_cache_hit": False,
                               "rerank_latency_ms": out[0].metadata["rerank_latency_ms"]}
    assert out[1].metadata["relevance_score"] == 0.75
    assert api.passages_in(server.requests[0]) == [d.page_content for d in documents]


def test_a_broken_permutation_still_returns_every_document_once(serve, documents) -> None:
    server = serve(sequence(api.ranking([4, 4, 9, -3])))
    with pytest.warns(ClaudeAnswerWarning):
        out = rerank(server, top_n=None).compress_documents(documents, QUERY)
    assert [d.id for d in out] == ["doc-3", "doc-0", "doc-1", "doc-2"]


def test_a_hundred_documents_go_in_windows_of_twenty(serve) -> None:
    documents = [Document(page_content=f"passage number {i}") for i in range(100)]
    server = serve(api.ranking_by(api.number_in))
    out = rerank(server, top_n=10).compress_documents(documents, QUERY)
    assert [len(api.passages_in(r)) for r in server.requests] == [20] * 9
    assert [d.metadata["original_index"] for d in out] == list(range(99, 89, -1))


def test_usage_is_readable_after_the_call(serve, documents) -> None:
    server = serve(sequence(api.ranking([1, 2, 3, 4])))
    compressor = rerank(server)
    compressor.compress_documents(documents, QUERY)
    assert compressor.usage.last["cache_read_input_tokens"] == 80
    assert compressor.usage.last["input_tokens"] == 120


def test_the_key_comes_from_the_environment_as_a_secret(serve, documents, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    server = serve(sequence(api.ranking([1, 2, 3, 4])))
    compressor = ClaudeRerank(base_url=server.url)
    assert isinstance(compressor.api_key, SecretStr) and "env-key" not in repr(compressor)
    compressor.compress_documents(documents, QUERY)
    headers = server.requests[0].headers
    assert "env-key" in headers.get("x-api-key", "") + headers.get("authorization", "")


def test_a_ready_client_is_used_and_reused(serve, documents) -> None:
    server = serve(sequence(api.ranking([2, 1, 3, 4])))
    client = anthropic.Anthropic(api_key="test-key", base_url=server.url, max_retries=0)
    compressor = ClaudeRerank(client=client, top_n=1)
    for _ in range(2):
        assert [d.id for d in compressor.compress_documents(documents, QUERY)] == ["doc-1"]
    assert compressor._scorer.client is client
    assert len(server.requests) == 2


def test_a_bad_key_raises_an_auth_error(serve, documents) -> None:
    server = serve(sequence(api.unauthorized()))
    with pytest.raises(ProviderAuthError):
        rerank(server).compress_documents(documents, QUERY)
    assert len(server.requests) == 1


async def test_async_survives_an_overload_and_reads_a_text_answer(serve, documents) -> None:
    server = serve(sequence(api.overloaded(), api.text("[3] > [2] > [1] > [4]")))
    with pytest.warns(ClaudeAnswerWarning, match="parsing its text"):
        out = await rerank(server, top_n=2).acompress_documents(documents, QUERY)
    assert [d.id for d in out] == ["doc-2", "doc-1"]
    assert len(server.requests) == 2


async def test_async_pointwise_grades_become_relevance_scores(serve, documents) -> None:
    grades = {"cats purr": 0, "paris is the capital of france": 10, "rain in paris": 3, "dogs bark": 1}
    server = serve(api.grading_by(grades.__getitem__))
    out = await rerank(server, mode="pointwise", batch_size=2, top_n=2).acompress_documents(documents, QUERY)
    assert [(d.id, d.metadata["relevance_score"]) for d in out] == [("doc-1", 10.0), ("doc-2", 3.0)]
    assert len(server.requests) == 2


async def test_async_empty_ranking_is_a_clear_error(serve, documents) -> None:
    server = serve(sequence(api.ranking([])))
    with pytest.raises(ProviderResponseError, match="no usable answer"):
        await rerank(server).acompress_documents(documents, QUERY)
