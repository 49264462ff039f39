"""Real framework chat models for tests, answering from a script or a perfect judge: no network, no mocks.

LangChain: :class:`ScriptedChatModel` (a ``BaseChatModel`` without tool calling) and
:class:`ToolCallingChatModel` (with ``bind_tools``). LlamaIndex: :class:`ScriptedLLM` (a ``CustomLLM``,
text only) and :class:`ToolCallingLLM` (a ``FunctionCallingLLM``). Each asks ``respond(system, prompt,
tool)`` what to say (a :class:`Said`): ``tool`` is the forced tool's name when one is offered.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    LogProb,
    MessageRole,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field

from tests.api_servers import overlap_score
from tests.chat_completions_server import verdict

#: Tokens every scripted answer reports.
INPUT_TOKENS, OUTPUT_TOKENS = 50, 5
_ids = itertools.count(1)


@dataclass(frozen=True)
class Said:
    """One answer: the tool call's arguments (a str that is not JSON stays a str), the text, yes/no log-probs."""

    tool: Any = None
    text: str = ""
    logprobs: Optional[dict[str, float]] = None


Respond = Callable[[str, str, Optional[str]], Said]


class Script:
    """Says ``answers`` in order, repeating the last; records each (system, prompt, tool) it was asked."""

    def __init__(self, *answers: Said) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str, Optional[str]]] = []
        self._lock = threading.Lock()

    def __call__(self, system: str, prompt: str, tool: Optional[str]) -> Said:
        with self._lock:
            self.asked.append((system, prompt, tool))
            return self.answers[min(len(self.asked), len(self.answers)) - 1]


def overlap_judge(system: str, prompt: str, tool: Optional[str]) -> Said:
    """A perfect judge by word overlap (as the rerank API fakes score), in whichever form is asked."""
    answer = verdict(system, prompt, overlap_score)
    if isinstance(answer, float):
        return Said(text="Yes", logprobs={"Yes": math.log(answer), "No": math.log(1 - answer)})
    return Said(tool=answer if tool else None, text=json.dumps(answer))


# --- LangChain --------------------------------------------------------------------------------------------


class ScriptedChatModel(BaseChatModel):
    """A LangChain chat model without tool calling: answers ``respond(...)``'s text (or its tool call, if any)."""

    respond: Callable[..., Said] = Field(default=overlap_judge, exclude=True)
    model_name: str = "scripted-chat"

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def _generate(self, messages: list[BaseMessage], stop: Optional[list[str]] = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        tool = kwargs.get("tool_choice") if kwargs.get("tools") else None
        said = self.respond(str(messages[0].content), str(messages[-1].content), tool)
        return ChatResult(generations=[ChatGeneration(message=ai_message(said, tool, kwargs.get("logprobs")))])


class ToolCallingChatModel(ScriptedChatModel):
    """:class:`ScriptedChatModel` with ``bind_tools``: a forced tool is answered with a tool call."""

    model_name: str = "scripted-tools"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Optional[str] = None, **kwargs: Any) -> Any:
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)


def ai_message(said: Said, tool: Optional[str], logprobs: bool = False) -> AIMessage:
    """``said`` as LangChain's chat models answer: tool calls (invalid ones when not JSON), usage, log-probs."""
    usage = {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}
    metadata: dict[str, Any] = {"finish_reason": "stop"}
    if logprobs and said.logprobs is not None:
        entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in said.logprobs.items()]
        metadata["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}] if entries else []}
    calls: dict[str, Any] = {}
    if tool is not None and said.tool is not None:
        call_id = f"call_{next(_ids)}"
        if isinstance(said.tool, str):
            calls["invalid_tool_calls"] = [{"name": tool, "args": said.tool, "id": call_id, "error": "not JSON",
                                            "type": "invalid_tool_call"}]
        else:
            calls["tool_calls"] = [{"name": tool, "args": said.tool, "id": call_id, "type": "tool_call"}]
    text = "" if calls else said.text
    return AIMessage(content=text, usage_metadata=usage, response_metadata=metadata, **calls)


# --- LlamaIndex -------------------------------------------------------------------------------------------


class ScriptedLLM(CustomLLM):
    """A LlamaIndex ``CustomLLM`` (text completion only): ``respond(prompt, prompt, None)``'s text."""

    respond: Callable[..., Said] = Field(default=overlap_judge, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted-llm")

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        said = self.respond(prompt, prompt, None)
        return CompletionResponse(text=said.text, additional_kwargs={"prompt_tokens": INPUT_TOKENS,
                                                                     "completion_tokens": OUTPUT_TOKENS})

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        yield self.complete(prompt, formatted, **kwargs)


class ToolCallingLLM(FunctionCallingLLM):
    """A LlamaIndex ``FunctionCallingLLM``: forced tools answered with tool calls, log-probs when asked."""

    respond: Callable[..., Said] = Field(default=overlap_judge, exclude=True)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted-fc", is_chat_model=True, is_function_calling_model=True)

    def _prepare_chat_with_tools(self, tools: Sequence[Any], user_msg: Any = None,
                                 chat_history: Optional[list[ChatMessage]] = None, verbose: bool = False,
                                 allow_parallel_tool_calls: bool = False, tool_required: bool = False,
                                 **kwargs: Any) -> dict[str, Any]:
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(user_msg if isinstance(user_msg, ChatMessage) else ChatMessage(content=user_msg))
        return {"messages": messages, "tools": [tool.metadata.to_openai_tool() for tool in tools],
                "tool_required": tool_required}

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        tools = kwargs.get("tools") or []
        tool = tools[0]["function"]["name"] if tools else None
        said = self.respond(messages[0].content or "", messages[-1].content or "", tool)
        extra: dict[str, Any] = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS}
        if tool is not None and said.tool is not None:
            extra["tool_calls"] = [{"id": f"call_{next(_ids)}", "name": tool, "arguments": said.tool}]
        logprobs = None
        if kwargs.get("logprobs") and said.logprobs is not None:
            logprobs = [[LogProb(token=t, logprob=lp) for t, lp in said.logprobs.items()]]
        content = "" if "tool_calls" in extra else said.text
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=content),
                            additional_kwargs=extra, logprobs=logprobs)

    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self.chat(messages, **kwargs)

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        selections = []
        for call in response.additional_kwargs.get("tool_calls", []):
            arguments = call["arguments"]
            if isinstance(arguments, str):  # as LlamaIndex's OpenAI LLM does with arguments that are not JSON
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {}
            if not isinstance(arguments, dict):
                arguments = {}
            selections.append(ToolSelection(tool_id=call["id"], tool_name=call["name"], tool_kwargs=arguments))
        if not selections and error_on_no_tool_call:
            raise ValueError("no tool call in the response")
        return selections

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text=self.chat([ChatMessage(content=prompt)]).message.content or "")

    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.complete(prompt, formatted, **kwargs)

    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError
