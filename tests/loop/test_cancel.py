"""Cancellation: ASYNC_CANCEL, buffers alive until the CQE, no fd leaked by a lost open."""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import os
import pathlib
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import uringloop
from tests.conftest import full_nonblocking_pipe


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


class Buffer(bytearray):
    """A bytearray that can be weakly referenced."""


@pytest.mark.asyncio
# Ring-only: a read blocked on a pipe in a fallback worker thread cannot be cancelled (only
# io_uring's ASYNC_CANCEL can), so it stays in flight until the pipe is closed.
@pytest.mark.loops("uring")
async def test_cancel_keeps_the_buffer_until_the_cqe(no_fd_leak: None) -> None:
    loop = running()
    r, w = os.pipe()
    try:
        buf = Buffer(64)
        ref = weakref.ref(buf)
        task = asyncio.ensure_future(loop.preadinto(r, buf, -1))  # blocks: empty pipe
        del buf
        await asyncio.sleep(0.01)
        assert loop.uring_stats().in_flight == 1
        seen = []

        def look(task: asyncio.Future[int]) -> None:
            # Right after the task took its cancellation, in the same loop iteration: the
            # task is done, the read is still in flight (its ASYNC_CANCEL goes to the
            # kernel at the next pre-select step), and the kernel may still write into the
            # buffer.
            gc.collect()
            seen.append((task.done(), loop.uring_stats().in_flight, ref() is not None))

        task.cancel()
        loop.call_soon(look, task)  # (after the task's wake-up, which cancel() scheduled)
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [(True, 1, True)], "buffer freed before its operation's CQE"
        del task  # its CancelledError's traceback holds the coroutine's frame (Python 3.10)
        assert loop.uring_stats().cancelled == 1
        for _ in range(100):
            await asyncio.sleep(0.001)
            if loop.uring_stats().in_flight == 0:
                break
        assert loop.uring_stats().in_flight == 0
        gc.collect()
        assert ref() is None, "buffer kept after its CQE"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.asyncio
async def test_cancel_before_submission_drops_the_operation(tmp_path: pathlib.Path) -> None:
    """A task cancelled while its operation waits in the queue: the operation never reaches
    the kernel (or the pool), although the loop hands its queue over (the pre-select step)
    before the cancelled task runs again and could withdraw the operation itself."""
    loop = running()
    path = tmp_path / "never-created"
    before = loop.uring_stats().submitted
    task = asyncio.ensure_future(loop.mkdir(path))
    # The task runs first and queues its mkdir. Our own wake-up is scheduled already, so the
    # loop has a callback to run and does not submit the mkdir at once (see _submit_early).
    await asyncio.sleep(0)
    queued = loop.uring_stats()
    assert (queued.submitted, queued.backlog) == (before, 1), "setup: the mkdir must be queued"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await loop.nop()
    assert loop.uring_stats().submitted == before + 1  # the nop, and nothing else
    assert not path.exists()


@pytest.mark.asyncio
async def test_open_completed_after_cancel_closes_its_fd(
    data_file: tuple[str, bytes], no_fd_leak: None, ring_only: None
) -> None:
    loop = running()
    completed = loop.uring_stats().completed
    task = asyncio.ensure_future(loop.open_fd(data_file[0]))
    await asyncio.sleep(0)  # task queues the open
    # Wait for the open to complete (inline in the next pre-select step on the ring, on a
    # worker thread on the fallback). Its completion schedules the task's wake-up after
    # ours: cancelling now hits a task whose open has already succeeded.
    deadline = time.monotonic() + 5
    while loop.uring_stats().completed == completed:
        assert time.monotonic() < deadline, "the open never completed"
        await asyncio.sleep(0)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # no_fd_leak checks the fd it returned was closed.


