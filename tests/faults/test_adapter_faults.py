"""The fault contract through both adapters, sync and async: the same typed errors, or with
``on_error="keep_order"`` the first-stage order flagged as failed; never a lost document or a leaked key. A retried
failure still ranks, and ``FallbackRerank`` answers with its next scorer while an API is down."""

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
from tests.api_servers import SECRET_KEY, overlap_score
from tests.conftest import KeywordScorer
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


#: DOCS by keyword overlap with QUERY, best first: the ranking every healthy API backend here returns.
RANKED = sorted(DOCS, key=lambda text: -overlap_score(QUERY, text))
API_BACKENDS = ("cohere", "voyage", "tei", "infinity")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("backend", API_BACKENDS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_retried_failure_still_ranks(framework: str, backend: str, mode: str) -> None:
    with FaultServer(FAULTS["http_429_retry_after_0_then_ok"](WIRES[backend])) as server:
        results = call(framework, mode, build(framework, backend, server.url, top_n=2))
        assert server.requests_seen(2) == 2
    assert [text for text, _ in results] == RANKED[:2]
    assert [metadata["n"] for _, metadata in results] == [DOCS.index(text) for text in RANKED[:2]]
    assert not any(metadata.get("rerank_failed") for _, metadata in results)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fallback_answers_with_the_next_scorer_while_the_api_is_down(framework: str, mode: str) -> None:
    with FaultServer(FAULTS["http_503"](WIRES["cohere"])) as server:
        api = build(framework, "cohere", server.url)
        fallback = FRAMEWORKS[framework].FallbackRerank(scorers=[api, KeywordScorer()], top_n=2)
        results = call(framework, mode, fallback)
    assert [text for text, _ in results] == RANKED[:2]
    assert fallback.last_scorer_name == "KeywordScorer"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("backend", "provider"), [("tei", "TEI"), ("infinity", "Infinity")])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fallback_uses_the_first_healthy_scorer(framework: str, backend: str, provider: str, mode: str) -> None:
    with FaultServer(WIRES[backend].ok()) as server:
        fallback = FRAMEWORKS[framework].FallbackRerank(
            scorers=[build(framework, backend, server.url), KeywordScorer()], top_n=2)
        results = call(framework, mode, fallback)
    assert [text for text, _ in results] == RANKED[:2]
    assert fallback.last_scorer_name == f"{provider} {server.url}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_fallback_rejects_what_is_not_a_scorer(framework: str) -> None:
    with pytest.raises(TypeError, match=r"scorers\[0\]"):
        FRAMEWORKS[framework].FallbackRerank(scorers=["cohere"])


@pytest.mark.parametrize(("backend", "billed"), [("cohere", "search_units"), ("voyage", "total_tokens")])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_usage_is_readable_after_the_call(framework: str, backend: str, billed: str) -> None:
    with FaultServer(WIRES[backend].ok()) as server:
        reranker = build(framework, backend, server.url)
        call(framework, "sync", reranker)
    assert list(reranker.usage.last) == [billed]
    assert reranker.usage.last[billed] > 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_voyage_instruction_reaches_the_wire(framework: str) -> None:
    with FaultServer(WIRES["voyage"].ok()) as server:
        call(framework, "sync", build(framework, "voyage", server.url, instruction="Prefer FAQs."))
    assert server.requests[0].json["query"] == f"Prefer FAQs.\n{QUERY}"
