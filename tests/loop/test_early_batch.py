"""A backlog of EARLY_BATCH operations, or a quarter of those in flight if that is more,
reaches the kernel before the pre-select step when the last submission did not complete
inline, submitted without reaping, and waits for the pre-select step when it did."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import uringloop
from uringloop._loop import EARLY_BATCH, EARLY_SHARE, UringStats

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


async def _pipe_batch_behind_a_slow_read(
    n: int, read: Any = _pread, written: bool = False
) -> tuple[UringStats, UringStats]:
    """n pipe reads started by n tasks in one loop iteration while another pipe read waits
    in flight (the last submission did not complete inline). Returns the counters seen
    right after all of them queued, and those seen before they started;
    then every pipe gets its byte, and each read must return it. `written`: the n pipes
    have their byte before the reads start (each read completes as it is submitted)."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    pipes = [os.pipe() for _ in range(n + 1)]
    try:
        first = asyncio.ensure_future(loop.pread(pipes[0][0], 1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert loop.uring_stats().in_flight == 1  # an empty pipe: it stays in flight
        assert loop._driver.slow_completions  # type: ignore[union-attr]
        before = loop.uring_stats()
        if written:
            for i, (_, w) in enumerate(pipes[1:], 1):
                os.write(w, bytes([i]))

        stats, tasks = await _start_batch(loop, [(r, -1) for r, _ in pipes[1:]], read)

        for i, (_, w) in enumerate(pipes):
            if i == 0 or not written:
                os.write(w, bytes([i]))
        results = await asyncio.wait_for(asyncio.gather(first, *tasks), 10)
        assert results == [bytes([i]) for i in range(len(pipes))]
        return stats, before
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
async def test_early_submissions_grow_with_what_is_in_flight(read: Any) -> None:
    # With n reads queued by n tasks of one iteration behind a slow one, the backlog goes
    # to the kernel once it is EARLY_BATCH long, or a quarter (1 / EARLY_SHARE) of the
    # reads in flight if that is more: submissions of 2 while few are in flight, larger
    # as more are (here 12 enters for 48 reads, 2 left for the pre-select step).
    n = 48
    stats, before = await _pipe_batch_behind_a_slow_read(n, read)
    enters = before.enter_calls
    in_flight, backlog, early = 1, 0, 0
    for _ in range(n):
        backlog += 1
        if backlog >= max(EARLY_BATCH, in_flight // EARLY_SHARE):
            in_flight, backlog, early = in_flight + backlog, 0, early + 1
    assert early < n // EARLY_BATCH  # fewer, larger submissions than EARLY_BATCH each
    assert (stats.enter_calls - enters, stats.in_flight, stats.backlog) == (
        early,
        in_flight,
        backlog,
    )
    assert stats.in_flight + stats.backlog == 1 + n


@READS
async def test_early_submissions_reap_nothing(read: Any) -> None:
    # Reads of pipes that hold their byte complete as they are submitted. Submitted early,
    # in the middle of the iteration, their completions wait for the pre-select step's
    # flush: none is reaped before it (a flush would have delivered them at once), and
    # they stay counted in flight, which the rule reads.
    n = 4 * EARLY_BATCH
    stats, before = await _pipe_batch_behind_a_slow_read(n, read, written=True)
    assert stats.enter_calls > before.enter_calls  # early submissions were made
    assert stats.completed == before.completed
    assert stats.in_flight + stats.backlog == 1 + n


async def test_the_compiled_prefilter_calls_submit_early_only_where_it_acts() -> None:
    # The compiled coroutines ask the rule themselves (early_due in _loop_c.c) before
    # calling Loop._submit_early: every call made with callbacks ready must submit (the
    # reference's rule agrees), and each early submission came from one such call.
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    calls: list[bool] = []
    original = loop._submit_early

    def counted(nbytes: int) -> bool:
        ready = bool(loop._ready)  # type: ignore[attr-defined]
        enters = loop.uring_stats().enter_calls
        result = original(nbytes)
        if ready:
            calls.append(loop.uring_stats().enter_calls > enters)
        return result

    loop._submit_early = counted  # type: ignore[method-assign]
    try:
        stats, before = await _pipe_batch_behind_a_slow_read(48, _read_into)
    finally:
        del loop._submit_early  # type: ignore[method-assign]
    early = stats.enter_calls - before.enter_calls
    assert early > 0
    if loop.uring_stats().implementation == "c":
        assert calls == [True] * early
    else:  # the reference calls it after every queued operation
        assert calls.count(True) == early and len(calls) == 48


@pytest.mark.parametrize("batch", [2.0, 10**30])
async def test_odd_rule_constants_behave_as_the_reference(
    batch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The compiled pre-filter computes only with ints that fit; other values are left to
    # Loop._submit_early, so both twins do the same: a float works as the int would, a
    # huge int submits nothing early.
    import uringloop._loop as loop_module

    monkeypatch.setattr(loop_module, "EARLY_BATCH", batch)
    stats, before = await _pipe_batch_behind_a_slow_read(2, _read_into)
    assert (stats.enter_calls > before.enter_calls) == (batch == 2.0)


@READS
async def test_page_cache_reads_after_early_submissions_batch_again(
    data_file: tuple[str, bytes], ring_only: None, read: Any
) -> None:
    # An early submission reaps nothing, so it cannot tell whether its reads were slow:
    # the next flush, having reaped, decides. After a pipe read (slow) and a round of
    # page-cache reads that went out early, the following rounds are one enter each again.
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()
    try:
        slow = asyncio.ensure_future(loop.pread(r, 1))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert loop._driver.slow_completions  # type: ignore[union-attr]
        os.write(w, b"x")
        assert await slow == b"x"
        offsets = [4096 * k for k in range(12)]
        rounds = []
        for _ in range(3):
            enters = loop.uring_stats().enter_calls
            _stats, tasks = await _start_batch(loop, [(fd, off) for off in offsets], read)
            assert await asyncio.gather(*tasks) == [data[off : off + 1] for off in offsets]
            rounds.append(loop.uring_stats().enter_calls - enters)
        assert rounds[1:] == [1, 1], rounds
        assert not loop._driver.slow_completions  # type: ignore[union-attr]
    finally:
        os.close(fd)
        os.close(r)
        os.close(w)