@pytest.mark.asyncio
# Ring-only: reads blocked on a pipe in fallback worker threads cannot be cancelled.
@pytest.mark.loops("uring")
async def test_many_cancellations_all_end(no_fd_leak: None) -> None:
    loop = running()
    r, w = os.pipe()
    try:
        tasks = [asyncio.ensure_future(loop.pread(r, 10, -1)) for _ in range(300)]
        await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(x, asyncio.CancelledError) for x in results)
        for _ in range(200):
            if loop.uring_stats().in_flight == 0:
                break
            await asyncio.sleep(0.005)
        assert loop.uring_stats().in_flight == 0
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.asyncio
# Ring-only: the batch's read of an empty pipe blocks a fallback worker thread for good,
# and the pool slots it checks are the ring's.
@pytest.mark.loops("uring")
async def test_cancelled_batch_releases_everything(data_file: tuple[str, bytes]) -> None:
    loop = running()
    r, w = os.pipe()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        task = asyncio.ensure_future(loop.pread_many([(fd, 10, 0), (r, 10, -1), (fd, 10, 5)]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if loop.uring_stats().in_flight == 0:
                break
            await asyncio.sleep(0.005)
        assert loop.uring_stats().in_flight == 0
        assert loop._pool.in_use() == 0
    finally:
        for x in (r, w, fd):
            os.close(x)


def test_batch_never_submitted_fails_at_close_instead_of_returning_nothing() -> None:
    from array import array

    from uringloop._ops import ReadBatch

    loop = uringloop.Loop()
    future = loop.create_future()
    op = ReadBatch(array("q", (0, 0)), array("q", (10, 10)), array("q", (0, 0)), loop._pool)
    op.waiter = future
    loop._driver.queue(op)  # type: ignore[union-attr]
    loop.close()  # the batch is still queued: it is dropped
    assert future.cancelled()  # as any operation of this loop's tasks queued at close


def test_operations_queued_at_close_for_tasks_never_resumed_report_nothing_more(
    tmp_path: pathlib.Path, exception_handler_calls: list[dict[str, Any]]
) -> None:
    # A loop stopped right after its tasks queued operations, then closed without
    # cancelling them (as a framework may): each task is reported destroyed pending, as
    # on asyncio's loop, and nothing else (no exception set on a future nobody reads).
    loop = uringloop.Loop()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o600)
    try:

        async def write(i: int) -> None:
            await loop.pwrite(fd, b"x" * 4096, i * 4096)
            await loop.fsync(fd)

        tasks = [loop.create_task(write(i)) for i in range(16)]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert loop.queued_operations() == 16
        loop.close()
        del tasks
        gc.collect()
    finally:
        os.close(fd)
    reported = [context["message"] for context in exception_handler_calls]
    assert reported == ["Task was destroyed but it is pending!"] * 16
    exception_handler_calls.clear()  # (the contexts held the tasks: now they go)
    gc.collect()
    assert exception_handler_calls == []


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback")
@pytest.mark.parametrize("steps", [1, 2])
async def test_a_pipe_read_cancelled_as_data_arrives_hands_its_future_to_unclaimed(
    no_fd_leak: None, steps: int
) -> None:
    # A read of an empty pipe, in flight (a poll-armed read in the kernel, or a thread in
    # read(2)), its task cancelled in the same step as the write that completes it, or a
    # step after: the read may take the bytes before its cancellation reaches it (two
    # steps after, the task has its result on the ring).
    # Whatever it took comes out of the future handed to `unclaimed`; the rest stays in
    # the pipe. Nothing is lost either way.
    loop = running()
    outcomes = set()
    for _ in range(20):
        r, w = os.pipe()
        try:
            handed: list[asyncio.Future[bytes]] = []
            task = asyncio.ensure_future(loop.pread(r, 100, unclaimed=handed.append))
            await asyncio.sleep(0.001)
            assert not task.done()
            os.write(w, b"hello")
            for _ in range(steps - 1):
                await asyncio.sleep(0)
            task.cancel()
            try:
                got = await task
            except asyncio.CancelledError:
                assert len(handed) == 1
                late = handed[0]
                try:
                    got = await asyncio.wait_for(late, 10)
                    outcomes.add("read before its cancellation")
                except OSError as exc:
                    assert exc.errno == errno.ECANCELED
                    got = b""
                    outcomes.add("cancelled")
            else:
                assert not handed
                outcomes.add("returned")
            os.set_blocking(r, False)
            try:
                rest = os.read(r, 100)
            except BlockingIOError:
                rest = b""
            assert got + rest == b"hello"
        finally:
            os.close(r)
            os.close(w)
    assert outcomes - {"returned"}, outcomes  # (the test saw a cancellation)


async def _cancelled_after(
    steps: int, make: Callable[[Callable[[asyncio.Future[Any]], object]], Awaitable[Any]]
) -> tuple[str, Any]:
    """make(unclaimed)'s task cancelled after `steps` steps (0: before its coroutine
    began): ("returned", its value) if it ended first, else what the future handed to
    `unclaimed` came to: ("done", its value), or ("cancelled", None) for ECANCELED."""
    handed: list[asyncio.Future[Any]] = []
    task = asyncio.ensure_future(make(handed.append))
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    try:
        value = await task
        assert not handed
        return "returned", value
    except asyncio.CancelledError:
        if steps == 0:  # (cancelled before its coroutine began: nothing to hand)
            assert not handed
            return "cancelled", None
    assert len(handed) == 1
    try:
        return "done", await asyncio.wait_for(handed[0], 10)
    except OSError as exc:
        assert exc.errno == errno.ECANCELED
        return "cancelled", None


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback")
@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_a_cancelled_pwrite_kept_at_an_offset_hands_over_what_it_wrote(
    tmp_path: pathlib.Path, no_fd_leak: None, steps: int
) -> None:
    # pwrite_kept at an offset, its task cancelled before its coroutine began (nothing
    # made), before its write reached the kernel, or on its way: the future handed to
    # `unclaimed` says what the file holds there (a count, or ECANCELED with nothing
    # written).
    loop = running()
    outcomes = set()
    data = b"x" * (1 << 20)
    for i in range(10):
        path = tmp_path / f"f{i}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            how, count = await _cancelled_after(
                steps, functools.partial(loop.pwrite_kept, fd, data, offset=4096)
            )
            outcomes.add(how)
            count = count or 0
            size = os.fstat(fd).st_size
            assert size == (4096 + count if count else 0)
            assert os.pread(fd, count, 4096) == data[:count]
        finally:
            os.close(fd)
    assert outcomes - {"returned"}, outcomes  # (the test saw a cancellation)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback")
