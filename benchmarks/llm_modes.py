"""LLM reranking modes: calls, tokens, cost and wall time per query, listwise vs pointwise vs logprob-pointwise.

Runs ``OpenAIScorer`` (the real openai SDK) against a loopback chat-completions server that answers like a
perfect judge after a fixed injected latency per call, and reports per query: the calls made, the tokens
(estimated by the server at 4 characters per token, as a real server would count them), the estimated cost,
the wall time, and how far the calls overlapped (calls x latency / wall time; 1.0 means one after another).

    python benchmarks/llm_modes.py --output benchmarks/llm_modes.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import workload as machine  # noqa: E402
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rerank_kit import Reranker  # noqa: E402
from rerank_kit.scorers.llm.openai import OpenAIScorer  # noqa: E402
from tests import chat_completions_server as oa  # noqa: E402
from tests.api_servers import overlap_score  # noqa: E402
from tests.loopback import Handler, LoopbackServer, Reply, Request  # noqa: E402

#: Example prices, dollars per million input / output tokens (set yours with --prices).
PRICES = {"input": 0.40, "output": 1.60}

MODES: dict[str, dict[str, Any]] = {
    "listwise, windows of 20 sliding by 10 (RankGPT)": {"mode": "listwise"},
    "listwise, disjoint windows of 10": {"mode": "listwise", "window_size": 10, "step": 10},
    "pointwise, 5 passages per call": {"mode": "pointwise", "batch_size": 5},
    "logprob-pointwise, 1 passage per call": {"mode": "logprobs"},
}


def metered(handler: Handler) -> Handler:
    """``handler`` with usage counted from the request and answer (4 characters per token)."""

    def handle(request: Request) -> Reply:
        reply = handler(request)
        message = reply.body["choices"][0]["message"]
        answer = message.get("content") or json.dumps(message.get("tool_calls"))
        prompt = sum(len(m["content"]) for m in request.json["messages"])
        tokens = {"prompt_tokens": prompt // 4, "completion_tokens": 1 if request.json.get("logprobs")
                  else max(1, len(answer) // 4)}
        reply.body["usage"] = {**tokens, "total_tokens": sum(tokens.values())}
        return reply

    return handle


def workload(queries: int, docs: int) -> list[tuple[str, list[str]]]:
    topics = ["reset password account", "python error traceback", "bank interest rate", "paris weather rain"]
    return [(topics[q % len(topics)], [f"passage {d} about {topics[(q + d) % len(topics)]} and more words "
                                       f"{'detail ' * (d % 7)}" for d in range(docs)]) for q in range(queries)]


def measure(options: dict[str, Any], args: argparse.Namespace) -> dict[str, float]:
    requests = workload(args.queries, args.docs)
    with LoopbackServer(metered(oa.judge(overlap_score, delay=args.latency)), max_requests=10**6) as server:
        server._httpd.RequestHandlerClass.disable_nagle_algorithm = True  # no Nagle/delayed-ACK stalls
        server._httpd.socket.listen(128)  # no dropped connections beyond a backlog of 5
        scorer = OpenAIScorer("bench-model", base_url=f"{server.url}/v1", max_concurrency=args.concurrency,
                              prices=args.prices, **options)
        reranker = Reranker(scorer, top_n=10, cache=False)
        reranker.rerank(*requests[0])  # warm up the client and its connections
        calls, walls, usage = [], [], []
        for query, texts in requests:
            before = len(server.requests)
            start = time.perf_counter()
            reranker.rerank(query, texts)
            walls.append(time.perf_counter() - start)
            calls.append(len(server.requests) - before)
            usage.append(scorer.usage.last)
        start = time.perf_counter()
        asyncio.run(reranker.arerank_many(requests))
        together = time.perf_counter() - start
    per_query = statistics.mean(calls)
    return {
        "calls": per_query,
        "input": statistics.mean(u["input_tokens"] for u in usage),
        "output": statistics.mean(u["output_tokens"] for u in usage),
        "cost": statistics.mean(u["cost_usd"] for u in usage),
        "wall": statistics.median(walls),
        "serial": per_query * args.latency,
        "together": together,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--docs", type=int, default=30, help="candidates per query")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits per call")
    parser.add_argument("--concurrency", type=int, default=8, help="max_concurrency (calls in flight)")
    parser.add_argument("--prices", type=lambda v: dict(zip(("input", "output"), map(float, v.split(",")))),
                        default=PRICES, help="IN,OUT dollars per million tokens")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    ms = args.latency * 1000
    lines = [
        "# LLM reranking modes",
        "",
        f"`python benchmarks/llm_modes.py` on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()} ({machine.cpu_flags()}): {args.queries} queries x {args.docs} candidates through `OpenAIScorer` (openai SDK) "
        f"against a loopback chat-completions server answering after {ms:.0f} ms per call; "
        f"`max_concurrency={args.concurrency}`, top 10 kept. Tokens as the server counts them (4 characters per "
        f"token); cost at ${args.prices['input']:.2f} / ${args.prices['output']:.2f} per million input / output "
        "tokens. Per query: the median of the sync calls, one query at a time. Overlap: calls x latency / wall "
        f"time (1.0: one call after another). Last column: all {args.queries} queries at once on the async path.",
        "",
        "| mode | calls / query | input tokens / query | output tokens / query | est. cost / query | "
        f"calls x {ms:.0f} ms | wall / query | overlap | {args.queries} queries async |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(lines), flush=True)
    for name, options in MODES.items():  # each row printed as soon as it is measured
        r = measure(options, args)
        lines.append(
            f"| {name} | {r['calls']:.0f} | {r['input']:,.0f} | {r['output']:,.0f} | ${r['cost']:.6f} | "
            f"{r['serial'] * 1000:,.0f} ms | {r['wall'] * 1000:,.0f} ms | {r['serial'] / r['wall']:.1f}x | "
            f"{r['together'] * 1000:,.0f} ms |"
        )
        print(lines[-1], flush=True)
    if args.output:
        args.output.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
