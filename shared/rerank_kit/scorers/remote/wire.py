"""Rerank wire formats as small objects: request path and body, strict answer parsing, usage, error mapping.

One :class:`WireFormat` per format: the self-hosted protocols of ``HTTPRerank`` (``tei``, ``infinity``,
``cohere``, ``vllm-score``) and the vendor formats (Jina speaks ``cohere``; NVIDIA NIM, Mixedbread, Pinecone,
Bedrock have their own). The httpx scorers send ``body()`` to ``path`` and read the answer with
:meth:`WireFormat.answer`; the SDK scorers pass ``body()`` as the SDK call's keyword arguments (the names are
the JSON field names) and read the SDK's answer with :meth:`WireFormat.parse`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from rerank_kit.errors import ProviderError, ProviderResponseError
from rerank_kit.scorers.remote.batching import ChunkAnswer, checked_pair
from rerank_kit.scorers.remote.support import (
    Secret,
    TransientProviderError,
    error_for_status,
    parse_retry_after,
    redact,
)

_NOT_JSON = object()
#: Statuses that mean "this server does not speak this request": the mismatch hint is added to them.
_MISMATCH_STATUSES = (404, 405, 422)
#: Longest text Amazon Bedrock's rerank API accepts for the query and each document (characters).
BEDROCK_MAX_TEXT_CHARS = 32_000


@dataclass(frozen=True, kw_only=True)
class WireFormat:
    """One rerank wire format: where a request goes, its body, and how its answers and errors read."""

    #: Short name (``HTTPRerank``'s ``protocol``, or the vendor's).
    name: ClassVar[str] = ""
    #: How an error names an answer of this shape ("a TEI answer (protocol='tei')").
    label: ClassVar[str] = ""
    #: Where the result list lives (``None``: the answer is the list) and each result's score field.
    results_key: ClassVar[Optional[str]] = "results"
    score_key: ClassVar[str] = "relevance_score"
    #: Documents per request by default, and the request size limit in bytes (``None``: none).
    max_documents: ClassVar[int] = 1000
    max_request_bytes: ClassVar[Optional[int]] = None

    #: Names the service in every error.
    provider: str
    #: Request path, appended to the base URL.
    path: str
    #: Added to 404/405/422 errors, for a server that may speak another format.
    mismatch_hint: Optional[str] = None

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        """The JSON request body (or the SDK call's keyword arguments) for one request."""
        raise NotImplementedError

    def answer(self, status: int, headers: Any, content: bytes, count: int | None = None,
               secret: Secret | None = None) -> ChunkAnswer:
        """The scores of a 2xx answer, or the rerank-kit error for any other status."""
        try:
            body = json.loads(content)
        except ValueError:
            body = _NOT_JSON
        if not 200 <= status < 300:
            raise self.error(status, None if body is _NOT_JSON else body, content, headers, secret)
        if body is _NOT_JSON:
            raise ProviderResponseError(self.provider, "the response body is not valid JSON", status_code=status)
        return self.parse(body, count)

    def parse(self, body: Any, count: int | None = None) -> ChunkAnswer:
        """``(index, score)`` pairs and usage of a decoded answer; anything malformed is a ProviderResponseError."""
        results = self.results(body)
        if results is None:
            where = "a list" if self.results_key is None else f"an object with a {self.results_key!r} list"
            raise self._malformed(body, f"expected {where}, got {_excerpt(body)}")
        pairs: list[tuple[object, object]] = []
        for item in results:
            if not isinstance(item, dict) or "index" not in item or self.score_key not in item:
                raise self._malformed(body, f"a result is not an object with 'index' and {self.score_key!r}: "
                                            f"{_excerpt(item)}")
            pairs.append(checked_pair(self.provider, item["index"], item[self.score_key], count))
        return ChunkAnswer(pairs, self.usage(body))

    @classmethod
    def results(cls, body: Any) -> list[Any] | None:
        """The answer's result list, or ``None`` when the answer does not have this format's shape."""
        found = body if cls.results_key is None else body.get(cls.results_key) if isinstance(body, dict) else None
        return found if isinstance(found, list) else None

    @classmethod
    def recognizes(cls, body: Any) -> bool:
        """Whether ``body`` is a well-formed answer of this format."""
        results = cls.results(body)
        return bool(results) and all(isinstance(item, dict) and "index" in item and cls.score_key in item
                                     for item in results)

    def usage(self, body: Any) -> dict[str, float]:
        """The usage counts an answer reports (its ``usage`` object's numbers)."""
        return numeric_fields(body.get("usage")) if isinstance(body, dict) else {}

    def error_message(self, body: Any, content: bytes) -> str:
        """The service's own words from an error body."""
        if isinstance(body, dict):
            for key in ("error", "message", "detail"):
                value = body.get(key)
                if value:
                    nested = value.get("message") if isinstance(value, dict) else None
                    return str(nested or value)
        return content.decode("utf-8", errors="replace").strip()

    def error(self, status: int, body: Any, content: bytes, headers: Any,
              secret: Secret | None = None) -> ProviderError:
        """The rerank-kit error for an error answer (what to fix in the message, the key redacted)."""
        detail = redact(self.error_message(body, content), secret)
        if self.mismatch_hint and status in _MISMATCH_STATUSES:
            detail = f"{detail} ({self.mismatch_hint})" if detail else self.mismatch_hint
        return error_for_status(self.provider, status, detail, retry_after=parse_retry_after(headers))

    def _malformed(self, body: Any, what: str) -> ProviderResponseError:
        shape = (self.results_key, self.score_key)
        other = next((fmt for fmt in KNOWN_FORMATS if (fmt.results_key, fmt.score_key) != shape
                      and fmt.recognizes(body)), None)
        hint = f"; the answer looks like {other.label}" if other is not None else ""
        return ProviderResponseError(self.provider, f"malformed rerank response ({what}){hint}")


@dataclass(frozen=True, kw_only=True)
class TEIWire(WireFormat):
    """Text Embeddings Inference ``POST /rerank``: ``texts`` in, a bare ``[{index, score}]`` list out."""

    name, label = "tei", "a TEI answer (protocol='tei')"
    results_key, score_key = None, "score"
    #: TEI's ``--max-client-batch-size`` and ``--payload-limit`` defaults.
    max_documents, max_request_bytes = 32, 2_000_000

    provider: str = "TEI"
    path: str = "/rerank"
    truncate: bool = True
    raw_scores: bool = False

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        return {"query": query, "texts": texts, "truncate": self.truncate, "raw_scores": self.raw_scores}

    def error(self, status: int, body: Any, content: bytes, headers: Any,
              secret: Secret | None = None) -> ProviderError:
        """TEI's 424 is its backend failing on the server (out of memory, a crashed worker): retried."""
        if status == 424:
            detail = redact(self.error_message(body, content), secret)
            return TransientProviderError(self.provider, f"inference failed on the server: {detail}",
                                          status_code=status, retry_after=parse_retry_after(headers))
        return super().error(status, body, content, headers, secret)


@dataclass(frozen=True, kw_only=True)
class InfinityWire(WireFormat):
    """Infinity ``POST /rerank``: Cohere-style ``documents`` in, ``results`` and ``usage`` out."""

    name, label = "infinity", "a Cohere-style answer (protocol='cohere' or 'infinity')"
    max_documents = 2048

    provider: str = "Infinity"
    path: str = "/rerank"
    model: Optional[str] = None
    raw_scores: bool = False

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        if self.model is not None:
            body["model"] = self.model
        if self.raw_scores:
            body["raw_scores"] = True
        return body


@dataclass(frozen=True, kw_only=True)
class CohereWire(WireFormat):
    """The Cohere/Jina-compatible ``POST /v1/rerank`` of vLLM, llama.cpp, LocalAI, Xinference, Jina and others."""

    name, label = "cohere", "a Cohere-style answer (protocol='cohere' or 'infinity')"

    provider: str = "Cohere-compatible server"
    path: str = "/v1/rerank"
    model: Optional[str] = None
    max_tokens_per_doc: Optional[int] = None
    truncate_prompt_tokens: Optional[int] = None

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        return _with(body, model=self.model, max_tokens_per_doc=self.max_tokens_per_doc,
                     truncate_prompt_tokens=self.truncate_prompt_tokens)

    def usage(self, body: Any) -> dict[str, float]:
        """``usage`` (vLLM, Jina, llama.cpp) and ``meta.billed_units`` (Cohere), whichever the server sends."""
        if not isinstance(body, dict):
            return {}
        meta = body.get("meta")
        billed = numeric_fields(meta.get("billed_units")) if isinstance(meta, dict) else {}
        return {**super().usage(body), **billed}


@dataclass(frozen=True, kw_only=True)
class VLLMScoreWire(WireFormat):
    """vLLM's ``POST /score`` (also ``/v1/score``): ``text_1`` and a ``text_2`` list in, ``data[].score`` out."""

    name, label = "vllm-score", "a vLLM /score answer (protocol='vllm-score')"
    results_key, score_key = "data", "score"

    provider: str = "vLLM"
    path: str = "/score"
    model: Optional[str] = None
    truncate_prompt_tokens: Optional[int] = None

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        return _with({"text_1": query, "text_2": texts}, model=self.model,
                     truncate_prompt_tokens=self.truncate_prompt_tokens)


@dataclass(frozen=True, kw_only=True)
class NVIDIAWire(WireFormat):
    """NVIDIA NIM ``POST /v1/ranking``: ``{query: {text}, passages: [{text}]}`` in, ``rankings[].logit`` out."""

    name, label = "nvidia", "an NVIDIA NIM /v1/ranking answer (NVIDIARerank)"
    results_key, score_key = "rankings", "logit"
    max_documents = 32

    provider: str = "NVIDIA"
    path: str = "/v1/ranking"
    model: str
    truncate: Literal["END", "NONE"] = "END"

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "query": {"text": query}, "passages": [{"text": text} for text in texts],
                "truncate": self.truncate}


