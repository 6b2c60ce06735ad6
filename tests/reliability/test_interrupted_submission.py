"""A signal handler's KeyboardInterrupt while the driver writes entries into the SQ.

Writing an operation's entry runs Python for the generic operations and batches (their
prep), where a signal handler may raise. The interrupted write must leave nothing behind
for the kernel to read: the slots reserved but not written go back, the operation stays
queued, and when the loop runs again every operation runs exactly once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import uringloop
from uringloop._ops import operation

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def test_an_interrupted_entry_goes_back_and_runs_later(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three no-ops queued together; the second one's prep is interrupted. The first is in
    # the SQ; the two others stay queued with their slots given back (the kernel would
    # otherwise read whatever the unwritten slots held), and all three run once.
    loop = uringloop.Loop()
    try:

        async def main() -> tuple[int, int, list[Any]]:
            assert await loop.nop() is None  # warm
            tasks = [loop.create_task(loop.nop()) for _ in range(3)]
            await asyncio.sleep(0)  # each queued its no-op; the pre-select step comes next
            driver: Any = loop._driver
            queued = list(driver.backlog)
            assert len(queued) == 3
            real = operation.Entry.prep

            def prep(self: Any, *args: Any) -> None:
                if self is queued[1]:
                    monkeypatch.undo()
                    raise KeyboardInterrupt
                real(self, *args)

            monkeypatch.setattr(operation.Entry, "prep", prep)
            before = loop.uring_stats()
            with pytest.raises(KeyboardInterrupt):
                driver.flush()
            assert driver._queues.pending() == 1  # the first one's entry, not yet entered
            assert list(driver.backlog) == queued[1:]
            assert [op.state for op in queued] == [1, 0, 0]  # submitted, queued, queued
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            after = loop.uring_stats()
            return after.submitted - before.submitted, after.completed - before.completed, results

        submitted, completed, results = loop.run_until_complete(main())
        assert (submitted, completed, results) == (3, 3, [None, None, None])
        assert loop.uring_stats().in_flight == 0
    finally:
        loop.close()


def test_an_interrupted_batch_is_written_again_from_where_it_was(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pread_many of parts of different sizes (one pool slot each) is interrupted after
    # writing two of its six entries: none of them reaches the kernel, and the batch,
    # written again, reads every part once into the right buffer, the slots the
    # interrupted write took back in the pool.
    path, data = data_file
    sizes = [100, 200, 300, 400, 500, 600]
    requests = [(0, size, 1000 * i) for i, size in enumerate(sizes)]
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, size, offset) for _, size, offset in requests]
        expected = [data[offset : offset + size] for _, size, offset in requests]
        pool: Any = loop._pool
        real = operation._pack_sqe_into
        calls: list[int] = []

        def pack(*args: Any) -> None:
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(*args)

        async def main() -> list[bytes]:
            assert await loop.pread_many(reqs) == expected  # warm the pool's size classes
            monkeypatch.setattr(operation, "_pack_sqe_into", pack)
            return await loop.pread_many(reqs)

        before = loop.uring_stats()
        in_use = pool.in_use()
        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        # Written again whole by the pre-select step that ran before the KeyboardInterrupt,
        # raised from a callback as asyncio raises a callback's.
        assert len(calls) == 3 + len(sizes)
        monkeypatch.undo()
        got = loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10))
        assert got == expected
        after = loop.uring_stats()
        assert after.submitted - before.submitted == 2 * len(sizes)  # warm-up and the batch
        assert after.completed - before.completed == 2 * len(sizes)
        assert after.in_flight == 0 and pool.in_use() == in_use
    finally:
        os.close(fd)
        loop.close()


def test_an_interrupted_cancel_is_written_later(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ASYNC_CANCEL of a read waiting on an empty pipe is interrupted while its entry is
    # written: it stays queued, its slot given back, and the next pre-select step writes it,
    # so the read is cancelled rather than left in flight until data comes.
    r, _ = pipe
    loop = uringloop.Loop()
    try:
        fired: list[Any] = []
        real = operation.AsyncCancel.prep

        def prep(self: Any, *args: Any) -> None:
            if not fired:
                fired.append(self)
                raise KeyboardInterrupt
            real(self, *args)

        async def main() -> None:
            read = loop.create_task(loop.pread(r, 10, -1))
            await asyncio.sleep(0.05)  # the read is in flight: the pipe is empty
            assert loop.uring_stats().in_flight == 1
            monkeypatch.setattr(operation.AsyncCancel, "prep", prep)
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        driver: Any = loop._driver
        assert len(fired) == 1 and list(driver._cancels) == fired
        assert driver._queues.pending() == 0
        loop.run_until_complete(asyncio.sleep(0.05))  # the cancel is written, the read ends
        assert loop.uring_stats().in_flight == 0 and not driver._cancels
    finally:
        loop.close()
