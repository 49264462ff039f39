"""The ``rerank-kit`` command line: ``eval`` (compare rerankers on a BEIR dataset), ``rerank`` (JSONL) and ``demo``."""