@dataclass(frozen=True, kw_only=True)
class MixedbreadWire(WireFormat):
    """Mixedbread ``POST /v1/reranking``: ``input`` in, ``data[].score`` and ``usage`` out."""

    name, label = "mixedbread", "a Mixedbread answer (MixedbreadRerank)"
    results_key, score_key = "data", "score"

    provider: str = "Mixedbread"
    path: str = "/v1/reranking"
    model: str

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        return {"model": self.model, "query": query, "input": texts, "top_k": len(texts), "return_input": False}


@dataclass(frozen=True, kw_only=True)
class PineconeWire(WireFormat):
    """Pinecone Inference ``POST /rerank``: documents as ``{rank_field: text}``, ``data[].score`` out."""

    name, label = "pinecone", "a Pinecone answer (PineconeRerank)"
    results_key, score_key = "data", "score"
    max_documents = 100

    provider: str = "Pinecone"
    path: str = "/rerank"
    model: str
    rank_field: str = "text"
    parameters: Optional[Mapping[str, Any]] = None

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        body = {"model": self.model, "query": query, "documents": [{self.rank_field: text} for text in texts],
                "rank_fields": [self.rank_field], "return_documents": False, "top_n": len(texts)}
        return _with(body, parameters=None if self.parameters is None else dict(self.parameters))


