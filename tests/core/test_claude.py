"""ClaudeScorer against a scripted Messages API on 127.0.0.1, through the real anthropic SDK."""

from __future__ import annotations

import asyncio

import pytest

from rerank_kit import (
    ProviderAuthError,
    ProviderRequestError,
    ProviderResponseError,
    ProviderUnavailableError,
    Reranker,
)
from rerank_kit.scorers.llm.claude import ClaudeAnswerWarning, ClaudeScorer
from tests import messages_server as api
from tests.loopback import LoopbackServer, sequence

TEXTS = ["cats purr", "paris is the capital of france", "rain in paris", "dogs bark"]
QUERY = "capital of france"


def scorer(server: LoopbackServer, **options: object) -> ClaudeScorer:
    return ClaudeScorer(**{"api_key": "test-key", "base_url": server.url, "max_retries": 2, **options})


def indices(results: list) -> list[int]:
    return [r.index for r in results]


def test_a_tool_call_ranking_orders_results_with_rank_based_scores(serve) -> None:
    server = serve(sequence(api.ranking([2, 3, 1, 4])))
    results = Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [1, 2, 0, 3]
    assert [r.score for r in results] == [1.0, 0.75, 0.5, 0.25]


def test_the_request_forces_the_ranking_tool_and_numbers_every_passage(serve) -> None:
    server = serve(sequence(api.ranking([1, 2, 3, 4])))
    Reranker(scorer(server)).rerank(QUERY, TEXTS)
    (request,) = server.requests
    body = request.json
    assert request.path == "/v1/messages"
    assert body["model"] == ClaudeScorer.default_model_name()
    assert body["tool_choice"] == {"type": "tool", "name": "submit_ranking"}
    assert [tool["name"] for tool in body["tools"]] == ["submit_ranking"]
    assert body["tools"][0]["input_schema"]["properties"]["ranking"]["items"]["type"] == "integer"
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "temperature" not in body
    assert api.passages_in(request) == TEXTS
    assert QUERY in body["messages"][0]["content"]


def test_a_broken_permutation_is_repaired_so_every_text_appears_once(serve) -> None:
    server = serve(sequence(api.ranking([3, 3, 7, -1, 0, 2])))
    with pytest.warns(ClaudeAnswerWarning, match=r"ignored \[7, -1, 0\]; duplicates \[3\]; missing \[1, 4\]"):
        results = Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [2, 1, 0, 3]


def test_a_text_answer_without_a_tool_call_is_parsed_with_a_warning(serve) -> None:
    server = serve(sequence(api.text("Ranking: [2] > [1] > [4] > [3]")))
    with pytest.warns(ClaudeAnswerWarning, match="without calling submit_ranking"):
        results = Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [1, 0, 3, 2]


def test_an_empty_ranking_is_asked_again_then_used(serve) -> None:
    server = serve(sequence(api.ranking([]), api.ranking([4, 3, 2, 1])))
    results = Reranker(scorer(server), top_n=None).rerank(QUERY, TEXTS)
    assert indices(results) == [3, 2, 1, 0]
    assert len(server.requests) == 2


def test_an_answer_that_stays_unusable_is_a_clear_error_not_a_silent_order(serve) -> None:
    server = serve(sequence(api.ranking([])))
    with pytest.raises(ProviderResponseError, match="no usable answer in 2 attempt"):
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert len(server.requests) == 2


def test_a_refusal_is_an_unusable_answer(serve) -> None:
    server = serve(sequence(api.text("", stop_reason="refusal")))
    with pytest.raises(ProviderResponseError, match="refused"):
        Reranker(scorer(server, answer_retries=0)).rerank(QUERY, TEXTS)


def test_overloaded_529_is_retried_by_us_not_the_sdk(serve) -> None:
    server = serve(sequence(api.overloaded(), api.ranking([2, 1, 3, 4])))
    claude = scorer(server)
    results = Reranker(claude).rerank(QUERY, TEXTS)
    assert indices(results)[0] == 1
    assert len(server.requests) == 2
    assert server.requests[1].headers["x-stainless-retry-count"] == "0"


def test_overload_that_outlasts_the_retries_is_a_provider_unavailable_error(serve) -> None:
    server = serve(sequence(api.overloaded()))
    with pytest.raises(ProviderUnavailableError) as raised:
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert raised.value.status_code == 529
    assert len(server.requests) == 3


def test_a_bad_key_is_an_auth_error_and_is_not_retried(serve) -> None:
    server = serve(sequence(api.unauthorized()))
    with pytest.raises(ProviderAuthError, match="ANTHROPIC_API_KEY") as raised:
        Reranker(scorer(server)).rerank(QUERY, TEXTS)
    assert raised.value.status_code == 401
    assert len(server.requests) == 1


def test_a_rejected_request_is_a_request_error_with_a_hint_about_temperature(serve) -> None:
    server = serve(sequence(api.error(400, "invalid_request_error", "temperature is not supported")))
    with pytest.raises(ProviderRequestError, match="temperature=None"):
        Reranker(scorer(server, temperature=0.0)).rerank(QUERY, TEXTS)
    assert server.requests[0].json["temperature"] == 0.0


def test_a_hundred_candidates_are_ranked_in_overlapping_windows_of_twenty(serve) -> None:
    texts = [f"passage number {i}" for i in range(100)]
    server = serve(api.ranking_by(api.number_in))
    results = Reranker(scorer(server), top_n=None).rerank(QUERY, texts)
    sent = [[api.number_in(p) for p in api.passages_in(r)] for r in server.requests]
    assert [len(window) for window in sent] == [20] * 9
    assert sorted(sent[0]) == list(range(80, 100))
    assert sorted(indices(results)) == list(range(100))
    assert indices(results)[:10] == list(range(99, 89, -1))


