"""A signal handler's KeyboardInterrupt while the driver reaps completions.

The CQEs are read out of the CQ, their operations completed, then the CQEs consumed. An
interruption anywhere in between must lose no completion (the CQEs stay in the CQ for the
next reap) and complete nothing twice (a CQE delivered again finds its operation done or
gone). Without that, the interrupted reap's operations stay in flight forever and their
tasks wait forever.
"""

from __future__ import annotations

import asyncio
import os
from array import array
from typing import Any

import pytest

import uringloop
from uringloop._buffers import SlotPool
from uringloop._ops.operation import ReadBatch

pytestmark = pytest.mark.usefixtures("no_fd_leak")


class _Interrupting:
    """The driver's queues, but the first call of `name` raises KeyboardInterrupt: after
    peek_columns() did its work (a signal handler's, right after it returned), before
    consume_to() does its own (right after the delivery)."""

    def __init__(self, queues: Any, name: str) -> None:
        self._queues = queues
        self._name = name
        self.interrupted = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._queues, name)
        if name != self._name or self.interrupted:
            return real

        def interrupted(*args: Any) -> Any:
            self.interrupted += 1
            if name == "peek_columns":
                real(*args)
            raise KeyboardInterrupt

        return interrupted


@pytest.mark.parametrize("where", ["peek_columns", "consume_to"])
def test_completions_read_when_interrupted_are_delivered_once(
    data_file: tuple[str, bytes], where: str
) -> None:
    # Eight reads, a batch and a no-op complete in one reap; the reap is interrupted right
    # after it read the CQEs (before any delivery), or right before it consumes them
    # (after every delivery). Either way each task gets its own result, once, and nothing stays
    # in flight.
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:

        async def main() -> list[Any]:
            assert await loop.nop() is None  # warm: the next calls go to the pre-select step
            offsets = [4096 * i for i in range(8)]
            tasks = [loop.create_task(loop.pread(fd, 100, off)) for off in offsets]
            tasks.append(loop.create_task(loop.pread_many([(fd, 10, 0), (fd, 20, 99)])))
            tasks.append(loop.create_task(loop.nop()))
            await asyncio.sleep(0)  # all queued
            driver: Any = loop._driver
            real = driver._queues
            assert len(driver.backlog) == 10
            # One enter submits them, the kernel completes them inline, the reap that
            # follows in the same flush is interrupted.
            driver._queues = _Interrupting(real, where)
            try:
                with pytest.raises(KeyboardInterrupt):
                    driver.flush()
                assert driver._queues.interrupted == 1
            finally:
                driver._queues = real
            if where == "peek_columns":  # nothing delivered: all still in flight
                assert real.cq_ready() == 11 and len(driver.inflight) == 11
            else:  # all delivered; the CQEs, not consumed, are skipped by the next reap
                assert real.cq_ready() == 11 and not driver.inflight
            return await asyncio.wait_for(asyncio.gather(*tasks), 10)

        results = loop.run_until_complete(main())
        expected = [data[4096 * i : 4096 * i + 100] for i in range(8)]
        assert results == [*expected, [data[:10], data[99:119]], None]
        # CQEs left in the CQ (consume_to) go with the next reap; each counts once.
        assert loop.run_until_complete(loop.nop()) is None
        stats = loop.uring_stats()
        assert stats.in_flight == 0 and stats.completed == stats.submitted
        assert loop._driver._queues.cq_ready() == 0
    finally:
        os.close(fd)
        loop.close()


def test_a_batch_part_delivered_again_is_not_counted_again() -> None:
    # A part's CQE delivered a second time (a reap interrupted after the part completed,
    # before it left the table) must not count as another part: the batch would finish
    # (copy out its bytes and free its buffers) with a part still in flight.
    pool = SlotPool()
    fds = array("q", [5, 5, 5])
    batch = ReadBatch(fds, array("q", [8, 8, 8]), array("q", [0, 8, 16]), pool)
    batch.user_data = 100
    batch.parts_written(3)
    waiter = asyncio.Future(loop=asyncio.new_event_loop())
    batch.waiter = waiter
    try:
        batch.complete_part(100, 8)
        batch.complete_part(100, 8)  # delivered again
        batch.complete_parts([100, 101], [8, 8])  # the first one once more, with the second
        assert not waiter.done() and pool.in_use() == 1  # the third is still in flight
        batch.complete_part(102, 8)
        assert waiter.done() and len(waiter.result()) == 3 and pool.in_use() == 0
    finally:
        waiter.get_loop().close()
