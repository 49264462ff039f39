"""LLM reranking: the Claude scorer, its prompts, answer parsing and sliding windows."""
