"""Claude as an LLM reranker: the Anthropic Messages API as a chat provider, and ``ClaudeScorer`` on it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal, Optional

from pydantic import Field

from rerank_kit.errors import ProviderAuthError, ProviderResponseError
from rerank_kit.options import ApiKey, api_key_field, client_field
from rerank_kit.scorers.llm.chat import ChatAnswer, ChatRequest, token_usage, translate_error
from rerank_kit.scorers.llm.llm_scorer import HostedLLMOptions, HostedLLMScorer, LLMAnswerWarning

PROVIDER = "Anthropic"
CLAUDE_KEY_ENV_VARS = ("ANTHROPIC_API_KEY",)
_KEY_HINT = "pass api_key or set ANTHROPIC_API_KEY"
USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class ClaudeAnswerWarning(LLMAnswerWarning):
    """Claude's answer needed repair: text instead of a tool call, or invalid, duplicate or missing ids."""


class AnthropicChat:
    """The Messages API as a chat provider: cached system text, the forced tool, the reply read back."""

    supports_tools = True

    def __init__(self, create: Callable[..., Awaitable[Any]], model: str, *, prompt_caching: bool) -> None:
        self.create = create
        self.name = model
        self.prompt_caching = prompt_caching

    async def complete(self, request: ChatRequest) -> ChatAnswer:
        system: dict[str, Any] = {"type": "text", "text": request.system}
        if self.prompt_caching:
            system["cache_control"] = {"type": "ephemeral"}
        body: dict[str, Any] = {
            "model": self.name,
            "max_tokens": request.max_tokens or 1024,
            "system": [system],
            "messages": [{"role": "user", "content": request.user}],
        }
        if request.tool is not None:
            tool = request.tool
            body["tools"] = [{"name": tool.name, "description": tool.description, "input_schema": tool.parameters}]
            body["tool_choice"] = {"type": "tool", "name": tool.name}
        if request.temperature is not None:
            body["extra_body"] = {"temperature": request.temperature}
        return _answer(await self.create(**body), request)


def _answer(response: Any, request: ChatRequest) -> ChatAnswer:
    content = getattr(response, "content", None)
    if not isinstance(content, list):
        raise ProviderResponseError(PROVIDER, f"the answer is not a Messages API message ({type(response).__name__})")
    name = request.tool.name if request.tool is not None else None
    tool_input = next((block.input for block in content
                       if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == name), None)
    text = "".join(getattr(block, "text", "") or "" for block in content if getattr(block, "type", None) == "text")
    stop_reason = getattr(response, "stop_reason", None)
    usage = getattr(response, "usage", None)
    return ChatAnswer(tool_input=tool_input, text=text, refused=stop_reason == "refusal", stop_reason=stop_reason,
                      usage={} if usage is None else token_usage(usage, **{f: (f,) for f in USAGE_FIELDS}))


class ClaudeOptions(HostedLLMOptions):
    """Options of the Claude reranking backend."""

    positional = ("model",)

    model: str = Field(default="claude-haiku-5-5", min_length=1, description="Claude model name.")
    mode: Literal["listwise", "pointwise"] = Field(
        default="listwise", description="'listwise' (ordering) or 'pointwise' (0-10 grades)."
    )
    api_key: ApiKey = api_key_field(CLAUDE_KEY_ENV_VARS)
    temperature: Optional[float] = Field(
        default=None, ge=0, le=1, description="Sampling temperature; None sends none (current models reject it)."
    )
    prompt_caching: bool = Field(default=True, description="Mark the fixed system prompt for prompt caching.")
    client: Any = client_field("anthropic.Anthropic")
    async_client: Any = client_field("anthropic.AsyncAnthropic")


class ClaudeScorer(HostedLLMScorer):
    """Reranks with a Claude model, answering through a forced tool call (never parsed from prose first).

    The LLM scorer (see :class:`~rerank_kit.scorers.llm.llm_scorer.BaseLLMScorer`) on the Anthropic SDK:
    listwise (RankGPT windows) or pointwise (0-10 grades); Anthropic returns no log-probabilities.
    Repaired answers warn with :class:`ClaudeAnswerWarning`; ``usage`` sums input, output and cache tokens.
    Temperature defaults to ``None`` (not sent): current Claude models reject sampling parameters.
    """

    Options = ClaudeOptions
    provider = PROVIDER
    key_env_vars = CLAUDE_KEY_ENV_VARS
    usage_fields = USAGE_FIELDS
    answer_warning = ClaudeAnswerWarning
    tool_fallback = False
    sdk = ("anthropic", "anthropic", "AsyncAnthropic")
    key_hint = _KEY_HINT

    def _create_method(self, client: Any) -> Callable[..., Any]:
        return client.messages.create

    def _provider(self, create: Callable[..., Awaitable[Any]]) -> AnthropicChat:
        return AnthropicChat(create, self.model, prompt_caching=self.prompt_caching)

    def _client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"max_retries": 0, "timeout": self.timeout}
        if self._api_key is not None:
            options["api_key"] = self._api_key.get_secret_value()
        if self.base_url is not None:
            options["base_url"] = self.base_url
        return options

    def _translate(self, exc: Exception) -> Exception:
        """The rerank-kit error for what the Anthropic SDK raised (transient ones are retried by us)."""
        if isinstance(exc, TypeError) and "authentication" in str(exc):
            return ProviderAuthError(PROVIDER, f"no API key; {_KEY_HINT}")
        hint = "" if self.temperature is None else \
            f"current models reject sampling parameters; try temperature=None with {self.model}"
        return translate_error(PROVIDER, exc, key=self._api_key, auth_hint="check api_key / ANTHROPIC_API_KEY",
                               timeout=self.timeout, where=self.base_url or "the API", request_hint=hint)