@dataclass(frozen=True, kw_only=True)
class BedrockWire(WireFormat):
    """Amazon Bedrock ``Rerank`` (``bedrock-agent-runtime``): inline text sources, ``results[].relevanceScore``."""

    name, label = "bedrock", "an Amazon Bedrock rerank answer (BedrockRerank)"
    score_key = "relevanceScore"

    provider: str = "Bedrock"
    path: str = "/rerank"
    model_arn: str
    additional_model_request_fields: Optional[Mapping[str, Any]] = None

    def body(self, query: str, texts: list[str]) -> dict[str, Any]:
        model = _with({"modelArn": self.model_arn}, additionalModelRequestFields=None
                      if self.additional_model_request_fields is None else dict(self.additional_model_request_fields))
        return {
            "queries": [{"type": "TEXT", "textQuery": {"text": bedrock_text(query)}}],
            "sources": [{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT",
                                                                    "textDocument": {"text": bedrock_text(text)}}}
                        for text in texts],
            "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
                "numberOfResults": len(texts), "modelConfiguration": model}},
        }

    def usage(self, body: Any) -> dict[str, float]:
        """Bedrock's answer reports no usage; its per-query price is by documents, so they are counted."""
        results = self.results(body)
        return {"documents": len(results)} if results else {}


#: Every format, in the order a malformed answer is compared against them.
KNOWN_FORMATS: tuple[type[WireFormat], ...] = (
    TEIWire, CohereWire, VLLMScoreWire, NVIDIAWire, BedrockWire, InfinityWire, MixedbreadWire, PineconeWire,
)


def bedrock_text(text: str) -> str:
    """``text`` within Bedrock's limits: at most 32,000 characters and never empty (a space stands for "")."""
    return text[:BEDROCK_MAX_TEXT_CHARS] or " "


def numeric_fields(value: Any) -> dict[str, float]:
    """The numeric entries of a usage object (``None``, booleans and nested objects left out)."""
    if not isinstance(value, dict):
        return {}
    return {key: number for key, number in value.items()
            if isinstance(number, (int, float)) and not isinstance(number, bool)}


def _with(body: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """``body`` plus each optional field that is set."""
    return {**body, **{key: value for key, value in optional.items() if value is not None}}


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:120] + "..."
