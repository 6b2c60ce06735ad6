"""Threads that run the loop, close(), fork, the fallback and the public entry points."""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import contextvars
import errno
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import fd_exists, full_nonblocking_pipe, open_fds, run_python
from uringloop import threads
from uringloop._ring import syscalls


def in_thread(fn: object) -> object:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(timeout=30)  # type: ignore[arg-type]


def test_loop_created_in_one_thread_runs_in_another(data_file: tuple[str, bytes]) -> None:
    loop = uringloop.Loop()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        got = in_thread(lambda: loop.run_until_complete(loop.pread(fd, 5, 0)))
        assert got == data_file[1][:5]
        # Later from yet another thread (here: this one): a fresh ring follows it.
        assert loop.run_until_complete(loop.pread(fd, 5, 5)) == data_file[1][5:10]
        got = in_thread(lambda: loop.run_until_complete(loop.pread(fd, 5, 10)))
        assert got == data_file[1][10:15]
    finally:
        os.close(fd)
        loop.close()


def test_counters_go_on_across_the_ring_made_for_another_thread() -> None:
    """uring_stats() counts since the loop was created: the fresh ring a loop makes when
    another thread runs it does not start its counters again."""
    loop = uringloop.Loop()

    async def nops(n: int) -> None:
        await asyncio.gather(*(loop.nop() for _ in range(n)))

    try:
        in_thread(lambda: loop.run_until_complete(nops(5)))
        before = loop.uring_stats()
        assert before.submitted == before.completed == 5
        loop.run_until_complete(nops(1))  # this thread: a new ring
        after = loop.uring_stats()
        assert (after.submitted, after.completed) == (6, 6)
        assert after.enter_calls > before.enter_calls
        assert after.max_in_flight >= before.max_in_flight
    finally:
        loop.close()


@pytest.mark.parametrize(
    "err", [pytest.param(errno.EPERM, id="EPERM"), pytest.param(errno.ENOMEM, id="ENOMEM")]
)
def test_a_loop_moved_to_a_thread_refused_io_uring_goes_on_on_the_thread_pool(
    data_file: tuple[str, bytes], err: int
) -> None:
    # The ring a loop makes for the new thread that runs it is refused (a seccomp filter of
    # that thread's, say): the loop moves to the thread pool with Loop()'s warning, and
    # works there and back in its first thread. Before, the old ring was closed first and
    # the loop kept it: every later run failed (ValueError), and its close leaked.
    path, data = data_file
    before = open_fds()
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        assert loop.run_until_complete(loop.pread(fd, 5, 0)) == data[:5]
        with (
            syscalls.inject("setup", err, times=-1),
            pytest.warns(RuntimeWarning, match="io_uring is unavailable"),
        ):
            got = in_thread(lambda: loop.run_until_complete(loop.pread(fd, 5, 5)))
        assert got == data[5:10] and not loop.uring_available
        assert loop.run_until_complete(loop.pread(fd, 5, 10)) == data[10:15]
    finally:
        os.close(fd)
        loop.close()
    assert open_fds() == before


def test_a_loop_short_of_descriptors_for_its_new_thread_s_ring_keeps_the_old_one(
    data_file: tuple[str, bytes],
) -> None:
    # No descriptor for the ring of the new thread that runs a loop (EMFILE): run_forever
    # raises it, and the loop keeps its ring, working in its thread and in a new one later.
    path, data = data_file
    before = open_fds()
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)

    def short() -> None:
        with syscalls.inject("setup", errno.EMFILE), pytest.raises(OSError) as info:
            loop.run_forever()
        assert info.value.errno == errno.EMFILE

    try:
        assert loop.run_until_complete(loop.pread(fd, 5, 0)) == data[:5]
        in_thread(short)
        assert loop.uring_available
        assert loop.run_until_complete(loop.pread(fd, 5, 5)) == data[5:10]
        got = in_thread(lambda: loop.run_until_complete(loop.pread(fd, 5, 10)))
        assert got == data[10:15] and loop.uring_available
    finally:
        os.close(fd)
        loop.close()
    assert open_fds() == before


@pytest.mark.parametrize("use_uring", [True, False])
def test_a_cancelled_read_counts_as_completed(use_uring: bool) -> None:
    """A read of an empty pipe that its task cancels ends (ECANCELED): uring_stats()
    counts its completion on the thread-pool fallback too, where the read that its
    thread had not begun is withdrawn, as the ring counts the cancelled read's CQE."""
    loop = uringloop.Loop(use_uring=use_uring)
    r, w = os.pipe()

    async def main() -> None:
        task = loop.create_task(loop.pread(r, 5, -1))
        while not loop.uring_stats().in_flight:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        while loop.uring_stats().in_flight:
            await asyncio.sleep(0.001)

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 10))
        stats = loop.uring_stats()
        assert stats.cancelled == 1
        assert stats.submitted == stats.completed == (2 if use_uring else 1)  # (+ the cancel)
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_other_thread_refused_while_operations_are_in_flight() -> None:
    loop = uringloop.Loop()
    r, w = os.pipe()
    owner = concurrent.futures.ThreadPoolExecutor(1)
    try:
        task = loop.create_task(loop.pread(r, 5, -1))  # waits for data on the pipe

        owner.submit(loop.run_until_complete, asyncio.sleep(0.02)).result(10)
        assert loop.uring_stats().in_flight == 1
        with pytest.raises(RuntimeError, match="in flight"):
            loop.run_until_complete(asyncio.sleep(0))
        os.write(w, b"hello")
        assert owner.submit(loop.run_until_complete, task).result(10) == b"hello"
    finally:
        owner.submit(loop.close).result(10)
        owner.shutdown()
        os.close(r)
        os.close(w)


def start_thread(target: Callable[[], None], alien: bool = False) -> Callable[[], None]:
    """Run `target` in a new thread: a threading.Thread, or (alien) one that threading did
    not make (as C code's), whose current_thread() is a _DummyThread. Returns its join."""
    if not alien:
        thread = threading.Thread(target=target)
        thread.start()
        return lambda: thread.join(30)
    ended = _thread.allocate_lock()
    ended.acquire()

    def run() -> None:
        try:
            target()
        finally:
            ended.release()

    def join() -> None:
        ended.acquire(True, 30)
        time.sleep(0.01)  # (its last steps after the release: it ends)

    _thread.start_new_thread(run, ())
    return join


def in_thread_with_ident(ident: int, fn: object, alien: bool = False) -> tuple[bool, object]:
    """(True, fn's outcome) in a new thread (see start_thread) that has `ident`, an ended
    thread's, or (False, None) where none comes: threads reuse the idents of ended ones
    (glibc reuses their stacks). The threads made on the way wait, holding theirs, until
    one has it."""
    release = threading.Event()
    outcome: list[object] = []

    joins = []
    try:
        for _ in range(64):
            started = threading.Event()
            idents: list[int] = []

            def run(started: threading.Event = started, idents: list[int] = idents) -> None:
                idents.append(threading.get_ident())
                started.set()
                if idents[0] != ident:
                    release.wait(30)
                    return
                try:
                    outcome.append(fn())  # type: ignore[operator]
                except BaseException as exc:
                    outcome.append(exc)

            joins.append(start_thread(run, alien))
            assert started.wait(30)
            if idents[0] == ident:
                joins.pop()()
                return True, outcome[0]
    finally:
        release.set()
        for join in joins:
            join()
    return False, None


