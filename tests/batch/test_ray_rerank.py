"""Batch reranking on Ray Data (local Ray, 2 CPUs): the rankings of one process, error rows, resume, file formats."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import threading
import time
import types
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only
ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from rerank_kit import Reranker, Scorer  # noqa: E402
from rerank_kit.batch import bucket_of, rerank_dataset  # noqa: E402
from rerank_kit.batch.groups import query_groups  # noqa: E402
from rerank_kit.batch.io import Output  # noqa: E402
from rerank_kit.batch.rate_limit import RateLimitedConcurrency, TokenBucket  # noqa: E402
from rerank_kit.cli.main import main  # noqa: E402
from rerank_kit.scorers.local.cross_encoder import CrossEncoderScorer  # noqa: E402
from rerank_kit.scorers.remote.http import HTTPRerankScorer  # noqa: E402
from rerank_kit.scorers.remote.support import ConcurrencyLimit  # noqa: E402
from tests.api_servers import tei_handler  # noqa: E402
from tests.conftest import WORDS  # noqa: E402
from tests.loopback import LoopbackServer, Reply, Request  # noqa: E402

Ranking = dict[str, list[tuple[str, float]]]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def candidate_rows(queries: int, docs: int, *, seed: int = 7, first_stage: bool = True) -> list[dict[str, Any]]:
    """Deterministic rows from the tiny model's vocabulary; one query repeats a text (its copies share a score)."""
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        query = " ".join(rng.sample(WORDS, 3))
        texts = [" ".join(rng.sample(WORDS, rng.randint(3, 9))) for _ in range(docs)]
        if q == 0:
            texts[-1] = texts[0]
        for d, text in enumerate(texts):
            row = {"query_id": f"q{q:02d}", "query": query, "doc_id": f"d{d:02d}", "text": text}
            if first_stage:
                row["first_stage_score"] = float(docs - d)
            rows.append(row)
    return rows


def reference(rows: list[dict[str, Any]], scorer: Scorer, top_n: int | None = None) -> Ranking:
    """The single-process answer: ``Reranker.rerank_many`` over each query's candidates in first-stage order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["query_id"], []).append(row)
    order = sorted(grouped)
    requests = []
    for query_id in order:
        candidates = sorted(grouped[query_id], key=lambda r: (-r.get("first_stage_score", 0.0), r["doc_id"]))
        grouped[query_id] = candidates
        requests.append((candidates[0]["query"], [r["text"] for r in candidates]))
    ranked = Reranker(scorer, top_n=top_n, cache=False).rerank_many(requests)
    return {query_id: [(grouped[query_id][r.index]["doc_id"], r.score) for r in results]
            for query_id, results in zip(order, ranked)}


def ranking(rows: list[dict[str, Any]]) -> Ranking:
    """Output rows as each query's (doc_id, score) best first, checking ranks run 1..n."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["query_id"], []).append(row)
    out = {}
    for query_id, group in grouped.items():
        group.sort(key=lambda r: r["rank"])
        assert [r["rank"] for r in group] == list(range(1, len(group) + 1))
        out[query_id] = [(r["doc_id"], r["score"]) for r in group]
    return out


def assert_same(got: Ranking, expected: Ranking) -> None:
    assert sorted(got) == sorted(expected)
    for query_id, results in expected.items():
        assert [doc for doc, _ in got[query_id]] == [doc for doc, _ in results], query_id
        assert [score for _, score in got[query_id]] == pytest.approx([s for _, s in results], abs=1e-6)


class FaultyTEI:
    """A TEI server that rejects (HTTP 400) queries naming ``poison`` and the first request for ``flaky``."""

    def __init__(self) -> None:
        self.tei = tei_handler()
        self.queries: list[str] = []
        self.times: list[float] = []
        self.healed = False
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        query = request.json["query"]
        with self._lock:
            first = query not in self.queries
            self.queries.append(query)
            self.times.append(time.monotonic())
        if ("poison" in query and not self.healed) or ("flaky" in query and first):
            return Reply(400, {"error": f"rejected {query!r}"})
        return self.tei(request)


