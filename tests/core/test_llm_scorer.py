"""The provider-neutral LLM scorer: one messy-answer suite for every provider, sync and async.

Providers: Claude (anthropic SDK, loopback Messages API), OpenAI-compatible (openai SDK, loopback chat
completions; tool calls and the text format), LangChain chat models and LlamaIndex LLMs (with and without
tool calling). Every answer, however broken, gives back every input passage exactly once, or a clear
ProviderResponseError when it names no passage at all, asked twice.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from langchain_rerankers.llm import chat_provider as langchain_chat
from llamaindex_rerankers.llm import chat_provider as llamaindex_chat
from rerank_kit import ProviderRequestError, ProviderResponseError, Reranker
from rerank_kit.scorers.llm.anthropic import ClaudeAnswerWarning, ClaudeScorer
from rerank_kit.scorers.llm.chat import ChatAnswer, ChatRequest, check_prices, cost_usd
from rerank_kit.scorers.llm.llm_scorer import LLMAnswerWarning, LLMScorer
from rerank_kit.scorers.llm.openai import OpenAIScorer
from tests import chat_completions_server as oa
from tests import messages_server as claude_api
from tests.chat_models import (
    Said,
    Script,
    ScriptedChatModel,
    ScriptedLLM,
    ToolCallingChatModel,
    ToolCallingLLM,
)
from tests.loopback import Reply, Request

QUERY = "capital of france"
TEXTS = ["cats purr", "paris is the capital of france", "rain in paris", "dogs bark"]
PROVIDERS = ["claude", "openai-tools", "openai-text", "langchain-tools", "langchain-text", "llamaindex-tools",
             "llamaindex-text"]
LOGPROB_PROVIDERS = ["openai-tools", "langchain-tools", "llamaindex-tools"]
TOOL_PROVIDERS = ["claude", *LOGPROB_PROVIDERS]
CALLS = ["sync", "async"]


def claude_handler(respond: Callable[..., Said]) -> Callable[[Request], Reply]:
    def handle(request: Request) -> Reply:
        body = request.json
        tool = (body.get("tool_choice") or {}).get("name")
        said = respond(body["system"][0]["text"], body["messages"][-1]["content"], tool)
        return claude_api.tool_call(tool, said.tool) if tool and said.tool is not None else claude_api.text(said.text)

    return handle


def openai_handler(respond: Callable[..., Said]) -> Callable[[Request], Reply]:
    def handle(request: Request) -> Reply:
        body = request.json
        tool = (body.get("tool_choice") or {}).get("function", {}).get("name")
        said = respond(body["messages"][0]["content"], oa.prompt_of(request), tool)
        if body.get("logprobs") and said.logprobs is not None:
            return oa.logprob_answer(said.logprobs)
        return oa.tool_call(tool, said.tool) if tool and said.tool is not None else oa.text(said.text)

    return handle


def build(provider: str, respond: Callable[..., Said], serve: Any, **options: Any) -> Any:
    """The provider's scorer answering with ``respond`` (fail fast: no HTTP retries)."""
    options = {"max_retries": 0, **options}
    if provider == "claude":
        return ClaudeScorer(api_key="k", base_url=serve(claude_handler(respond)).url, **options)
    if provider.startswith("openai"):
        url = serve(openai_handler(respond)).url + "/v1"
        text = "text" if provider.endswith("text") else "auto"
        return OpenAIScorer(api_key="k", base_url=url, structured_output=text, **options)
    models = {"langchain-tools": ToolCallingChatModel, "langchain-text": ScriptedChatModel,
              "llamaindex-tools": ToolCallingLLM, "llamaindex-text": ScriptedLLM}
    model = models[provider](respond=respond)
    wrap = langchain_chat if provider.startswith("langchain") else llamaindex_chat
    return LLMScorer(llm=wrap(model), **options)