@pytest.mark.exception_handler_ok  # (the read's task never runs again)
@pytest.mark.parametrize("alien", [False, True], ids=["threading", "not threading's"])
def test_a_new_thread_with_an_ended_threads_ident_is_another_thread(alien: bool) -> None:
    # The ring's issuer is the thread that ran the loop, not its ident: a new thread that
    # reuses it is refused while operations are in flight, as any other thread is. So is
    # one threading did not make, whose _DummyThread an ended one of its ident left.
    loop = uringloop.Loop()
    r, w = os.pipe()
    task = loop.create_task(loop.pread(r, 5, -1))  # waits for data on the pipe
    ran_on: list[int] = []

    def run_briefly() -> None:
        ran_on.append(threading.get_ident())
        loop.run_until_complete(asyncio.sleep(0.02))

    start_thread(run_briefly, alien)()
    try:
        assert loop.uring_stats().in_flight == 1

        def run_again() -> None:
            step = asyncio.sleep(0)
            try:
                loop.run_until_complete(step)
            finally:
                step.close()  # (refused before it began)

        reused, outcome = in_thread_with_ident(ran_on[0], run_again, alien)
        if reused:
            assert isinstance(outcome, RuntimeError) and "in flight" in str(outcome), outcome
    finally:
        # Only the ended thread could have taken the read's completion: closed from here,
        # the loop says so and keeps what the kernel may still use. Let it go.
        never_freed = len(uringloop._loop._never_freed)
        with pytest.warns(ResourceWarning, match="Close the loop on its own thread"):
            loop.close()
        del uringloop._loop._never_freed[never_freed:]
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        os.close(r)
        os.close(w)
    if not reused:
        pytest.skip("no new thread reused the ended thread's ident")


def test_create_and_close_leaks_no_fd() -> None:
    before = open_fds()
    for _ in range(20):
        loop = uringloop.Loop()
        loop.run_until_complete(loop.nop())
        loop.close()
        loop.close()  # idempotent
    assert open_fds() == before


def test_a_loop_dropped_unclosed_whose_warning_is_an_error_leaks_no_fd() -> None:
    # Its __del__ warns before it closes the loop: with ResourceWarning an error, the close
    # is not made. Stock asyncio's descriptors (self-pipe, epoll) close with their objects;
    # the ring's eventfd did not.
    before = open_fds()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        loop = uringloop.Loop()
        loop.run_until_complete(loop.nop())
        del loop
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "unraisablehook", lambda unraisable: None)
            gc.collect()
    assert open_fds() == before


# The task awaiting the read never runs again: the LoopClosedError close() sets on its
# future is never retrieved, and asyncio reports that through the exception handler.
@pytest.mark.exception_handler_ok
def test_close_cancels_in_flight_and_waits_for_the_cqe() -> None:
    before = open_fds()
    loop = uringloop.Loop()
    r, w = os.pipe()
    buf = bytearray(16)
    task = loop.create_task(loop.preadinto(r, buf, -1))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert loop.uring_stats().in_flight == 1
    start = time.monotonic()
    loop.close()
    assert time.monotonic() - start < uringloop._loop.CLOSE_TIMEOUT
    assert loop.uring_stats().in_flight == 0
    assert not uringloop._loop._never_freed
    buf.extend(b"x")  # no export left: the buffer is ours again
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    os.close(r)
    os.close(w)
    assert open_fds() == before


@pytest.mark.parametrize(
    "closed_on", ["its own thread", "another thread", "another, strict", "a new one, its ident"]
)
def test_closing_with_work_in_flight_from_another_thread_warns(
    closed_on: str, tmp_path: os.PathLike[str]
) -> None:
    # A thread's open waits in the kernel for a FIFO's writer as the loop is stopped and
    # closed. On the loop's thread the close cancels it and takes its completion; from
    # another it cannot (only the loop's thread may), and it says so, once the close is
    # done: with warnings made errors ("strict"), the loop is closed all the same and the
    # open's caller answered.
    fifo = os.path.join(tmp_path, "fifo")
    os.mkfifo(fifo)
    loop = uringloop.Loop()
    started = threading.Event()
    seen: list[warnings.WarningMessage] = []

    served_on: list[int] = []

    def serve() -> None:
        served_on.append(threading.get_ident())
        loop.call_soon(started.set)
        loop.run_forever()
        if closed_on == "its own thread":
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loop.close()
            seen.extend(caught)

    server = threading.Thread(target=serve)
    server.start()
    assert started.wait(10)
    outcome: list[object] = []

    def open_it() -> None:
        try:
            outcome.append(uringloop.threads.open(fifo, os.O_RDONLY | os.O_CREAT, loop=loop))
        except Exception as exc:
            outcome.append(exc)

    opener = threading.Thread(target=open_it)
    opener.start()
    deadline = time.monotonic() + 10
    while not loop.uring_stats().in_flight:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    loop.call_soon_threadsafe(loop.stop)
    server.join(10)
    if closed_on != "its own thread":
        never_freed = len(uringloop._loop._never_freed)

        def close() -> None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("error" if closed_on == "another, strict" else "always")
                try:
                    loop.close()
                except ResourceWarning as raised:
                    seen.append(warnings.WarningMessage(raised, ResourceWarning, "", 0))
            seen.extend(caught)

        reused = False
        if closed_on == "a new one, its ident":  # (not the loop's thread: another one)
            reused, raised = in_thread_with_ident(served_on[0], close)
            assert raised is None
        if not reused:
            close()
        assert loop.is_closed()
        # The stranded open is kept, as close() keeps what the kernel may still use; the
        # ring's teardown ends it (its path was copied when it was issued): let it go.
        assert len(uringloop._loop._never_freed) == never_freed + 1
        del uringloop._loop._never_freed[never_freed:]
    opener.join(10)
    [failure] = outcome
    assert isinstance(failure, uringloop.LoopClosedError)
    resource = [w for w in seen if issubclass(w.category, ResourceWarning)]
    if closed_on != "its own thread":
        [warning] = resource
        assert "Close the loop on its own thread" in str(warning.message)
    else:
        assert resource == []
    if closed_on == "a new one, its ident" and not reused:
        pytest.skip("no new thread reused the ended thread's ident")


def test_foreign_submissions_after_close_fail_at_once() -> None:
    loop = uringloop.Loop()
    pending = loop.threadsafe.nop()  # queued, the loop never runs again
    loop.close()
    with pytest.raises(uringloop.LoopClosedError):
        pending.result(timeout=1)
    with pytest.raises(RuntimeError, match="closed"):
        loop.threadsafe.nop()
    assert isinstance(uringloop.LoopClosedError(), RuntimeError)


# Operations that building may already make (RunNow: the system call answers at once, as
# a read or write of an O_NONBLOCK pipe with data or room does), each as (name, call).
_MADE_AS_BUILT: list[tuple[str, Callable[[uringloop.Loop, int, int], Any]]] = [
    ("preadinto", lambda loop, r, w: loop.preadinto(r, bytearray(1), -1)),
    ("pwrite", lambda loop, r, w: loop.pwrite(w, b"XY", -1)),
    ("pwritev", lambda loop, r, w: loop.pwritev(w, [b"XY"], -1)),
    ("pwrite_kept", lambda loop, r, w: loop.pwrite_kept(w, b"XY", -1)),
    ("unlink", lambda loop, r, w: loop.unlink("")),
    ("threadsafe.pread", lambda loop, r, w: loop.threadsafe.pread(r, 1, -1)),
    ("threadsafe.pwrite", lambda loop, r, w: loop.threadsafe.pwrite(w, b"Z", -1)),
    ("threadsafe.unlink", lambda loop, r, w: loop.threadsafe.unlink("")),
    ("threads.pread", lambda loop, r, w: threads.pread(r, 1, -1, loop=loop)),
    ("threads.pwrite", lambda loop, r, w: threads.pwrite(w, b"Z", -1, loop=loop)),
    ("threads.pread_many", lambda loop, r, w: threads.pread_many([(r, 1, -1)], loop=loop)),
    ("threads.unlink", lambda loop, r, w: threads.unlink("", loop=loop)),
    ("pread_many of none", lambda loop, r, w: loop.pread_many([])),  # (as any batch)
    ("threadsafe.pread_many of none", lambda loop, r, w: loop.threadsafe.pread_many([])),
]


