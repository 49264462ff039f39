"""One object per running event loop (async clients, semaphores, batch queues are loop-bound), closed with its loop."""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

logger = logging.getLogger("rerank_kit")

T = TypeVar("T")


class PerLoop(Generic[T]):
    """One lazily built object per running event loop (async clients and semaphores are loop-bound).

    With ``aclose`` (a coroutine function closing one object), each object is closed when its loop shuts
    down (``asyncio.run`` finalizes async generators, and one is registered per object for this), so
    repeated ``asyncio.run(...)`` calls do not leak connections; :meth:`aclose_all` closes the rest.
    """

    def __init__(self, build: Callable[[], T], aclose: Callable[[T], Awaitable[None]] | None = None) -> None:
        self._build = build
        self._aclose = aclose
        self._lock = threading.Lock()
        self._objects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        if aclose is not None:
            weakref.finalize(self, _close_left_over, self._objects, aclose)

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._objects.get(loop)
            if found is None:
                found = self._objects[loop] = self._build()
                if self._aclose is not None:
                    self._closers[loop] = closer = self._closer(loop, found)
                    loop.create_task(closer.__anext__())
            return found

    async def _closer(self, loop: asyncio.AbstractEventLoop, obj: T) -> Any:
        try:
            yield
            yield
        finally:
            with self._lock:
                if self._objects.get(loop) is obj:
                    del self._objects[loop]
            if self._aclose is not None:
                await _quietly(self._aclose(obj))

    async def aclose_current(self) -> None:
        """Close the running loop's object, if any (a later :meth:`get` builds a new one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            obj = self._objects.pop(loop, None)
            self._closers.pop(loop, None)
        if obj is not None and self._aclose is not None:
            await _quietly(self._aclose(obj))

    def loops(self) -> list[asyncio.AbstractEventLoop]:
        """The loops that hold an object now."""
        with self._lock:
            return list(self._objects.keys())


def _close_left_over(objects: Mapping[asyncio.AbstractEventLoop, Any],
                     aclose: Callable[[Any], Awaitable[None]]) -> None:
    """When a PerLoop is garbage collected: close its objects in their loops that still run."""
    for loop, obj in list(objects.items()):
        if loop.is_running() and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(_quietly(aclose(obj)), loop)


async def _quietly(closing: Awaitable[None]) -> None:
    try:
        await closing
    except Exception:  # closing a broken connection must not mask the caller's outcome
        logger.debug("closing a client failed", exc_info=True)