@pytest.fixture
def tei() -> Iterator[tuple[LoopbackServer, FaultyTEI]]:
    handler = FaultyTEI()
    with LoopbackServer(handler, max_requests=2000) as server:
        yield server, handler


def test_cross_encoder_ranks_as_one_process(tiny_cross_encoder: str) -> None:
    rows = candidate_rows(6, 9)
    expected = reference(rows, CrossEncoderScorer(tiny_cross_encoder))

    out = rerank_dataset(ray.data.from_items(rows), f"cross-encoder:{tiny_cross_encoder}", buckets=4,
                         queries_per_batch=2).take_all()

    assert {row["error"] for row in out} == {None}
    assert_same(ranking(out), expected)
    first = [doc for doc, _ in ranking(out)["q00"]]
    assert first.index("d00") < first.index("d08")  # equal texts tie: first-stage order decides


def test_api_backend_on_two_actors_matches_one_process_under_one_global_rate(
    tei: tuple[LoopbackServer, FaultyTEI]
) -> None:
    server, handler = tei
    rows = candidate_rows(30, 3, seed=3, first_stage=False)
    expected = reference(rows, HTTPRerankScorer(server.url), top_n=2)
    handler.queries.clear()

    out = rerank_dataset(ray.data.from_items(rows), HTTPRerankScorer(server.url), top_n=2, actors=2, buckets=4,
                         max_requests_per_second=20).take_all()

    assert_same(ranking(out), expected)
    (name,) = [actor["name"] for actor in ray.util.list_named_actors(all_namespaces=True)
               if actor["name"].startswith("rerank-kit-rate-limit-")]
    limiter = ray.get_actor(name, namespace=ray.get_runtime_context().namespace)
    assert ray.get(limiter.granted_tokens.remote()) == len(handler.queries) == 30  # every request, both actors


async def test_each_request_waits_as_long_as_the_limiter_says() -> None:
    class Limiter:
        """Stands in for the bucket actor's handle: every acquire answers a 0.2 s wait."""

        def __init__(self) -> None:
            self.acquire, self.calls = self, 0

        def remote(self, tokens: float) -> Any:
            self.calls += 1
            answer: concurrent.futures.Future[float] = concurrent.futures.Future()
            answer.set_result(0.2)
            return types.SimpleNamespace(future=lambda: answer)

    limiter = Limiter()
    paced = RateLimitedConcurrency(ConcurrencyLimit(4), limiter)

    async def send() -> str:
        return "sent"

    start = time.perf_counter()
    assert await asyncio.gather(paced.run(send), paced.run(send)) == ["sent", "sent"]
    assert limiter.calls == 2 and time.perf_counter() - start >= 0.2


def test_failing_queries_become_error_rows_and_the_rest_is_ranked(tei: tuple[LoopbackServer, FaultyTEI]) -> None:
    server, _ = tei
    rows = candidate_rows(5, 4, seed=5)
    rows[0]["query"] += " poison"  # q00: rejected every time
    for row in rows:
        if row["query_id"] == "q01":
            row["query"] += " flaky"  # q01: rejected once, then answered
    rows[9]["text"] = None  # q02/d01: no text

    out = rerank_dataset(ray.data.from_items(rows), f"http:{server.url}", buckets=2, queries_per_batch=8).take_all()
    expected = reference([r for r in rows if r["query_id"] != "q00" and r["text"] is not None],
                         HTTPRerankScorer(server.url))

    errors = [row for row in out if row["error"] is not None]
    assert {(row["query_id"], row["doc_id"]) for row in errors} == {("q00", f"d{d:02d}") for d in range(4)} | {
        ("q02", "d01")}
    assert all(row["score"] is None and row["rank"] is None for row in errors)
    assert {row["error"].split(":")[0] for row in errors if row["query_id"] == "q00"} == {"ProviderRequestError"}
    assert [row["error"] for row in errors if row["query_id"] == "q02"] == ["text is null"]
    assert_same(ranking([row for row in out if row["error"] is None]), expected)


