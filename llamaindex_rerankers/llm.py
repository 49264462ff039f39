"""LlamaIndex glue for ``LLMRerank``: any LLM (``Settings.llm`` by default) as the core's ChatProvider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms import LLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput

from llamaindex_rerankers.base import BaseRerank
from rerank_kit.adapter_support import ChatModelGlue, rerank_class
from rerank_kit.backends import backend_for_rerank_class
from rerank_kit.errors import ProviderRequestError
from rerank_kit.scorers.llm.chat import (
    ChatAnswer,
    ChatProvider,
    ChatRequest,
    ChatTool,
    as_chat_provider,
    logprob_map,
    token_usage,
)


class LlamaIndexChat:
    """A LlamaIndex LLM as a ChatProvider: function calling where the model has it, ``achat`` text otherwise."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self.provider = type(llm).__name__
        self.name = llm.metadata.model_name
        self.supports_tools = isinstance(llm, FunctionCallingLLM) and llm.metadata.is_function_calling_model

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        messages = [ChatMessage(role=MessageRole.SYSTEM, content=request.system),
                    ChatMessage(role=MessageRole.USER, content=request.user)]
        if request.tool is None:
            extra = {"logprobs": True, "top_logprobs": request.top_logprobs} if request.top_logprobs else {}
            return _answer(await self.llm.achat(messages, **extra), None)
        if not self.supports_tools:
            raise ProviderRequestError(self.provider, f"{self.name} is not a function-calling model (tool "
                                                      "calling); use structured_output='text'")
        llm: Any = self.llm
        response = await llm.achat_with_tools([_SchemaTool(request.tool)], chat_history=messages, tool_required=True)
        calls = llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
        return _answer(response, next((c.tool_kwargs for c in calls if c.tool_name == request.tool.name), None))


def _answer(response: ChatResponse, tool_input: Any) -> ChatAnswer:
    return ChatAnswer(
        tool_input=tool_input,
        text=response.message.content or "",
        usage=_usage(response),
        top_logprobs=logprob_map(response.logprobs[0]) if response.logprobs else None,
    )


def _usage(response: ChatResponse) -> dict[str, float]:
    """Token counts from ``additional_kwargs`` (of the response, or of the message for a CustomLLM) or the raw reply."""
    names = {"input_tokens": ("prompt_tokens", "input_tokens"), "output_tokens": ("completion_tokens", "output_tokens")}
    found = token_usage(response.additional_kwargs or {}, **names) or \
        token_usage(response.message.additional_kwargs or {}, **names)
    raw = response.raw
    usage = raw.get("usage") if isinstance(raw, Mapping) else getattr(raw, "usage", None)
    return found or (token_usage(usage, **names) if usage is not None else {})


@dataclass
class _SchemaMetadata(ToolMetadata):
    """Tool metadata whose parameters are a JSON schema as given (no pydantic model behind it)."""

    parameters: dict[str, Any] = field(default_factory=dict)

    def get_parameters_dict(self) -> dict:
        return self.parameters


class _SchemaTool(BaseTool):
    """Our answer tool as a LlamaIndex tool: the model's arguments are read, the tool is never run."""

    def __init__(self, tool: ChatTool) -> None:
        self._metadata = _SchemaMetadata(description=tool.description, name=tool.name, fn_schema=None,
                                         parameters=tool.parameters)

    @property
    def metadata(self) -> ToolMetadata:
        return self._metadata

    def __call__(self, input: Any) -> ToolOutput:
        raise NotImplementedError("rerank-kit reads the tool call's arguments; it never runs the tool")


def chat_provider(llm: Any) -> ChatProvider:
    """The ChatProvider for ``llm``: a LlamaIndex LLM wrapped (``None``: ``Settings.llm``), a ChatProvider as it is."""
    if llm is None:
        from llama_index.core import Settings

        llm = Settings.llm
    return as_chat_provider(llm, LLM, LlamaIndexChat, "a LlamaIndex LLM")


class _LlamaIndexGlue(ChatModelGlue):
    """Makes ``llm`` (or ``Settings.llm``) the scorer's ChatProvider."""

    chat_provider = staticmethod(chat_provider)


#: ``LLMRerank(llm=OpenAI(model=...), mode="listwise", top_n=5)``: any LlamaIndex LLM as a reranker.
LLMRerank = rerank_class(BaseRerank, backend_for_rerank_class("LLMRerank"), __package__, glue=(_LlamaIndexGlue,))
