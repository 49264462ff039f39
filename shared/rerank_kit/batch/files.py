"""``rerank_files``: input files to one output file per query bucket, resumable (``rerank-kit rerank --engine ray``).

Each bucket's queries are ranked and written by the actor that holds them, as soon as the bucket is done, so an
interrupted run keeps every finished bucket; a rerun skips buckets already written without errors and redoes the
rest (a bucket is always rewritten whole, so the output holds each query once).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from rerank_kit._optional import require
from rerank_kit.batch.dataset import (
    RerankActor,
    RerankSettings,
    bucketed_rows,
    map_buckets,
    rerank_settings,
)
from rerank_kit.batch.groups import BUCKET
from rerank_kit.batch.io import Output, OutputFormat, read_rows
from rerank_kit.batch.progress import ProgressLine, row_tally
from rerank_kit.scorer import Scorer


@dataclass
class RunSummary:
    """What one run did: buckets written now and found done before, input rows, ranked and error rows written."""

    output: str
    buckets_written: int = 0
    buckets_skipped: int = 0
    rows: int = 0
    ranked: int = 0
    errors: int = 0
    error_buckets: list[int] = field(default_factory=list)
    trec_run: str | None = None


class BucketWriter(RerankActor):
    """A :class:`RerankActor` that writes each bucket's files itself and returns one summary row per bucket."""

    def __init__(self, settings: RerankSettings, output: Output) -> None:
        super().__init__(settings)
        self.output = output

    def __call__(self, block: Any) -> Any:
        pa, pc = require("pyarrow", "ray"), require("pyarrow.compute", "ray")
        summary: dict[str, list[int]] = {"bucket": [], "rows": [], "ranked": [], "errors": []}
        for number in pc.unique(block.column(BUCKET)).to_pylist():
            bucket = block.filter(pc.equal(block.column(BUCKET), number))
            ranked, errors = self.output.write_bucket(number, self.ranked_rows(bucket).table())
            for name, value in zip(summary, (number, bucket.num_rows, ranked, errors)):
                summary[name].append(value)
        return pa.table({name: pa.array(values, type=pa.int64()) for name, values in summary.items()})


def rerank_files(
    source: str,
    output: str,
    reranker: str | Scorer,
    *,
    input_format: str | None = None,
    output_format: OutputFormat = "parquet",
    buckets: int = 32,
    actors: int = 1,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_requests_per_second: float | None = None,
    progress: bool = True,
    **policy: Any,
) -> RunSummary:
    """Rerank the rows of ``source`` into ``output`` (a folder or URI), one file per bucket; resumes a partial run.

    ``policy``: ``top_n``, ``normalize``, ``score_threshold``, ``text_column``, ``queries_per_batch``, ``retries``
    as for :func:`~rerank_kit.batch.rerank_dataset`. Error rows go to ``errors/part-NNNNN.jsonl`` with the reason.
    """
    tally = row_tally() if progress else None
    settings = rerank_settings(reranker, max_requests_per_second=max_requests_per_second, tally=tally, **policy)
    target = Output(output, output_format)
    target.check_manifest({"reranker": reranker if isinstance(reranker, str) else repr(reranker),
                           "output_format": output_format, "buckets": buckets, "top_n": settings.top_n,
                           "normalize": settings.normalize, "score_threshold": settings.score_threshold})
    done = target.done_buckets()
    bucketed = bucketed_rows(read_rows(source, input_format), buckets, settings.text_column, skip=done)
    written = map_buckets(bucketed, BucketWriter, settings, actors=actors, num_cpus=num_cpus, num_gpus=num_gpus,
                          output=target)
    total = bucketed.count()  # materialized: no work
    with ProgressLine(tally, total) if tally is not None and total else nullcontext():
        rows = written.take_all() if total else []
    summary = RunSummary(output=output, buckets_written=len(rows), buckets_skipped=len(done),
                         rows=int(sum(row["rows"] for row in rows)), ranked=int(sum(row["ranked"] for row in rows)),
                         errors=int(sum(row["errors"] for row in rows)),
                         error_buckets=sorted(int(row["bucket"]) for row in rows if row["errors"]))
    if output_format == "trec":
        summary.trec_run = target.combine_trec()
    return summary
