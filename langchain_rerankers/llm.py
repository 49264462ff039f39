"""LangChain glue for ``LLMRerank``: any chat model as the core's ChatProvider, called with the caller's callbacks."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_rerankers.base import RERANK_RUN_CALLBACKS, BaseRerank
from rerank_kit.adapter_support import ChatModelGlue, rerank_class
from rerank_kit.backends import backend_for_rerank_class
from rerank_kit.errors import ProviderRequestError
from rerank_kit.scorers.llm.chat import (
    ChatAnswer,
    ChatProvider,
    ChatRequest,
    as_chat_provider,
    first_token_logprobs,
    token_usage,
)

class LangChainChat:
    """A LangChain chat model as a ChatProvider: ``bind_tools`` with the tool forced where the model has it."""

    def __init__(self, llm: BaseChatModel) -> None:
        self.llm = llm
        self.provider = type(llm).__name__
        name = getattr(llm, "model_name", None) or getattr(llm, "model", None)
        self.name = name if isinstance(name, str) and name else llm._llm_type
        self.supports_tools = type(llm).bind_tools is not BaseChatModel.bind_tools

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        model: Any = self.llm
        if request.tool is not None:
            tool = request.tool
            schema = {"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}
            try:
                model = model.bind_tools([schema], tool_choice=tool.name)
            except NotImplementedError:
                raise ProviderRequestError(self.provider, f"{self.name} has no tool calling (bind_tools); "
                                                          "use structured_output='text'") from None
        if request.top_logprobs:
            model = model.bind(logprobs=True, top_logprobs=request.top_logprobs)
        callbacks = RERANK_RUN_CALLBACKS.get()  # the model's runs nest under the rerank run
        messages = [SystemMessage(request.system), HumanMessage(request.user)]
        message = await model.ainvoke(messages, config=None if callbacks is None else {"callbacks": callbacks})
        return _answer(message, request)


def _answer(message: Any, request: ChatRequest) -> ChatAnswer:
    if not isinstance(message, AIMessage):
        raise TypeError(f"the chat model answered {type(message).__name__}, not an AIMessage")
    name = request.tool.name if request.tool is not None else None
    calls = [(call.get("name"), call.get("args")) for call in message.tool_calls]
    calls += [(call.get("name"), call.get("args")) for call in message.invalid_tool_calls]
    metadata = message.response_metadata or {}
    content = message.content
    text = content if isinstance(content, str) else "".join(
        block if isinstance(block, str) else str(block.get("text", "")) for block in content
        if isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text"))
    logprobs = metadata.get("logprobs")
    return ChatAnswer(
        tool_input=next((args for called, args in calls if name is None or called == name), None),
        text=text,
        refused=bool(message.additional_kwargs.get("refusal")),
        stop_reason=metadata.get("finish_reason") or metadata.get("stop_reason"),
        usage=token_usage(message.usage_metadata or {}, input_tokens=("input_tokens",),
                          output_tokens=("output_tokens",)),
        top_logprobs=first_token_logprobs(logprobs.get("content") if isinstance(logprobs, dict) else None),
    )


def chat_provider(llm: Any) -> ChatProvider:
    """The ChatProvider for ``llm``: a LangChain chat model wrapped, a ChatProvider as it is."""
    if llm is None:
        raise ValueError("LLMRerank needs llm=<a LangChain chat model>, for example ChatOpenAI(model=...)")
    return as_chat_provider(llm, BaseChatModel, LangChainChat, "a LangChain BaseChatModel")


class _LangChainGlue(ChatModelGlue):
    """Makes ``llm`` the scorer's ChatProvider."""

    chat_provider = staticmethod(chat_provider)


#: ``LLMRerank(llm=ChatOpenAI(...), mode="listwise", top_n=5)``: any LangChain chat model as a reranker.
LLMRerank = rerank_class(BaseRerank, backend_for_rerank_class("LLMRerank"), __package__, glue=(_LangChainGlue,))
