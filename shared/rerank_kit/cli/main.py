"""Entry point of the ``rerank-kit`` command: ``eval``, ``rerank``, ``demo`` and ``backends``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rerank_kit.cli.specs import spec_help
from rerank_kit.errors import RerankError
from rerank_kit.scorer import Scorer

DEFAULT_OUT = "rerank-kit-eval"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; expected failures print one ``rerank-kit: error:`` line and return 1."""
    args = _parser().parse_args(argv)
    try:
        args.handler(args)
    except (RerankError, ValueError, ImportError, OSError) as exc:
        print(f"rerank-kit: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank-kit", description="Rerank, compare rerankers, run the demo.")
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
    evaluate.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default: {DEFAULT_OUT})")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(handler=_run_eval)

    backends = commands.add_parser("backends", help="list the backends, whether installed, and how to install them")
    backends.add_argument("--json", action="store_true", help="print the rows as JSON")
    backends.set_defaults(handler=_run_backends)

    rerank = commands.add_parser("rerank", help="rerank JSONL candidates (stdin to stdout by default)")
    rerank.add_argument("-r", "--reranker", required=True, metavar="SPEC", help="reranker spec, as for eval")
    rerank.add_argument("--query", help="one query for all input lines (each line a candidate)")
    reading, writing = argparse.FileType("r", encoding="utf-8"), argparse.FileType("w", encoding="utf-8")
    rerank.add_argument("--input", type=reading, default="-", help="JSONL file (default: stdin)")
    rerank.add_argument("--output", type=writing, default="-", help="JSONL file (default: stdout)")
    rerank.add_argument("--top-n", type=_positive, help="keep the best N per query (default: all)")
    rerank.add_argument("--text-field", default="text", help="field holding a candidate's text (default: text)")
    rerank.set_defaults(handler=_run_rerank)
    return parser


def _run_demo(args: argparse.Namespace) -> None:
    from rerank_kit.cli.demo import run_demo

    run_demo(sys.stdout, max_queries=args.max_queries, progress=not args.no_progress)


def _run_eval(args: argparse.Namespace) -> None:
    from rerank_kit.cli.beir import load_beir
    from rerank_kit.cli.evaluate import (
        Contender,
        bm25_first_stage,
        evaluate,
        format_table,
        load_trec_run,
        write_results,
    )
    from rerank_kit.cli.specs import build_scorer, parse_spec

    specs = [parse_spec(text) for text in args.reranker]
    if not any(spec.kind == "none" for spec in specs):
        specs.insert(0, parse_spec("none"))
    contenders = [Contender(spec.text, _max_p(build_scorer(spec), args.passage_words)) for spec in specs]
    dataset = load_beir(args.dataset, args.split)
    query_ids = dataset.judged_query_ids[: args.max_queries] if args.max_queries else dataset.judged_query_ids
    if args.run is not None:
        first_stage = load_trec_run(args.run, query_ids, args.depth, dataset=dataset)
    else:
        first_stage = bm25_first_stage(dataset, query_ids, args.depth)
    rows = evaluate(dataset, first_stage, contenders, recall_k=args.recall_k, progress=not args.no_progress)
    settings = {
        "dataset": str(args.dataset),
        "split": args.split,
        "first_stage": str(args.run) if args.run else "bm25",
        "depth": args.depth,
        "passage_words": args.passage_words,
        "queries": len(query_ids),
    }
    paths = write_results(rows, args.out, settings=settings)
    print(format_table(rows))
    print("\nwrote " + ", ".join(str(path) for path in paths.values()))


def _run_rerank(args: argparse.Namespace) -> None:
    from rerank_kit.cli.rerank_jsonl import rerank_jsonl
    from rerank_kit.cli.specs import build_scorer, parse_spec
    from rerank_kit.reranker import Reranker

    scorer = build_scorer(parse_spec(args.reranker))
    if scorer is None:
        raise ValueError("rerank needs a reranker other than 'none'")
    reranker = Reranker(scorer, top_n=args.top_n)
    rerank_jsonl(reranker, args.input, args.output, query=args.query, text_field=args.text_field)


def _max_p(scorer: Scorer | None, passage_words: int | None) -> Scorer | None:
    if scorer is None or passage_words is None:
        return scorer
    from rerank_kit.scorers.wrappers.max_passage import MaxPassageScorer

    return MaxPassageScorer(scorer, passage_size=passage_words)


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
