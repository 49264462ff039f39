"""What every API scorer shares: secret keys, HTTP status to error mapping, retries, concurrency limits."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from rerank_kit.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from rerank_kit.per_loop import PerLoop
from rerank_kit.validation import check_positive_int

logger = logging.getLogger("rerank_kit.api")

T = TypeVar("T")

#: Longest wait we accept from a Retry-After header before giving up on the retry.
MAX_RETRY_AFTER_SECONDS = 60.0
_MAX_MESSAGE_CHARS = 300


class Secret:
    """An API key that never shows itself in ``repr``, ``str``, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def resolve_key(api_key: Any, env_vars: tuple[str, ...]) -> Secret | None:
    """The key from ``api_key`` (str, Secret or pydantic ``SecretStr``) or the first set env var."""
    if api_key is not None:
        value = api_key.get_secret_value() if hasattr(api_key, "get_secret_value") else api_key
        if not isinstance(value, str) or not value.strip():
            raise ValueError("api_key must be a non-empty string or SecretStr")
        return Secret(value)
    for name in env_vars:
        if os.environ.get(name):
            return Secret(os.environ[name])
    return None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def wire_text(text: str) -> str:
    """``text`` as it can be sent as UTF-8 JSON: a lone surrogate (no character on its own) becomes U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def redact_error(error: ProviderError, secret: Secret | None) -> ProviderError:
    """``error`` with the key removed from its message and its chained exceptions dropped."""
    if secret is not None and secret.get_secret_value():
        value = secret.get_secret_value()
        error.args = tuple(arg.replace(value, "**********") if isinstance(arg, str) else arg for arg in error.args)
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


def redact(text: str, secret: Secret | None) -> str:
    """``text`` with the key replaced and cut to a readable length."""
    if secret is not None and secret.get_secret_value():
        text = text.replace(secret.get_secret_value(), "**********")
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + "..."


class TransientProviderError(ProviderUnavailableError):
    """A 408/429/5xx answer, timeout or dropped connection: worth retrying, after ``retry_after`` if given."""

    def __init__(self, provider: str, message: str, *, status_code: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(provider, message, status_code=status_code)
        self.detail = message
        self.retry_after = retry_after


def error_for_status(provider: str, status: int, detail: str, *, retry_after: float | None = None,
                     auth_hint: str = "check the API key and that it has access to this model") -> ProviderError:
    """The rerank-kit error for an HTTP error status, with what to fix in the message."""
    detail = f": {detail}" if detail else ""
    if status in (401, 403):
        return ProviderAuthError(provider, f"authentication failed ({auth_hint}){detail}", status_code=status)
    if status in (408, 429) or status >= 500:
        return TransientProviderError(provider, f"temporarily unavailable{detail}", status_code=status,
                                      retry_after=retry_after)
    if status == 404:
        return ProviderRequestError(provider, f"not found (check base_url and model){detail}", status_code=status)
    if status == 413:
        return ProviderRequestError(provider, f"request too large (lower the batch size){detail}",
                                    status_code=status)
    if 400 <= status < 500:
        return ProviderRequestError(provider, f"request rejected (check model and parameters){detail}",
                                    status_code=status)
    return ProviderResponseError(provider, f"unexpected HTTP status{detail}", status_code=status)


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if present."""
    lowered = {str(key).lower(): str(value).strip() for key, value in (headers or {}).items()}
    if "retry-after-ms" in lowered:
        seconds = _number(lowered["retry-after-ms"])
        if seconds is not None:
            return max(seconds / 1000, 0.0)
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(seconds, 0.0)
    parsed = email.utils.parsedate_tz(value)
    return None if parsed is None else max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class RetryPolicy:
    """Retries transient provider failures ``max_retries`` times with capped exponential backoff and jitter.

    The wait before retry ``n`` (0-based) is ``Retry-After`` when the provider sent one, else a random
    value in ``[b/2, b]`` with ``b = min(max_delay, backoff * 2**n)``. Auth, request and response errors
    are never retried.
    """

    def __init__(self, max_retries: int, backoff: float, max_delay: float = 30.0) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not isinstance(backoff, (int, float)) or backoff < 0:
            raise ValueError(f"backoff must be a number of seconds >= 0, got {backoff!r}")
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_delay = float(max_delay)

    def delay(self, retry: int, error: TransientProviderError) -> float:
        if error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.max_delay, self.backoff * 2**retry)
        return random.uniform(ceiling / 2, ceiling)

    def call(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the retries run out."""
        retry = 0
        while True:
            try:
                return attempt()
            except TransientProviderError as error:
                time.sleep(self.next_wait(retry, error))
                retry += 1

    def next_wait(self, retry: int, error: TransientProviderError) -> float:
        """The wait before the next attempt, or the final error when there is none."""
        if retry >= self.max_retries:
            raise ProviderUnavailableError(
                error.provider, f"gave up after {retry + 1} attempts; last error: {error.detail}",
                status_code=error.status_code,
            ) from error
        wait = self.delay(retry, error)
        if wait > MAX_RETRY_AFTER_SECONDS:
            raise ProviderRateLimitError(
                error.provider, f"asked to retry after {wait:.0f}s (more than {MAX_RETRY_AFTER_SECONDS:.0f}s); "
                f"last error: {error.detail}", status_code=error.status_code, retry_after=wait,
            ) from error
        logger.warning("%s: %s; retry %d of %d in %.2fs", error.provider, error.detail, retry + 1,
                       self.max_retries, wait)
        return wait


class ConcurrencyLimit:
    """At most ``limit`` requests of one scorer in flight at once, in whichever event loop runs them."""

    def __init__(self, limit: int) -> None:
        self.limit = check_positive_int("max_concurrency", limit)
        self._semaphores: PerLoop[asyncio.Semaphore] = PerLoop(lambda: asyncio.Semaphore(self.limit))

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        async with self._semaphores.get():
            return await work()
