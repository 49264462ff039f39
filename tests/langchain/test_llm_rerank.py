"""LangChain LLMRerank with real chat models (ours, with and without tool calling, and langchain-core's fakes),
and OpenAIRerank through the openai SDK against a loopback server."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever

from langchain_rerankers import ClaudeRerank, LLMRerank, OpenAIRerank
from rerank_kit import ProviderRequestError
from rerank_kit.scorers.llm.llm_scorer import LLMAnswerWarning
from tests import chat_completions_server as oa
from tests.api_servers import SECRET_KEY, overlap_score
from tests.chat_models import Said, Script, ScriptedChatModel, ToolCallingChatModel

QUERY = "reset password account"
TEXTS = ["the cat", "reset my password", "how do i reset my password for my account", "python error"]
BEST_FIRST = ["doc-2", "doc-1", "doc-0", "doc-3"]
SHARED = ("mode", "window_size", "step", "instruction", "top_n", "score_threshold", "max_concurrency", "on_error")


@pytest.fixture
def documents() -> list[Document]:
    return [Document(page_content=t, metadata={"source": f"kb/{i}"}, id=f"doc-{i}") for i, t in enumerate(TEXTS)]


def ids(documents: list[Document]) -> list[str]:
    return [d.id for d in documents]


@pytest.mark.parametrize("model", [ToolCallingChatModel, ScriptedChatModel])
async def test_any_chat_model_reranks_sync_and_async(model: type, documents) -> None:
    reranker = LLMRerank(llm=model(), top_n=None)
    out = reranker.compress_documents(documents, QUERY)
    assert ids(out) == BEST_FIRST
    assert {k: out[0].metadata[k] for k in ("source", "relevance_score", "original_index", "reranker_backend")} == \
        {"source": "kb/2", "relevance_score": 1.0, "original_index": 2, "reranker_backend": model().model_name}
    assert ids(await reranker.acompress_documents(documents, QUERY)) == BEST_FIRST
    assert reranker.usage.last == {"input_tokens": 50, "output_tokens": 5, "requests": 1}


def test_a_tool_calling_model_answers_through_the_forced_tool(documents) -> None:
    script = Script(Said(tool={"ranking": [3, 2, 1, 4]}))
    LLMRerank(llm=ToolCallingChatModel(respond=script)).compress_documents(documents, QUERY)
    system, _, tool = script.asked[0]
    assert tool == "submit_ranking" and "calling the submit_ranking tool" in system


@pytest.mark.parametrize("mode", ["pointwise", "logprobs"])
async def test_pointwise_and_logprob_modes(mode: str, documents) -> None:
    reranker = LLMRerank(llm=ToolCallingChatModel(), mode=mode, top_n=2, batch_size=2)
    assert ids(await reranker.acompress_documents(documents, QUERY)) == BEST_FIRST[:2]
    assert reranker.usage.last["requests"] == (2 if mode == "pointwise" else 4)


def test_langchain_core_fake_chat_models_work_through_the_text_format(documents) -> None:
    fake = FakeListChatModel(responses=['Ranking: {"ranking": [3, 2, 1, 4]}'])
    assert ids(LLMRerank(llm=fake, top_n=None).compress_documents(documents, QUERY)) == BEST_FIRST[:3] + ["doc-3"]
    messages = FakeMessagesListChatModel(responses=[AIMessage("[2] > [3]")])
    with pytest.warns(LLMAnswerWarning, match=r"missing \[1, 4\]"):
        assert ids(LLMRerank(llm=messages, top_n=None).compress_documents(documents, QUERY)) == \
            ["doc-1", "doc-2", "doc-0", "doc-3"]
    called = AIMessage("", tool_calls=[{"name": "submit_ranking", "args": {"ranking": [4, 3, 2, 1]}, "id": "c1"}])
    generic = GenericFakeChatModel(messages=iter([called]))
    assert ids(LLMRerank(llm=generic, top_n=1).compress_documents(documents, QUERY)) == ["doc-3"]


def test_messy_answers_never_lose_a_document(documents) -> None:
    for answer in ('{"ranking": [4, 4, 9, -1]}', "no idea, sorry [3]", '{"ranking": ["2", true, 1.5]}'):
        out = LLMRerank(llm=FakeListChatModel(responses=[answer]), top_n=None).compress_documents(documents, QUERY)
        assert sorted(ids(out)) == sorted(ids(documents))


class Recorder(BaseCallbackHandler):
    """Records the chat model runs LangChain reports, with their parents."""

    def __init__(self) -> None:
        self.chat_runs: list[Any] = []
        self.rerank_runs: list[Any] = []

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if kwargs.get("name") == "LLMRerank":
            self.rerank_runs.append(run_id)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any, parent_run_id: Any = None,
                            **kwargs: Any) -> None:
        self.chat_runs.append(parent_run_id)


async def test_callbacks_reach_the_model_calls(documents) -> None:
    reranker = LLMRerank(llm=ToolCallingChatModel(), window_size=2, step=1)
    sync_recorder, async_recorder = Recorder(), Recorder()
    reranker.compress_documents(documents, QUERY, callbacks=[sync_recorder])
    await reranker.acompress_documents(documents, QUERY, callbacks=[async_recorder])
    assert len(sync_recorder.chat_runs) == len(async_recorder.chat_runs) == 3
    for recorder in (sync_recorder, async_recorder):  # the model calls nest under the rerank run
        assert set(recorder.chat_runs) == set(recorder.rerank_runs) and len(recorder.rerank_runs) == 1


class ListRetriever(BaseRetriever):
    """A first stage returning fixed documents."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.documents


