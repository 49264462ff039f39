"""OpenTelemetry spans: one per rerank call and one per provider request, with the call's attributes."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rerank_kit import Reranker
from rerank_kit import tracing
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from tests.api_servers import tei_handler
from tests.conftest import KeywordScorer
from tests.loopback import LoopbackServer


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", lambda: provider.get_tracer(tracing.TRACER_NAME))
    return exporter


def test_a_rerank_call_and_each_provider_request_are_spans(spans: InMemorySpanExporter) -> None:
    Reranker(KeywordScorer(), top_n=2).rerank("reset", ["reset password", "cat", "dog"])
    with LoopbackServer(tei_handler()) as server:
        Reranker(HTTPRerankScorer(server.url, max_batch_size=2), top_n=None).rerank("reset", ["a", "reset", "b"])
    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.name == "rerank_kit.rerank"]
    requests = [s for s in finished if s.name == "rerank_kit.request"]
    assert calls[0].attributes["rerank.backend"] == "KeywordScorer" and calls[0].attributes["rerank.texts"] == 3
    assert calls[0].attributes["rerank.top_n"] == 2
    assert len(requests) == 2 and all(s.attributes["rerank.provider"] == "TEI" for s in requests)
    assert all(s.parent is not None and s.parent.span_id == calls[1].context.span_id for s in requests)


def test_without_opentelemetry_spans_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_tracer", lambda: None)
    with tracing.span("anything", backend="x") as current:
        assert current is None
    assert trace.get_current_span() is trace.INVALID_SPAN