def rerank(scorer: Any, call: str, texts: list[str] = TEXTS) -> list[tuple[int, float]]:
    reranker = Reranker(scorer, top_n=None)
    results = reranker.rerank(QUERY, texts) if call == "sync" else asyncio.run(reranker.arerank(QUERY, texts))
    return [(r.index, r.score) for r in results]


@dataclass(frozen=True)
class Messy:
    """Answers said in order (the last repeats) and the order expected: input indices, ``None`` (any
    complete order) or an exception type; ``warns``: whether the repair must be reported (``"tools"``: by
    providers that offered a tool and got text)."""

    answers: tuple[Said, ...]
    expected: Any
    warns: Any = True
    scores: Optional[list[float]] = field(default=None)


def both(value: Any) -> Said:
    """The same answer as a tool call and, for text-format models, as its JSON text."""
    return Said(tool=value, text=json.dumps(value))


CLEAN_RANKING = both({"ranking": [2, 3, 1, 4]})

LISTWISE: dict[str, Messy] = {
    "clean": Messy((CLEAN_RANKING,), [1, 2, 0, 3], warns=False),
    "duplicate_ids": Messy((both({"ranking": [3, 3, 1, 2, 4, 1]}),), [2, 0, 1, 3]),
    "id_out_of_range": Messy((both({"ranking": [7, 2, 1, 5, 3, 4]}),), [1, 0, 2, 3]),
    "negative_and_zero_ids": Messy((both({"ranking": [-1, 4, 0, 3, -3, 2, 1]}),), [3, 2, 1, 0]),
    "missing_ids": Messy((both({"ranking": [4, 2]}),), [3, 1, 0, 2]),
    "prose_around_the_answer": Messy(
        (Said(text='Sure! Here is my ranking:\n{"ranking": [4, 1, 2, 3]}\nLet me know if you need more.'),),
        [3, 0, 1, 2], warns="tools"),
    "bracketed_prose": Messy((Said(text="The order is [2] > [4] > [1] > [3], because..."),), [1, 3, 0, 2],
                             warns="tools"),
    "wrong_json_types": Messy((both({"ranking": ["2", 1.0, True, None, {"id": 3}, "x", [4]]}),), [1, 0, 2, 3]),
    "ranking_as_a_string": Messy((both({"ranking": "3 > 1 > 2 > 4"}),), [2, 0, 1, 3], warns=False),
    "not_json": Messy((Said(tool='{"ranking": [2, 1', text='{"ranking": [2, 1'), CLEAN_RANKING), None, warns=False),
    "no_valid_id_then_clean": Messy((both({"ranking": {"first": 2}}), CLEAN_RANKING), [1, 2, 0, 3], warns=False),
    "never_a_valid_id": Messy((both({"ranking": [0, 9, -2]}),), ProviderResponseError, warns=False),
    "empty_answer": Messy((Said(text=""),), ProviderResponseError, warns=False),
}

