"""Shared batches for concurrent async callers of a local model: gather requests for a few milliseconds, score once.

Many agent tools or web handlers each reranking a short list would otherwise run one small forward pass
each, in turn; gathered, their pairs fill the model's length-sorted token-budget batches as one
``score_many`` call does. While a batch is being scored, new requests gather for the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rerank_kit.per_loop import PerLoop
from rerank_kit.scorer import ScoreRequest

ScoreMany = Callable[[Sequence[ScoreRequest]], list[list[float]]]


@dataclass
class _Waiting:
    request: ScoreRequest
    future: asyncio.Future[list[float]]


@dataclass
class _Queue:
    """One event loop's requests waiting for the next batch, and the task that will send it."""

    waiting: list[_Waiting] = field(default_factory=list)
    flush: asyncio.Task[None] | None = None


class MicroBatcher:
    """Scores requests from concurrent callers together: waits ``wait_s`` (or until ``max_pairs``), then once.

    A caller that is cancelled while waiting is left out of its batch; one cancelled after its batch
    started gets nothing and the others their scores. An error in a batch reaches every caller in it.
    """

    def __init__(self, score_many: ScoreMany, *, wait_s: float, max_pairs: int) -> None:
        self.score_many = score_many
        self.wait_s = wait_s
        self.max_pairs = max_pairs
        self._queues: PerLoop[_Queue] = PerLoop(_Queue)
        self.batches = 0

    async def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """This request's scores, computed in a batch shared with concurrent callers."""
        queue = self._queues.get()
        loop = asyncio.get_running_loop()
        waiting = _Waiting((query, list(texts)), loop.create_future())
        queue.waiting.append(waiting)
        if sum(len(w.request[1]) for w in queue.waiting) >= self.max_pairs:
            self._send(queue)
        elif queue.flush is None:
            queue.flush = loop.create_task(self._send_after_wait(queue))
        return await waiting.future

    async def _send_after_wait(self, queue: _Queue) -> None:
        await asyncio.sleep(self.wait_s)
        self._send(queue)

    def _send(self, queue: _Queue) -> None:
        batch = [w for w in queue.waiting if not w.future.done()]
        queue.waiting = []
        if queue.flush is not None and queue.flush is not asyncio.current_task():
            queue.flush.cancel()
        queue.flush = None
        if batch:
            self.batches += 1
            asyncio.get_running_loop().create_task(self._score(batch))

    async def _score(self, batch: list[_Waiting]) -> None:
        try:
            results = await asyncio.to_thread(self.score_many, [w.request for w in batch])
        except Exception as error:  # every caller of the batch gets the error
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        for waiting, scores in zip(batch, results):
            if not waiting.future.done():
                waiting.future.set_result(scores)
