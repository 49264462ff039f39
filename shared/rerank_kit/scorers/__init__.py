"""Scoring backends grouped by family: remote rerank APIs, LLM reranking, local models, and wrappers.

``remote/`` (rerank APIs), ``llm/`` (LLM reranking), ``local/`` (models on this machine), ``wrappers/`` (scorers
over scorers).
"""