POINTWISE: dict[str, Messy] = {
    "clean": Messy((both({"scores": [{"id": 1, "score": 2}, {"id": 2, "score": 9}, {"id": 3, "score": 5},
                                      {"id": 4, "score": 0}]}),), [1, 2, 0, 3], warns=False,
                   scores=[9.0, 5.0, 2.0, 0.0]),
    "duplicate_ids": Messy((both({"scores": [{"id": 2, "score": 9}, {"id": 2, "score": 1}, {"id": 1, "score": 3},
                                             {"id": 3, "score": 4}, {"id": 4, "score": 2}]}),), [1, 2, 0, 3]),
    "ids_out_of_range_and_negative": Messy(
        (both({"scores": [{"id": 7, "score": 10}, {"id": -1, "score": 10}, {"id": 0, "score": 10},
                          {"id": 3, "score": 6}, {"id": 2, "score": 8}]}),), [1, 2, 0, 3],
        scores=[8.0, 6.0, 0.0, 0.0]),
    "missing_ids": Messy((both({"scores": [{"id": 4, "score": 3}]}),), [3, 0, 1, 2], scores=[3.0, 0.0, 0.0, 0.0]),
    "wrong_json_types": Messy(
        (both({"scores": [{"id": "2", "score": "7"}, {"id": 1, "score": "high"}, {"id": 3, "score": True},
                          {"id": 4, "score": None}, "junk", {"id": 3.0, "score": 2.5}]}),), [1, 2, 0, 3],
        scores=[7.0, 2.5, 0.0, 0.0]),
    "an_id_to_grade_map": Messy((both({"scores": {"1": 4, "2": 8, "3": 6, "4": 1}}),), [1, 2, 0, 3], warns=False),
    "grades_out_of_scale": Messy((both({"scores": [{"id": 1, "score": -3}, {"id": 2, "score": 11},
                                                   {"id": 3, "score": 4}, {"id": 4, "score": 1}]}),), [1, 2, 3, 0],
                                 scores=[10.0, 4.0, 1.0, 0.0]),
    "prose_around_the_answer": Messy((Said(text="Grades:\n1: 3\n2: 8\n3: 1\n4: 0\nHappy to help."),), [1, 0, 2, 3],
                                     warns="tools"),
    "never_a_valid_id": Messy((both({"scores": [{"id": 9, "score": 5}]}),), ProviderResponseError, warns=False),
}


