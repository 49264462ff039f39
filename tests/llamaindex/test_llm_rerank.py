"""LlamaIndex LLMRerank with real LLMs (a CustomLLM, a FunctionCallingLLM, MockLLM, Settings.llm), and
OpenAIRerank through the openai SDK against a loopback server."""

from __future__ import annotations

import pickle
from collections.abc import Iterator

import pytest
from llama_index.core import Settings
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_rerankers import ClaudeRerank, LLMRerank, OpenAIRerank
from rerank_kit import ProviderRequestError
from rerank_kit.scorers.llm.llm_scorer import LLMAnswerWarning
from tests import chat_completions_server as oa
from tests.api_servers import SECRET_KEY, overlap_score
from tests.chat_models import Said, Script, ScriptedLLM, ToolCallingLLM

QUERY = "reset password account"
TEXTS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
BEST_FIRST = ["n2", "n1", "n0", "n3"]
SHARED = ("mode", "window_size", "step", "instruction", "top_n", "score_threshold", "max_concurrency", "on_error")


def make_nodes() -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.5) for i, t in enumerate(TEXTS)]


def ids(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


def rerank(llm: object = None, **options: object) -> LLMRerank:
    return LLMRerank(llm=llm, metadata_mode=MetadataMode.NONE, **options)


@pytest.fixture
def settings_llm() -> Iterator[None]:
    previous = Settings._llm
    Settings.llm = ScriptedLLM()
    yield
    Settings._llm = previous


@pytest.mark.parametrize("llm", [ToolCallingLLM, ScriptedLLM])
async def test_any_llm_reranks_sync_and_async(llm: type) -> None:
    reranker = rerank(llm(), top_n=None)
    out = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert ids(out) == BEST_FIRST and [n.score for n in out] == [1.0, 0.75, 0.5, 0.25]
    assert out[0].node.metadata["reranker_backend"] == llm().metadata.model_name
    assert ids(await reranker.apostprocess_nodes(make_nodes(), query_bundle=QueryBundle(QUERY))) == BEST_FIRST
    assert reranker.usage.last == {"input_tokens": 50, "output_tokens": 5, "requests": 1}


def test_a_function_calling_model_answers_through_the_forced_tool() -> None:
    script = Script(Said(tool={"ranking": [3, 2, 1, 4]}))
    out = rerank(ToolCallingLLM(respond=script), top_n=1).postprocess_nodes(make_nodes(), query_str=QUERY)
    assert ids(out) == ["n2"]
    system, _, tool = script.asked[0]
    assert tool == "submit_ranking" and "calling the submit_ranking tool" in system


def test_a_text_only_llm_gets_the_json_text_format() -> None:
    script = Script(Said(text='{"ranking": [3, 2, 1, 4]}'))
    rerank(ScriptedLLM(respond=script)).postprocess_nodes(make_nodes(), query_str=QUERY)
    prompt, _, tool = script.asked[0]
    assert tool is None and "Answer with only a JSON object" in prompt


@pytest.mark.parametrize("mode", ["pointwise", "logprobs"])
async def test_pointwise_and_logprob_modes(mode: str) -> None:
    reranker = rerank(ToolCallingLLM(), mode=mode, top_n=2, batch_size=2)
    assert ids(await reranker.apostprocess_nodes(make_nodes(), query_bundle=QueryBundle(QUERY))) == BEST_FIRST[:2]


def test_logprobs_on_an_llm_that_returns_none_is_a_clear_error() -> None:
    with pytest.raises(ProviderRequestError, match="mode='pointwise'"):
        rerank(ScriptedLLM(), mode="logprobs").postprocess_nodes(make_nodes(), query_str=QUERY)


def test_mock_llm_echoes_the_prompt_and_every_node_still_comes_back_once() -> None:
    with pytest.warns(LLMAnswerWarning):
        out = rerank(MockLLM(), top_n=None).postprocess_nodes(make_nodes(), query_str=QUERY)
    assert sorted(ids(out)) == sorted(BEST_FIRST)


@pytest.mark.parametrize("answer", ['{"ranking": [4, 4, 9, -1]}', "I think [3] is best", '{"ranking": ["2", true]}'])
def test_messy_answers_never_lose_a_node(answer: str) -> None:
    out = rerank(ScriptedLLM(respond=Script(Said(text=answer))), top_n=None).postprocess_nodes(make_nodes(),
                                                                                             query_str=QUERY)
    assert sorted(ids(out)) == sorted(BEST_FIRST)


def test_settings_llm_is_used_when_no_llm_is_given(settings_llm) -> None:
    reranker = LLMRerank(metadata_mode=MetadataMode.NONE, top_n=2)
    assert ids(reranker.postprocess_nodes(make_nodes(), query_str=QUERY)) == BEST_FIRST[:2]
    assert reranker.as_scorer().name == "scripted-llm"


def test_it_pickles_serializes_and_keeps_working() -> None:
    reranker = rerank(ToolCallingLLM(), top_n=2)
    clone = pickle.loads(pickle.dumps(reranker))
    assert ids(clone.postprocess_nodes(make_nodes(), query_str=QUERY)) == BEST_FIRST[:2]
    assert "RerankKitLLMRerank" in reranker.to_json() and "respond" not in reranker.to_json()


def test_a_wrong_llm_fails_at_construction() -> None:
    with pytest.raises(TypeError, match="LlamaIndex LLM"):
        rerank(llm="gpt-4o")


def test_the_llm_rerankers_share_claudes_parameters() -> None:
    for cls in (LLMRerank, OpenAIRerank):
        assert set(SHARED) <= set(cls.model_fields)
        assert all(cls.model_fields[n].default == ClaudeRerank.model_fields[n].default for n in SHARED)


async def test_openai_rerank_through_the_sdk(serve) -> None:
    server = serve(oa.judge(overlap_score))
    reranker = OpenAIRerank(model="qwen3", base_url=f"{server.url}/v1", api_key=SECRET_KEY, mode="logprobs",
                            top_n=2, metadata_mode=MetadataMode.NONE)
    assert ids(reranker.postprocess_nodes(make_nodes(), query_str=QUERY)) == BEST_FIRST[:2]
    assert ids(await reranker.apostprocess_nodes(make_nodes(), query_bundle=QueryBundle(QUERY))) == BEST_FIRST[:2]
    assert len(server.requests) == 8 and SECRET_KEY not in reranker.to_json()
