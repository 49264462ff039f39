"""The fault contract through both adapters, sync and async: the same typed errors, or with
``on_error="keep_order"`` the first-stage order flagged as failed; never a lost document or a leaked key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

import langchain_rerankers
import llamaindex_rerankers
from rerank_kit import ProviderAuthError, ProviderResponseError, ProviderUnavailableError
from tests.api_servers import SECRET_KEY
from tests.faults.servers import DOCS, FAULTS, QUERY, WIRES, FaultServer

FAULT_ERRORS = {"http_401": ProviderAuthError, "http_503": ProviderUnavailableError, "html_body": ProviderResponseError}
RERANK_CLASSES = {"cohere": "CohereRerank", "voyage": "VoyageRerank", "tei": "HTTPRerank",
                  "infinity": "HTTPRerank", "claude": "ClaudeRerank", "openai": "OpenAIRerank"}
FRAMEWORKS = {"langchain": langchain_rerankers, "llamaindex": llamaindex_rerankers}


def build(framework: str, backend: str, url: str, **options: Any) -> Any:
    """The backend's reranker of ``framework`` pointed at ``url``, failing fast."""
    options = {"api_key": SECRET_KEY, "backoff": 0.01, "max_retries": 1, "timeout": 2.0, **options}
    cls = getattr(FRAMEWORKS[framework], RERANK_CLASSES[backend])
    if backend == "voyage":
        return cls(base_url=f"{url}/v1", **options)
    if backend in ("tei", "infinity"):
        return cls(base_url=url, protocol=backend, **options)
    return cls(base_url=url, **options)


def call(framework: str, mode: str, reranker: Any) -> list[tuple[str, dict[str, Any]]]:
    """Rerank ``DOCS`` and return (text, metadata) per result."""
    if framework == "langchain":
        documents = [Document(page_content=text, metadata={"n": i}) for i, text in enumerate(DOCS)]
        if mode == "async":
            out = asyncio.run(reranker.acompress_documents(documents, QUERY))
        else:
            out = reranker.compress_documents(documents, QUERY)
        return [(d.page_content, d.metadata) for d in out]
    nodes = [NodeWithScore(node=TextNode(text=text, metadata={"n": i}), score=1.0 - i / 10)
             for i, text in enumerate(DOCS)]
    bundle = QueryBundle(QUERY)
    if mode == "async":
        out = asyncio.run(reranker.apostprocess_nodes(nodes, query_bundle=bundle))
    else:
        out = reranker.postprocess_nodes(nodes, query_bundle=bundle)
    return [(n.node.get_content(), n.node.metadata) for n in out]


CELLS = [
    pytest.param(framework, backend, fault, mode, id=f"{framework}-{backend}-{fault}-{mode}")
    for framework in FRAMEWORKS for backend in RERANK_CLASSES for fault in FAULT_ERRORS for mode in ("sync", "async")
]


@pytest.mark.parametrize(("framework", "backend", "fault", "mode"), CELLS)
def test_a_failure_is_the_typed_error_without_the_key(framework: str, backend: str, fault: str, mode: str) -> None:
    with FaultServer(FAULTS[fault](WIRES[backend])) as server:
        reranker = build(framework, backend, server.url)
        with pytest.raises(FAULT_ERRORS[fault]) as raised:
            call(framework, mode, reranker)
    error: BaseException | None = raised.value
    while error is not None:
        assert SECRET_KEY not in str(error) and SECRET_KEY not in repr(error)
        error = error.__cause__ or error.__context__


@pytest.mark.parametrize(("framework", "backend", "fault", "mode"), CELLS)
def test_keep_order_returns_the_first_stage_order_flagged(
    framework: str, backend: str, fault: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FaultServer(FAULTS[fault](WIRES[backend])) as server, caplog.at_level(logging.WARNING, "rerank_kit"):
        reranker = build(framework, backend, server.url, on_error="keep_order", top_n=3)
        results = call(framework, mode, reranker)
    assert [text for text, _ in results] == DOCS[:3]
    assert [metadata["n"] for _, metadata in results] == [0, 1, 2]
    assert all(metadata["rerank_failed"] is True for _, metadata in results)
    assert all(FAULT_ERRORS[fault].__name__ in metadata["rerank_error"] for _, metadata in results)
    assert all(SECRET_KEY not in metadata["rerank_error"] for _, metadata in results)
    assert "keeping the first-stage order" in caplog.text
