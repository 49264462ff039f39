"""How to build every registered backend offline in either adapter, and how each framework is called.

One :class:`Case` per registry row (``rerank_kit.backends.BACKENDS``, by ``rerank_class``) plus ``Rerank``;
a row without a case yields a case that fails, so a new backend cannot skip the contract.
"""

from __future__ import annotations

import copy
import importlib
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from rerank_kit.backends import BACKENDS
from rerank_kit.metadata import PER_CALL_KEYS
from tests import chat_completions_server as chat_completions
from tests import messages_server as api
from tests import wire_fakes
from tests.api_servers import SECRET_KEY, cohere_handler, infinity_handler, overlap_score, tei_handler, voyage_handler
from tests.chat_models import ToolCallingChatModel, ToolCallingLLM
from tests.conftest import WORDS, KeywordScorer
from tests.loopback import Handler, LoopbackServer, Reply, Request

QUERY = "reset password account"
#: (text, metadata, first-stage score); nested metadata to check deep copies.
CORPUS: list[tuple[str, dict[str, Any], float]] = [
    ("the cat and the dog", {"source": "kb/0", "tags": ["pets"], "extra": {"seen": [0]}}, 0.9),
    ("reset my password", {"source": "kb/1", "tags": ["faq"], "extra": {"seen": [1]}}, 0.8),
    ("how do i reset my password for my account", {"source": "kb/2", "tags": ["faq"], "extra": {"seen": [2]}}, 0.7),
    ("python error traceback", {"source": "kb/3", "tags": ["code"], "extra": {"seen": [3]}}, 0.6),
    ("forgot password email", {"source": "kb/4", "tags": ["faq"], "extra": {"seen": [4]}}, 0.5),
]
#: Remote calls fail fast in tests.
FAST: dict[str, Any] = {"backoff": 0.01, "max_retries": 1}


def _without_call_facts(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _without_call_facts(value) for key, value in data.items() if key not in PER_CALL_KEYS}
    if isinstance(data, list):
        return [_without_call_facts(value) for value in data]
    return data


# --- servers ------------------------------------------------------------------------------------------------


class CountingServer(LoopbackServer):
    """A loopback server that also counts the client connections currently open."""

    def __init__(self, handler: Handler) -> None:
        self.open_connections = 0
        super().__init__(handler, max_requests=1_000_000)

    def _make_handler(self) -> type:
        base, server = super()._make_handler(), self

        class Counting(base):  # type: ignore[misc, valid-type]
            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.open_connections += 1

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    with server._lock:
                        server.open_connections -= 1

        return Counting

    def wait_idle(self, timeout: float = 0.5) -> int:
        """Open connections once they drop to zero, or after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < end:
            time.sleep(0.01)
        return self.open_connections


def claude_handler(request: Request) -> Reply:
    """A listwise Messages API judge ranking each request's passages by word overlap with its query."""
    content = request.json["messages"][-1]["content"]
    prompt = content if isinstance(content, str) else "".join(block.get("text", "") for block in content)
    query = re.match(r"Query: (.*)", prompt).group(1)  # type: ignore[union-attr]
    passages = api.passages_in(request)
    order = sorted(range(len(passages)), key=lambda i: -overlap_score(query, passages[i]))
    return api.ranking([i + 1 for i in order])


def down_handler(request: Request) -> Reply:
    return Reply(503, {"message": "down"})


HANDLERS: dict[str, Callable[[], Handler]] = {
    "cohere": cohere_handler, "voyage": voyage_handler, "tei": tei_handler, "infinity": infinity_handler,
    "claude": lambda: claude_handler, "down": lambda: down_handler,
    "openai": lambda: chat_completions.judge(overlap_score),
    "vllm-rerank": wire_fakes.vllm_rerank_handler, "vllm-score": wire_fakes.vllm_score_handler,
    "jina": wire_fakes.jina_handler, "nvidia": wire_fakes.nvidia_handler, "mixedbread": wire_fakes.mixedbread_handler,
    "pinecone": wire_fakes.pinecone_handler, "bedrock": wire_fakes.bedrock_handler,
}


class Servers:
    """Loopback servers started on first use and stopped by :meth:`close`."""

    def __init__(self) -> None:
        self._started: dict[str, CountingServer] = {}
        self._lock = threading.Lock()

    def get(self, kind: str) -> CountingServer:
        with self._lock:
            if kind not in self._started:
                self._started[kind] = CountingServer(HANDLERS[kind]()).__enter__()
            return self._started[kind]

    @property
    def started(self) -> list[CountingServer]:
        return list(self._started.values())

    def close(self) -> None:
        for server in self._started.values():
            server.__exit__(None, None, None)


