"""The backend registry: the one list of backends that the package exports, the CLI and both adapters read.

Adding a backend is one scorer module (with its ``Options`` model) plus one row here; the adapters build
their ``<Name>Rerank`` classes from the row, the CLI parses ``KIND[:VALUE]`` specs from it, and
``rerank-kit backends`` / :func:`available_backends` list it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Optional

from rerank_kit._optional import installed
from rerank_kit.options import BackendOptions
from rerank_kit.scorer import Scorer


@dataclass(frozen=True)
class Backend:
    """One backend: names, where its scorer lives, what to install, and how the CLI spells it."""

    #: CLI spec kind (``cohere:MODEL``); ``None`` for backends the CLI cannot build (wrappers).
    name: Optional[str]
    #: Name of the adapters' class (``CohereRerank`` in both ``langchain_rerankers`` and ``llamaindex_rerankers``).
    rerank_class: str
    #: ``module:ClassName`` of the scorer, imported only when used.
    scorer_path: str
    #: The pip extra that installs its dependencies (``None``: nothing to install).
    extra: Optional[str]
    #: Modules that must import for the backend to work.
    requires: tuple[str, ...]
    #: One line for listings.
    description: str
    #: Which option a CLI spec's ``VALUE`` sets.
    spec_option: str = "model"
    #: Whether a CLI spec must give a ``VALUE``.
    spec_value_required: bool = False
    #: Scorer attributes the adapters' class exposes read-only (``FallbackRerank.last_scorer_name``).
    scorer_attributes: tuple[str, ...] = ()
    #: The adapter submodule defining the class, for a backend that needs framework glue (``.llm``: the
    #: framework's chat model as the ``llm`` option); ``None``: the class is built from this row alone.
    adapter_module: Optional[str] = None

    @cached_property
    def scorer_class(self) -> type[Scorer]:
        """The scorer class (imports its module, never its optional dependency)."""
        module, _, name = self.scorer_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def options_class(self) -> type[BackendOptions]:
        """The backend's options model, shared by the scorer and both adapters."""
        return self.scorer_class.Options

    @property
    def scorer_name(self) -> str:
        """The scorer class's name, as ``rerank_kit`` exports it."""
        return self.scorer_path.partition(":")[2]

    @property
    def default_model(self) -> Optional[str]:
        return self.scorer_class.default_model_name()

    @property
    def key_env_vars(self) -> tuple[str, ...]:
        return tuple(getattr(self.scorer_class, "key_env_vars", ()))

    @property
    def installed(self) -> bool:
        """Whether every module the backend needs can be imported."""
        return all(installed(module) for module in self.requires)

    @property
    def install_command(self) -> str:
        return f'pip install "rerank-kit[{self.extra}]"' if self.extra else "(included)"

    def build_scorer(self, options: BackendOptions) -> Scorer:
        """The scorer for validated ``options``."""
        return self.scorer_class.from_options(options)

    def row(self) -> dict[str, Any]:
        """What :func:`available_backends` reports for this backend."""
        return {
            "name": self.name or self.rerank_class,
            "rerank_class": self.rerank_class,
            "scorer_class": self.scorer_name,
            "installed": self.installed,
            "install": self.install_command,
            "default_model": self.default_model,
            "key_env_vars": list(self.key_env_vars),
            "description": self.description,
        }


