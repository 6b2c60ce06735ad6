"""A backlog of EARLY_BATCH operations reaches the kernel before the pre-select step when
the last submission did not complete inline, and waits for it when it did."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import uringloop
from uringloop._loop import EARLY_BATCH, UringStats

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring")]


async def _read_into(loop: uringloop.Loop, fd: int, size: int, offset: int) -> bytes:
    """loop.preadinto's bytes: a declared operation's coroutine (OperationCall compiled)."""
    buffer = bytearray(size)
    return bytes(buffer[: await loop.preadinto(fd, buffer, offset)])


async def _pread(loop: uringloop.Loop, fd: int, size: int, offset: int) -> bytes:
    return await loop.pread(fd, size, offset)


# Both coroutines that queue a read and then submit early (or not): Loop.pread's and a
# declared operation's.
READS = pytest.mark.parametrize("read", [_pread, _read_into], ids=["pread", "preadinto"])


async def _start_batch(
    loop: uringloop.Loop, reads: list[tuple[int, int]], read: Any = _pread
) -> tuple[UringStats, list[asyncio.Future[bytes]]]:
    """Start one task per (fd, offset) read in one loop iteration; return the tasks and the
    counters seen by a callback that runs right after all of them queued their read."""
    seen: list[UringStats] = []
    tasks = [asyncio.ensure_future(read(loop, fd, 1, off)) for fd, off in reads]
    loop.call_soon(lambda: seen.append(loop.uring_stats()))
    await asyncio.sleep(0)  # the tasks' first steps, then the callback
    assert seen, "the callback did not run in the tasks' iteration"
    return seen[0], tasks


async def _pipe_batch_behind_a_slow_read(n: int, read: Any = _pread) -> tuple[UringStats, int]:
    """n pipe reads started by n tasks in one loop iteration while another pipe read waits
    in flight (the last submission did not complete inline). Returns the counters seen
    right after all of them queued, and the io_uring_enter calls made before they started;
    then every pipe gets its byte, and each read must return it."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    pipes = [os.pipe() for _ in range(n + 1)]
    try:
        first = asyncio.ensure_future(loop.pread(pipes[0][0], 1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert loop.uring_stats().in_flight == 1  # an empty pipe: it stays in flight
        assert loop._driver.slow_completions  # type: ignore[union-attr]
        enters = loop.uring_stats().enter_calls

        stats, tasks = await _start_batch(loop, [(r, -1) for r, _ in pipes[1:]], read)

        for i, (_, w) in enumerate(pipes):
            os.write(w, bytes([i]))
        results = await asyncio.wait_for(asyncio.gather(first, *tasks), 10)
        assert results == [bytes([i]) for i in range(len(pipes))]
        return stats, enters
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


@READS
async def test_reads_waiting_on_pipes_are_submitted_mid_iteration(read: Any) -> None:
    stats, _ = await _pipe_batch_behind_a_slow_read(EARLY_BATCH, read)
    assert stats.backlog == 0
    assert stats.in_flight == 1 + EARLY_BATCH


@READS
async def test_page_cache_reads_keep_one_submission_per_iteration(
    data_file: tuple[str, bytes], ring_only: None, read: Any
) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        assert await loop.pread(fd, 1, 0) == data[:1]
        assert not loop._driver.slow_completions, "page-cache reads did not complete inline"  # type: ignore[union-attr]
        enters = loop.uring_stats().enter_calls

        offsets = [4096 * k for k in range(2 * EARLY_BATCH)]
        stats, tasks = await _start_batch(loop, [(fd, off) for off in offsets], read)
        assert stats.backlog == len(offsets)  # all of them wait for the pre-select step
        assert stats.enter_calls == enters

        results = await asyncio.gather(*tasks)
        assert results == [data[off : off + 1] for off in offsets]
        assert loop.uring_stats().enter_calls == enters + 1
    finally:
        os.close(fd)


@READS
async def test_many_callbacks_to_run_take_fewer_larger_early_submissions(read: Any) -> None:
    # With n reads queued by n tasks of one iteration, the backlog goes to the kernel
    # once it is EARLY_BATCH long or half as long as the callbacks still to run, if that
    # is more: a few larger submissions (here 16, 11, 8 and 8 of 48), not one for every 8.
    n = 6 * EARLY_BATCH
    stats, enters = await _pipe_batch_behind_a_slow_read(n, read)
    early = stats.enter_calls - enters
    assert 1 <= early < n // EARLY_BATCH  # (one for every 8 would be 6)
    assert 0 < stats.backlog < EARLY_BATCH  # the tail waits for the pre-select step
    assert stats.in_flight + stats.backlog == 1 + n
