"""The documented prelude that makes every Python block of README.md run, offline, in order.

What a reader's program already has, built from the demo corpus shipped with the package: ``documents`` /
``passages``, a LangChain ``vectorstore`` and ``bm25_retriever``, a LlamaIndex ``index``, a ``prompt`` and
``llm`` for LCEL chains. The models the README names by hub name are tiny stand-ins saved in a private hub
cache under those names (``HF_HUB_OFFLINE=1``); Cohere answers from a loopback server (``CO_API_URL``); the chat
model packages the README imports (``langchain_openai``, ``langchain_anthropic``, ``llama_index.llms.ollama``)
are stand-in modules whose models answer like a perfect judge. Run as ``python -m tests.readme_prelude README.md``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from importlib import resources
from pathlib import Path

#: Hub names the README uses, and how the stand-in for each is built.
HUB_MODELS = {"cross-encoder/ms-marco-MiniLM-L6-v2": "cross-encoder", "Qwen/Qwen3-Reranker-0.6B": "qwen3-reranker"}
_COMMIT = "0" * 40


def python_blocks(readme: Path) -> list[str]:
    """The fenced ``python`` blocks of ``readme``, in order."""
    blocks, current = [], None
    for line in readme.read_text().splitlines():
        if current is None and line.strip() == "```python":
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _hub_cache(root: Path) -> None:
    """Tiny stand-ins saved where the hub cache would keep the README's models."""
    from tests.conftest import build_tiny_cross_encoder
    from tests.decoder_models import build_decoder_reranker

    for name, kind in HUB_MODELS.items():
        repo = root / f"models--{name.replace('/', '--')}"
        snapshot = repo / "snapshots" / _COMMIT
        if kind == "cross-encoder":
            build_tiny_cross_encoder(snapshot)
        else:
            build_decoder_reranker(snapshot, kind)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(_COMMIT)


def _chat_model_packages() -> None:
    """Stand-in modules for the chat model packages the README imports."""
    from tests.chat_models import ScriptedLLM, ToolCallingChatModel

    class StandInChatModel(ToolCallingChatModel):
        model: str = "stand-in"

    class StandInOllama(ScriptedLLM):
        model: str = "stand-in"

    for module, names in {"langchain_openai": {"ChatOpenAI": StandInChatModel},
                          "langchain_anthropic": {"ChatAnthropic": StandInChatModel},
                          "llama_index.llms.ollama": {"Ollama": StandInOllama}}.items():
        stand_in = types.ModuleType(module)
        stand_in.__dict__.update(names)
        sys.modules[module] = stand_in


def reader_namespace() -> dict[str, object]:
    """What the README's blocks assume the reader's program already has."""
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore
    from llama_index.core import Document as LlamaDocument
    from llama_index.core import Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import MockLLM

    corpus = resources.files("rerank_kit") / "data" / "demo" / "corpus.jsonl"
    rows = [json.loads(line) for line in corpus.read_text().splitlines() if line.strip()]
    documents = [Document(page_content=row["text"], metadata={"source": row["_id"], "title": row["_id"]},
                          id=row["_id"]) for row in rows]
    vectorstore = InMemoryVectorStore(DeterministicFakeEmbedding(size=32))
    vectorstore.add_documents(documents)

    class WordOverlapRetriever(BaseRetriever):
        """A first stage by shared words, standing in for BM25."""

        k: int = 20

        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun
                                    ) -> list[Document]:
            words = set(query.lower().split())
            return sorted(documents, key=lambda d: -len(words & set(d.page_content.lower().split())))[: self.k]

    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    index = VectorStoreIndex.from_documents([LlamaDocument(text=d.page_content, id_=d.id) for d in documents])
    return {
        "documents": documents, "passages": [d.page_content for d in documents], "vectorstore": vectorstore,
        "bm25_retriever": WordOverlapRetriever(), "index": index, "RunnablePassthrough": RunnablePassthrough,
        "ContextualCompressionRetriever": ContextualCompressionRetriever,
        "prompt": RunnableLambda(lambda inputs: f"{inputs}"), "llm": RunnableLambda(lambda text: text),
    }


def main(readme: Path) -> None:
    """Run every Python block of ``readme`` in one namespace, in order; a failure names its block."""
    from tests.api_servers import cohere_handler
    from tests.loopback import LoopbackServer

    with tempfile.TemporaryDirectory() as cache, LoopbackServer(cohere_handler()) as cohere:
        os.environ.update({"HF_HUB_CACHE": cache, "HF_HUB_OFFLINE": "1", "CO_API_URL": cohere.url,
                           "CO_API_KEY": "readme-key", "VOYAGE_API_KEY": "readme-key",
                           "ANTHROPIC_API_KEY": "readme-key", "OPENAI_API_KEY": "readme-key"})
        _hub_cache(Path(cache))
        _chat_model_packages()
        namespace = reader_namespace()
        for number, block in enumerate(python_blocks(readme), start=1):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)  # noqa: S102
            except Exception as error:
                raise SystemExit(f"README.md python block {number} failed: {type(error).__name__}: {error}") from error
        print(f"ran {number} README blocks")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
