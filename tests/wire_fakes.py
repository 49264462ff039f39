"""Loopback handlers speaking the newer rerank wire formats: the Cohere-compatible ``/v1/rerank`` as vLLM serves it,
vLLM ``/score``, Jina, NVIDIA NIM ``/v1/ranking``, Mixedbread, Pinecone Inference and Amazon Bedrock ``Rerank``.

Like :mod:`tests.api_servers`, each scores documents by :func:`~tests.api_servers.overlap_score`; each also
answers 404 with the service's error body to a request on the wrong path, so a wrong path fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api_servers import overlap_score
from tests.loopback import Handler, Reply, Request


def _ranked(query: str, documents: list[str], limit: int | None = None) -> list[tuple[int, float]]:
    scored = sorted(((i, overlap_score(query, d)) for i, d in enumerate(documents)), key=lambda p: -p[1])
    return scored if limit is None else scored[:limit]


def _tokens(query: str, documents: list[str]) -> int:
    return sum(len(query.split()) + len(document.split()) for document in documents)


def _on(paths: tuple[str, ...], answer: Callable[[Any], Any], error: Callable[[int, str], Any],
        delay: float) -> Handler:
    def handle(request: Request) -> Reply:
        if request.path not in paths:
            return Reply(404, error(404, f"no route {request.path}"))
        return Reply(200, answer(request.json), delay=delay)

    return handle


def vllm_error(status: int, message: str) -> dict[str, Any]:
    """vLLM's (OpenAI-style) error body."""
    return {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}}


def detail_error(status: int, message: str) -> dict[str, Any]:
    """A FastAPI-style ``{"detail": ...}`` error body (Jina, NVIDIA NIM, Mixedbread)."""
    return {"detail": message}


def pinecone_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"code": "INVALID_ARGUMENT", "message": message}, "status": status}


def bedrock_error(status: int, message: str) -> dict[str, Any]:
    return {"message": message}


def vllm_rerank_handler(delay: float = 0.0) -> Handler:
    """``POST /v1/rerank`` (and ``/rerank``) as vLLM answers it: Cohere-shaped results, ``usage.total_tokens``."""

    def answer(body: Any) -> Any:
        ranked = _ranked(body["query"], body["documents"], body.get("top_n") or None)
        return {"id": "rerank-1", "model": body.get("model", "BAAI/bge-reranker-v2-m3"),
                "usage": {"total_tokens": _tokens(body["query"], body["documents"])},
                "results": [{"index": i, "document": None, "relevance_score": s} for i, s in ranked]}

    return _on(("/v1/rerank", "/rerank"), answer, vllm_error, delay)


def vllm_score_handler(delay: float = 0.0) -> Handler:
    """``POST /score`` (and ``/v1/score``) as vLLM answers it: ``data[].score`` in input order."""

    def answer(body: Any) -> Any:
        texts = body["text_2"]
        return {"id": "score-1", "object": "list", "created": 0, "model": body.get("model", "BAAI/bge-reranker-v2-m3"),
                "data": [{"index": i, "object": "score", "score": overlap_score(body["text_1"], text)}
                         for i, text in enumerate(texts)],
                "usage": {"prompt_tokens": _tokens(body["text_1"], texts), "total_tokens": _tokens(body["text_1"], texts)}}

    return _on(("/score", "/v1/score"), answer, vllm_error, delay)


def jina_handler(delay: float = 0.0) -> Handler:
    """``POST /v1/rerank`` as Jina AI answers it."""

    def answer(body: Any) -> Any:
        ranked = _ranked(body["query"], body["documents"], body.get("top_n"))
        return {"model": body["model"], "usage": {"total_tokens": _tokens(body["query"], body["documents"])},
                "results": [{"index": i, "relevance_score": s} for i, s in ranked]}

    return _on(("/v1/rerank",), answer, detail_error, delay)


def nvidia_handler(delay: float = 0.0) -> Handler:
    """``POST /v1/ranking`` as a NeMo Retriever reranking NIM answers it: ``rankings[].logit``."""

    def answer(body: Any) -> Any:
        passages = [passage["text"] for passage in body["passages"]]
        ranked = _ranked(body["query"]["text"], passages)
        tokens = _tokens(body["query"]["text"], passages)
        return {"rankings": [{"index": i, "logit": s} for i, s in ranked],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    return _on(("/v1/ranking",), answer, detail_error, delay)


def mixedbread_handler(delay: float = 0.0) -> Handler:
    """``POST /v1/reranking`` as Mixedbread answers it."""

    def answer(body: Any) -> Any:
        ranked = _ranked(body["query"], body["input"], body.get("top_k"))
        tokens = _tokens(body["query"], body["input"])
        return {"usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": None},
                "model": body["model"], "object": "list", "top_k": len(ranked), "return_input": False,
                "data": [{"index": i, "score": s, "input": None, "object": "rank_result"} for i, s in ranked]}

    return _on(("/v1/reranking",), answer, detail_error, delay)


def pinecone_handler(delay: float = 0.0) -> Handler:
    """``POST /rerank`` as Pinecone Inference answers it: each document ranked by its ``rank_fields`` field."""

    def answer(body: Any) -> Any:
        field = body["rank_fields"][0]
        ranked = _ranked(body["query"], [document[field] for document in body["documents"]], body.get("top_n"))
        return {"model": body["model"], "data": [{"index": i, "score": s, "document": None} for i, s in ranked],
                "usage": {"rerank_units": 1}}

    return _on(("/rerank",), answer, pinecone_error, delay)


def bedrock_handler(delay: float = 0.0) -> Handler:
    """``POST /rerank`` as Amazon Bedrock's agent runtime answers it: ``results[].relevanceScore``."""

    def answer(body: Any) -> Any:
        texts = [source["inlineDocumentSource"]["textDocument"]["text"] for source in body["sources"]]
        limit = body["rerankingConfiguration"]["bedrockRerankingConfiguration"].get("numberOfResults")
        ranked = _ranked(body["queries"][0]["textQuery"]["text"], texts, limit)
        return {"results": [{"index": i, "relevanceScore": s} for i, s in ranked]}

    return _on(("/rerank",), answer, bedrock_error, delay)


def bedrock_model(request: Request) -> str:
    """The model id a Bedrock request names (the last part of its model ARN)."""
    configuration = request.json["rerankingConfiguration"]["bedrockRerankingConfiguration"]
    return str(configuration["modelConfiguration"]["modelArn"]).rsplit("/", 1)[-1]