def test_usage_is_summed_over_every_request_of_one_call(serve) -> None:
    server = serve(api.ranking_by(api.number_in))
    claude = scorer(server)
    Reranker(claude).rerank(QUERY, [f"passage {i}" for i in range(30)])
    assert claude.usage.last == {
        "input_tokens": 240, "output_tokens": 30, "cache_read_input_tokens": 160,
        "cache_creation_input_tokens": 0, "requests": 2,
    }
    assert claude.usage.calls == 1


def test_a_single_text_needs_no_request_in_listwise_mode(serve) -> None:
    server = serve(sequence(api.ranking([1])))
    assert indices(Reranker(scorer(server)).rerank(QUERY, ["only one"])) == [0]
    assert server.requests == []


def test_passages_are_cut_to_the_character_budget(serve) -> None:
    server = serve(sequence(api.ranking([1, 2])))
    Reranker(scorer(server, max_passage_chars=8)).rerank(QUERY, ["a" * 100, "short"])
    assert api.passages_in(server.requests[0]) == ["aaaaaaa…", "short"]


def test_instruction_and_template_shape_the_prompt(serve) -> None:
    server = serve(sequence(api.ranking([1, 2])))
    claude = scorer(server, instruction="Prefer legal sources.", listwise_template="Q={query}\n{passages}")
    Reranker(claude).rerank(QUERY, TEXTS[:2])
    body = server.requests[0].json
    assert body["system"][0]["text"].endswith("Prefer legal sources.")
    assert body["messages"][0]["content"].startswith(f"Q={QUERY}\n<passage id=\"1\">")


def test_pointwise_grades_are_the_scores_and_batches_are_sized(serve) -> None:
    texts = [f"passage number {i}" for i in range(12)]
    server = serve(api.grading_by(lambda text: api.number_in(text) % 10))
    results = Reranker(scorer(server, mode="pointwise", batch_size=5), top_n=3).rerank(QUERY, texts)
    assert [(r.index, r.score) for r in results] == [(9, 9.0), (8, 8.0), (7, 7.0)]
    assert sorted(len(api.passages_in(r)) for r in server.requests) == [2, 5, 5]
    assert {r.json["tool_choice"]["name"] for r in server.requests} == {"submit_scores"}


def test_pointwise_grades_left_out_become_zero_with_a_warning(serve) -> None:
    server = serve(sequence(api.scores({1: 4, 3: 11})))
    with pytest.warns(ClaudeAnswerWarning, match=r"missing \[2\]; clamped \[3\]"):
        results = Reranker(scorer(server, mode="pointwise"), top_n=None).rerank(QUERY, TEXTS[:3])
    assert [(r.index, r.score) for r in results] == [(2, 10.0), (0, 4.0), (1, 0.0)]


async def test_async_listwise_uses_the_async_client(serve) -> None:
    server = serve(sequence(api.overloaded(), api.ranking([4, 1, 2, 3])))
    results = await Reranker(scorer(server), top_n=2).arerank(QUERY, TEXTS)
    assert indices(results) == [3, 0]
    assert server.requests[-1].headers["x-stainless-async"].startswith("async")


async def test_async_pointwise_runs_batches_concurrently(serve) -> None:
    texts = [f"passage number {i}" for i in range(9)]
    server = serve(api.grading_by(lambda text: float(api.number_in(text))))
    results = await Reranker(scorer(server, mode="pointwise", batch_size=2, max_concurrency=3), top_n=2).arerank(
        QUERY, texts
    )
    assert indices(results) == [8, 7]
    assert len(server.requests) == 5


async def test_async_unusable_answer_is_a_clear_error(serve) -> None:
    server = serve(sequence(api.ranking([0, 99])))
    with pytest.raises(ProviderResponseError):
        await Reranker(scorer(server)).arerank(QUERY, TEXTS)


def test_only_pointwise_scores_are_cacheable() -> None:
    assert ClaudeScorer(api_key="k").cache_key is None
    plain = ClaudeScorer(api_key="k", mode="pointwise").cache_key
    legal = ClaudeScorer(api_key="k", mode="pointwise", instruction="legal").cache_key
    assert plain and legal and plain != legal
    assert ClaudeScorer.cache_by_default is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "pairwise"}, "mode"),
        ({"temperature": 2.0}, "temperature"),
        ({"window_size": 10, "step": 11}, "window_size"),
        ({"max_retries": 100}, "max_retries"),
        ({"listwise_template": "{query} only"}, "passages"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_settings_fail_at_construction(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClaudeScorer(api_key="k", **options)


def test_the_key_never_shows_in_repr() -> None:
    assert "secret" not in repr(ClaudeScorer(api_key="secret-key"))


def test_no_key_anywhere_is_an_error_at_construction(serve, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    server = serve(sequence(api.ranking([1, 2])))
    with pytest.raises(ValueError, match="pass api_key or set ANTHROPIC_API_KEY"):
        ClaudeScorer(base_url=server.url)
    assert server.requests == []


def test_one_scorer_serves_successive_event_loops(serve) -> None:
    server = serve(sequence(api.ranking([2, 1, 3, 4])))
    reranker = Reranker(scorer(server, max_retries=0), top_n=1)
    for _ in range(3):
        assert indices(asyncio.run(reranker.arerank(QUERY, TEXTS))) == [1]
    assert len(server.requests) == 3