class DiesOnce(Scorer):
    """Counts shared query words; the first call kills its process (as an OOM kill or a lost node would)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        words = set(query.split())
        return [float(len(words & set(text.split()))) for text in texts]


def test_a_batch_whose_actor_dies_is_retried_by_ray(tmp_path: Path) -> None:
    rows = candidate_rows(4, 5, seed=19)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this test module
    scorer = DiesOnce(str(tmp_path / "died"))

    out = rerank_dataset(ray.data.from_items(rows), scorer, buckets=2).take_all()

    assert (tmp_path / "died").exists()
    assert_same(ranking(out), reference(rows, scorer))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_parts(folder: Path, extension: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for part in sorted(folder.glob(f"part-*.{extension}")):
        if extension == "parquet":
            rows += pq.read_table(part).to_pylist()
        else:
            rows += [json.loads(line) for line in part.read_text().splitlines()]
    return rows


def cli(source: Path, out: Path, url: str, *extra: str) -> int:
    return main(["rerank", "--engine", "ray", "-r", f"http:{url}", "--input", str(source), "--output", str(out),
                 "--buckets", "4", "--no-progress", *extra])


def test_cli_writes_error_rows_and_a_rerun_redoes_only_failed_and_missing_buckets(
    tei: tuple[LoopbackServer, FaultyTEI], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, handler = tei
    rows = candidate_rows(8, 3, seed=13)
    for row in rows:
        if row["query_id"] == "q02":
            row["query"] += " poison"  # rejected until the server heals
    source, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out"
    failed = bucket_of("q02", 4)

    assert cli(source, out, server.url, "--output-format", "jsonl", "--top-n", "2") == 1
    errors = [json.loads(line) for line in (out / "errors" / f"part-{failed:05d}.jsonl").read_text().splitlines()]
    assert [(e["query_id"], e["doc_id"]) for e in errors] == [("q02", "d00"), ("q02", "d01"), ("q02", "d02")]
    assert errors[0]["error"].startswith("ProviderRequestError")
    assert "3 rows could not be reranked" in capsys.readouterr().err
    assert "q02" not in {row["query_id"] for row in read_parts(out, "jsonl")}

    lost = next(bucket_of(row["query_id"], 4) for row in rows if bucket_of(row["query_id"], 4) != failed)
    (out / f"part-{lost:05d}.jsonl").unlink()  # as if the run had stopped before writing it
    handler.healed = True
    handler.queries.clear()
    assert cli(source, out, server.url, "--output-format", "jsonl", "--top-n", "2") == 0
    assert sorted(handler.queries) == sorted({row["query"] for row in rows if bucket_of(row["query_id"], 4)
                                              in (failed, lost)})  # nothing else was scored again
    assert not (out / "errors" / f"part-{failed:05d}.jsonl").exists()
    assert_same(ranking(read_parts(out, "jsonl")), reference(rows, HTTPRerankScorer(server.url), top_n=2))
    assert "wrote" in capsys.readouterr().out

    assert cli(source, out, server.url, "--output-format", "jsonl", "--top-n", "3") == 1  # would mix two runs
    assert "top_n 2 (now 3)" in capsys.readouterr().err


def test_cli_parquet_in_trec_out(tei: tuple[LoopbackServer, FaultyTEI], tmp_path: Path) -> None:
    server, _ = tei
    rows = candidate_rows(5, 4, seed=17)
    expected = reference(rows, HTTPRerankScorer(server.url))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)

    assert cli(source, tmp_path / "trec", server.url, "--output-format", "trec") == 0
    lines = [line.split() for line in (tmp_path / "trec" / "run.trec").read_text().splitlines()]
    assert {fields[1] for fields in lines} == {"Q0"} and {fields[5] for fields in lines} == {"rerank-kit"}
    trec = [{"query_id": f[0], "doc_id": f[2], "rank": int(f[3]), "score": float(f[4])} for f in lines]
    assert_same(ranking(trec), expected)


def test_bad_input_fails_on_the_driver_with_the_reason(tmp_path: Path) -> None:
    rows = ray.data.from_items([{"query_id": "q", "query": "a", "doc_id": "d"}])
    with pytest.raises(ValueError, match="lack column"):
        rerank_dataset(rows, "cross-encoder:unused")
    with pytest.raises(ValueError, match="unknown reranker"):
        rerank_dataset(rows, "bogus:model")
    with pytest.raises(ValueError, match="API backends"):
        rerank_dataset(rows, "cross-encoder:unused", max_requests_per_second=5)
    assert main(["rerank", "--engine", "ray", "-r", "cross-encoder:unused", "--input", str(tmp_path / "x.csv"),
                 "--output", str(tmp_path / "out")]) == 1


def test_groups_are_whole_queries_in_first_stage_order() -> None:
    table = pa.Table.from_pylist([
        {"query_id": "b", "query": "x", "doc_id": "d2", "text": "t", "first_stage_score": 1.0},
        {"query_id": "a", "query": "y", "doc_id": "d9", "text": "t", "first_stage_score": None},
        {"query_id": "b", "query": "x", "doc_id": "d1", "text": "t", "first_stage_score": 1.0},
        {"query_id": "b", "query": "x", "doc_id": "d3", "text": "t", "first_stage_score": 5.0},
        {"query_id": "a", "query": "y", "doc_id": "d0", "text": "t", "first_stage_score": 2.0},
    ])

    groups = query_groups(table)

    assert [(g.query_id, g.doc_ids) for g in groups] == [("a", ["d0", "d9"]), ("b", ["d3", "d1", "d2"])]
    assert bucket_of("q1", 32) == zlib.crc32(b"q1") % 32 and bucket_of(7, 4) == bucket_of("7", 4)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "trec"])
def test_bucket_files_round_trip_and_say_which_buckets_are_done(tmp_path: Path, fmt: str) -> None:
    rows = pa.table({"query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"], "score": [0.9, 0.1, None],
                     "rank": [1, 2, None], "error": [None, None, "ProviderUnavailableError: down"]})
    output = Output(str(tmp_path / "out"), fmt)

    assert output.write_bucket(3, rows) == (2, 1)
    assert output.done_buckets() == set()  # it has errors: a rerun redoes it
    assert output.write_bucket(3, rows.slice(0, 2)) == (2, 0)
    assert output.done_buckets() == {3}

    part = Path(output.part(3))
    if fmt == "parquet":
        assert pq.read_table(part).to_pylist()[0] == {"query_id": "q1", "doc_id": "a", "score": 0.9, "rank": 1}
    elif fmt == "jsonl":
        assert json.loads(part.read_text().splitlines()[1]) == {"query_id": "q1", "doc_id": "b", "score": 0.1,
                                                                "rank": 2}
    else:
        assert part.read_text() == "q1 Q0 a 1 0.9 rerank-kit\nq1 Q0 b 2 0.1 rerank-kit\n"
    assert [p.name for p in part.parent.iterdir() if ".tmp-" in p.name] == []


def test_token_bucket_makes_callers_wait_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0)

    waits = [bucket.acquire() for _ in range(5)]

    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.1, 0.2, 0.3], abs=0.02)


def test_nothing_but_rerank_kit_batch_imports_ray() -> None:
    code = ("import sys, rerank_kit, rerank_kit.cli.main, rerank_kit.batch, langchain_rerankers, llamaindex_rerankers;"
            "assert 'ray' not in sys.modules, 'ray imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
