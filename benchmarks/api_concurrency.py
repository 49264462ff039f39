"""API concurrency: N queries through the async path against a loopback server with injected latency.

With ``max_concurrency=C`` and latency ``L`` per request, N one-request queries should take about
``ceil(N / C) * L`` instead of the sequential ``N * L``. Runs Cohere, Voyage and Pinecone (real SDKs), and TEI
and vLLM's Cohere-compatible ``/v1/rerank`` (httpx) against loopback servers speaking their wire formats.

    python benchmarks/api_concurrency.py --output benchmarks/api_concurrency.md
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as machine  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_kit import Reranker, Scorer  # noqa: E402
from rerank_kit.scorers.remote.cohere import CohereScorer  # noqa: E402
from rerank_kit.scorers.remote.http import HTTPRerankScorer  # noqa: E402
from rerank_kit.scorers.remote.pinecone import PineconeScorer  # noqa: E402
from rerank_kit.scorers.remote.voyage import VoyageScorer  # noqa: E402
from tests.api_servers import SECRET_KEY, cohere_handler, tei_handler, voyage_handler  # noqa: E402
from tests.loopback import Handler, LoopbackServer  # noqa: E402
from tests.wire_fakes import pinecone_handler, vllm_rerank_handler  # noqa: E402

BACKENDS: dict[str, tuple[Callable[[float], Handler], Callable[[str, int], Scorer]]] = {
    "Cohere (cohere SDK)": (
        cohere_handler, lambda url, c: CohereScorer(api_key=SECRET_KEY, base_url=url, max_concurrency=c)),
    "Voyage (voyageai SDK)": (
        voyage_handler, lambda url, c: VoyageScorer(api_key=SECRET_KEY, base_url=f"{url}/v1", max_concurrency=c)),
    "TEI (httpx)": (tei_handler, lambda url, c: HTTPRerankScorer(url, max_concurrency=c)),
    "vLLM /v1/rerank (httpx, protocol='cohere')": (
        vllm_rerank_handler, lambda url, c: HTTPRerankScorer(url, protocol="cohere", max_concurrency=c)),
    "Pinecone (pinecone SDK)": (
        pinecone_handler, lambda url, c: PineconeScorer(api_key=SECRET_KEY, base_url=url, max_concurrency=c)),
}


def workload(queries: int, docs: int) -> list[tuple[str, list[str]]]:
    return [(f"query {q} reset password", [f"document {q}-{d} about password {d}" for d in range(docs)])
            for q in range(queries)]


def measure(name: str, args: argparse.Namespace) -> dict[str, float]:
    handler, build = BACKENDS[name]
    requests = workload(args.queries, args.docs)
    with LoopbackServer(handler(args.latency), max_requests=10 * args.queries) as server:
        tune_like_a_real_server(server)
        reranker = Reranker(build(server.url, args.concurrency), top_n=5, cache=False)
        reranker.rerank(*requests[0])  # warm up clients and connections
        start = time.perf_counter()
        for query, texts in requests:
            reranker.rerank(query, texts)
        sequential = time.perf_counter() - start
        concurrent = asyncio.run(timed_async(reranker, requests, args.concurrency))
    return {"sequential": sequential, "concurrent": concurrent}


def tune_like_a_real_server(server: LoopbackServer) -> None:
    """Take two test-server artefacts out of the timings.

    The loopback handler writes headers and body separately, so without TCP_NODELAY Nagle's algorithm and
    delayed ACKs add ~40 ms per response; and its listen backlog of 5 drops connection attempts beyond
    that (a 1 s SYN retry), which the voyageai SDK's one-connection-per-request async path runs into.
    """
    server._httpd.RequestHandlerClass.disable_nagle_algorithm = True
    server._httpd.socket.listen(128)


async def timed_async(reranker: Reranker, requests: list[tuple[str, list[str]]], concurrency: int) -> float:
    """Seconds for all requests through the async path, after one warm-up wave opens the connections."""
    await reranker.arerank_many(requests[:concurrency])
    start = time.perf_counter()
    await reranker.arerank_many(requests)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--docs", type=int, default=20, help="documents per query (one request each)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server waits per request")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    ideal = math.ceil(args.queries / args.concurrency) * args.latency
    floor = args.queries * args.latency
    lines = [
        "# API concurrency benchmark",
        "",
        f"`python benchmarks/api_concurrency.py` on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()} ({machine.cpu_flags()}): {args.queries} queries x {args.docs} documents, {args.latency * 1000:.0f} ms injected "
        f"latency per request, `max_concurrency={args.concurrency}`, loopback server on 127.0.0.1.",
        "",
        f"Ideal async time ceil({args.queries}/{args.concurrency}) x {args.latency * 1000:.0f} ms = "
        f"{ideal * 1000:.0f} ms; sequential lower bound {args.queries} x {args.latency * 1000:.0f} ms = "
        f"{floor * 1000:.0f} ms.",
        "",
        "| backend | sequential (sync) | async, concurrent | async / ideal | async / sequential |",
        "|---|---|---|---|---|",
    ]
    for name in BACKENDS:
        result = measure(name, args)
        lines.append(
            f"| {name} | {result['sequential'] * 1000:.0f} ms | {result['concurrent'] * 1000:.0f} ms | "
            f"{result['concurrent'] / ideal:.2f} | {result['concurrent'] / result['sequential']:.3f} |"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
