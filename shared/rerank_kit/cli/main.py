"""Entry point of the ``rerank-kit`` command: ``eval``, ``rerank``, ``demo`` and ``backends``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rerank_kit.cli.rerank_ray import add_ray_arguments
from rerank_kit.cli.specs import spec_help
from rerank_kit.errors import RerankError
from rerank_kit.scorer import Scorer

DEFAULT_OUT = "rerank-kit-eval"
PRICES_HELP = "LLM rerankers: dollars per million input and output tokens, for cost_usd in the usage (e.g. 0.4,1.6)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; expected failures print one ``rerank-kit: error:`` line and return 1."""
    args = _parser().parse_args(argv)
    try:
        status = args.handler(args)
    except (RerankError, ValueError, ImportError, OSError) as exc:
        print(f"rerank-kit: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    return status or 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-kit", description="Rerank, compare rerankers, run the demo.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="two-stage example on the shipped corpus, offline")
    demo.add_argument("--max-queries", type=_positive, help="evaluate only the first N queries")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(handler=_run_demo)

    evaluate = commands.add_parser("eval", help="compare rerankers on a BEIR-layout dataset")
    evaluate.add_argument("dataset", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    evaluate.add_argument(
        "-r", "--reranker", action="append", default=[], metavar="SPEC",
        help=f"{spec_help()} (repeatable; 'none', the first-stage order, is always included)",
    )
    evaluate.add_argument("--split", default="test", help="qrels file to use (default: test)")
    evaluate.add_argument("--run", type=Path, help="TREC run file as the first stage instead of BM25")
    evaluate.add_argument("--depth", type=_positive, default=100, help="candidates per query (default: 100)")
    evaluate.add_argument("--recall-k", type=_positive, default=10, help="k of Recall@k (default: 10)")
    evaluate.add_argument("--max-queries", type=_positive, help="evaluate only the first N judged queries")
    evaluate.add_argument(
        "--passage-words", type=_positive, help="score long documents by their best passage of N words (max-p)"
    )
    evaluate.add_argument(
        "--first-stage", default="bm25", metavar="KIND",
        help="bm25 (default), dense:MODEL (embedding cosine over the corpus) or hybrid:MODEL (RRF of both); "
        "MODEL may be 'offline'",
    )
    evaluate.add_argument("--save-runs", action="store_true", help="also write each reranker's ranking as a TREC run")
    evaluate.add_argument("--prices", type=_prices, metavar="IN,OUT", help=PRICES_HELP)
    evaluate.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default: {DEFAULT_OUT})")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(handler=_run_eval)

    backends = commands.add_parser("backends", help="list the backends, whether installed, and how to install them")
    backends.add_argument("--json", action="store_true", help="print the rows as JSON")
    backends.set_defaults(handler=_run_backends)

    rerank = commands.add_parser("rerank", help="rerank JSONL candidates (stdin to stdout by default)")
    rerank.add_argument("-r", "--reranker", required=True, metavar="SPEC", help="reranker spec, as for eval")
    rerank.add_argument("--query", help="one query for all input lines (each line a candidate)")
    rerank.add_argument("--input", default="-", help="JSONL file (default: stdin); --engine ray: JSONL or Parquet, "
                        "a file, folder or URI")
    rerank.add_argument("--output", default="-", help="JSONL file (default: stdout); --engine ray: a folder or URI")
    rerank.add_argument("--top-n", type=_positive, help="keep the best N per query (default: all)")
    rerank.add_argument("--text-field", default="text", help="field holding a candidate's text (default: text)")
    rerank.add_argument("--prices", type=_prices, metavar="IN,OUT", help=PRICES_HELP)
    add_ray_arguments(rerank, _positive)
    rerank.set_defaults(handler=_run_rerank)
    return parser


def _run_demo(args: argparse.Namespace) -> None:
    from rerank_kit.cli.demo import run_demo

    if args.no_progress:
        quiet_progress_bars()
    run_demo(sys.stdout, max_queries=args.max_queries, progress=not args.no_progress)


def _run_eval(args: argparse.Namespace) -> int:
    from rerank_kit.cli.beir import DataError, load_beir
    from rerank_kit.cli.evaluate import evaluate, format_table, load_trec_run, write_results
    from rerank_kit.cli.specs import parse_spec

    specs = [parse_spec(text) for text in args.reranker]
    if not any(spec.kind == "none" for spec in specs):
        specs.insert(0, parse_spec("none"))
    if args.run is not None and args.first_stage != "bm25":
        raise ValueError("give either --run or --first-stage, not both")
    if args.no_progress:
        quiet_progress_bars()
    dataset = load_beir(args.dataset, args.split)
    query_ids = dataset.judged_query_ids[: args.max_queries] if args.max_queries else dataset.judged_query_ids
    if not query_ids:
        raise DataError(args.dataset / "qrels" / f"{args.split}.tsv", None,
                        "no judged query is in queries.jsonl: nothing can be evaluated")
    if args.run is not None:
        first_stage = load_trec_run(args.run, query_ids, args.depth, dataset=dataset)
    else:
        first_stage = _first_stage(args.first_stage, dataset, query_ids, args.depth)
    contenders = [_contender(spec, args.passage_words, args.prices) for spec in specs]
    rows = evaluate(dataset, first_stage, contenders, recall_k=args.recall_k, progress=not args.no_progress)
    settings = {
        "dataset": str(args.dataset),
        "split": args.split,
        "first_stage": str(args.run) if args.run else args.first_stage,
        "depth": args.depth,
        "passage_words": args.passage_words,
        "queries": len(query_ids),
        "judged_queries": len(dataset.judged_query_ids),
    }
    paths = write_results(rows, args.out, settings=settings, save_runs=args.save_runs)
    print(f"Evaluated {len(query_ids)} of {len(dataset.judged_query_ids)} judged queries "
          f"(first stage: {settings['first_stage']}, depth {args.depth}).")
    print(format_table(rows))
    print("\nwrote " + ", ".join(str(path) for path in paths.values()))
    failed = [row.reranker for row in rows if row.failed]
    if failed:
        print(f"rerank-kit: error: {len(failed)} reranker(s) failed: {', '.join(failed)} "
              "(the others were evaluated and written)", file=sys.stderr)
        return 1
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rerank-kit")
    except PackageNotFoundError:
        return "unknown"


def _contender(spec: object, passage_words: int | None, prices: dict[str, float] | None = None) -> object:
    """The spec's contender; a reranker that cannot be built is a failed contender, not an abort."""
    from rerank_kit.cli.evaluate import Contender, one_line
    from rerank_kit.cli.specs import build_scorer

    try:
        return Contender(spec.text, _max_p(build_scorer(spec, prices=prices), passage_words))
    except (RerankError, ValueError, ImportError, OSError) as exc:
        return Contender(spec.text, None, error=one_line(exc))


def _first_stage(name: str, dataset: object, query_ids: Sequence[str], depth: int) -> object:
    """``bm25``, ``dense:MODEL`` or ``hybrid:MODEL`` (``MODEL`` may be ``offline``)."""
    from rerank_kit.cli import evaluate

    kind, _, model = name.partition(":")
    if kind == "bm25" and not model:
        return evaluate.bm25_first_stage(dataset, query_ids, depth)
    if kind in ("dense", "hybrid") and model:
        stage = evaluate.dense_first_stage if kind == "dense" else evaluate.hybrid_first_stage
        return stage(dataset, query_ids, depth, model)
    raise ValueError(f"--first-stage must be bm25, dense:MODEL or hybrid:MODEL, got {name!r}")


def quiet_progress_bars() -> None:
    """Switch every progress bar off (``--no-progress``): ours, the model hub's and transformers'."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"
    try:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:
        pass


def _run_rerank(args: argparse.Namespace) -> int:
    from rerank_kit.cli.rerank_jsonl import rerank_jsonl
    from rerank_kit.cli.specs import build_scorer, parse_spec
    from rerank_kit.reranker import Reranker

    if args.engine == "ray":
        from rerank_kit.cli.rerank_ray import run_ray

        return run_ray(args)
    scorer = build_scorer(parse_spec(args.reranker), prices=args.prices)
    if scorer is None:
        raise ValueError("rerank needs a reranker other than 'none'")
    reranker = Reranker(scorer, top_n=args.top_n)
    with _text_file(args.input, "r") as source, _text_file(args.output, "w") as sink:
        rerank_jsonl(reranker, source, sink, query=args.query, text_field=args.text_field)
    return 0


def _text_file(path: str, mode: str) -> Any:
    """``path`` opened as UTF-8 text, or stdin / stdout (left open) for ``-``."""
    if path == "-":
        return nullcontext(sys.stdin if mode == "r" else sys.stdout)
    return open(path, mode, encoding="utf-8")


def _max_p(scorer: Scorer | None, passage_words: int | None) -> Scorer | None:
    if scorer is None or passage_words is None:
        return scorer
    from rerank_kit.scorers.wrappers.max_passage import MaxPassageScorer

    return MaxPassageScorer(scorer, passage_size=passage_words)


def _prices(value: str) -> dict[str, float]:
    """``IN,OUT`` dollars per million input and output tokens."""
    try:
        given, taken = (float(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected IN,OUT dollars per million tokens, got {value!r}") from None
    return {"input": given, "output": taken}


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number



def _run_backends(args: argparse.Namespace) -> None:
    import json

    from rerank_kit.backends import available_backends

    rows = available_backends()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    header = ("backend", "class", "installed", "install", "default model", "key variable")
    table = [header] + [
        (row["name"], row["rerank_class"], "yes" if row["installed"] else "no", row["install"],
         row["default_model"] or "-", " or ".join(row["key_env_vars"]) or "-")
        for row in rows
    ]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
