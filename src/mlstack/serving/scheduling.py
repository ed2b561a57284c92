"""Where a worker's predictions run, handed over in groups so that batching.py can batch them.

- LoopBatch: on the worker's event loop itself, for work known to be short (the fast path
  on a few rows): what is handed over during one turn of the loop (and, with a wait, until
  the wait ends) is processed together once that turn's other callbacks have run. No thread
  hand-off: each costs a context switch and two wake-ups, more than the fast path's work.
- PredictionThread: the worker's one prediction thread, for everything else: it takes what
  is queued (at most max_items, waiting at most `wait` seconds for more) and processes it
  together, then wakes each waiting request's event loop once.

`process` maps a list of items to a list of results, in order, and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class LoopBatch(Generic[Item, Result]):
    """Items handed over on the running event loop, processed together on it."""

    def __init__(
        self, process: Callable[[list[Item]], list[Result]], max_items: int, wait: float
    ) -> None:
        self.process = process
        self.max_items = max(1, max_items)
        self.wait = wait
        self.waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self.timer: asyncio.Handle | None = None

    async def submit(self, item: Item) -> Result:
        """The item's result, processed with those handed over in the same turn."""
        if self.max_items == 1:
            return self.process([item])[0]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self.waiting.append((item, future))
        if len(self.waiting) >= self.max_items:
            self._flush()
        elif len(self.waiting) == 1:
            self.timer = (
                loop.call_later(self.wait, self._flush)
                if self.wait
                else loop.call_soon(self._flush)
            )
        return await future

    def _flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        taken, self.waiting = self.waiting, []
        if not taken:
            return
        results = self.process([item for item, _ in taken])
        for (_, future), result in zip(taken, results, strict=True):
            if not future.done():
                future.set_result(result)


class PredictionThread(Generic[Item, Result]):
    """One thread that processes queued items in groups; started on first use."""

    def __init__(
        self,
        process: Callable[[list[Item]], list[Result]],
        max_items: int,
        wait: float,
        name: str = "predict",
    ) -> None:
        self.process = process
        self.max_items = max(1, max_items)
        self.wait = wait
        self.name = name
        self.queue: queue.SimpleQueue[tuple[Item, asyncio.Future[Result]]] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(self, item: Item) -> asyncio.Future[Result]:
        """A future of the running loop that the thread resolves with the item's result."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.put((item, future))
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                    self.thread.start()
        return future

    def _take(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        taken = [self.queue.get()]
        deadline = time.monotonic() + self.wait
        while len(taken) < self.max_items:
            try:
                taken.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                taken.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                break
        return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            results = self.process([item for item, _ in taken])
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
            for (_, future), result in zip(taken, results, strict=True):
                by_loop.setdefault(future.get_loop(), []).append((future, result))
            for loop, answers in by_loop.items():
                # A loop that has closed raises: nobody waits for those answers.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, answers)


def _resolve(answers: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in answers:
        if not future.done():
            future.set_result(result)
