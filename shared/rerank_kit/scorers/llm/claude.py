"""Claude reranking, kept importable here: it now lives in :mod:`rerank_kit.scorers.llm.anthropic`."""

from __future__ import annotations

from rerank_kit.scorers.llm.anthropic import ClaudeAnswerWarning, ClaudeOptions, ClaudeScorer

__all__ = ["ClaudeAnswerWarning", "ClaudeOptions", "ClaudeScorer"]