BACKENDS: tuple[Backend, ...] = (
    Backend("cross-encoder", "CrossEncoderRerank", "rerank_kit.scorers.local.cross_encoder:CrossEncoderScorer",
            "cross-encoder", ("sentence_transformers", "torch"),
            "Local cross-encoder (sentence-transformers) or decoder reranker (Qwen3-Reranker, mxbai-rerank-v2, "
            "bge-reranker-v2-gemma): reads query and passage together; the accurate tier."),
    Backend("embedding", "EmbeddingRerank", "rerank_kit.scorers.local.embedding:EmbeddingScorer",
            "embedding", ("sentence_transformers", "torch"),
            "Cosine similarity of embeddings (a local model or your framework's embeddings); the cheap tier."),
    Backend("cohere", "CohereRerank", "rerank_kit.scorers.remote.cohere:CohereScorer", "cohere", ("cohere",),
            "Cohere Rerank API (v2) through the official SDK."),
    Backend("voyage", "VoyageRerank", "rerank_kit.scorers.remote.voyage:VoyageScorer", "voyage", ("voyageai",),
            "Voyage AI rerankers through the official SDK."),
    Backend("http", "HTTPRerank", "rerank_kit.scorers.remote.http:HTTPRerankScorer", "http", ("httpx",),
            "A self-hosted rerank server: TEI, Infinity, the Cohere-compatible /v1/rerank (vLLM, llama.cpp, LocalAI, "
            "Xinference) or vLLM /score.",
            spec_option="base_url", spec_value_required=True),
    Backend("jina", "JinaRerank", "rerank_kit.scorers.remote.jina:JinaScorer", "jina", ("httpx",),
            "Jina AI rerankers (v2, v3, m0) over /v1/rerank."),
    Backend("mixedbread", "MixedbreadRerank", "rerank_kit.scorers.remote.mixedbread:MixedbreadScorer", "mixedbread",
            ("mixedbread",), "Mixedbread rerankers through the official SDK."),
    Backend("pinecone", "PineconeRerank", "rerank_kit.scorers.remote.pinecone:PineconeScorer", "pinecone",
            ("pinecone",), "Rerankers hosted by Pinecone Inference through the official SDK."),
    Backend("bedrock", "BedrockRerank", "rerank_kit.scorers.remote.bedrock:BedrockScorer", "bedrock", ("boto3",),
            "Amazon Rerank and Cohere Rerank on Amazon Bedrock through boto3."),
    Backend("nvidia", "NVIDIARerank", "rerank_kit.scorers.remote.nvidia:NVIDIAScorer", "nvidia", ("httpx",),
            "NVIDIA NeMo Retriever reranking NIMs (/v1/ranking), hosted or self-hosted."),
    Backend("claude", "ClaudeRerank", "rerank_kit.scorers.llm.anthropic:ClaudeScorer", "anthropic", ("anthropic",),
            "Claude as a listwise or pointwise LLM reranker (forced tool output, repaired answers)."),
    Backend("openai", "OpenAIRerank", "rerank_kit.scorers.llm.openai:OpenAIScorer", "openai", ("openai",),
            "Any OpenAI-compatible chat model (OpenAI, Azure, vLLM, Ollama, ...) as an LLM reranker."),
    Backend(None, "LLMRerank", "rerank_kit.scorers.llm.llm_scorer:LLMScorer", None, (),
            "Any LangChain chat model or LlamaIndex LLM as a listwise, pointwise or logprobs reranker.",
            adapter_module=".llm"),
    Backend(None, "FallbackRerank", "rerank_kit.scorers.wrappers.fallback:FallbackScorer", None, (),
            "Tries scorers or rerankers in order and uses the first that answers.",
            scorer_attributes=("last_scorer_name", "last_failures")),
)

#: Extra scorer exports that are not backends of their own.
CORE_EXPORTS = {
    "ClaudeAnswerWarning": "rerank_kit.scorers.llm.anthropic",
    "LLMAnswerWarning": "rerank_kit.scorers.llm.llm_scorer",
    "ChatProvider": "rerank_kit.scorers.llm.chat",
    "ChatRequest": "rerank_kit.scorers.llm.chat",
    "ChatAnswer": "rerank_kit.scorers.llm.chat",
    "MaxPassageScorer": "rerank_kit.scorers.wrappers.max_passage",
    "PromptTemplate": "rerank_kit.scorers.local.decoder_families",
}


def backend_named(name: str) -> Backend:
    """The backend a CLI spec kind names."""
    for backend in BACKENDS:
        if backend.name == name:
            return backend
    raise KeyError(name)


def backend_for_scorer(scorer_class: type) -> Backend | None:
    """The registry row of ``scorer_class`` (or of the registered class it derives from), or ``None``."""
    names = {cls.__module__ + ":" + cls.__qualname__ for cls in scorer_class.__mro__}
    return next((backend for backend in BACKENDS if backend.scorer_path in names), None)


def backend_for_rerank_class(rerank_class: str) -> Backend | None:
    """The backend behind an adapter class name, or ``None``."""
    return next((backend for backend in BACKENDS if backend.rerank_class == rerank_class), None)


def cli_backends() -> list[Backend]:
    """The backends a CLI spec can name, in registry order."""
    return [backend for backend in BACKENDS if backend.name is not None]


def available_backends() -> list[dict[str, Any]]:
    """Every backend with whether it is installed, its install command, default model and key variables."""
    return [backend.row() for backend in BACKENDS]