@pytest.mark.parametrize("steps", [0, 1, 2, 3])
async def test_a_cancelled_ftruncate_kept_hands_over_whether_it_truncated(
    tmp_path: pathlib.Path, no_fd_leak: None, steps: int
) -> None:
    # ftruncate_kept, its task cancelled before its coroutine began, before the truncate
    # reached the kernel, or on its way: the future handed to `unclaimed` says whether
    # the file was cut (None) or not (ECANCELED).
    loop = running()
    outcomes = set()
    for i in range(10):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * (1 << 20))
        fd = os.open(path, os.O_RDWR)
        try:
            how, value = await _cancelled_after(
                steps, functools.partial(loop.ftruncate_kept, fd, 100)
            )
            outcomes.add(how)
            assert value is None
            assert os.fstat(fd).st_size == (1 << 20 if how == "cancelled" else 100)
        finally:
            os.close(fd)
    assert outcomes - {"returned"}, outcomes  # (the test saw a cancellation)


@pytest.mark.parametrize(
    ("use_uring", "call"),
    # (Not a thread's write into a full pipe: begun, it cannot be withdrawn, and the close
    # keeps its buffer for ever.)
    [(True, "pwrite_kept"), (True, "pread unclaimed"), (False, "pread unclaimed")],
)
def test_a_loop_closed_under_a_kept_operation_logs_nothing(
    use_uring: bool, call: str, no_fd_leak: None
) -> None:
    # A task waiting in a kept write (a full pipe) or read (an empty one) when the loop is
    # closed without it: the operation's end at the close (LoopClosedError, ECANCELED) is
    # nobody's, and is not logged as a future's exception never retrieved.
    loop = uringloop.Loop(use_uring=use_uring)
    logged: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: logged.append(context))
    r, w = full_nonblocking_pipe()
    try:
        os.set_blocking(w, True)
        if call == "pread unclaimed":  # (an empty pipe instead)
            os.close(r)
            os.close(w)
            r, w = os.pipe()

        async def waiting() -> None:
            if call == "pwrite_kept":
                await loop.pwrite_kept(w, b"y" * 100, lambda late: None)
            else:
                await loop.pread(r, 100, unclaimed=lambda late: None)

        async def start() -> asyncio.Task[None]:
            task = loop.create_task(waiting())
            for _ in range(5):
                await asyncio.sleep(0)
            assert not task.done()
            return task

        task = loop.run_until_complete(start())
        loop.close()
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # (never run again)
        del task
        gc.collect()
        assert logged == []
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(r)
        os.close(w)


def _close_then_the_pipe_keeps_what_is_written(loop: uringloop.Loop, r: int, w: int) -> None:
    """Close `loop`; what is written to the pipe afterwards stays there (no read of the
    loop's threads is left to take it)."""
    loop.close()
    os.write(w, b"still in the pipe")
    os.set_blocking(r, False)
    assert os.read(r, 100) == b"still in the pipe"


def _close_letting_readers_go(loop: uringloop.Loop, w: int, readers: int) -> None:
    """A failed test's clean-up: a byte each lets up to `readers` threads in read(2) go,
    for the loop's close."""
    if not loop.is_closed():
        os.write(w, b"x" * readers)
        loop.close()