# --- fake embeddings ----------------------------------------------------------------------------------------


def bag_of_words(text: str) -> list[float]:
    """A deterministic embedding: word counts over the test vocabulary, plus a constant."""
    words = text.lower().split()
    return [float(words.count(word)) for word in WORDS] + [0.1]


class BagOfWordsEmbeddings(Embeddings):
    """A LangChain ``Embeddings`` over :func:`bag_of_words`."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [bag_of_words(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return bag_of_words(text)


class BagOfWordsEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model over :func:`bag_of_words`."""

    def _get_query_embedding(self, query: str) -> list[float]:
        return bag_of_words(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return bag_of_words(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return bag_of_words(text)


def keyword_score(query: str, text: str) -> float:
    """What :class:`KeywordScorer` gives ``text``."""
    return float(len(set(query.lower().split()) & set(text.lower().split())))


def cosine_score(query: str, text: str) -> float:
    """Cosine of the :func:`bag_of_words` embeddings."""
    a, b = bag_of_words(query), bag_of_words(text)
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (sum(x * x for x in a) ** 0.5 * sum(y * y for y in b) ** 0.5)


# --- frameworks ---------------------------------------------------------------------------------------------


class Framework:
    """How one adapter package is called and how its results are read."""

    name: str
    package: str

    @property
    def module(self) -> Any:
        return importlib.import_module(self.package)

    def inputs(self, corpus: Sequence[tuple[str, dict[str, Any], float]]) -> list[Any]:
        raise NotImplementedError

    def run(self, reranker: Any, items: list[Any], query: str) -> list[Any]:
        raise NotImplementedError

    async def arun(self, reranker: Any, items: list[Any], query: str) -> list[Any]:
        raise NotImplementedError

    def key(self, item: Any) -> str:
        raise NotImplementedError

    def metadata(self, item: Any) -> dict[str, Any]:
        raise NotImplementedError

    def first_stage_score(self, item: Any) -> Optional[float]:
        raise NotImplementedError

    def text(self, item: Any) -> str:
        raise NotImplementedError

    def scored_text(self, item: Any) -> str:
        """The text the scorer reads for an input item."""
        return self.text(item)

    def native_score(self, item: Any) -> Any:
        """The score the framework itself carries (LlamaIndex ``NodeWithScore.score``)."""
        return self.metadata(item)["relevance_score"]

    def snapshot(self, items: Sequence[Any]) -> list[Any]:
        """The items as data, without the facts of one call (latency, cache hit)."""
        return [_without_call_facts(item.model_dump()) for item in items]

    def dump(self, reranker: Any) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class LangChain(Framework):
    name, package = "langchain", "langchain_rerankers"

    def inputs(self, corpus):
        return [Document(page_content=text, metadata={**copy.deepcopy(meta), "relevance_score": first},
                         id=f"doc-{i}") for i, (text, meta, first) in enumerate(corpus)]

    def run(self, reranker, items, query):
        return list(reranker.compress_documents(items, query))

    async def arun(self, reranker, items, query):
        return list(await reranker.acompress_documents(items, query))

    def key(self, item):
        return item.id

    def metadata(self, item):
        return item.metadata

    def first_stage_score(self, item):
        return item.metadata["relevance_score"]

    def text(self, item):
        return item.page_content

    def dump(self, reranker):
        return reranker.model_dump_json()


class LlamaIndex(Framework):
    name, package = "llamaindex", "llamaindex_rerankers"

    def inputs(self, corpus):
        return [NodeWithScore(node=TextNode(text=text, id_=f"n{i}", metadata=copy.deepcopy(meta)), score=first)
                for i, (text, meta, first) in enumerate(corpus)]

    def run(self, reranker, items, query):
        return reranker.postprocess_nodes(items, query_str=query)

    async def arun(self, reranker, items, query):
        return await reranker.apostprocess_nodes(items, query_bundle=QueryBundle(query))

    def key(self, item):
        return item.node.node_id

    def metadata(self, item):
        return item.node.metadata

    def first_stage_score(self, item):
        return item.score

    def text(self, item):
        return item.node.text

    def scored_text(self, item):
        return item.node.get_content(metadata_mode=MetadataMode.EMBED)

    def native_score(self, item):
        return item.score

    def dump(self, reranker):
        return reranker.to_json()


FRAMEWORKS: dict[str, Framework] = {"langchain": LangChain(), "llamaindex": LlamaIndex()}


# --- cases --------------------------------------------------------------------------------------------------


@dataclass
class Env:
    """What a case needs to build a reranker: the framework, servers and pytest's ``request``."""

    framework: Framework
    servers: Servers
    request: pytest.FixtureRequest

    def cls(self, name: str) -> Any:
        return getattr(self.framework.module, name)


@dataclass(frozen=True)
class WireOption:
    """An option that shows up in the request body: assign ``value`` and read it back from ``server``."""

    name: str
    value: Any
    server: str
    read: Callable[[Request], Any] = lambda request: request.json.get("model")


@dataclass(frozen=True)
class Case:
    """How to build one backend's reranker offline: ``make(env, **options)``."""

    id: str
    rerank_class: str
    make: Optional[Callable[..., Any]]
    #: The ``reranker_backend`` every result must name, when the backend promises one.
    backend_name: Optional[str] = None
    #: ``(query, scored text) -> relevance_score``, where the backend's score is known.
    expected_score: Optional[Callable[[str, str], float]] = None
    wire_option: Optional[WireOption] = None
    #: Servers the reranker talks to (their connections must be released by ``close``).
    servers: tuple[str, ...] = field(default=())

    def build(self, env: Env, **options: Any) -> Any:
        if self.make is None:
            pytest.fail(f"registry row {self.rerank_class} has no contract case: add one to tests/contract/cases.py")
        return self.make(env, **options)

    def __repr__(self) -> str:
        return self.id


def _cross_encoder(env: Env, **options: Any) -> Any:
    path = env.request.getfixturevalue("tiny_cross_encoder")
    return env.cls("CrossEncoderRerank")(model=path, local_files_only=True, **options)


def _decoder_cross_encoder(env: Env, **options: Any) -> Any:
    path = env.request.getfixturevalue("tiny_qwen3_reranker")
    return env.cls("CrossEncoderRerank")(model=path, local_files_only=True, **options)


def _embedding(env: Env, **options: Any) -> Any:
    if env.framework.name == "langchain":
        return env.cls("EmbeddingRerank")(embeddings=BagOfWordsEmbeddings(), **options)
    return env.cls("EmbeddingRerank")(embed_model=BagOfWordsEmbedding(), **options)


def _cohere(env: Env, **options: Any) -> Any:
    url = env.servers.get("cohere").url
    return env.cls("CohereRerank")(api_key=SECRET_KEY, base_url=url, **FAST, **options)


def _voyage(env: Env, **options: Any) -> Any:
    url = env.servers.get("voyage").url
    return env.cls("VoyageRerank")(api_key=SECRET_KEY, base_url=f"{url}/v1", **FAST, **options)


def _http(protocol: str, server: str | None = None) -> Callable[..., Any]:
    def make(env: Env, **options: Any) -> Any:
        url = env.servers.get(server or protocol).url
        return env.cls("HTTPRerank")(base_url=url, protocol=protocol, api_key=SECRET_KEY, **FAST, **options)

    return make


def _vendor(rerank_class: str, url_option: str = "base_url", **given: Any) -> Callable[..., Any]:
    """A vendor backend on its wire fake (server kind: the class name without ``Rerank``, lower case)."""

    def make(env: Env, **options: Any) -> Any:
        url = env.servers.get(rerank_class.removesuffix("Rerank").lower()).url
        return env.cls(rerank_class)(**{url_option: url}, **given, **FAST, **options)

    return make


_AWS = {"region_name": "us-east-1", "aws_access_key_id": "AKIDTESTING", "aws_secret_access_key": SECRET_KEY}


def _claude(env: Env, **options: Any) -> Any:
    url = env.servers.get("claude").url
    return env.cls("ClaudeRerank")(api_key=SECRET_KEY, base_url=url, **FAST, **options)


def _openai(env: Env, **options: Any) -> Any:
    url = env.servers.get("openai").url
    return env.cls("OpenAIRerank")(api_key=SECRET_KEY, base_url=f"{url}/v1", **FAST, **options)


def _llm(env: Env, **options: Any) -> Any:
    model = ToolCallingChatModel() if env.framework.name == "langchain" else ToolCallingLLM()
    return env.cls("LLMRerank")(llm=model, **options)


def _fallback(env: Env, **options: Any) -> Any:
    down = env.cls("CohereRerank")(api_key=SECRET_KEY, base_url=env.servers.get("down").url, max_retries=0)
    return env.cls("FallbackRerank")(scorers=[down, KeywordScorer()], **options)


def _rerank(env: Env, **options: Any) -> Any:
    return env.cls("Rerank")(scorer=KeywordScorer(), **options)


CASES: tuple[Case, ...] = (
    Case("CrossEncoderRerank", "CrossEncoderRerank", _cross_encoder),
    Case("CrossEncoderRerank-decoder", "CrossEncoderRerank", _decoder_cross_encoder),
    Case("EmbeddingRerank", "EmbeddingRerank", _embedding, expected_score=cosine_score),
    Case("CohereRerank", "CohereRerank", _cohere, expected_score=overlap_score,
         wire_option=WireOption("model", "rerank-test-9", "cohere"), servers=("cohere",)),
    Case("VoyageRerank", "VoyageRerank", _voyage, expected_score=overlap_score,
         wire_option=WireOption("model", "rerank-test-9", "voyage"), servers=("voyage",)),
    Case("HTTPRerank-tei", "HTTPRerank", _http("tei"), expected_score=overlap_score,
         wire_option=WireOption("raw_scores", True, "tei", lambda request: request.json["raw_scores"]),
         servers=("tei",)),
    Case("HTTPRerank-infinity", "HTTPRerank", _http("infinity"), expected_score=overlap_score,
         wire_option=WireOption("model", "bge-test-9", "infinity"), servers=("infinity",)),
    Case("HTTPRerank-cohere", "HTTPRerank", _http("cohere", "vllm-rerank"), expected_score=overlap_score,
         wire_option=WireOption("model", "bge-test-9", "vllm-rerank"), servers=("vllm-rerank",)),
    Case("HTTPRerank-vllm-score", "HTTPRerank", _http("vllm-score"), expected_score=overlap_score,
         wire_option=WireOption("truncate_prompt_tokens", 7, "vllm-score",
                                lambda request: request.json["truncate_prompt_tokens"]), servers=("vllm-score",)),
    Case("JinaRerank", "JinaRerank", _vendor("JinaRerank", api_key=SECRET_KEY), expected_score=overlap_score,
         wire_option=WireOption("model", "jina-test-9", "jina"), servers=("jina",)),
    Case("MixedbreadRerank", "MixedbreadRerank", _vendor("MixedbreadRerank", api_key=SECRET_KEY),
         expected_score=overlap_score, wire_option=WireOption("model", "mxbai-test-9", "mixedbread"),
         servers=("mixedbread",)),
    Case("PineconeRerank", "PineconeRerank", _vendor("PineconeRerank", api_key=SECRET_KEY), expected_score=overlap_score,
         wire_option=WireOption("model", "pinecone-test-9", "pinecone"), servers=("pinecone",)),
    Case("BedrockRerank", "BedrockRerank", _vendor("BedrockRerank", "endpoint_url", **_AWS),
         expected_score=overlap_score, wire_option=WireOption("model", "rerank-test-9", "bedrock",
                                                              wire_fakes.bedrock_model), servers=("bedrock",)),
    Case("NVIDIARerank", "NVIDIARerank", _vendor("NVIDIARerank", api_key=SECRET_KEY), expected_score=overlap_score,
         wire_option=WireOption("model", "nvidia/test-9", "nvidia"), servers=("nvidia",)),
    Case("ClaudeRerank", "ClaudeRerank", _claude, wire_option=WireOption("model", "claude-test-9", "claude"),
         servers=("claude",)),
    Case("OpenAIRerank", "OpenAIRerank", _openai, wire_option=WireOption("model", "gpt-test-9", "openai"),
         servers=("openai",)),
    Case("LLMRerank", "LLMRerank", _llm),
    Case("FallbackRerank", "FallbackRerank", _fallback, backend_name="KeywordScorer", expected_score=keyword_score,
         servers=("down",)),
    Case("Rerank", "Rerank", _rerank, backend_name="KeywordScorer", expected_score=keyword_score),
)


def contract_rerank_classes() -> list[str]:
    """Every class the contract must cover: one per registry row, plus ``Rerank``."""
    return [backend.rerank_class for backend in BACKENDS] + ["Rerank"]


def contract_cases() -> list[Case]:
    """The cases of every registry row plus ``Rerank``; a row without one gets a case that fails."""
    cases: list[Case] = []
    for rerank_class in contract_rerank_classes():
        matching = [case for case in CASES if case.rerank_class == rerank_class]
        cases.extend(matching or [Case(f"{rerank_class}-MISSING", rerank_class, None)])
    return cases
