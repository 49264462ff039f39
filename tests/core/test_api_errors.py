"""What a user reads when a rerank API fails: the same contract for Cohere, Voyage, TEI and Infinity.

Each backend runs through its real client (SDK or httpx) against a loopback server speaking its wire format,
error bodies included. Which error class each fault gives, and the request counts, are checked for every backend
in tests/faults/test_fault_matrix.py; this module checks what the errors and logs say: the wait asked by
Retry-After, recovery after several failures, the provider's own message, the attempts made, the status code,
and never the API key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from rerank_kit import (
    ProviderAuthError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from rerank_kit.scorers.remote.cohere import CohereScorer
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from rerank_kit.scorers.remote.voyage import VoyageScorer
from tests.api_servers import SECRET_KEY, overlap_score, rewrite, scripted
from tests.faults.servers import DOCS, QUERY, WIRES, Wire
from tests.loopback import LoopbackServer, Reply


@dataclass(frozen=True)
class Api:
    """One backend: how to build it at a URL, how its errors name it, and its wire format (bodies, errors)."""

    name: str
    provider: str
    build: Callable[..., Any]
    #: what the authentication error tells the user to check
    auth_hint: str

    @property
    def wire(self) -> Wire:
        return WIRES[self.name]

    def error(self, status: int, message: str) -> Any:
        """The provider's error body for ``status`` around ``message``."""
        return self.wire.error_body(status, message)


APIS = [
    Api("cohere", "Cohere", lambda url, **o: CohereScorer(base_url=url, **o), "check the API key"),
    Api("voyage", "Voyage", lambda url, **o: VoyageScorer(base_url=f"{url}/v1", **o), "VOYAGE_API_KEY"),
    Api("tei", "TEI", lambda url, **o: HTTPRerankScorer(url, protocol="tei", **o), "check the API key"),
    Api("infinity", "Infinity", lambda url, **o: HTTPRerankScorer(url, protocol="infinity", **o), "check the API key"),
]


@pytest.fixture(params=APIS, ids=lambda api: api.name)
def api(request: pytest.FixtureRequest) -> Api:
    return request.param


def scorer(api: Api, server: LoopbackServer, **options: Any) -> Any:
    options = {"api_key": SECRET_KEY, "max_retries": 3, "backoff": 0.01, **options}
    return api.build(server.url, **options)


def healthy() -> list[float]:
    return [overlap_score(QUERY, d) for d in DOCS]


def test_429_waits_as_long_as_retry_after_asks_and_says_so(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    handler = scripted(Reply(429, api.error(429, "slow down"), headers={"Retry-After": "1"}), then=api.wire.ok())
    with LoopbackServer(handler) as server, caplog.at_level(logging.WARNING, logger="rerank_kit.api"):
        scores = scorer(api, server).score(QUERY, DOCS)
    assert len(server.requests) == 2
    assert scores == healthy()
    assert "retry 1 of 3 in 1.00s" in caplog.text


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_three_server_errors_then_the_scores(api: Api, mode: str) -> None:
    handler = scripted(*[Reply(500, api.error(500, "boom"))] * 3, then=api.wire.ok())
    with LoopbackServer(handler) as server:
        reranker = scorer(api, server)
        scores = reranker.score(QUERY, DOCS) if mode == "sync" else await reranker.ascore(QUERY, DOCS)
    assert len(server.requests) == 4
    assert scores == healthy()


def test_giving_up_names_the_provider_the_attempts_and_the_status(api: Api) -> None:
    with LoopbackServer(lambda request: Reply(503, api.error(503, "down"))) as server:
        with pytest.raises(ProviderUnavailableError, match=f"{api.provider}.*gave up after 3 attempts") as info:
            scorer(api, server, max_retries=2).score(QUERY, DOCS)
    assert len(server.requests) == 3
    assert info.value.status_code == 503


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_an_answer_later_than_the_timeout_is_retried_then_reported(api: Api, mode: str) -> None:
    with LoopbackServer(lambda request: Reply(200, [], delay=1.0)) as server:
        with pytest.raises(ProviderUnavailableError, match="timeout"):
            reranker = scorer(api, server, timeout=0.2, max_retries=1)
            await reranker.ascore(QUERY, DOCS) if mode == "async" else reranker.score(QUERY, DOCS)
        assert server.requests_seen(2) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_auth_failure_says_what_to_check_without_echoing_the_key(api: Api, mode: str) -> None:
    reply = Reply(401, api.error(401, f"invalid api token {SECRET_KEY}"))
    with LoopbackServer(lambda request: reply) as server:
        with pytest.raises(ProviderAuthError, match=api.auth_hint) as info:
            reranker = scorer(api, server)
            await reranker.ascore(QUERY, DOCS) if mode == "async" else reranker.score(QUERY, DOCS)
    assert len(server.requests) == 1
    assert SECRET_KEY not in str(info.value)
    assert info.value.status_code == 401


@pytest.mark.parametrize("status", [400, 422])
def test_a_bad_request_carries_the_providers_message(api: Api, status: int) -> None:
    with LoopbackServer(lambda request: Reply(status, api.error(status, "model not found"))) as server:
        with pytest.raises(ProviderRequestError, match="model not found"):
            scorer(api, server).score(QUERY, DOCS)
    assert len(server.requests) == 1


def test_a_body_that_is_not_json_names_the_provider(api: Api) -> None:
    with LoopbackServer(lambda request: Reply(200, raw=b"<html>oops")) as server:
        with pytest.raises(ProviderResponseError, match=api.provider):
            scorer(api, server).score(QUERY, DOCS)


def _set_index(api: Api, value: int) -> Callable[[Reply], Reply]:
    def change(reply: Reply) -> Reply:
        api.wire.entries(reply.body)[0]["index"] = value
        return reply

    return change


def _duplicate(api: Api) -> Callable[[Reply], Reply]:
    def change(reply: Reply) -> Reply:
        entries = api.wire.entries(reply.body)
        entries[1]["index"] = entries[0]["index"]
        return reply

    return change


def _drop(api: Api) -> Callable[[Reply], Reply]:
    def change(reply: Reply) -> Reply:
        api.wire.entries(reply.body).pop()
        return reply

    return change


@pytest.mark.parametrize(("broken", "message"), [
    (lambda api: _set_index(api, 99), "{provider}: .*out of range"),
    (lambda api: _set_index(api, -1), "{provider}: result index -1 is out of range"),
    (_duplicate, "appears twice"),
    (_drop, "1 of 4 documents have no result"),
], ids=["out-of-range", "negative", "duplicate", "missing"])
def test_results_that_do_not_map_one_to_one_are_a_response_error(api: Api, broken: Any, message: str) -> None:
    with LoopbackServer(rewrite(api.wire.ok(), broken(api))) as server:
        with pytest.raises(ProviderResponseError, match=message.format(provider=api.provider)):
            scorer(api, server).score(QUERY, DOCS)


def test_the_key_never_appears_in_repr(api: Api) -> None:
    reranker = api.build("http://127.0.0.1:9", api_key=SECRET_KEY)
    assert SECRET_KEY not in repr(reranker)
    assert SECRET_KEY not in repr(vars(reranker))
