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
import sys
import time
from array import array
from typing import Any

import pytest

import uringloop
from uringloop._buffers import SlotPool
from uringloop._ops import operation
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


def _reap_interrupted_at(loop: Any, *codes: Any) -> None:
    """Reap `loop`'s completions (until one comes) with a signal handler's
    KeyboardInterrupt raised at the first line of the first call of any of `codes`; it
    must come out of the reap."""

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code in codes:
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            for _ in range(1000):  # (until the completions are reaped, here)
                loop._driver.flush()
                time.sleep(0.001)
    finally:
        sys.settrace(None)


@pytest.mark.parametrize("where", ["peek_columns", "consume_to"])
def test_completions_read_when_interrupted_are_delivered_once(
    data_file: tuple[str, bytes], where: str, ring_only: None
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
    entries = bytearray(3 * 64)  # (the SQ's entries the parts are written into)
    assert batch.prep_parts(entries, memoryview(entries).cast("q"), [0, 64, 128], 0) == (0, 3)
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


class _Reaping:
    """A waiter that, when its result is set, first runs `action` (a reap of its own: a
    concurrent future's done-callback can run code there), then passes the result on."""

    def __init__(self, inner: Any, action: Any) -> None:
        self.inner, self.action = inner, action

    def done(self) -> bool:
        return bool(self.inner.done())

    def set_exception(self, exc: BaseException) -> None:
        self.inner.set_exception(exc)

    def set_result(self, value: Any) -> None:
        self.action()
        self.inner.set_result(value)


def test_a_reap_inside_a_delivery_delivers_each_completion_once(
    data_file: tuple[str, bytes], ring_only: None
) -> None:
    # The first read's delivery reaps again before it is done: that reap leaves the other
    # completions of the unfinished one to it, each task gets its own result once, and
    # each completion counts once in uring_stats().
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:

        async def main() -> tuple[list[bytes], int, int]:
            assert await loop.nop() is None
            driver: Any = loop._driver
            tasks = [loop.create_task(loop.pread(fd, 100, 4096 * i)) for i in range(8)]
            await asyncio.sleep(0)
            order: list[int] = []
            for i, op in enumerate(driver.backlog):
                op.waiter = _Reaping(op.waiter, lambda i=i: order.append(i))
            first = driver.backlog[0]
            first.waiter = _Reaping(first.waiter, driver.flush)
            before = loop.uring_stats()
            driver.flush()
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            # The nested reap left the unfinished one's completions to it: in CQE order.
            assert order == list(range(8))
            assert await loop.nop() is None  # a reap after: what was left in the CQ goes
            after = loop.uring_stats()
            return results, after.submitted - before.submitted, after.completed - before.completed

        results, submitted, completed = loop.run_until_complete(main())
        assert results == [data[4096 * i : 4096 * i + 100] for i in range(8)]
        assert submitted == completed == 9
        assert loop._driver._queues.cq_ready() == 0
    finally:
        os.close(fd)
        loop.close()


def test_a_completion_interrupted_as_it_begins_still_delivers_its_outcome(
    tmp_path: Any, no_fd_leak: None, ring_only: None
) -> None:
    # A signal handler's KeyboardInterrupt at the first line of an open's completion: the
    # completion runs once more, so the task gets its descriptor (not an error, with the
    # descriptor left open by nobody), and the interrupt is raised after the batch.
    path = tmp_path / "f"
    path.write_bytes(b"x")
    loop = uringloop.Loop()
    try:

        async def main() -> int:
            assert await loop.nop() is None
            task = loop.create_task(loop.open_fd(path))
            await asyncio.sleep(0)
            _reap_interrupted_at(loop, operation.Operation.complete.__code__)
            return await asyncio.wait_for(task, 10)

        fd = loop.run_until_complete(main())
        assert os.fstat(fd).st_size == 1
        os.close(fd)
    finally:
        loop.close()


def test_a_batch_interrupted_as_it_finishes_still_delivers_its_bytes(
    data_file: tuple[str, bytes], ring_only: None
) -> None:
    # A signal handler's KeyboardInterrupt at the first line of a pread_many's _finish
    # (its last part counted, its bytes not yet copied out): the completion, run once
    # more, finishes the batch, so the task gets its bytes (not "delivery interrupted")
    # and the pool gets its buffers back; the interrupt is raised after the batch.
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    reqs = [(fd, 100 * (i + 1), 1000 * i) for i in range(6)]
    try:

        async def main() -> list[bytes]:
            assert await loop.nop() is None
            task = loop.create_task(loop.pread_many(reqs))
            await asyncio.sleep(0)
            _reap_interrupted_at(loop, ReadBatch._finish.__code__)
            return await asyncio.wait_for(task, 10)

        got = loop.run_until_complete(main())
        assert got == [data[offset : offset + size] for _, size, offset in reqs]
        assert loop._pool.in_use() == 0  # type: ignore[attr-defined]
    finally:
        os.close(fd)
        loop.close()


@pytest.mark.parametrize("files", [1, 2])  # one CQE (complete_part), or two (complete_parts)
def test_a_batch_part_interrupted_as_it_begins_leaves_the_batch_its_other_parts(
    data_file: tuple[str, bytes], ring_only: None, files: int
) -> None:
    # A signal handler's KeyboardInterrupt at the first line of a batch's part delivery
    # while another part (a read of an empty pipe) is still in flight: the delivery, run
    # once more, records the part, and the batch waits for the pipe's part, so the task
    # gets every part's bytes (not "delivery interrupted", its pipe's bytes dropped); the
    # interrupt is raised after the CQEs are delivered.
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    reqs = [*((fd, 10, 100 * i) for i in range(files)), (r, 5, -1)]
    try:

        async def main() -> list[bytes]:
            assert await loop.nop() is None
            task = loop.create_task(loop.pread_many(reqs))
            await asyncio.sleep(0)
            parts = (ReadBatch.complete_part.__code__, ReadBatch.complete_parts.__code__)
            _reap_interrupted_at(loop, *parts)
            assert not task.done()
            os.write(w, b"hello")
            return await asyncio.wait_for(task, 10)

        got = loop.run_until_complete(main())
        assert got == [*(data[100 * i : 100 * i + 10] for i in range(files)), b"hello"]
        assert loop._pool.in_use() == 0  # type: ignore[attr-defined]
    finally:
        os.close(fd)
        os.close(r)
        os.close(w)
        loop.close()


def test_a_fork_inside_a_delivery_leaves_the_child_s_reap_quiet() -> None:
    # The child's at-fork handler gives up the parent's ring while a delivery runs; the
    # reap must not touch the ring's memory afterwards (it consumed the CQEs there).
    loop = uringloop.Loop()
    child: list[int] = []

    def fork() -> None:
        child.append(os.fork())

    try:

        async def main() -> None:
            assert await loop.nop() is None
            driver: Any = loop._driver
            tasks = [loop.create_task(loop.nop()) for _ in range(2)]
            await asyncio.sleep(0)
            op = driver.backlog[0]
            op.waiter = _Reaping(op.waiter, fork)
            try:
                driver.flush()
            except BaseException:
                if child and child[0] == 0:
                    os._exit(3)
                raise
            if child and child[0] == 0:
                os._exit(0)
            await asyncio.gather(*tasks)

        loop.run_until_complete(main())
        _, status = os.waitpid(child[0], 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        loop.close()


def test_a_completion_interrupted_as_it_releases_still_delivers_its_outcome(
    tmp_path: Any, no_fd_leak: None, ring_only: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signal handler's KeyboardInterrupt inside an open's release() (its result already
    # converted): the task still gets its descriptor (not "delivery interrupted", with the
    # descriptor left open by nobody), and the interrupt is raised after the batch.
    path = tmp_path / "f"
    path.write_bytes(b"x")
    loop = uringloop.Loop()
    real = operation.Operation.release
    interrupted: list[Any] = []

    def release(self: Any) -> None:
        real(self)
        if not interrupted and getattr(self.spec, "name", "") == "open_fd":
            interrupted.append(self)
            raise KeyboardInterrupt

    try:

        async def main() -> int:
            assert await loop.nop() is None
            task = loop.create_task(loop.open_fd(path, os.O_RDWR | os.O_CREAT))  # on the ring
            await asyncio.sleep(0)
            monkeypatch.setattr(operation.Operation, "release", release)
            with pytest.raises(KeyboardInterrupt):
                for _ in range(1000):  # (until the open's completion is reaped, here)
                    loop._driver.flush()  # type: ignore[attr-defined]
                    time.sleep(0.001)
            monkeypatch.undo()
            return await asyncio.wait_for(task, 10)

        fd = loop.run_until_complete(main())
        assert interrupted and os.fstat(fd).st_size == 1
        os.close(fd)
    finally:
        loop.close()
