"""LlamaIndex postprocessor that reranks with Claude (listwise orderings or pointwise grades)."""

from __future__ import annotations

import os
from typing import Any, Optional

from llama_index.core.bridge.pydantic import Field, SecretStr

from llamaindex_rerankers.base import BaseRerank
from rerank_kit.scorers.llm.claude import DEFAULT_CLAUDE_MODEL, ClaudeScorer, Mode


def _key_from_env() -> Optional[SecretStr]:
    key = os.environ.get("ANTHROPIC_API_KEY")
    return SecretStr(key) if key else None


class ClaudeRerank(BaseRerank):
    """Reranks nodes with a Claude model through a forced tool call.

    Example: ``index.as_query_engine(node_postprocessors=[ClaudeRerank(top_n=3)])``. Listwise scores are
    ``(n - rank) / n`` (best 1.0); pointwise scores are the model's 0-10 grades.
    ``postprocessor.usage`` reports input, output and cache tokens after each call.
    """

    model: str = Field(default=DEFAULT_CLAUDE_MODEL, description="Claude model name.")
    mode: Mode = Field(default="listwise", description="'listwise' (ordering) or 'pointwise' (0-10 grades).")
    api_key: Optional[SecretStr] = Field(
        default_factory=_key_from_env, description="Anthropic API key; defaults to ANTHROPIC_API_KEY."
    )
    base_url: Optional[str] = Field(default=None, description="API base URL; None uses the SDK default.")
    max_tokens: int = Field(default=1024, description="Most tokens per answer.")
    temperature: Optional[float] = Field(default=None, description="Sampling temperature; None sends none.")
    instruction: Optional[str] = Field(default=None, description="What counts as relevant in your domain.")
    listwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    pointwise_template: Optional[str] = Field(default=None, description="User prompt: {query}, {passages}, {count}.")
    window_size: int = Field(default=20, description="Passages per listwise request.")
    step: int = Field(default=10, description="How far each listwise window slides up.")
    batch_size: int = Field(default=5, description="Passages per pointwise request.")
    max_concurrency: int = Field(default=8, description="Most pointwise requests in flight.")
    max_passage_chars: Optional[int] = Field(default=2000, description="Characters kept per passage; None: all.")
    prompt_caching: bool = Field(default=True, description="Mark the fixed system prompt for prompt caching.")
    answer_retries: int = Field(default=1, description="Re-asks when an answer names no valid passage.")
    timeout: float = Field(default=60.0, description="Seconds per request.")
    max_retries: int = Field(default=2, description="SDK retries on 408/409/429/5xx/529.")
    client: Any = Field(default=None, exclude=True, description="A ready anthropic.Anthropic client.")
    async_client: Any = Field(default=None, exclude=True, description="A ready anthropic.AsyncAnthropic client.")

    @classmethod
    def class_name(cls) -> str:
        return "RerankKitClaudeRerank"

    scorer_class = ClaudeScorer