def test_llm_calls_show_up_under_the_retriever_run_in_traces(documents) -> None:
    retriever = ContextualCompressionRetriever(base_compressor=LLMRerank(llm=ToolCallingChatModel(), top_n=2),
                                               base_retriever=ListRetriever(documents=documents))
    recorder = Recorder()
    assert ids(retriever.invoke(QUERY, config={"callbacks": [recorder]})) == BEST_FIRST[:2]
    assert len(recorder.chat_runs) == 1 and recorder.chat_runs[0] is not None


def test_options_and_model_can_change_after_construction(documents) -> None:
    reranker = LLMRerank(llm=ScriptedChatModel(), top_n=1)
    assert ids(reranker.compress_documents(documents, QUERY)) == ["doc-2"]
    reranker.llm = FakeListChatModel(responses=['{"ranking": [4]}'])
    assert ids(reranker.compress_documents(documents, QUERY)) == ["doc-3"]
    assert reranker.as_scorer().name == "fake-list-chat-model"


def test_it_pickles_and_keeps_working(documents) -> None:
    clone = pickle.loads(pickle.dumps(LLMRerank(llm=ToolCallingChatModel(), top_n=2)))
    assert ids(clone.compress_documents(documents, QUERY)) == BEST_FIRST[:2]
    assert "respond" not in clone.model_dump_json()


def test_a_missing_or_wrong_llm_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="llm=<a LangChain chat model>"):
        LLMRerank()
    with pytest.raises(TypeError, match="BaseChatModel"):
        LLMRerank(llm="gpt-4o")


def test_tools_forced_on_a_model_without_tool_calling_is_an_error(documents) -> None:
    with pytest.raises(ProviderRequestError, match="no tool calling"):
        LLMRerank(llm=ScriptedChatModel(), structured_output="tools").compress_documents(documents, QUERY)


def test_the_llm_rerankers_share_claudes_parameters() -> None:
    for cls in (LLMRerank, OpenAIRerank):
        assert set(SHARED) <= set(cls.model_fields)
        assert all(cls.model_fields[n].default == ClaudeRerank.model_fields[n].default for n in SHARED)


async def test_openai_rerank_through_the_sdk(serve, documents) -> None:
    server = serve(oa.judge(overlap_score))
    reranker = OpenAIRerank(model="llama3.2", base_url=f"{server.url}/v1", api_key=SECRET_KEY, top_n=2,
                            prices={"input": 1.0, "output": 2.0})
    assert ids(reranker.compress_documents(documents, QUERY)) == BEST_FIRST[:2]
    assert ids(await reranker.acompress_documents(documents, QUERY)) == BEST_FIRST[:2]
    assert reranker.usage.last["cost_usd"] == pytest.approx(200e-6 + 40e-6)
    assert SECRET_KEY not in repr(reranker) + reranker.model_dump_json()
