"""LLM rerankers on the command line: ``llm:openai:MODEL`` specs, ``--prices``, tokens and cost per query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rerank_kit.cli.main import main
from rerank_kit.cli.specs import build_scorer, parse_spec
from rerank_kit.scorers.llm.openai import OpenAIScorer
from tests import chat_completions_server as oa
from tests.api_servers import overlap_score
from tests.core.test_cli import dataset, run_file  # noqa: F401  (fixtures: a tiny BEIR folder and its run)


@pytest.fixture
def local_server(serve, monkeypatch) -> str:
    """An OpenAI-compatible loopback server as ``OPENAI_BASE_URL`` (a local server needs no key)."""
    server = serve(oa.judge(overlap_score))
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return server.url


def test_llm_specs_name_the_llm_backends() -> None:
    assert parse_spec("llm:openai:gpt-4.1-mini").kind == "openai"
    assert parse_spec("llm:claude:claude-haiku-5-5").value == "claude-haiku-5-5"
    with pytest.raises(ValueError, match="llm:PROVIDER:MODEL"):
        parse_spec("llm:cohere:rerank-v3.5")


def test_prices_reach_only_llm_backends(local_server) -> None:
    scorer = build_scorer(parse_spec("llm:openai:qwen3"), prices={"input": 1.0, "output": 2.0})
    assert isinstance(scorer, OpenAIScorer) and scorer.model == "qwen3" and scorer.prices == {"input": 1.0,
                                                                                              "output": 2.0}
    assert build_scorer(parse_spec("embedding:offline"), prices={"input": 1.0, "output": 2.0}) is not None


def test_eval_shows_tokens_and_cost_per_query(dataset: Path, run_file: Path, tmp_path: Path,  # noqa: F811
                                              local_server, capsys) -> None:
    out = tmp_path / "out"
    code = main(["eval", str(dataset), "--run", str(run_file), "--no-progress", "--out", str(out),
                 "-r", "llm:openai:qwen3", "--prices", "1,2"])
    assert code == 0
    rows = {row["reranker"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    usage = rows["llm:openai:qwen3"]["usage_per_query"]
    assert usage == {"input_tokens": 200, "output_tokens": 20, "requests": 1, "cost_usd": pytest.approx(240e-6)}
    table = capsys.readouterr().out
    assert "input_tokens=200" in table and "cost_usd=0.00024" in table


def test_rerank_jsonl_with_an_llm(tmp_path: Path, local_server) -> None:
    source, sink = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(t) + "\n" for t in ["cats purr", "reset my password", "password reset"]))
    assert main(["rerank", "-r", "openai:qwen3", "--query", "reset password", "--input", str(source),
                 "--output", str(sink), "--prices", "0.5,1"]) == 0
    ranked = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [row["original_index"] for row in ranked][0] in (1, 2) and len(ranked) == 3


def test_bad_prices_are_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["rerank", "-r", "openai:x", "--query", "q", "--prices", "cheap"])
    assert "IN,OUT" in capsys.readouterr().err