@pytest.mark.parametrize("call", [c for _, c in _MADE_AS_BUILT], ids=[n for n, _ in _MADE_AS_BUILT])
def test_a_closed_loop_refuses_an_operation_before_it_is_made(
    call: Callable[[uringloop.Loop, int, int], Any],
) -> None:
    # Refused before it is built: its build would have read or written the pipe (or
    # raised the system call's FileNotFoundError), with LoopClosedError raised or not.
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        os.write(w, b"hello")
        loop = uringloop.Loop()
        loop.close()
        with pytest.raises(uringloop.LoopClosedError):
            made = call(loop, r, w)
            if asyncio.iscoroutine(made):
                made.send(None)
        assert os.read(r, 100) == b"hello"
    finally:
        os.close(r)
        os.close(w)


def _is_closed(fd: int, inode: int) -> bool:
    try:
        return os.fstat(fd).st_ino != inode  # (its number reused by another file)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return True


def test_a_close_on_a_closed_loop_is_made_by_its_caller(tmp_path: os.PathLike[str]) -> None:
    # A close is never dropped: once the loop is closed (a task's `finally` closing its fd
    # as the task is destroyed with its closed loop; a thread's close with loop=), the
    # caller makes it, as the blocking call, and has its outcome. Other operations are
    # still refused.
    path = os.path.join(tmp_path, "f")
    fds = [os.open(path, os.O_RDONLY | os.O_CREAT, 0o600) for _ in range(3)]
    inodes = [os.fstat(fd).st_ino for fd in fds]
    loop = uringloop.Loop()
    loop.close()
    coro = loop.close_fd(fds[0])
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value is None
    assert loop.threadsafe.close_fd(fds[1]).result(timeout=5) is None
    assert uringloop.threads.close(fds[2], loop=loop) is None
    assert all(_is_closed(fd, inode) for fd, inode in zip(fds, inodes, strict=True))
    unused = os.open(path, os.O_RDONLY)
    os.close(unused)
    with pytest.raises(OSError) as failed:
        loop.close_fd(unused).send(None)
    assert failed.value.errno == errno.EBADF
    with pytest.raises(uringloop.LoopClosedError):
        loop.fsync(unused).send(None)


@pytest.mark.exception_handler_ok  # ("Task was destroyed but it is pending!", as asyncio's)
def test_a_task_destroyed_with_its_closed_loop_closes_its_fd_in_its_finally(
    tmp_path: os.PathLike[str],
) -> None:
    path = os.path.join(tmp_path, "f")
    made: list[tuple[int, int]] = []

    async def holds_a_file() -> None:
        loop = asyncio.get_running_loop()
        fd = await loop.open_fd(path, os.O_RDONLY | os.O_CREAT, 0o600)  # type: ignore[attr-defined]
        made.append((fd, os.fstat(fd).st_ino))
        try:
            await asyncio.sleep(3600)
        finally:
            await loop.close_fd(fd)  # type: ignore[attr-defined]

    loop = uringloop.Loop()
    task = loop.create_task(holds_a_file())
    loop.run_until_complete(asyncio.sleep(0.05))
    assert made and not task.done()
    loop.close()  # (stopped: the task is never resumed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        del task
        gc.collect()
    ((fd, inode),) = made
    assert _is_closed(fd, inode)


@pytest.mark.exception_handler_ok  # ("Task was destroyed but it is pending!", as asyncio's)
@pytest.mark.parametrize("mode", ["rb", "wb", "w", "wb0"])
def test_a_file_a_task_closes_as_it_is_destroyed_with_its_closed_loop_is_closed(
    tmp_path: os.PathLike[str], mode: str
) -> None:
    # The task's `async with` closes the file with no loop running: closed with blocking
    # calls, what it buffered written, as the built-in's would be. (On the thread-pool
    # fallback, whose closes are never made inline: before, the file was marked closed,
    # its descriptor left open, and "no running event loop" raised.)
    path = os.path.join(tmp_path, "f")
    with open(path, "wb") as f:
        f.write(b"x")
    made: list[tuple[int, int]] = []

    async def holds_a_file() -> None:
        buffering = 0 if mode.endswith("0") else -1
        async with uringloop.open(path, mode.rstrip("0"), buffering=buffering) as file:
            made.append((file.fileno(), os.fstat(file.fileno()).st_ino))
            if "w" in mode:
                await file.write("written" if mode == "w" else b"written")
            await asyncio.sleep(3600)

    loop = uringloop.Loop(use_uring=False)
    task = loop.create_task(holds_a_file())
    loop.run_until_complete(asyncio.sleep(0.05))
    assert made and not task.done()
    loop.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)  # (closed by the close, not by __del__)
        del task
        gc.collect()
    ((fd, inode),) = made
    assert _is_closed(fd, inode)
    with open(path, "rb") as f:
        assert f.read() == (b"x" if mode == "rb" else b"written")


def test_a_file_is_closed_where_no_loop_runs_only_once_its_loop_is_closed(
    tmp_path: os.PathLike[str],
) -> None:
    # While its loop may still run its I/O (stopped, not closed), a close where no loop
    # runs is refused as before (RuntimeError), the file left open: its descriptor closed
    # under a write still queued there would send that write to whatever file got the
    # number next.
    path = os.path.join(tmp_path, "f")
    loop = uringloop.Loop(use_uring=False)

    async def opened() -> Any:
        f = await uringloop.open(path, "wb")
        await f.write(b"abc")
        return f

    f = loop.run_until_complete(opened())
    try:
        with pytest.raises(RuntimeError, match="no running event loop"):
            f.close().send(None)
        assert not f.closed
    finally:
        loop.run_until_complete(f.close())
        loop.close()
    with open(path, "rb") as written:
        assert written.read() == b"abc"


def test_a_blocking_close_whose_write_makes_no_progress_raises(
    tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = os.path.join(tmp_path, "f")
    loop = uringloop.Loop(use_uring=False)

    async def opened() -> Any:
        f = await uringloop.open(path, "wb")
        await f.write(b"abc")  # (buffered)
        return f

    f = loop.run_until_complete(opened())
    loop.close()
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: 0)
    with pytest.raises(OSError) as failed:
        f.close().send(None)  # (no loop runs: the blocking close)
    assert failed.value.errno == errno.EIO and f.closed


@pytest.mark.parametrize("buffering", [0, -1])
def test_a_blocking_close_raises_the_close_s_error(
    tmp_path: os.PathLike[str], buffering: int
) -> None:
    # As the async close and the built-in's: EBADF where the descriptor was closed behind
    # the file's back, the file closed all the same.
    path = os.path.join(tmp_path, "f")
    loop = uringloop.Loop(use_uring=False)
    f = loop.run_until_complete(uringloop.open(path, "wb", buffering=buffering))
    loop.close()
    os.close(f.fileno())
    with pytest.raises(OSError) as failed:
        f.close().send(None)  # (no loop runs: the blocking close)
    assert failed.value.errno == errno.EBADF and f.closed


