"""What a remote backend does when its service misbehaves: one outcome per fault, the same for every backend.

Every API backend (Cohere, Voyage, TEI, Infinity, the Cohere-compatible and vLLM /score protocols, Jina, NVIDIA,
Mixedbread, Pinecone, Bedrock, Claude, OpenAI-compatible chat) is run through its real SDK, sync (`score`) and
async (`ascore`), against servers on 127.0.0.1 that inject each fault, with `max_retries=2`. The slow cells
(silent, trickle, deadline) run once per client library: the httpx-based wire formats share TEI's (see
`SAME_CLIENT_AS`).

| Fault | What you get |
|---|---|
| HTTP 401, 403 | `ProviderAuthError` at once (1 request, never retried) |
| HTTP 400, 404, 413, 422 | `ProviderRequestError` at once (1 request, never retried) |
| HTTP 408, 429, any 5xx (500, 502, 503, 504, 520, 529, ...) on every attempt | `ProviderUnavailableError` after 1 + `max_retries` requests |
| Connection reset, or a server that accepts and never answers | `ProviderUnavailableError` after 1 + `max_retries` requests, each ended by `timeout` |
| A server that trickles its answer (one byte every 0.3 s, forever) | `ProviderUnavailableError` within about `timeout` x attempts: `timeout` bounds each attempt as a whole, not each read |
| HTTP 429 with `Retry-After: 0`, then a good answer | the scores (the retry waits as asked) |
| HTTP 429 with `Retry-After: 3600` (longer than the 60 s we wait) | `ProviderRateLimitError` (a `ProviderUnavailableError`) at once, no hour-long sleep; `.retry_after` is 3600 and the message names it |
| `deadline=2.0` with a silent server (`timeout=1.0`, `max_retries=5`) | `ProviderUnavailableError` within about 2 s (checked: under 3 s; the attempts alone would take 6 s): `deadline` bounds the whole call, retries included |
| 200 with truncated JSON, an HTML page, or JSON of the wrong shape (a bare list, `null`, `{"results": null}`) | `ProviderResponseError` |
| A result index of the wrong type (`1.0`, `true`, `"1"`), out of range (`n`, `-1`), repeated, or a result missing | `ProviderResponseError` (never a wrong score, `TypeError`, `KeyError`, `JSONDecodeError` or an SDK/httpx/aiohttp error) |
| An error body that quotes your API key back | the error for its status; the key appears in no error message, repr or chained cause |

Claude and OpenAI-compatible models rank by passage ids the model chose, which are repaired rather than trusted
(as `BaseLLMScorer` documents): `2.0` and `"2"` are read as id 2; a `true`, out-of-range, negative or repeated id
is dropped and passages left out follow in input order, with an `LLMAnswerWarning`. Only an answer naming no valid id is
asked again (`answer_retries`) and then raises `ProviderResponseError`. In every failing case the key
(`api_key`) is never part of `str(error)`, `repr(error)` or any `__cause__` / `__context__` message.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from rerank_kit import (
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
)
from rerank_kit.scorers.llm.claude import ClaudeScorer
from rerank_kit.scorers.llm.llm_scorer import LLMAnswerWarning
from rerank_kit.scorers.llm.openai import OpenAIScorer
from rerank_kit.scorers.remote.bedrock import BedrockScorer
from rerank_kit.scorers.remote.cohere import CohereScorer
from rerank_kit.scorers.remote.http import HTTPRerankScorer
from rerank_kit.scorers.remote.jina import JinaScorer
from rerank_kit.scorers.remote.mixedbread import MixedbreadScorer
from rerank_kit.scorers.remote.nvidia import NVIDIAScorer
from rerank_kit.scorers.remote.pinecone import PineconeScorer
from rerank_kit.scorers.remote.voyage import VoyageScorer
from tests.api_servers import SECRET_KEY, overlap_score
from tests.faults.servers import DOCS, FAULTS, QUERY, RETRY_AFTER_LONG, SILENT, WIRES, FaultServer, always

MAX_RETRIES = 2
ATTEMPTS = 1 + MAX_RETRIES
#: The timeout of the cells whose server answers at once: generous, as no such cell should ever reach it (at 1.0 s a
#: loaded 2-core CI machine once timed out the good answer after a 429 and retried). Silent and trickling servers
#: get a short one to keep the matrix fast (above the trickle interval, 0.3 s, so that every single read is in time).
TIMEOUT = 5.0
SLOW_TIMEOUT = 0.5
SLOW_FAULTS = {"silent", "trickle"}
#: How long past ``timeout`` x attempts a trickled call may take: backoff (0.01 s) plus scheduling and client
#: set-up on a loaded 2-core machine (1.0 s was exceeded once in a full run); unbounded attempts never end.
TRICKLE_SLACK = 2.0
#: How long past ``timeout`` x attempts any other call may run before it counts as hung.
GUARD_SLACK = 3.0
#: A 429 asking for an hour must fail at once, well under this (slack for a loaded 2-core CI machine).
LONG_RETRY_AFTER_BOUND = 3.0
#: ``deadline=2.0`` with ``timeout=1.0, max_retries=5`` against a silent server must end by this: far under the
#: 6 s the attempts alone would take, with slack for a loaded 2-core CI machine.
DEADLINE = 2.0
DEADLINE_BOUND = 3.0

BACKENDS = ("cohere", "voyage", "tei", "infinity", "claude", "openai", "http-cohere", "vllm-score", "jina", "nvidia",
            "mixedbread", "pinecone", "bedrock")
MODES = ("sync", "async")
#: LLM rerankers: scores from the model's ranking, passage ids repaired (see CLAUDE_OUTCOMES).
LLM_BACKENDS = ("claude", "openai")
#: Backends on the same client library as another (httpx through HTTPWireScorer, like TEI): their slow cells
#: (silent, trickle, deadline) would time the same code again, so they run for that one representative only.
SAME_CLIENT_AS = {"http-cohere": "tei", "vllm-score": "tei", "jina": "tei", "nvidia": "tei"}


def build(backend: str, url: str, **options: Any) -> Any:
    """The backend's scorer pointed at ``url``, with the matrix's key, retries, backoff and timeout."""
    options = {"api_key": SECRET_KEY, "backoff": 0.01, "max_retries": MAX_RETRIES, "timeout": TIMEOUT, **options}
    if backend == "cohere":
        return CohereScorer(base_url=url, **options)
    if backend == "voyage":
        return VoyageScorer(base_url=f"{url}/v1", **options)
    if backend in ("tei", "infinity"):
        return HTTPRerankScorer(url, protocol=backend, **options)
    if backend == "claude":
        return ClaudeScorer(base_url=url, mode="listwise", **options)
    if backend == "openai":
        return OpenAIScorer(base_url=f"{url}/v1", mode="listwise", **options)
    if backend in ("http-cohere", "vllm-score"):
        return HTTPRerankScorer(url, protocol=backend.removeprefix("http-"), **options)
    if backend in VENDORS:
        return VENDORS[backend](base_url=url, **options)
    if backend == "bedrock":
        return BedrockScorer(endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDTESTING",
                             aws_secret_access_key=options.pop("api_key"), **options)
    raise ValueError(backend)


VENDORS = {"jina": JinaScorer, "nvidia": NVIDIAScorer, "mixedbread": MixedbreadScorer, "pinecone": PineconeScorer}


def slow_cell_runs(backend: str) -> bool:
    """Whether the slow cells (silent, trickle, deadline) run for ``backend`` (see :data:`SAME_CLIENT_AS`)."""
    return backend not in SAME_CLIENT_AS


def expected_scores(backend: str) -> list[float]:
    """The scores a healthy server leads to: the API's own scores, or Claude's rank-based ones."""
    relevance = [overlap_score(QUERY, doc) for doc in DOCS]
    if backend not in LLM_BACKENDS:
        return relevance
    order = sorted(range(len(DOCS)), key=lambda i: -relevance[i])
    return [(len(DOCS) - order.index(i)) / len(DOCS) for i in range(len(DOCS))]


# --------------------------------------------------------------------------------------------------
# The contract: one outcome per fault (and per backend where Claude documents another).


@dataclass(frozen=True)
class Outcome:
    """``error`` raised (``None``: scores returned) after exactly ``requests`` requests (``None``: any)."""

    error: type[Exception] | None
    requests: int | None = None
    #: Scores returned after a documented repair, with an LLMAnswerWarning (not the healthy scores).
    repaired: bool = False


SCORES = Outcome(None, 1)
AUTH = Outcome(ProviderAuthError, 1)
REQUEST = Outcome(ProviderRequestError, 1)
UNAVAILABLE = Outcome(ProviderUnavailableError, ATTEMPTS)
RESPONSE = Outcome(ProviderResponseError)

OUTCOMES: dict[str, Outcome] = {
    "http_400": REQUEST,
    "http_401": AUTH,
    "http_403": AUTH,
    "http_404": REQUEST,
    "http_408": UNAVAILABLE,
    "http_413": REQUEST,
    "http_422": REQUEST,
    "http_429_retry_after_0_then_ok": Outcome(None, 2),
    "http_429_retry_after_3600": Outcome(ProviderRateLimitError, 1),
    "http_500": UNAVAILABLE,
    "http_502": UNAVAILABLE,
    "http_503": UNAVAILABLE,
    "http_504": UNAVAILABLE,
    "http_520": UNAVAILABLE,
    "http_529": UNAVAILABLE,
    "connection_reset": UNAVAILABLE,
    "silent": UNAVAILABLE,
    "trickle": UNAVAILABLE,
    "truncated_json": RESPONSE,
    "html_body": RESPONSE,
    "top_level_list": RESPONSE,
    "null_body": RESPONSE,
    "results_null": RESPONSE,
    "index_float": RESPONSE,
    "index_bool": RESPONSE,
    "index_str": RESPONSE,
    "index_out_of_range": RESPONSE,
    "index_negative": RESPONSE,
    "index_duplicate": RESPONSE,
    "index_missing": RESPONSE,
    "echo_key_400": REQUEST,
    "echo_key_401": AUTH,
    "echo_key_503": UNAVAILABLE,
}

#: LLM passage ids (Claude, OpenAI) come from the model and are repaired as BaseLLMScorer documents (and
#: tests/core/test_llm_scorer.py checks): integral floats and digit strings are ids, anything else is dropped and
#: the ranking completed in input order with an LLMAnswerWarning. The id changed is always that of DOCS[1].
CLAUDE_OUTCOMES: dict[str, Outcome] = {
    "index_float": SCORES,
    "index_str": SCORES,
    "index_bool": Outcome(None, 1, repaired=True),
    "index_out_of_range": Outcome(None, 1, repaired=True),
    "index_negative": Outcome(None, 1, repaired=True),
    "index_duplicate": Outcome(None, 1, repaired=True),
    "index_missing": Outcome(None, 1, repaired=True),
}


def outcome_for(backend: str, fault: str) -> Outcome:
    if backend in LLM_BACKENDS and fault in CLAUDE_OUTCOMES:
        return CLAUDE_OUTCOMES[fault]
    return OUTCOMES[fault]


def test_every_fault_has_an_outcome() -> None:
    assert set(OUTCOMES) == set(FAULTS)
    assert set(CLAUDE_OUTCOMES) <= set(FAULTS)


# --------------------------------------------------------------------------------------------------
# Running one call with a guard, and checking it.


@dataclass
class Run:
    """How one guarded call ended."""

    value: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    hung: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class _Hung(Exception):
    pass


async def _within(coroutine: Any, seconds: float) -> Any:
    async with asyncio.timeout(seconds) as scope:
        try:
            return await coroutine
        except TimeoutError:
            if scope.expired():
                raise _Hung from None
            raise


def guarded_call(scorer: Any, mode: str, guard: float) -> Run:
    """``score`` / ``ascore`` in a daemon thread (async: in its own loop, cancelled at ``guard``).

    A call still running after ``guard`` seconds is reported as hung instead of hanging the suite; the
    thread it leaves behind ends when its server shuts down and drops the connection.
    """
    run = Run()

    def work() -> None:
        start = time.monotonic()
        try:
            if mode == "sync":
                run.value = scorer.score(QUERY, DOCS)
            else:
                run.value = asyncio.run(_within(scorer.ascore(QUERY, DOCS), guard))
        except _Hung:
            run.hung = True
        except BaseException as error:  # noqa: BLE001 - whatever escapes is the finding
            run.error = error
        finally:
            run.elapsed = time.monotonic() - start
            run.done.set()

    threading.Thread(target=work, name=f"fault-call-{mode}", daemon=True).start()
    if not run.done.wait(guard + (1.0 if mode == "async" else 0.0)):
        run.hung, run.elapsed = True, guard
    return run


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it was raised from or during, once each."""
    found: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        stack.extend([current.__cause__, current.__context__])
    return found


def describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    text = str(error).replace(SECRET_KEY, "<KEY>").replace("\n", " ")
    return f"{type(error).__module__}.{type(error).__qualname__}: {text[:160]}"


def leaks(error: BaseException | None) -> list[str]:
    """Where the API key shows in ``error`` or its chain."""
    if error is None:
        return []
    return [f"{type(e).__name__} {how}" for e in chain(error) for how, text in (("str", str(e)), ("repr", repr(e)))
            if SECRET_KEY in text]


def check(run: Run, outcome: Outcome, backend: str, requests: int, warned: bool, guard: float) -> list[str]:
    """Every way the run broke the contract (empty when it kept it)."""
    if run.hung:
        return [f"hung: no result within {guard:.1f}s ({requests} request(s) so far)"]
    problems: list[str] = []
    if outcome.error is None:
        if run.error is not None:
            problems.append(f"expected scores, got {describe(run.error)}")
        elif outcome.repaired:
            if not (isinstance(run.value, list) and len(run.value) == len(DOCS)
                    and all(isinstance(s, float) and math.isfinite(s) for s in run.value)):
                problems.append(f"expected {len(DOCS)} repaired scores, got {run.value!r}")
            if not warned:
                problems.append("repaired answer without an LLMAnswerWarning")
        elif run.value != pytest.approx(expected_scores(backend)):
            problems.append(f"expected the healthy scores, got {run.value!r}")
    elif not isinstance(run.error, outcome.error):
        got = describe(run.error) if run.error is not None else f"scores {run.value!r}"
        problems.append(f"expected {outcome.error.__name__}, got {got}")
    if outcome.requests is not None and requests != outcome.requests:
        problems.append(f"expected {outcome.requests} request(s), server saw {requests}")
    problems.extend(f"API key leaked in {where}" for where in leaks(run.error))
    return problems


