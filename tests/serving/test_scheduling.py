"""Handing work over in groups (scheduling.py): on the event loop and to the prediction thread."""

from __future__ import annotations

import asyncio
import threading

from mlstack.serving.scheduling import LoopBatch, PredictionThread


class Recorder:
    """A process function that records the groups it was handed (and can be held)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.entered.set()
        self.release.wait(10)
        self.groups.append(list(items))
        return [item * 10 for item in items]


def test_loop_batch_groups_what_arrives_in_one_turn() -> None:
    recorder = Recorder()
    batch = LoopBatch(recorder, max_items=32, wait=0)

    async def main() -> list[int]:
        return await asyncio.gather(*(batch.submit(item) for item in range(5)))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert recorder.groups == [[0, 1, 2, 3, 4]]


def test_loop_batch_flushes_full_groups_at_once_and_alone_without_batching() -> None:
    recorder = Recorder()
    batch = LoopBatch(recorder, max_items=2, wait=0)

    async def main() -> list[int]:
        return await asyncio.gather(*(batch.submit(item) for item in range(5)))

    assert asyncio.run(main()) == [0, 10, 20, 30, 40]
    assert recorder.groups == [[0, 1], [2, 3], [4]]
    alone = Recorder()
    unbatched = LoopBatch(alone, max_items=1, wait=0)
    assert asyncio.run(unbatched.submit(7)) == 70
    assert alone.groups == [[7]]


def test_loop_batch_waits_at_most_the_wait() -> None:
    recorder = Recorder()
    batch = LoopBatch(recorder, max_items=32, wait=0.05)

    async def main() -> tuple[list[int], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batch.submit(1))
        await asyncio.sleep(0.01)  # a later request joins within the wait
        second = await batch.submit(2)
        return [await first, second], loop.time() - started

    answers, took = asyncio.run(main())
    assert answers == [10, 20]
    assert recorder.groups == [[1, 2]]
    assert 0.04 <= took < 1


def test_the_prediction_thread_takes_what_queued_while_it_worked() -> None:
    recorder = Recorder()
    thread = PredictionThread(recorder, max_items=3, wait=0)

    async def main() -> list[int]:
        recorder.release.clear()
        first = thread.submit(0)
        await asyncio.to_thread(recorder.entered.wait, 10)  # the thread holds item 0
        rest = [thread.submit(item) for item in range(1, 6)]
        recorder.release.set()
        return await asyncio.gather(first, *rest)

    assert asyncio.run(main()) == [0, 10, 20, 30, 40, 50]
    assert recorder.groups == [[0], [1, 2, 3], [4, 5]]
    assert thread.thread is not None and thread.thread.name == "predict"


def test_the_prediction_thread_answers_each_loop_that_asked() -> None:
    recorder = Recorder()
    thread = PredictionThread(recorder, max_items=1, wait=0)

    async def ask(item: int) -> int:
        return await asyncio.wait_for(thread.submit(item), 10)

    assert asyncio.run(ask(4)) == 40
    assert asyncio.run(ask(5)) == 50  # another event loop, the same thread
