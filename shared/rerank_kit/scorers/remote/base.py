"""The base of every API scorer: keys, clients per event loop, one retry and time-limit policy, error hygiene.

:class:`RemoteBase` makes one provider call safe (retries, per-attempt timeout, overall deadline, errors
translated and key-redacted) and runs sync calls on the async path (see :mod:`.io_loop`);
:class:`RemoteScorer` splits a rerank call at the provider's limits, runs the parts concurrently and merges.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from rerank_kit._optional import require
from rerank_kit.errors import ProviderError, ProviderResponseError, ProviderUnavailableError
from rerank_kit.options import BackendOptions, RequestOptions
from rerank_kit.per_loop import PerLoop
from rerank_kit.scorer import ConfiguredScorer
from rerank_kit.tracing import span
from rerank_kit.scorers.remote.batching import Chunk, ChunkAnswer, merge_answers, plan_chunks, summed_usage
from rerank_kit.scorers.remote.io_loop import run_sync
from rerank_kit.scorers.remote.support import (
    ConcurrencyLimit,
    RetryPolicy,
    Secret,
    TransientProviderError,
    redact_error,
    resolve_key,
    wire_text,
)
from rerank_kit.scorers.remote.wire import WireFormat

T = TypeVar("T")


class RemoteBase(ConfiguredScorer):
    """One provider call made safe: our retries (never the SDK's), time limits, translated, redacted errors.

    ``timeout`` bounds each attempt as a whole (a server trickling bytes cannot outlast it); ``deadline``
    bounds the whole call across retries. Sync calls run on a background event loop with the async client,
    unless only a ready sync ``client`` was given (then its own read timeouts apply). Async clients are
    kept one per event loop and closed when that loop shuts down.
    """

    Options: ClassVar[type[BackendOptions]] = RequestOptions
    #: Provider name used in errors and logs.
    provider: str = "API"
    #: Environment variables the key falls back to, in order.
    key_env_vars: tuple[str, ...] = ()
    def _configure(self, options: Any) -> None:
        self.policy = policy = options.request_policy
        self._api_key: Secret | None = resolve_key(getattr(options, "api_key", None), self.key_env_vars)
        self.retry = RetryPolicy(max_retries=policy.max_retries, backoff=policy.backoff)
        self.concurrency = ConcurrencyLimit(policy.max_concurrency)
        self._client: Any = getattr(options, "client", None)
        self._async_clients: PerLoop[OpenClient] = PerLoop(self._async_client_for_loop, aclose_open_client)

    def _uses_sync_client(self) -> bool:
        """Whether sync calls go through a ready sync client the user gave (and no async one)."""
        return getattr(self.options, "client", None) is not None and getattr(self.options, "async_client", None) is None

    def _async_client_for_loop(self) -> OpenClient:
        """A new async client for the running loop (or the ready one given, which is never closed here)."""
        given = getattr(self.options, "async_client", None)
        return OpenClient(given, ()) if given is not None else self._open_async_client()

    def _open_async_client(self) -> OpenClient:
        """A new async client and what to close with it; by default the client itself."""
        return OpenClient(self._build_async_client())

    def _build_async_client(self) -> Any:
        raise NotImplementedError

    @property
    def async_client(self) -> Any:
        """The async client of the running event loop."""
        return self._async_clients.get().client

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""
        return exc

    def _missing_key_message(self) -> str:
        names = " or ".join(self.key_env_vars)
        client = " (or pass a ready client)" if "client" in type(self.options).model_fields else ""
        return f"{self.provider} API key missing: pass api_key=... or set {names}{client}"

    async def _call(self, send: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        """``send()`` with retries, the per-attempt timeout and the deadline; every failure a ProviderError."""
        retry = 0
        while True:
            try:
                return await self._attempt(send, deadline)
            except TransientProviderError as error:
                failure = error
            except ProviderError as error:
                raise self._redacted(error) from None
            try:
                wait = self.retry.next_wait(retry, failure)
            except ProviderError as final:
                raise self._redacted(final) from None
            if deadline is not None and time.monotonic() + wait >= deadline:
                raise self._redacted(ProviderUnavailableError(
                    self.provider, f"deadline of {self.policy.deadline}s reached; last error: {failure.detail}",
                    status_code=failure.status_code)) from None
            await asyncio.sleep(wait)
            retry += 1

    async def _attempt(self, send: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        limit = self.policy.timeout
        if deadline is not None:
            remaining = deadline - time.monotonic()
            limit = remaining if limit is None else min(limit, remaining)
            if limit <= 0:
                raise TransientProviderError(self.provider, f"deadline of {self.policy.deadline}s reached")
        try:
            with span("rerank_kit.request", provider=self.provider, model=self.name):
                return await asyncio.wait_for(self.concurrency.run(send), timeout=limit)
        except asyncio.TimeoutError:
            raise TransientProviderError(self.provider, f"no complete answer within the {limit:.3g}s timeout") from None
        except ProviderError:
            raise
        except Exception as exc:
            raise self._unexpected(exc) from None

    def _unexpected(self, exc: Exception) -> ProviderError:
        translated = self._translate(exc)
        if isinstance(translated, ProviderError):
            return translated
        return ProviderResponseError(self.provider, f"unusable answer ({type(exc).__name__}: {exc})")

    def _redacted(self, error: ProviderError) -> ProviderError:
        return redact_error(error, self._api_key)

    def _deadline(self) -> float | None:
        return None if self.policy.deadline is None else time.monotonic() + self.policy.deadline

    def _run_sync(self, coroutine: Awaitable[T]) -> T:
        return run_sync(coroutine)  # type: ignore[arg-type]

    def close(self) -> None:
        """Close the sync client and the background loop's async client (they reopen if used again)."""
        client = self.__dict__.get("_client")
        if client is not None and client is not getattr(self.options, "client", None):
            self._client = None
            closing = getattr(client, "close", None)
            if closing is not None:
                closing()
        if self.__dict__.get("_async_clients") is not None:
            from rerank_kit.scorers.remote.io_loop import io_loop

            for loop in self._async_clients.loops():
                if loop is io_loop():
                    run_sync(self._async_clients.aclose_current())

    async def aclose(self) -> None:
        """Close the running loop's async client and the sync clients."""
        await self._async_clients.aclose_current()
        await asyncio.to_thread(self.close)


@dataclass(frozen=True)
class OpenClient:
    """An async client of one event loop and the resources closed with it (``None``: the client itself)."""

    client: Any
    resources: tuple[Any, ...] | None = None


async def aclose_open_client(open_client: OpenClient) -> None:
    """Close what an :class:`OpenClient` owns."""
    owned = (open_client.client,) if open_client.resources is None else open_client.resources
    for resource in owned:
        await aclose_client(resource)


async def aclose_client(client: Any) -> None:
    """Close an async SDK or httpx client (``aclose()`` or an async ``close()``)."""
    closing = getattr(client, "aclose", None) or getattr(client, "close", None)
    if closing is not None:
        result = closing()
        if asyncio.iscoroutine(result):
            await result


class RemoteScorer(RemoteBase):
    """Scores through a rerank API; subclasses send one request, this class does the rest.

    One call becomes as many requests as the provider's limits need (:meth:`_chunks`); each request is
    retried on 408/429/5xx/timeouts (the SDK's own retries are switched off); requests run concurrently,
    at most ``max_concurrency`` per scorer across all calls; answers are merged by global index and
    checked; usage is summed per call into ``self.usage``.
    """

    #: Most documents the provider accepts in one request.
    max_documents: int = 1000

    def _chunks(self, query: str, texts: Sequence[str]) -> list[Chunk]:
        """How one call is split into requests; by default at ``max_documents``."""
        return plan_chunks(texts, self.max_documents)

    @abstractmethod
    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        """One request on the sync client, raising rerank-kit ProviderErrors (transient ones are retried)."""

    @abstractmethod
    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        """One request on the running loop's async client."""

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not self._uses_sync_client():
            return self._run_sync(self.ascore(query, texts))
        query, texts = wire_text(query), [wire_text(text) for text in texts]
        chunks = self._chunks(query, texts)
        answers = [self._sync_call(lambda c=c: self._send(query, list(texts[c.start : c.stop]))) for c in chunks]
        return self._merged(texts, chunks, answers)

    def _sync_call(self, send: Callable[[], T]) -> T:
        try:
            return self.retry.call(send)
        except ProviderError as error:
            raise self._redacted(error) from None
        except Exception as exc:
            raise self._redacted(self._unexpected(exc)) from None

    async def ascore(self, query: str, texts: Sequence[str]) -> list[float]:
        query, texts = wire_text(query), [wire_text(text) for text in texts]
        chunks = self._chunks(query, texts)
        deadline = self._deadline()

        async def one(chunk: Chunk) -> ChunkAnswer:
            part = list(texts[chunk.start : chunk.stop])
            return await self._call(lambda: self._asend(query, part), deadline)

        answers = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return self._merged(texts, chunks, answers)

    def _merged(self, texts: Sequence[str], chunks: Sequence[Chunk], answers: Sequence[ChunkAnswer]) -> list[float]:
        try:
            scores = merge_answers(self.provider, len(texts), chunks, answers)
        except ProviderError as error:
            raise self._redacted(error) from None
        self.usage.record(summed_usage(answers))
        return scores


class OnWireFormat:
    """Mixin for scorers on a :class:`~rerank_kit.scorers.remote.wire.WireFormat`: what it decides comes from it.

    The provider name, the request body (or SDK keyword arguments), the usage record, and ``max_documents``:
    the ``max_batch_size`` option when set, else the format's documents per request. ``name`` is the model.
    """

    options: Any
    wire: WireFormat

    @property
    def provider(self) -> str:
        return self.wire.provider

    @property
    def name(self) -> str:
        return str(self.options.model)

    @property
    def max_documents(self) -> int:
        return self.options.max_batch_size or self.wire.max_documents

    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        return self.wire.body(query, texts)

    def _usage(self, response: Any) -> dict[str, float]:
        return self.wire.usage(response)


class SDKRerankScorer(RemoteScorer):
    """A :class:`RemoteScorer` on a provider SDK whose clients have a ``rerank(**request)`` method.

    Here once for every SDK backend: the key (argument, then ``key_env_vars``), the model check, one sync
    client and one async client per event loop (or the ready ones given), sending a request with errors
    translated, and reading ``(index, relevance_score)`` pairs. Subclasses build clients, the request body,
    the error translation and the usage record.
    """


    #: The SDK's module and the extra that installs it.
    sdk_module: tuple[str, str] = ("", "")
    #: Names of the SDK's sync and async client classes in that module.
    sdk_classes: tuple[str, str] = ("", "")

    def _configure(self, options: Any) -> None:
        super()._configure(options)
        if self._api_key is None and options.client is None and options.async_client is None:
            raise ValueError(self._missing_key_message())
        if not isinstance(options.model, str) or not options.model.strip():
            example = type(options).model_fields["model"].default
            raise ValueError(f"model must be a {self.provider} rerank model name such as {example!r}")

    @property
    def name(self) -> str:
        return self.model

    @property
    def client(self) -> Any:
        """The sync SDK client, built on first use unless one was given."""
        if self._client is None:
            self._client = self._sdk_class(self.sdk_classes[0])(**self._client_options())
        return self._client

    def _build_async_client(self) -> Any:
        return self._sdk_class(self.sdk_classes[1])(**self._client_options())

    def _sdk_class(self, name: str) -> Any:
        module, extra = self.sdk_module
        return getattr(require(module, extra), name)

    def _client_options(self) -> dict[str, Any]:
        if self._api_key is None:
            raise ValueError(self._missing_key_message())
        return self._sdk_options(self._api_key.get_secret_value())

    def _send(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = self._rerank_method(self.client)(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    async def _asend(self, query: str, texts: list[str]) -> ChunkAnswer:
        try:
            response = await self._rerank_method(self.async_client)(**self._request(query, texts))
        except Exception as exc:
            raise self._translate(exc) from None
        return self._answer(response)

    def _rerank_method(self, client: Any) -> Any:
        """The client method that sends one rerank request."""
        return client.rerank

    def _answer(self, response: Any) -> ChunkAnswer:
        try:
            pairs = [(result.index, result.relevance_score) for result in response.results]
        except (AttributeError, TypeError) as exc:
            raise ProviderResponseError(self.provider, f"malformed rerank response ({type(exc).__name__})") from None
        return ChunkAnswer(pairs, self._usage(response))

    def _sdk_options(self, key: str) -> dict[str, Any]:
        """Client keyword arguments (the SDK's own retries switched off); these suit Stainless-style SDKs."""
        options: dict[str, Any] = {"api_key": key, "timeout": self.timeout, "max_retries": 0}
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    @abstractmethod
    def _request(self, query: str, texts: list[str]) -> dict[str, Any]:
        """Keyword arguments of one ``rerank`` call."""

    @abstractmethod
    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the SDK raised; unknown exceptions pass through."""

    @abstractmethod
    def _usage(self, response: Any) -> dict[str, float]:
        """The usage counts a response reports."""