def _cells() -> list[Any]:
    return [
        pytest.param(backend, fault, mode, id=f"{backend}-{fault}-{mode}")
        for backend in BACKENDS
        for fault, make in FAULTS.items()
        if make(WIRES[backend]) is not None and (fault not in SLOW_FAULTS or slow_cell_runs(backend))
        for mode in MODES
    ]


@pytest.mark.parametrize(("backend", "fault", "mode"), _cells())
def test_fault_cell(backend: str, fault: str, mode: str, recwarn: pytest.WarningsRecorder) -> None:
    outcome = outcome_for(backend, fault)
    timeout = SLOW_TIMEOUT if fault in SLOW_FAULTS else TIMEOUT
    guard = ATTEMPTS * timeout + (TRICKLE_SLACK if fault == "trickle" else GUARD_SLACK)
    with FaultServer(FAULTS[fault](WIRES[backend])) as server:
        scorer = build(backend, server.url, timeout=timeout)
        run = guarded_call(scorer, mode, guard)
        requests = server.requests_seen(outcome.requests)
    warned = any(issubclass(w.category, LLMAnswerWarning) for w in recwarn)
    if fault in SLOW_FAULTS:
        # a loaded server may not read a request before the client's timeout drops it: attempts are counted where
        # they are made (the final error says how many), and the server's count only bounds them
        problems = check(run, replace(outcome, requests=None), backend, requests, warned, guard)
        if requests > ATTEMPTS:
            problems.append(f"expected at most {ATTEMPTS} request(s), server saw {requests}")
        if run.error is not None and f"gave up after {ATTEMPTS} attempts" not in str(run.error):
            problems.append(f"expected {ATTEMPTS} attempts, got {describe(run.error)}")
    else:
        problems = check(run, outcome, backend, requests, warned, guard)

    if fault == "trickle" and not run.hung and run.elapsed > guard:
        problems.append(f"took {run.elapsed:.1f}s, over {guard:.1f}s: timeout must bound each attempt as a whole")
    if fault == "http_429_retry_after_3600" and not run.hung:
        if run.elapsed > LONG_RETRY_AFTER_BOUND:
            problems.append(f"took {run.elapsed:.1f}s to give up on Retry-After: 3600")
        if run.error is not None and str(RETRY_AFTER_LONG) not in str(run.error):
            problems.append(f"message does not name the {RETRY_AFTER_LONG}s asked for: {describe(run.error)}")
        retry_after = getattr(run.error, "retry_after", None)
        if retry_after != RETRY_AFTER_LONG:
            problems.append(f".retry_after is {retry_after!r}, expected {RETRY_AFTER_LONG}")
    assert not problems, f"{backend} {fault} {mode} ({run.elapsed:.2f}s): " + "; ".join(problems)


@pytest.mark.parametrize(("backend", "mode"), [pytest.param(b, m, id=f"{b}-{m}") for b in BACKENDS for m in MODES
                                               if slow_cell_runs(b)])
def test_deadline_bounds_the_whole_call_across_retries(backend: str, mode: str) -> None:
    guard = DEADLINE_BOUND + 0.5
    with FaultServer(always(SILENT)) as server:
        scorer = build(backend, server.url, timeout=1.0, max_retries=5, deadline=DEADLINE)
        run = guarded_call(scorer, mode, guard)
        requests = len(server.requests)
    problems = check(run, Outcome(ProviderUnavailableError), backend, requests, False, guard)
    if not run.hung and run.elapsed > DEADLINE_BOUND:
        problems.append(f"took {run.elapsed:.2f}s with deadline={DEADLINE}")
    assert not problems, f"{backend} deadline {mode} ({run.elapsed:.2f}s): " + "; ".join(problems)