def check(outcome: Callable[[], list[tuple[int, float]]], case: Messy, provider: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(case.expected, type):
            with pytest.raises(case.expected):
                outcome()
            return
        ranked = outcome()
    order = [index for index, _ in ranked]
    assert sorted(order) == list(range(len(TEXTS))), f"not every passage exactly once: {order}"
    if case.expected is not None:
        assert order == case.expected
    if case.scores is not None:
        assert [score for _, score in ranked] == case.scores
    repaired = [w for w in caught if issubclass(w.category, LLMAnswerWarning)]
    warning = ClaudeAnswerWarning if provider == "claude" else LLMAnswerWarning
    if case.warns is True or (case.warns == "tools" and provider in TOOL_PROVIDERS):
        assert repaired and all(issubclass(w.category, warning) for w in repaired)
    elif case.expected is not None:
        assert not repaired, [str(w.message) for w in repaired]


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", list(LISTWISE), ids=str)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_listwise_messy_answers(provider: str, case: str, call: str, serve) -> None:
    messy = LISTWISE[case]
    scorer = build(provider, Script(*messy.answers), serve)
    check(lambda: rerank(scorer, call), messy, provider)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", list(POINTWISE), ids=str)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_pointwise_messy_answers(provider: str, case: str, call: str, serve) -> None:
    messy = POINTWISE[case]
    scorer = build(provider, Script(*messy.answers), serve, mode="pointwise", batch_size=4)
    check(lambda: rerank(scorer, call), messy, provider)


def by_passage(logprobs: dict[int, Optional[dict[str, float]]]) -> Callable[..., Said]:
    """Yes/no answers per passage position (1-based, read from the passage text)."""

    def respond(system: str, prompt: str, tool: Optional[str]) -> Said:
        position = next(i for i, text in enumerate(TEXTS, 1) if f"\n{text}\n" in prompt)
        return Said(text="Yes", logprobs=logprobs[position])

    return respond


def lp(**probabilities: float) -> dict[str, float]:
    return {token.replace("_", " "): math.log(p) for token, p in probabilities.items()}


LOGPROBS: dict[str, Messy] = {
    "clean": Messy((), [1, 2, 0, 3], warns=False),
    "case_and_spaces": Messy((), [1, 2, 0, 3], warns=False),
    "yes_or_no_missing": Messy((), [1, 2, 0, 3], warns=False),
    "neither_yes_nor_no": Messy((), ProviderResponseError, warns=False),
    "no_logprobs_returned": Messy((), ProviderRequestError, warns=False),
}
LOGPROB_ANSWERS: dict[str, dict[int, Optional[dict[str, float]]]] = {
    "clean": {1: lp(Yes=0.2, No=0.8), 2: lp(Yes=0.95, No=0.05), 3: lp(Yes=0.6, No=0.4), 4: lp(Yes=0.1, No=0.9)},
    "case_and_spaces": {1: lp(_yes=0.1, _No=0.3, NO=0.4), 2: {"YES.": math.log(0.9), " no": math.log(0.1)},
                        3: lp(_Yes=0.5, no=0.5), 4: lp(y=0.01, No=0.99)},
    "yes_or_no_missing": {1: lp(No=0.6, Maybe=0.3), 2: lp(Yes=0.9, Maybe=0.1), 3: lp(Yes=0.5, No=0.4),
                          4: lp(No=0.98, Perhaps=0.01)},
    "neither_yes_nor_no": {1: lp(Maybe=0.9), 2: lp(Yes=0.9), 3: lp(Yes=0.5), 4: lp(No=0.9)},
    "no_logprobs_returned": {1: None, 2: None, 3: None, 4: None},
}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("case", list(LOGPROBS), ids=str)
@pytest.mark.parametrize("provider", LOGPROB_PROVIDERS)
def test_logprob_messy_answers(provider: str, case: str, call: str, serve) -> None:
    scorer = build(provider, by_passage(LOGPROB_ANSWERS[case]), serve, mode="logprobs")
    check(lambda: rerank(scorer, call), LOGPROBS[case], provider)
    if LOGPROBS[case].expected is not None and not isinstance(LOGPROBS[case].expected, type):
        assert all(0.0 <= score <= 1.0 for _, score in rerank(scorer, call))


def test_logprob_scores_are_p_yes_normalised_over_yes_and_no(serve) -> None:
    scorer = build("openai-tools", by_passage(LOGPROB_ANSWERS["clean"]), serve, mode="logprobs")
    assert dict(rerank(scorer, "sync")) == pytest.approx({0: 0.2, 1: 0.95, 2: 0.6, 3: 0.1})


# --- the scorer itself: windows, concurrency, usage and cost, options -----------------------------------------


class RecordingChat:
    """A ChatProvider that answers a perfect ranking after ``delay`` and records the most calls in flight."""

    name = provider = "recording"
    supports_tools = True

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.current = self.peak = self.calls = 0
        self._lock = threading.Lock()

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        with self._lock:
            self.current += 1
            self.calls += 1
            self.peak = max(self.peak, self.current)
        await asyncio.sleep(self.delay)
        with self._lock:
            self.current -= 1
        passages = oa.passages_of(request.user)
        order = sorted(range(len(passages)), key=lambda i: -int(passages[i].split()[-1]))
        grades = [{"id": i + 1, "score": int(p.split()[-1]) % 11} for i, p in enumerate(passages)]
        answer = {"ranking": [i + 1 for i in order]} if request.tool and request.tool.name == "submit_ranking" \
            else {"scores": grades}
        return ChatAnswer(tool_input=answer, usage={"input_tokens": 1000, "output_tokens": 100})


def test_disjoint_windows_run_at_once_and_overlapping_ones_in_turn() -> None:
    texts = [f"passage {i}" for i in range(40)]
    disjoint, sliding = RecordingChat(), RecordingChat()
    ranked = Reranker(LLMScorer(llm=disjoint, window_size=10, step=10), top_n=None).rerank(QUERY, texts)
    assert disjoint.calls == 4 and disjoint.peak == 4
    assert [r.index for r in ranked][:10] == list(range(9, -1, -1))  # no passage crosses a disjoint window
    Reranker(LLMScorer(llm=sliding, window_size=10, step=5), top_n=None).rerank(QUERY, texts)
    assert sliding.calls == 7 and sliding.peak == 1


def test_pointwise_batches_overlap_up_to_max_concurrency() -> None:
    chat = RecordingChat(delay=0.1)
    asyncio.run(Reranker(LLMScorer(llm=chat, mode="pointwise", batch_size=1, max_concurrency=5),
                         top_n=None).arerank(QUERY, [f"passage {i}" for i in range(10)]))
    assert chat.calls == 10 and chat.peak == 5


def test_many_queries_share_the_background_loop_concurrently() -> None:
    chat = RecordingChat(delay=0.1)
    requests = [(f"q{i}", [f"passage {j}" for j in range(3)]) for i in range(6)]
    Reranker(LLMScorer(llm=chat), top_n=1).rerank_many(requests)
    assert chat.peak == 6


def test_usage_sums_tokens_and_estimates_cost_from_given_prices() -> None:
    scorer = LLMScorer(llm=RecordingChat(delay=0), window_size=10, step=5, prices={"input": 0.4, "output": 1.6})
    Reranker(scorer, top_n=None).rerank(QUERY, [f"passage {i}" for i in range(20)])
    assert scorer.usage.last == {"input_tokens": 3000, "output_tokens": 300, "requests": 3,
                                 "cost_usd": pytest.approx(3000 * 0.4e-6 + 300 * 1.6e-6)}
    plain = LLMScorer(llm=RecordingChat(delay=0))
    Reranker(plain).rerank(QUERY, ["passage 1", "passage 2"])
    assert "cost_usd" not in plain.usage.last


def test_cost_and_price_checks() -> None:
    assert cost_usd({"input_tokens": 1_000_000, "output_tokens": 500_000}, {"input": 3, "output": 15}) == 10.5
    assert check_prices({"input": 1, "output": 2}) == {"input": 1.0, "output": 2.0}
    for bad in ({"input": 1}, {"input": 1, "output": -1}, {"input": 1, "output": "2"}, [1, 2],
                {"input": 1, "output": 2, "cached": 0.1}):
        with pytest.raises(ValueError, match="prices"):
            check_prices(bad)


@pytest.mark.parametrize(("options", "message"), [
    ({"mode": "pairwise"}, "mode"),
    ({"window_size": 10, "step": 11}, "window_size"),
    ({"structured_output": "json"}, "structured_output"),
    ({"prices": {"input": 1}}, "prices"),
    ({"pointwise_template": "{query} only"}, "passages"),
])
def test_bad_settings_fail_at_construction(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLMScorer(llm=RecordingChat(), **options)


def test_llm_must_be_a_chat_provider() -> None:
    with pytest.raises(ValueError, match="llm is required"):
        LLMScorer()
    with pytest.raises(TypeError, match="ChatProvider"):
        LLMScorer(llm=object())


def test_the_text_format_asks_for_json_and_passages_stay_escaped(serve) -> None:
    script = Script(Said(text='{"ranking": [1, 2]}'))
    scorer = build("langchain-text", script, serve, instruction="Prefer official docs.")
    Reranker(scorer).rerank(QUERY, ["<b>tag</b> & co", "plain"])
    system, prompt, tool = script.asked[0]
    assert tool is None and '{"ranking": [2, 1, 3]}' in system and system.endswith("Prefer official docs.")
    assert oa.passages_of(prompt) == ["&lt;b&gt;tag&lt;/b&gt; &amp; co", "plain"]


def test_tools_mode_on_a_model_without_tool_calling_is_a_request_error(serve) -> None:
    scorer = build("langchain-text", Script(CLEAN_RANKING), serve, structured_output="tools")
    with pytest.raises(ProviderRequestError, match="no tool calling"):
        Reranker(scorer).rerank(QUERY, TEXTS)


def test_listwise_scores_are_not_cacheable_pointwise_ones_are() -> None:
    assert LLMScorer(llm=RecordingChat()).cache_key is None
    plain = LLMScorer(llm=RecordingChat(), mode="pointwise").cache_key
    legal = LLMScorer(llm=RecordingChat(), mode="pointwise", instruction="legal").cache_key
    assert plain and legal and plain != legal
