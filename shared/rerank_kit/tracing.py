"""Optional OpenTelemetry spans (``rerank-kit[otel]``): one per rerank call and one per provider request.

Without the ``opentelemetry-api`` package nothing is imported and every span is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from rerank_kit._optional import installed

TRACER_NAME = "rerank_kit"


@lru_cache(maxsize=1)
def _tracer() -> Any:
    if not installed("opentelemetry"):
        return None
    from opentelemetry import trace

    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span named ``name`` with ``rerank.*`` attributes, or nothing when OpenTelemetry is absent."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name) as current:
        for key, value in attributes.items():
            if value is not None:
                current.set_attribute(f"rerank.{key}", value)
        yield current