def _flush_in_flight_at_close(
    loop: uringloop.Loop, path: str | int, mode: str, data: bytes, before_close: Callable[[], None]
) -> Any:
    """A task's flush of `data` through a file of `path` is in flight when `loop` is
    closed (after before_close()); the task is then destroyed, its coroutine closed at its
    await. Returns the file, for a close where no loop runs; None where the write ended
    before the loop stopped (the file closed: the caller tries again)."""
    made: list[Any] = []

    async def writes() -> None:
        f = await uringloop.open(path, mode)
        made.append(f)
        await f.write(data)
        await f.flush()

    async def until_in_flight() -> asyncio.Task[None]:
        task = loop.create_task(writes())
        deadline = time.monotonic() + 10
        while not (made and loop.uring_stats().in_flight):
            assert time.monotonic() < deadline, "the write never waited"
            await asyncio.sleep(0)
        return task

    task = loop.run_until_complete(until_in_flight())
    before_close()
    if task.done():  # (it ended in the loop's last iteration)
        loop.run_until_complete(made[0].close())
        loop.close()
        return None
    loop.close()
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # (never run again)
    del task
    gc.collect()
    return made[0]


@contextlib.contextmanager
def _inode_held(path: str) -> Iterator[None]:
    """Another thread appends to `path` (8 MiB at a time, 256 MiB at most) until the
    block ends, holding its inode most of the time: a ring write of the file waits for it
    in a kernel worker, which close() cannot cancel."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    stop = threading.Event()
    begun = threading.Event()

    def hold() -> None:
        chunk = b"B" * (8 << 20)
        begun.set()
        for _ in range(32):
            if stop.is_set():
                return
            os.write(fd, chunk)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        begun.wait()
        time.sleep(0.01)
        yield
    finally:
        stop.set()
        thread.join()
        os.close(fd)


def _cancel_in_flight(loop: uringloop.Loop, work: Any, made: list[Any]) -> None:
    """Run `work` as a task on `loop` until it has made its file (into `made`) and has an
    operation in flight, then cancel it and wait for it to end."""

    async def cancelled_on_its_way() -> None:
        task = loop.create_task(work)
        while not (made and loop.uring_stats().in_flight):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    loop.run_until_complete(cancelled_on_its_way())


def _read_all_now(r: int) -> bytes:
    """What the pipe of non-blocking read end `r` holds now."""
    got = bytearray()
    try:
        while chunk := os.read(r, 1 << 16):
            got += chunk
    except BlockingIOError:
        pass
    return bytes(got)


@pytest.mark.parametrize("use_uring", [True, False])
def test_a_write_that_ends_as_its_loop_closes_is_not_written_again(
    tmp_path: os.PathLike[str], use_uring: bool
) -> None:
    # A flush's write under way when the loop closes, which ends during close()'s wait:
    # its count reaches the file as its task goes, and the file's close where no loop runs
    # writes only what that write did not. On the ring: an O_APPEND write waiting in the
    # kernel's worker for the inode, which another thread's writes hold (a running worker
    # is not cancelled); on the fallback: a pipe's write on a pool thread, which a reader
    # lets end during the wait. Before, the count was dropped with the task's future, and
    # the close wrote the bytes again.
    data = b"A" * 100
    if use_uring:
        path = os.path.join(tmp_path, "log")
        with open(path, "wb"):
            pass
        for _ in range(5):  # (until the write is in flight as the loop closes)
            with open(path, "wb"):
                pass
            with _inode_held(path):
                loop = uringloop.Loop()
                f = _flush_in_flight_at_close(loop, path, "ab", data, lambda: None)
                if f is None:
                    continue
                with pytest.raises(StopIteration):
                    f.close().send(None)  # (no loop runs: the blocking close)
                assert f.closed
            break
        else:
            pytest.fail("the write always ended before the loop closed")
        with open(path, "rb") as written:
            assert written.read().count(b"A") == len(data)
        os.truncate(path, 0)
        return
    got = bytearray()
    r, w = full_nonblocking_pipe()
    os.set_blocking(w, True)
    closing = threading.Event()

    def read_in_the_wait() -> None:  # (lets the pool's write end, within close()'s wait)
        closing.wait()
        time.sleep(0.3)
        deadline = time.monotonic() + 10
        while got.count(b"A") < len(data) and time.monotonic() < deadline:
            got.extend(_read_all_now(r))
            time.sleep(0.01)

    reader = threading.Thread(target=read_in_the_wait)
    reader.start()
    try:
        loop = uringloop.Loop(use_uring=False)
        f = _flush_in_flight_at_close(loop, w, "wb", data, closing.set)
        with pytest.raises(StopIteration):
            f.close().send(None)  # (no loop runs: the blocking close)
        assert f.closed
    finally:
        closing.set()
        reader.join()
    got.extend(_read_all_now(r))
    os.close(r)
    assert got.count(b"A") == len(data)


@pytest.mark.exception_handler_ok  # ("Task was destroyed but it is pending!", as asyncio's)
def test_a_write_still_under_way_after_its_loop_closed_is_not_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fallback's write into a full pipe outlives close()'s wait (made short here): what
    # it writes is unknown then. The close where no loop runs does not write those bytes
    # again (the pool's thread writes them once the reader reads): it drops them and
    # raises EIO, the file closed all the same. Before, the reader got them twice.
    from uringloop import _loop
    from uringloop._ops import STREAM_WAITS_NOTED, give_back_stream_waits, take_stream_waits

    monkeypatch.setattr(_loop, "CLOSE_TIMEOUT", 0.1)
    monkeypatch.setattr(_loop, "_never_freed", [])  # (the stranded write's, for this test)
    data = b"A" * 100
    r, w = full_nonblocking_pipe()
    os.set_blocking(w, True)
    try:
        loop = uringloop.Loop(use_uring=False)
        f = _flush_in_flight_at_close(loop, w, "wb", data, lambda: None)
        # The note of the write's wait on the pipe is no loop's now: dropped, not handed
        # from loop to loop of this thread for ever.
        give_back_stream_waits(take_stream_waits())  # (as another loop here would)
        assert threading.get_native_id() not in STREAM_WAITS_NOTED
        got = bytearray(_read_all_now(r))  # (the pool's write goes on: room for it now)
        with pytest.raises(OSError) as failed:
            f.close().send(None)  # (no loop runs: the blocking close)
        assert failed.value.errno == errno.EIO and "100 buffered bytes" in str(failed.value)
        assert f.closed
        deadline = time.monotonic() + 10
        while got.count(b"A") < len(data) and time.monotonic() < deadline:
            time.sleep(0.01)
            got.extend(_read_all_now(r))
        time.sleep(0.1)
        got.extend(_read_all_now(r))
        assert got.count(b"A") == len(data)
    finally:
        os.close(r)
        if "f" not in locals():
            os.close(w)


@pytest.mark.parametrize("mode", ["w", "wb"])
def test_a_cancelled_write_that_ends_as_its_loop_closes_is_counted_by_a_later_close(
    mode: str,
) -> None:
    # A task's flush into a pipe, on the fallback's pool thread, is cancelled: its write
    # is kept (its count comes later), and it ends during close()'s wait, where its
    # callback, queued on the closing loop, never runs. The file's close where no loop
    # runs counts it first, and writes only what it did not (before, it refused: "no
    # running event loop"; and the collector's close wrote the bytes again).
    data = "A" * 1000
    r, w = full_nonblocking_pipe()
    os.set_blocking(w, True)
    got = bytearray()
    loop = uringloop.Loop(use_uring=False)
    try:
        made: list[Any] = []

        async def flushes() -> None:
            f = await uringloop.open(w, mode)
            made.append(f)
            await f.write(data if mode == "w" else data.encode())
            await f.flush()

        _cancel_in_flight(loop, flushes(), made)
        reader = threading.Timer(0.3, lambda: got.extend(_read_all_now(r)))
        reader.start()  # (the pool's write ends within close()'s wait)
        loop.close()
        reader.join()
        [f] = made
        with pytest.raises(StopIteration):
            f.close().send(None)  # (no loop runs: the blocking close)
        got.extend(_read_all_now(r))
        assert got.count(b"A") == len(data)
    finally:
        os.close(r)
        if not loop.is_closed():
            loop.close()


@pytest.mark.parametrize("in_flight", [False, True])
def test_a_close_its_loop_was_closed_under_goes_with_the_loop(
    tmp_path: os.PathLike[str], in_flight: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A buffered file's close, begun (its flush-and-close task made, or its write in
    # flight) when the loop is closed without its tasks being cancelled: that task, which
    # refuses cancellation, is let go of with the loop, and the file is closed with
    # blocking calls, what it buffered written once. (Before, it was held for good: loop,
    # file and descriptor alive, the bytes never written.)
    from uringloop import _files

    made: list[bool] = []

    def kept_task(work: Any) -> Any:  # (the loop stops before the task's first step)
        made.append(True)
        asyncio.get_running_loop().stop()
        return real_kept_task(work)

    real_kept_task = _files.kept_task
    monkeypatch.setattr(_files, "kept_task", kept_task)
    data = b"x" * 5000
    for attempt in range(5):  # (in flight: until the write waited for the inode)
        path = os.path.join(tmp_path, f"f{attempt}")
        with open(path, "wb"):
            pass

        async def writes(path: str = path) -> None:
            async with uringloop.open(path, "wb") as f:  # (buffered until the close)
                await f.write(data)

        before = open_fds()
        waited = False
        with _inode_held(path) if in_flight else contextlib.nullcontext():
            loop = uringloop.Loop()
            ref = weakref.ref(loop)
            task = loop.create_task(writes())
            loop.run_forever()
            assert made
            while in_flight and not task.done():
                if loop.uring_stats().in_flight:
                    waited = True
                    break
                loop.run_until_complete(asyncio.sleep(0))
            loop.close()
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # (never run again)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # (the collector's close)
            del task, loop
            gc.collect()
        assert ref() is None
        assert not {fd for fd in open_fds() - before if fd_exists(fd)}
        with open(path, "rb") as written:
            assert written.read().count(b"x") == len(data)
        os.truncate(path, 0)
        if waited or not in_flight:
            return
    pytest.fail("the ring's write never waited for the inode")


def _close_into_a_full_pipe(open_args: str, data: str) -> str:
    """A child script's start: a task writes `data` to a file opened on a full blocking
    pipe with `open_args` and closes it; the loop runs until the close's flush is in
    flight in the ring. Left: `loop`, `task` (its destroy warning off), `made` (the file),
    the pipe's `r` and `w`."""
    return textwrap.dedent(
        f"""
        import asyncio, gc, os, sys
        import uringloop

        sys.path.insert(0, os.getcwd())  # (the repository's root)
        from tests.conftest import full_nonblocking_pipe

        r, w = full_nonblocking_pipe()
        os.set_blocking(w, True)
        loop = uringloop.Loop()
        made = []

        async def writes():
            f = await uringloop.open(w, {open_args})
            made.append(f)
            await f.write({data})  # (a text file's: pending in the text layer until the close)
            await f.close()  # (its flush waits for room in the pipe)

        async def until_in_flight():
            task = loop.create_task(writes())
            while not (made and loop.uring_stats().in_flight):
                await asyncio.sleep(0)
            return task

        task = loop.run_until_complete(until_in_flight())
        task._log_destroy_pending = False
        """
    )


