"""Any OpenAI-compatible chat-completions server as an LLM reranker, through the official ``openai`` SDK.

OpenAI, Azure OpenAI (its ``/openai/v1`` endpoint as ``base_url``, or a ready ``AsyncAzureOpenAI``), vLLM,
Ollama, llama.cpp's server, OpenRouter and any other server speaking ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any, Optional

from pydantic import Field

from rerank_kit.errors import ProviderResponseError
from rerank_kit.options import ApiKey, api_key_field, client_field
from rerank_kit.scorers.llm.chat import (
    ChatAnswer,
    ChatRequest,
    first_token_logprobs,
    token_usage,
    translate_error,
)
from rerank_kit.scorers.llm.llm_scorer import HostedLLMOptions, HostedLLMScorer

PROVIDER = "OpenAI"
OPENAI_KEY_ENV_VARS = ("OPENAI_API_KEY",)
#: Sent when a local server (``base_url``) needs no key: the SDK refuses to start without one.
NO_KEY = "no-key"


class OpenAIChat:
    """Chat completions as a chat provider: the forced function tool, the text, refusals and log-probabilities."""

    provider = PROVIDER
    supports_tools = True

    def __init__(self, create: Callable[..., Awaitable[Any]], model: str) -> None:
        self.create = create
        self.name = model

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.tool is not None:
            tool = request.tool
            body["tools"] = [{"type": "function", "function": {
                "name": tool.name, "description": tool.description, "parameters": tool.parameters}}]
            body["tool_choice"] = {"type": "function", "function": {"name": tool.name}}
        if request.top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        return _answer(await self.create(**body), request)


def _answer(response: Any, request: ChatRequest) -> ChatAnswer:
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise ProviderResponseError(PROVIDER, f"the answer is not a chat completion ({type(response).__name__})")
    choice = choices[0]
    message = choice.message
    name = request.tool.name if request.tool is not None else None
    calls = getattr(message, "tool_calls", None) or []
    arguments = next((call.function.arguments for call in calls
                      if getattr(getattr(call, "function", None), "name", None) == name), None)
    text = getattr(message, "content", None)
    finish_reason = getattr(choice, "finish_reason", None)
    usage = getattr(response, "usage", None)
    return ChatAnswer(
        tool_input=_arguments(arguments),
        text=text if isinstance(text, str) else "",
        refused=bool(getattr(message, "refusal", None)) or finish_reason == "content_filter",
        stop_reason=finish_reason,
        usage={} if usage is None else token_usage(usage, input_tokens=("prompt_tokens",),
                                                   output_tokens=("completion_tokens",)),
        top_logprobs=first_token_logprobs(getattr(getattr(choice, "logprobs", None), "content", None)),
    )


def _arguments(arguments: Any) -> Any:
    """A tool call's arguments: the JSON object it holds, else the raw text (read like a text answer)."""
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


class OpenAIOptions(HostedLLMOptions):
    """Options of the OpenAI-compatible LLM reranking backend."""

    positional = ("model",)

    model: str = Field(default="gpt-4.1-mini", min_length=1, description="Model name as the server knows it.")
    api_key: ApiKey = api_key_field(OPENAI_KEY_ENV_VARS)
    base_url: Optional[str] = Field(
        default=None, description="Server URL ending in /v1 (vLLM, Ollama, ...); None: OPENAI_BASE_URL or OpenAI."
    )
    client: Any = client_field("openai.OpenAI")
    async_client: Any = client_field("openai.AsyncOpenAI (or AsyncAzureOpenAI)")


class OpenAIScorer(HostedLLMScorer):
    """Reranks with any chat-completions model through the ``openai`` SDK (listwise, pointwise or logprobs).

    The LLM scorer (see :class:`~rerank_kit.scorers.llm.llm_scorer.BaseLLMScorer`) on ``/chat/completions``:
    the answer comes as a forced function call, or as strict JSON text with ``structured_output="text"``
    (``"auto"`` switches to text when the server rejects tools, as vLLM without a tool parser, Ollama and
    llama.cpp models without tool support do). ``mode="logprobs"`` needs ``logprobs``/``top_logprobs``
    support. A local server given by ``base_url`` needs no key.
    """

    Options = OpenAIOptions
    provider = PROVIDER
    key_env_vars = OPENAI_KEY_ENV_VARS
    sdk = ("openai", "openai", "AsyncOpenAI")
    key_hint = "pass api_key or set OPENAI_API_KEY (a server given by base_url or OPENAI_BASE_URL needs none)"

    def _keyless(self, options: Any) -> bool:
        return options.base_url is not None or bool(os.environ.get("OPENAI_BASE_URL"))

    def _create_method(self, client: Any) -> Callable[..., Any]:
        return client.chat.completions.create

    def _provider(self, create: Callable[..., Awaitable[Any]]) -> OpenAIChat:
        return OpenAIChat(create, self.model)

    def _client_options(self) -> dict[str, Any]:
        key = self._api_key.get_secret_value() if self._api_key is not None else NO_KEY
        options: dict[str, Any] = {"api_key": key, "max_retries": 0, "timeout": self.timeout}
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the openai SDK raised (transient ones are retried by us)."""
        return translate_error(PROVIDER, exc, key=self._api_key, auth_hint="check api_key / OPENAI_API_KEY",
                               timeout=self.timeout, where=self.base_url or "the API")
