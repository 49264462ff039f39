"""A global request rate across Ray actors: one token-bucket actor that each API scorer asks before a request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rerank_kit._optional import require
from rerank_kit.scorer import Scorer

T = TypeVar("T")


class TokenBucket:
    """Ray actor state: ``rate`` tokens a second up to ``burst``; a request reserves one and learns how long to wait."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = time.monotonic()
        self.granted = 0.0

    def acquire(self, tokens: float = 1.0) -> float:
        """Reserve ``tokens``; returns the seconds to wait before using them (debt makes later callers wait longer)."""
        self.granted += tokens
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= tokens
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def granted_tokens(self) -> float:
        """Tokens handed out so far: the requests sent under this limit."""
        return self.granted


def rate_limiter(requests_per_second: float, *, name: str | None = None) -> Any:
    """A named :class:`TokenBucket` actor allowing ``requests_per_second`` across all actors (burst: one second's)."""
    if not requests_per_second > 0:
        raise ValueError(f"max_requests_per_second must be > 0, got {requests_per_second!r}")
    ray = require("ray", "ray")
    name = name or f"rerank-kit-rate-limit-{uuid.uuid4().hex[:12]}"
    actor = ray.remote(num_cpus=0)(TokenBucket)
    return actor.options(name=name, get_if_exists=True).remote(requests_per_second, max(1.0, requests_per_second))


class RateLimitedConcurrency:
    """A scorer's per-scorer concurrency limit that also waits for the global bucket before each request it sends."""

    def __init__(self, inner: Any, limiter: Any) -> None:
        self.inner = inner
        self.limiter = limiter

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        return await self.inner.run(lambda: self._paced(work))

    async def _paced(self, work: Callable[[], Awaitable[T]]) -> T:
        wait = await asyncio.wrap_future(self.limiter.acquire.remote(1.0).future())
        if wait > 0:
            await asyncio.sleep(wait)
        return await work()


def limit_requests(scorer: Scorer, limiter: Any) -> int:
    """Make every API request of ``scorer`` (and of scorers it wraps) wait for ``limiter``; returns how many were."""
    limited = 0
    concurrency = getattr(scorer, "__dict__", {}).get("concurrency")
    if concurrency is not None and callable(getattr(concurrency, "run", None)):
        if not isinstance(concurrency, RateLimitedConcurrency):
            scorer.concurrency = RateLimitedConcurrency(concurrency, limiter)  # type: ignore[attr-defined]
        limited += 1
    inner = getattr(scorer, "__dict__", {}).get("scorer")
    for part in [*([inner] if isinstance(inner, Scorer) else []), *getattr(scorer, "__dict__", {}).get("scorers", [])]:
        limited += limit_requests(part, limiter)
    return limited