def test_reads_waiting_on_one_pipe_wait_one_at_a_time_on_the_fallback_pool(
    no_fd_leak: None,
) -> None:
    # Six reads of one idle pipe (through two descriptors of it) on the thread-pool
    # fallback; one byte arrives. One read takes it, and the other five, cancelled, are
    # withdrawn: none of them waits in read(2), where a byte would wake every waiting
    # thread if they waited together, and where they would eat what is written later.
    loop = uringloop.Loop(use_uring=False)
    r, w = os.pipe()
    r2 = os.dup(r)

    async def main() -> tuple[list[bytes], uringloop.UringStats]:
        reads = [asyncio.ensure_future(loop.pread((r, r2)[i % 2], 1)) for i in range(6)]
        await asyncio.sleep(0.1)
        os.write(w, b"Z")
        done, _ = await asyncio.wait(reads, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(0.1)  # (time for the other threads to go into read(2))
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        await asyncio.sleep(0)
        return [read.result() for read in done], loop.uring_stats()

    try:
        got, stats = loop.run_until_complete(main())
        assert got == [b"Z"]
        assert (stats.cancelled, stats.in_flight) == (5, 0)
        _close_then_the_pipe_keeps_what_is_written(loop, r, w)
    finally:
        _close_letting_readers_go(loop, w, 6)
        for fd in (r, r2, w):
            os.close(fd)


@pytest.mark.parametrize(
    "through", ["Loop.pread", "Loop.preadinto", "Loop.preadv", "uringloop.open"]
)
def test_a_cancelled_read_of_an_idle_pipe_lets_the_fallback_pool_s_thread_go(
    no_fd_leak: None, through: str
) -> None:
    # On the thread-pool fallback, a read at a pipe's position waits for something to
    # read before its thread goes into read(2): cancelled meanwhile, it is withdrawn
    # (counted cancelled, nothing in flight), its thread goes (the loop's close and the
    # interpreter's exit do not wait for it), and what is written later stays in the pipe.
    loop = uringloop.Loop(use_uring=False)
    r, w = os.pipe()
    buffer = bytearray(10)

    async def main() -> uringloop.UringStats:
        if through == "Loop.pread":
            read = loop.pread(r, 10)
        elif through == "Loop.preadinto":
            read = loop.preadinto(r, buffer)
        elif through == "Loop.preadv":
            read = loop.preadv(r, [buffer, bytearray(5)])
        else:
            f = await uringloop.open(r, "rb", buffering=0, closefd=False)
            read = f.read(10)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(read, 0.05)
        await asyncio.sleep(0)
        return loop.uring_stats()

    try:
        stats = loop.run_until_complete(main())
        assert (stats.cancelled, stats.in_flight) == (1, 0)
        _close_then_the_pipe_keeps_what_is_written(loop, r, w)
        assert buffer == bytearray(10)
    finally:
        _close_letting_readers_go(loop, w, 1)
        os.close(r)
        os.close(w)


@pytest.mark.asyncio
async def test_an_open_whose_coroutine_is_closed_at_its_await_closes_its_fd(
    tmp_path: pathlib.Path, no_fd_leak: None
) -> None:
    # A coroutine closed where it waits (by hand, or an async generator's or a task's
    # destroyed pending: a GeneratorExit at its await) abandons its operation as a
    # cancelled one does: an open that completed has its descriptor closed.
    loop = running()
    coro = loop.open_fd(str(tmp_path / "made"), os.O_RDONLY | os.O_CREAT, 0o600)
    loop.call_soon(lambda: None)  # a callback ready: the open is queued, not made at once
    future = coro.send(None)
    deadline = time.monotonic() + 5
    while not future.done():
        assert time.monotonic() < deadline, "the open never completed"
        await asyncio.sleep(0.001)
    fd = future.result()
    inode = os.fstat(fd).st_ino
    coro.close()
    try:
        left = os.fstat(fd).st_ino
    except OSError as exc:
        assert exc.errno == errno.EBADF
    else:
        assert left != inode, "the descriptor the open made is still open"


@pytest.mark.asyncio
@pytest.mark.parametrize("end", ["closed", "collected"])
# Ring-only: a read blocked on a pipe in a fallback worker thread cannot be cancelled.
@pytest.mark.loops("uring")
async def test_a_pipe_read_whose_coroutine_ends_at_its_await_is_cancelled(end: str) -> None:
    loop = running()
    r, w = os.pipe()
    try:
        coro = loop.pread(r, 10)
        loop.call_soon(lambda: None)
        coro.send(None)
        await asyncio.sleep(0.01)
        assert loop.uring_stats().in_flight == 1  # waiting for the pipe, in the kernel
        if end == "closed":
            coro.close()
        else:
            del coro
            gc.collect()
        deadline = time.monotonic() + 5
        while loop.uring_stats().in_flight:
            assert time.monotonic() < deadline, "the read was not cancelled"
            await asyncio.sleep(0.001)
        os.write(w, b"abc")
        await asyncio.sleep(0.01)
        os.set_blocking(r, False)
        assert os.read(r, 10) == b"abc"  # nothing read it
    finally:
        os.close(r)
        os.close(w)
