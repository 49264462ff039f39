"""OpenAIScorer against a scripted chat-completions server on 127.0.0.1, through the real openai SDK."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from rerank_kit import (
    ProviderAuthError,
    ProviderRateLimitError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    Reranker,
)
from rerank_kit.scorers.llm.llm_scorer import LLMAnswerWarning
from rerank_kit.scorers.llm.openai import OpenAIScorer
from rerank_kit.scorers.remote.io_loop import io_loop
from tests import chat_completions_server as oa
from tests.api_servers import SECRET_KEY, overlap_score
from tests.core.test_llm_scorer import QUERY, TEXTS
from tests.loopback import LoopbackServer, Reply, sequence


def scorer(server: LoopbackServer, **options: object) -> OpenAIScorer:
    return OpenAIScorer(**{"api_key": SECRET_KEY, "base_url": f"{server.url}/v1", "max_retries": 2,
                           "backoff": 0.01, **options})


def indices(results: list) -> list[int]:
    return [r.index for r in results]


def test_a_forced_function_call_ranks_the_passages(serve) -> None:
    server = serve(sequence(oa.ranking([2, 3, 1, 4])))
    results = Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [1, 2, 0, 3] and [r.score for r in results] == [1.0, 0.75, 0.5, 0.25]
    (request,) = server.requests
    body = request.json
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert body["model"] == "gpt-4.1-mini" and body["max_tokens"] == 1024 and "temperature" not in body
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "submit_ranking"}}
    assert body["tools"][0]["function"]["parameters"]["properties"]["ranking"]["items"]["type"] == "integer"
    assert oa.passages_in(request) == TEXTS
    assert request.headers["x-stainless-retry-count"] == "0"


def test_pointwise_grades_through_a_function_call(serve) -> None:
    server = serve(sequence(oa.scores({1: 1, 2: 9, 3: 4, 4: 0})))
    results = Reranker(scorer(server, mode="pointwise"), top_n=2).rerank(QUERY, TEXTS)
    assert [(r.index, r.score) for r in results] == [(1, 9.0), (2, 4.0)]
    assert server.requests[0].json["tool_choice"]["function"]["name"] == "submit_scores"


def test_arguments_that_are_not_json_are_read_as_text(serve) -> None:
    server = serve(sequence(oa.tool_call("submit_ranking", '{"ranking": [4, 1, 3, 2')))
    assert indices(Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)) == [3, 0, 2, 1]


def test_the_text_format_sends_no_tools_and_parses_the_json(serve) -> None:
    server = serve(sequence(oa.text('```json\n{"ranking": [4, 3, 2, 1]}\n```')))
    results = Reranker(scorer(server, structured_output="text"), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [3, 2, 1, 0]
    body = server.requests[0].json
    assert "tools" not in body and '{"ranking": [2, 1, 3]}' in body["messages"][0]["content"]


def test_auto_switches_to_text_once_the_server_rejects_tools(serve) -> None:
    server = serve(oa.judge(overlap_score, tools=False))
    openai_scorer = scorer(server)
    with pytest.warns(LLMAnswerWarning, match="rejected tool calling"):
        first = Reranker(openai_scorer, top_n=1).rerank(QUERY, TEXTS)
    assert indices(first) == [1]
    assert ["tools" in r.json for r in server.requests] == [True, False]
    asyncio.run(Reranker(openai_scorer).arerank(QUERY, TEXTS))
    assert ["tools" in r.json for r in server.requests] == [True, False, False]


def test_tools_forced_on_a_server_without_them_is_a_request_error(serve) -> None:
    server = serve(oa.judge(overlap_score, tools=False))
    with pytest.raises(ProviderRequestError, match="tool"):
        Reranker(scorer(server, structured_output="tools")).rerank(QUERY, TEXTS)
    assert len(server.requests) == 1


def test_another_rejected_request_is_not_taken_for_missing_tools(serve) -> None:
    server = serve(sequence(oa.error(404, "The model `gpt-x` does not exist", code="model_not_found")))
    with pytest.raises(ProviderRequestError, match="not found"):
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert len(server.requests) == 1


def test_logprobs_mode_asks_one_token_with_alternatives_per_passage(serve) -> None:
    server = serve(oa.judge(overlap_score))
    results = Reranker(scorer(server, mode="logprobs"), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results)[0] == 1 and all(0 < r.score < 1 for r in results)
    assert len(server.requests) == 4
    body = server.requests[0].json
    assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 5, 1)
    assert "tools" not in body and "yes or no" in oa.prompt_of(server.requests[0])


def test_an_endpoint_without_logprobs_is_a_request_error_that_says_so(serve) -> None:
    server = serve(sequence(oa.text("Yes")))
    with pytest.raises(ProviderRequestError, match="mode='pointwise'"):
        Reranker(scorer(server, mode="logprobs")).rerank(QUERY, TEXTS)


def test_429_with_retry_after_is_waited_for_by_us_not_the_sdk(serve) -> None:
    server = serve(sequence(oa.rate_limited("0"), oa.ranking([2, 1, 3, 4])))
    assert indices(Reranker(scorer(server)).rerank(QUERY, TEXTS))[0] == 1
    assert len(server.requests) == 2
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "0"]


def test_429_asking_for_an_hour_fails_at_once(serve) -> None:
    server = serve(sequence(oa.rate_limited("3600")))
    with pytest.raises(ProviderRateLimitError) as raised:
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert raised.value.retry_after == 3600 and len(server.requests) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_unavailable(serve, status: int) -> None:
    server = serve(sequence(oa.server_error(status)))
    with pytest.raises(ProviderUnavailableError) as raised:
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert raised.value.status_code == status and len(server.requests) == 3


@pytest.mark.parametrize("body", [b'{"id": "chatcmpl-1", "choices": [{"mess', b"null", b"[]", b'{"choices": null}',
                                  b"<html>502 Bad Gateway</html>"])
def test_malformed_json_is_a_response_error(serve, body: bytes) -> None:
    server = serve(sequence(Reply(200, raw=body)))
    with pytest.raises(ProviderResponseError):
        Reranker(scorer(server)).rerank(QUERY, TEXTS)


def test_a_refusal_is_asked_again_then_a_response_error(serve) -> None:
    server = serve(sequence(oa.refusal()))
    with pytest.raises(ProviderResponseError, match="refused"):
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert len(server.requests) == 2


def test_a_refusal_then_an_answer_is_used(serve) -> None:
    server = serve(sequence(oa.text("", finish_reason="content_filter"), oa.ranking([4, 3, 2, 1])))
    assert indices(Reranker(scorer(server), top_n=1).rerank(QUERY, TEXTS)) == [3]


def test_a_bad_key_is_an_auth_error_without_the_key(serve) -> None:
    server = serve(sequence(oa.error(401, f"Incorrect API key provided: {SECRET_KEY}", code="invalid_api_key")))
    with pytest.raises(ProviderAuthError, match="OPENAI_API_KEY") as raised:
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert SECRET_KEY not in str(raised.value) and SECRET_KEY not in repr(raised.value)
    assert len(server.requests) == 1


def test_usage_and_cost_are_summed_per_call(serve) -> None:
    server = serve(oa.judge(overlap_score))
    openai_scorer = scorer(server, window_size=4, step=2, prices={"input": 0.5, "output": 2.0})
    Reranker(openai_scorer).rerank(QUERY, [f"paris {i}" for i in range(6)])
    assert openai_scorer.usage.last == {"input_tokens": 400, "output_tokens": 40, "requests": 2,
                                        "cost_usd": pytest.approx(400 * 0.5e-6 + 40 * 2.0e-6)}


def test_a_local_server_needs_no_key_but_openai_does(serve, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIScorer()
    server = serve(sequence(oa.ranking([1, 2])))
    Reranker(OpenAIScorer("llama3.2", base_url=f"{server.url}/v1")).rerank(QUERY, TEXTS[:2])
    assert server.requests[0].json["model"] == "llama3.2"
    assert server.requests[0].headers["authorization"] == "Bearer no-key"


def test_the_key_and_url_come_from_the_environment(serve, monkeypatch) -> None:
    server = serve(sequence(oa.ranking([1, 2])))
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    openai_scorer = OpenAIScorer()
    assert "env-key" not in repr(openai_scorer)
    Reranker(openai_scorer).rerank(QUERY, TEXTS[:2])
    assert server.requests[0].headers["authorization"] == "Bearer env-key"


def test_ready_sync_and_async_clients_are_used(serve) -> None:
    server = serve(sequence(oa.ranking([2, 1])))
    client = openai.OpenAI(api_key="k", base_url=f"{server.url}/v1", max_retries=0)
    assert indices(Reranker(OpenAIScorer(client=client), top_n=1).rerank(QUERY, TEXTS[:2])) == [1]
    assert server.requests[-1].headers["x-stainless-async"] == "false"

    async def run() -> list:
        async_client = openai.AsyncOpenAI(api_key="k", base_url=f"{server.url}/v1", max_retries=0)
        async with async_client:
            return await Reranker(OpenAIScorer(async_client=async_client), top_n=1).arerank(QUERY, TEXTS[:2])

    assert indices(asyncio.run(run())) == [1]
    assert server.requests[-1].headers["x-stainless-async"].startswith("async")


def test_each_event_loop_gets_a_client_closed_with_the_loop(serve) -> None:
    server = serve(sequence(oa.ranking([2, 1, 3, 4])))
    openai_scorer = scorer(server, max_retries=0)
    reranker = Reranker(openai_scorer, top_n=1)
    answers = [asyncio.run(reranker.arerank(QUERY, TEXTS)) for _ in range(3)] + [reranker.rerank(QUERY, TEXTS)]
    assert [indices(answer) for answer in answers] == [[1]] * 4
    assert openai_scorer._async_clients.loops() == [io_loop()]  # the clients of the finished loops are closed


def test_temperature_is_sent_when_set(serve) -> None:
    server = serve(sequence(oa.ranking([1, 2])))
    Reranker(scorer(server, temperature=0.0, max_tokens=64)).rerank(QUERY, TEXTS[:2])
    body = server.requests[0].json
    assert (body["temperature"], body["max_tokens"]) == (0.0, 64)
    assert json.loads(json.dumps(body))["tools"][0]["type"] == "function"
