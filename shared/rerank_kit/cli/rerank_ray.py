"""``rerank-kit rerank --engine ray``: files in, one output file per query bucket out, on a local Ray or a cluster."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rerank_kit._optional import require


def add_ray_arguments(parser: argparse.ArgumentParser, positive: Callable[[str], int]) -> None:
    """The ``rerank`` options of the Ray engine (nothing is imported from Ray here)."""
    from rerank_kit.batch.io import OUTPUT_FORMATS

    ray = parser.add_argument_group("--engine ray (see 'Large collections' in the README)")
    ray.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: this process, JSONL lines in and out; ray: Ray Data actors, rows "
                          "(query_id, query, doc_id, text[, first_stage_score]) from files to files")
    ray.add_argument("--address", help="join the Ray cluster at ADDRESS (default: start Ray on this machine)")
    ray.add_argument("--input-format", choices=("jsonl", "parquet"), help="default: from the input's name")
    ray.add_argument("--output-format", choices=OUTPUT_FORMATS, default="parquet",
                     help="parquet (default), jsonl, or trec (also combined into OUTPUT/run.trec)")
    ray.add_argument("--actors", type=positive, default=1, help="actors, each loading the model once (default: 1)")
    ray.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per actor (default: 1; torch uses as many)")
    ray.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per actor (default: 0)")
    ray.add_argument("--buckets", type=positive, default=32,
                     help="output files, by a hash of query_id; a rerun skips those written (default: 32)")
    ray.add_argument("--max-requests-per-second", type=float, metavar="RATE",
                     help="API backends: requests per second across all actors")
    ray.add_argument("--no-progress", action="store_true", help="do not print rows done / total")


def run_ray(args: argparse.Namespace) -> int:
    """Run the Ray engine for parsed ``rerank`` arguments; exit status 1 when some rows could not be reranked."""
    from rerank_kit.batch.files import rerank_files
    from rerank_kit.cli.specs import build_scorer, parse_spec

    if args.query is not None:
        raise ValueError("--query is for the local engine; with --engine ray every row names its query")
    if args.input == "-" or args.output == "-":
        raise ValueError("--engine ray reads --input PATH (JSONL or Parquet) and writes --output FOLDER")
    reranker = args.reranker if args.prices is None else build_scorer(parse_spec(args.reranker), prices=args.prices)
    with ray_session(args.address):
        summary = rerank_files(
            args.input, args.output, reranker, input_format=args.input_format, output_format=args.output_format,
            buckets=args.buckets, actors=args.actors, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
            max_requests_per_second=args.max_requests_per_second, progress=not args.no_progress,
            top_n=args.top_n, text_column=args.text_field,
        )
    print(f"wrote {summary.ranked:,} ranked rows of {summary.rows:,} input rows to {summary.output} "
          f"({summary.buckets_written} buckets written, {summary.buckets_skipped} already done)"
          + (f"; TREC run: {summary.trec_run}" if summary.trec_run else ""))
    if summary.errors:
        print(f"rerank-kit: error: {summary.errors:,} rows could not be reranked (buckets "
              f"{', '.join(map(str, summary.error_buckets))}); the reasons are in {summary.output}/errors/; "
              "rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray as the command needs it: the running instance, the cluster at ``address``, or a new local one."""
    ray = require("ray", "ray")
    require("ray.data", "ray").DataContext.get_current().enable_progress_bars = False  # we print rows done / total
    if ray.is_initialized():
        yield
        return
    ray.init(address=address, include_dashboard=False if address is None else None)
    try:
        yield
    finally:
        ray.shutdown()