def test_a_close_into_a_full_pipe_its_loop_was_closed_under_does_not_hold_the_close(
    tmp_path: Path,
) -> None:
    # A buffered file's close, its flush into a full pipe in flight, when the loop is
    # closed without its tasks being cancelled: Loop.close() returns (the bytes are
    # dropped with the descriptor, which is closed: no reader may ever come), where a
    # blocking flush as the close's task went would wait for a reader for ever. (In a
    # child process: a hang fails the test at run_python's timeout.)
    result = run_python(
        tmp_path,
        _close_into_a_full_pipe('"wb", buffering=1 << 16', 'b"A" * 100')
        + textwrap.dedent(
            """
            import time

            started = time.monotonic()
            loop.close()
            del task, made
            gc.collect()
            print(round(time.monotonic() - started), end=" ")
            try:
                os.fstat(w)
                print("open")
            except OSError:
                print("closed")
            """
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "closed"]


def test_a_text_files_close_its_loop_was_closed_under_closes_at_its_coroutines_end(
    tmp_path: Path,
) -> None:
    # A text file's close, its flush into a full pipe in flight, when the loop is closed
    # without its tasks being cancelled; then the task's coroutine is closed at that
    # await, as the collector closes it. The close ends with the coroutine, as the
    # buffered layer's does: the bytes dropped with the descriptor (no reader may ever
    # come). Before, it awaited the buffer's close there: "no running event loop" came out
    # of the coroutine's close(), the file stayed open, and the collector's close wrote
    # into the full pipe for ever. (In a child process: a hang fails at run_python's
    # timeout.)
    result = run_python(
        tmp_path,
        _close_into_a_full_pipe('"w", encoding="ascii"', '"A" * 100')
        + textwrap.dedent(
            """
            loop.close()
            try:
                task.get_coro().close()
                print("ended", end=" ")
            except BaseException as exc:
                print(type(exc).__name__, end=" ")
            print("closed" if made[0].closed else "open", end=" ")
            del task, made
            gc.collect()
            try:
                os.fstat(w)
                print("open")
            except OSError:
                print("closed")
            """
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ended", "closed", "closed"]
    assert "Warning" not in result.stderr, result.stderr


def test_an_unbuffered_file_closed_where_no_loop_runs_counts_a_kept_write_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # closefd=False: the close leaves the descriptor at the file's position. A cancelled
    # write ended during the loop's close() (its count never delivered): the position
    # counts it first, so the owner's next write goes after those bytes, not over them.
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    real_pwrite = os.pwrite

    def slow_pwrite(fd: int, data: Any, offset: int) -> int:
        time.sleep(0.3)  # (ends during the loop's close)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", slow_pwrite)
    loop = uringloop.Loop(use_uring=False)
    made: list[Any] = []
    try:

        async def writes() -> None:
            f = await uringloop.open(fd, "wb", buffering=0, closefd=False)
            made.append(f)
            await f.write(b"K" * 10)

        _cancel_in_flight(loop, writes(), made)
        loop.close()
        [f] = made
        with pytest.raises(StopIteration):
            f.close().send(None)  # (no loop runs: the blocking close)
        monkeypatch.undo()
        os.write(fd, b"Z")
        assert path.read_bytes() == b"K" * 10 + b"Z"
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(fd)


def test_a_closed_loop_is_not_kept_by_the_notes_of_its_last_stream_waits() -> None:
    # A write at a pipe's position noted in the loop's last iteration, never taken by a
    # loop: the note (its operation, its future) must not keep the closed loop alive.
    r, w = os.pipe()
    refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        refs.append(weakref.ref(loop))
        await loop.pwrite(w, b"x", -1)  # type: ignore[attr-defined]

    try:
        uringloop.run(main())
        gc.collect()
        assert refs[0]() is None
    finally:
        os.close(r)
        os.close(w)


def test_forced_fallback_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URINGLOOP_DISABLE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop = uringloop.Loop()
    try:
        assert not loop.uring_available
        assert loop.run_until_complete(loop.nop()) is None
        assert not loop.uring_stats().uring_available
    finally:
        loop.close()


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM, errno.ENOMEM])
def test_no_io_uring_falls_back_with_one_warning(err: int, data_file: tuple[str, bytes]) -> None:
    with syscalls.inject("setup", err, times=-1), pytest.warns(RuntimeWarning) as record:
        loop = uringloop.Loop()
    try:
        assert len(record) == 1 and "thread pool" in str(record[0].message)
        assert not loop.uring_available
        fd = os.open(data_file[0], os.O_RDONLY)
        try:
            assert loop.run_until_complete(loop.pread(fd, 4, 0)) == data_file[1][:4]
        finally:
            os.close(fd)
    finally:
        loop.close()


def test_fork_child_cannot_use_the_parent_loop_but_can_make_its_own() -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        import uringloop
        loop = uringloop.Loop()
        loop.run_until_complete(loop.nop())
        r, w = os.pipe()
        pending = loop.create_task(loop.pread(r, 1, -1))
        loop.run_until_complete(asyncio.sleep(0.01))   # a read in flight at fork
        pid = os.fork()
        if pid == 0:
            try:
                loop.run_until_complete(loop.nop())
                os._exit(3)
            except RuntimeError as exc:
                if "parent process" not in str(exc):
                    os._exit(4)
            child = uringloop.Loop()
            ok = child.run_until_complete(child.nop()) is None
            child.close()
            loop.close()
            os._exit(0 if ok else 5)
        _, status = os.waitpid(pid, 0)
        os.write(w, b"x")
        assert loop.run_until_complete(pending) == b"x"   # parent unaffected
        loop.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def test_fork_after_closing_a_loop_is_quiet() -> None:
    """A loop closed (and still referenced) before a fork has no ring to let go of in the
    child: the fork hook leaves it alone (it raised AttributeError in the child, printed
    as "Exception ignored in _after_fork_in_child")."""
    script = textwrap.dedent(
        """
        import os, sys
        import uringloop
        closed = uringloop.Loop()
        closed.run_until_complete(closed.nop())
        closed.close()
        alive = uringloop.Loop()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        alive.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()


def test_a_forked_child_running_the_loop_takes_no_wakeup_from_the_parent(tmp_path: Path) -> None:
    """A child forked in a task that leaves with sys.exit() runs the loop on (asyncio.run's
    shutdown: its tasks' cleanup). Its epoll instance was the parent's, where the ring's
    eventfd is watched edge-triggered: a completion whose edge the child's poll took never
    woke the parent, whose fsync then waited for ever (on 0696c7d)."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys, time
        import uringloop

        async def lingering():
            try:
                await asyncio.sleep(100)
            finally:
                await asyncio.sleep(1)  # in the child's shutdown: it polls meanwhile

        async def main(path):
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(lingering())
            await asyncio.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                sys.exit(0)
            fd = os.open(path, os.O_RDWR | os.O_CREAT)
            try:
                deadline = time.monotonic() + 1.5
                while time.monotonic() < deadline:  # no timer: only the eventfd wakes us
                    await loop.pwrite(fd, b"x" * 4096, 0)
                    await loop.fsync(fd)  # completed by a kernel worker
            finally:
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            task.cancel()
            return os.waitstatus_to_exitcode(status)

        sys.exit(uringloop.run(main(sys.argv[1])))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")], capture_output=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr.decode()


def test_a_child_forked_by_a_signal_handler_during_the_loop_s_poll_runs_the_loop_on() -> None:
    """A Python signal handler runs inside the loop's epoll poll that the signal interrupted,
    which retries on the same epoll descriptor once the handler returns (PEP 475). A child
    the handler forks goes on there: the descriptor must still be an epoll's (the child's
    own). It was closed, so the child's loop raised OSError EBADF (on cab1f91)."""
    script = textwrap.dedent(
        """
        import asyncio, os, signal, sys, threading, time
        import uringloop

        forked = []

        def handler(signum, frame):
            forked.append(os.fork())

        signal.signal(signal.SIGUSR1, handler)
        loop = uringloop.Loop()
        main = threading.get_ident()

        def interrupt():
            time.sleep(0.3)  # (the loop sleeps in its poll by then)
            signal.pthread_kill(main, signal.SIGUSR1)

        threading.Thread(target=interrupt).start()
        try:
            loop.run_until_complete(asyncio.sleep(1))
        except BaseException as exc:
            if forked == [0]:
                print("child:", repr(exc), flush=True)
                os._exit(1)
            raise
        if forked == [0]:
            os._exit(0)
        _, status = os.waitpid(forked[0], 0)
        loop.close()
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()


def test_unclosed_loop_warns_and_exits_cleanly() -> None:
    script = textwrap.dedent(
        """
        import gc, os, warnings
        import uringloop
        warnings.simplefilter("always")
        before = len(os.listdir("/proc/self/fd"))
        loop = uringloop.Loop()
        loop.run_until_complete(loop.nop())
        with warnings.catch_warnings(record=True) as w:
            del loop
            gc.collect()
        assert any(issubclass(x.category, ResourceWarning) for x in w), w
        assert len(os.listdir("/proc/self/fd")) == before
        leftover = uringloop.Loop()   # collected at interpreter exit
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"Traceback" not in proc.stderr


def test_run_and_new_event_loop() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        await loop.nop()
        return "done"

    assert uringloop.run(main()) == "done"
    assert uringloop.run(main(), loop_factory=None) == "done"  # (None: a uringloop Loop)

    async def kind() -> type:
        return type(asyncio.get_running_loop())

    stock = uringloop.run(kind(), loop_factory=asyncio.SelectorEventLoop)
    assert stock is asyncio.SelectorEventLoop  # another factory's loop, as given
    with pytest.raises(ValueError):
        uringloop.run(lambda: None)  # type: ignore[arg-type]
    if sys.version_info >= (3, 11):  # asyncio.Runner
        with asyncio.Runner(loop_factory=uringloop.new_event_loop) as runner:
            assert runner.run(main()) == "done"
    if sys.version_info >= (3, 12):
        assert asyncio.run(main(), loop_factory=uringloop.new_event_loop) == "done"


def test_run_inside_a_running_loop_says_so_and_makes_no_loop() -> None:
    # As asyncio.run (and uvloop.run): refused before a loop is made. asyncio.Runner would
    # make one, refuse to run it, and then fail closing it ("Cannot run the event loop
    # while another loop is running", with a never-awaited shutdown_asyncgens coroutine).
    made: list[uringloop.Loop] = []

    def factory() -> uringloop.Loop:
        made.append(uringloop.Loop())
        return made[-1]

    async def inner() -> None:
        pass

    async def outer() -> None:
        coro = inner()
        with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
            uringloop.run(coro, loop_factory=factory)
        coro.close()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uringloop.run(outer())
        gc.collect()
    assert made == []


@pytest.mark.exception_handler_ok  # the report is what the test checks
@pytest.mark.parametrize("runner", ["uringloop.run", "asyncio.run"])
def test_run_reports_a_task_failing_in_the_final_cancellation(runner: str) -> None:
    # A task left running when main() returns is cancelled; one that fails then is
    # reported to the loop's exception handler, by uringloop.run as by asyncio.run.
    reported: list[dict[str, Any]] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ValueError("failed while cancelled") from None

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: reported.append(ctx))
        asyncio.get_running_loop().create_task(stubborn())
        await asyncio.sleep(0)

    if runner == "uringloop.run":
        uringloop.run(main())
    else:
        asyncio.run(main())
    assert [ctx["message"] for ctx in reported] == [
        "unhandled exception during asyncio.run() shutdown"
    ]
    assert type(reported[0]["exception"]) is ValueError
    assert reported[0]["task"].exception() is reported[0]["exception"]


def test_event_loop_policy_and_install() -> None:
    old = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error" if sys.version_info < (3, 14) else "ignore")
            uringloop.install()
            policy_cls = uringloop.EventLoopPolicy
        assert isinstance(asyncio.get_event_loop_policy(), policy_cls)
        loop = asyncio.new_event_loop()
        try:
            assert isinstance(loop, uringloop.Loop)
        finally:
            loop.close()
    finally:
        asyncio.set_event_loop_policy(old)
    with pytest.raises(AttributeError):
        uringloop.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_loop_runs_stock_asyncio_work() -> None:
    async def main() -> bytes:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('sub')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return line + out + await asyncio.to_thread(lambda: b"thread")

    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(await r.readline())
        await w.drain()
        w.close()

    assert uringloop.run(main()) == b"ping\nsub\nthread"


@pytest.mark.parametrize("selector", [None, "poll"])
def test_sockets_file_ops_and_foreign_wakeups_with_either_selector(
    selector: str | None, data_file: tuple[str, bytes]
) -> None:
    """The default epoll selector and the wrapper around a selector the user passes both
    serve sockets (busy and idle select), file operations, and wake for foreign work."""
    import selectors
    import socket

    from uringloop._selector import PreSelectEpollSelector, PreSelectSelector

    path, data = data_file
    user = selectors.PollSelector() if selector == "poll" else None
    loop = uringloop.Loop(user)
    expected = PreSelectSelector if user is not None else PreSelectEpollSelector
    assert type(loop._selector) is expected
    fd = os.open(path, os.O_RDONLY)
    a, b = socket.socketpair()

    async def main() -> tuple[bytes, bytes, bytes]:
        a.setblocking(False)
        b.setblocking(False)
        # Busy: another task keeps callbacks ready, so the loop selects with timeout 0.
        stop = asyncio.Event()

        async def spin() -> None:
            while not stop.is_set():
                await asyncio.sleep(0)

        spinner = asyncio.create_task(spin())
        await loop.sock_sendall(a, b"ping")
        got = await loop.sock_recv(b, 4)
        stop.set()
        await spinner
        head = await loop.pread(fd, 16, 0)
        # Idle: the loop blocks in select until the foreign thread's work wakes it.
        foreign = await asyncio.to_thread(lambda: loop.threadsafe.pread(fd, 16, 16).result(5))
        return got, head, foreign

    try:
        assert loop.run_until_complete(main()) == (b"ping", data[:16], data[16:32])
    finally:
        loop.close()
        a.close()
        b.close()
        os.close(fd)
    assert user is None or user.get_map() is None  # closed with the loop


@pytest.mark.parametrize("selector", [None, "poll"])
def test_a_negative_select_timeout_polls_without_blocking(selector: str | None) -> None:
    """The selectors module's contract, which stock asyncio's EpollSelector keeps: a
    timeout <= 0 polls and returns at once (the default selector blocked for good)."""
    import selectors

    loop = uringloop.Loop(selectors.PollSelector() if selector == "poll" else None)
    timer = threading.Timer(2.0, loop._write_to_self)  # (ends a select that would block)
    timer.start()
    try:
        start = time.monotonic()
        assert loop._selector.select(-1) == []
        assert loop._selector.select(-0.5) == []
        assert time.monotonic() - start < 1.0
    finally:
        timer.cancel()
        timer.join()
        loop.close()


def test_loop_thread_ident_follows_the_runner() -> None:
    loop = uringloop.Loop()
    seen: list[int] = []

    async def record() -> None:
        seen.append(threading.get_ident())
        await loop.nop()

    in_thread(lambda: loop.run_until_complete(record()))
    loop.run_until_complete(record())
    loop.close()
    assert len(set(seen)) == 2


def _square(x: int) -> int:
    return x * x


def test_run_in_executor_with_a_process_pool() -> None:
    """Only thread-pool jobs are marked with their loop; other executors get the callable
    untouched (a process pool must pickle it)."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            return await loop.run_in_executor(pool, _square, 7)

    assert uringloop.run(main()) == 49


@pytest.mark.parametrize("debug", [False, True])
def test_run_in_executor_on_a_closed_loop_raises_as_asyncio(debug: bool) -> None:
    """A closed loop's run_in_executor raises asyncio's RuntimeError first, in debug mode
    too, where the callable is looked at next (a coroutine function was a TypeError)."""

    async def coroutine_function() -> None:
        pass

    raised = []
    for loop in (asyncio.SelectorEventLoop(), uringloop.Loop()):
        loop.set_debug(debug)
        loop.close()
        with pytest.raises(RuntimeError) as info:
            loop.run_in_executor(None, coroutine_function)
        raised.append(str(info.value))
    assert raised == ["Event loop is closed"] * 2


def test_call_soon_keeps_asyncio_semantics() -> None:
    """Loop.call_soon's short path: FIFO, the context argument, a cancellable Handle; debug
    mode's checks and the closed-loop error come from asyncio's own call_soon."""
    import contextvars

    loop = uringloop.Loop()
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "inner")
    order: list[object] = []
    try:
        first = loop.call_soon(order.append, 1)
        loop.call_soon(lambda: order.append(var.get()), context=ctx)
        loop.call_soon(order.append, 2).cancel()
        loop.call_soon(lambda: order.append(var.get()))
        loop.call_soon(loop.stop)
        assert isinstance(first, asyncio.Handle)
        loop.run_forever()
        assert order == [1, "inner", "outer"]

        async def coroutine_function() -> None:
            pass

        loop.set_debug(True)
        with pytest.raises(TypeError, match="coroutines cannot be used with call_soon"):
            loop.call_soon(coroutine_function)
        handle = loop.call_soon(print)
        line = sys._getframe().f_lineno - 1
        # Debug mode records where call_soon was called: here, not inside uringloop.
        assert handle._source_traceback[-1][:2] == (__file__, line)  # type: ignore[attr-defined]
        handle.cancel()
        loop.set_debug(False)
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        loop.call_soon(print)


def test_debug_mode_tasks_record_where_create_task_was_called() -> None:
    """In debug mode a task's _source_traceback (its "created at" in asyncio's messages:
    "Task was destroyed but it is pending!", slow callbacks) ends at the caller of
    loop.create_task, as on the stock loop, from inside a task and outside one, and with
    a context (3.11+); not inside uringloop."""

    async def sleeper() -> None:
        await asyncio.sleep(10)

    def where(task: asyncio.Task[None]) -> tuple[str, int]:
        frame = task._source_traceback[-1]  # type: ignore[attr-defined]
        task.cancel()
        return frame[0], frame[1]

    def make(loop: asyncio.AbstractEventLoop, with_context: bool) -> asyncio.Task[None]:
        if with_context:
            return loop.create_task(sleeper(), context=contextvars.copy_context())
        return loop.create_task(sleeper())

    contexts = [False, True] if sys.version_info >= (3, 11) else [False]
    line = make.__code__.co_firstlineno
    expected = [(__file__, line + 2 if with_context else line + 3) for with_context in contexts]
    for loop in (asyncio.SelectorEventLoop(), uringloop.Loop()):
        loop.set_debug(True)
        try:
            seen = [where(make(loop, with_context)) for with_context in contexts]

            async def main(loop: asyncio.AbstractEventLoop) -> list[tuple[str, int]]:
                return [where(make(loop, with_context)) for with_context in contexts]

            seen += loop.run_until_complete(main(loop))
            loop.run_until_complete(asyncio.sleep(0))  # (the cancelled tasks end)
            assert seen == expected * 2, type(loop).__name__
        finally:
            loop.close()


@pytest.mark.parametrize("use_uring", [True, False])
def test_loop_adds_at_most_five_instance_attributes(use_uring: bool) -> None:
    # CPython 3.11 keeps up to 29 instance attributes in a shared-keys dict; the stock
    # loop has 24, and past the limit every attribute load in _run_once is slower.
    stock = asyncio.SelectorEventLoop()
    loop = uringloop.Loop(use_uring=use_uring)
    try:

        async def work() -> None:
            await loop.nop()
            await asyncio.sleep(0)
            await loop.run_in_executor(None, int)

        loop.run_until_complete(work())
        stock.run_until_complete(stock.run_in_executor(None, int))
        extra = set(vars(loop)) - set(vars(stock))
        assert len(extra) <= 5, sorted(extra)
        assert set(vars(stock)) <= set(vars(loop))
        assert loop.threadsafe is loop.threadsafe
    finally:
        loop.close()
        stock.close()


async def _start_opens(loop: uringloop.Loop, names: list[str]) -> list[asyncio.Task[int]]:
    tasks = [
        asyncio.ensure_future(loop.open_fd(name, os.O_CREAT | os.O_RDWR, 0o600)) for name in names
    ]
    await asyncio.sleep(0)  # submitted
    return tasks


def test_close_after_an_open_completed_for_a_task_that_never_ran_again(
    tmp_path: str, no_fd_leak: None
) -> None:
    # The loop stops with an open in flight; its completion is delivered afterwards (the
    # reap a pre-select step or a callback makes), so its task's wake-up stays in the
    # ready queue: the descriptor came and nobody takes it. close() closes it (no_fd_leak).
    loop = uringloop.Loop()
    path = os.path.join(tmp_path, "f")

    async def start() -> asyncio.Task[int]:
        task = asyncio.ensure_future(loop.open_fd(path, os.O_CREAT | os.O_RDWR, 0o600))
        await asyncio.sleep(0)  # the task queues its open
        return task

    try:
        task = loop.run_until_complete(start())
        deadline = time.monotonic() + 5
        while not loop.uring_stats().completed:
            assert time.monotonic() < deadline, "the open never completed"
            loop._driver.flush()  # type: ignore[attr-defined]  # submits, then reaps it
            time.sleep(0.001)
        assert not task.done()  # never resumed: its open's result is in its future
        task._log_destroy_pending = False  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_close_with_opens_in_flight_leaves_no_descriptor(tmp_path: str) -> None:
    # Opens in flight when the loop closes (O_CREAT: the kernel hands them to a worker)
    # complete during close(); their tasks never run again, so their descriptors are
    # nobody's: they are closed, as a cancelled open's are. (An open that completed in the
    # loop's last iteration may have let its task finish: that descriptor is the test's.)
    before = open_fds()
    for round_ in range(10):
        loop = uringloop.Loop()
        names = [os.path.join(tmp_path, f"f{round_}-{k}") for k in range(8)]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tasks = loop.run_until_complete(_start_opens(loop, names))
            loop.close()
            for task in tasks:
                if task.done():  # it ran again before the loop stopped: the fd is ours
                    os.close(task.result())
                else:  # never resumed: no "destroyed but pending" noise
                    task._log_destroy_pending = False  # type: ignore[attr-defined]
            del tasks
    gc.collect()
    leaked = {fd for fd in open_fds() - before if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked, [os.readlink(f"/proc/self/fd/{fd}") for fd in leaked]


def test_the_runners_shutdown_waits_for_kept_operations_as_long_as_for_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # shutdown_default_executor() (which asyncio.run and uringloop.run call before the
    # loop closes) waits for the operations cancelled callers handed over, as long as
    # asyncio waits for the executor's threads (THREAD_JOIN_TIMEOUT, made short here):
    # one that does not end (a write on a frozen filesystem, here a future nothing
    # resolves) is warned of, and the shutdown goes on.
    from uringloop import _loop

    monkeypatch.setattr(_loop._asyncio_constants, "THREAD_JOIN_TIMEOUT", 0.05, raising=False)
    loop = uringloop.Loop()
    try:
        never = loop.create_future()
        loop._state.kept.add(never)
        started = time.monotonic()
        with pytest.warns(RuntimeWarning, match="did not end within 0.05 seconds"):
            loop.run_until_complete(loop.shutdown_default_executor())
        assert time.monotonic() - started < 5
        ended = loop.create_future()
        loop._state.kept = {ended}
        loop.call_later(0.02, ended.set_result, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loop.run_until_complete(loop.shutdown_default_executor())
        assert ended.done()
    finally:
        loop.close()


def test_shutdown_refuses_what_asyncio_s_refuses_before_waiting_for_kept_operations() -> None:
    # A timeout asyncio's shutdown_default_executor does not take (before 3.12) is refused
    # at once, as stock asyncio refuses it, not after the wait for kept operations.
    loop = uringloop.Loop()
    try:
        never = loop.create_future()
        loop._state.kept.add(never)
        started = time.monotonic()
        with pytest.raises(TypeError):
            loop.run_until_complete(loop.shutdown_default_executor(0.5, "no such argument"))
        assert time.monotonic() - started < 0.4
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no coroutine left never awaited)
            gc.collect()
        loop._state.kept.clear()
    finally:
        loop.close()


def test_a_loop_that_cannot_be_made_for_want_of_descriptors_leaves_nothing(
    tmp_path: Path,
) -> None:
    # With from 0 to 6 descriptors free (a Loop takes 7 here), Loop() raises EMFILE
    # wherever it stops: its epoll instance, its self-pipe, its ring. What it had opened
    # is closed, and the half-made loop is collected without "Exception ignored in
    # __del__" (which said the loop had no `_closed`).
    proc = run_python(
        tmp_path,
        textwrap.dedent(
            """
            import errno, gc, os, resource
            import uringloop

            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            for free in range(7):
                before = set(os.listdir("/proc/self/fd"))
                hold = []
                try:
                    while True:
                        hold.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    pass
                for _ in range(free):
                    os.close(hold.pop())
                try:
                    uringloop.Loop().close()
                except OSError as exc:
                    assert exc.errno == errno.EMFILE, exc
                    print("refused", free, flush=True)
                gc.collect()
                for fd in hold:
                    os.close(fd)
                assert set(os.listdir("/proc/self/fd")) == before, free
            """
        ),
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused 0" in proc.stdout
    assert "Exception ignored" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: uringloop.Loop().close(), id="Loop()"),
        pytest.param(lambda: uringloop.new_event_loop().close(), id="new_event_loop()"),
        pytest.param(lambda: uringloop.run(asyncio.sleep(0)), id="uringloop.run"),
        pytest.param(
            lambda: asyncio.Runner(loop_factory=uringloop.Loop).__enter__().close(),
            id="asyncio.Runner",
            marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="Runner is 3.11+"),
        ),
    ],
)
def test_the_fallback_warning_names_the_code_that_made_the_loop(make: Any) -> None:
    # A filter on the user's module (warnings.filterwarnings(module=...)) must match it:
    # the warning names the first frame outside uringloop and asyncio, not a line of theirs.
    with syscalls.inject("setup", errno.EPERM, times=-1), pytest.warns(RuntimeWarning) as record:
        make()
    assert [w.filename for w in record] == [__file__], [(w.filename, w.lineno) for w in record]
