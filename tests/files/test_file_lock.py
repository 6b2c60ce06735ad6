"""The file lock's contract (asyncio.Lock's, with a plain-call fast path), and the raw
file's inlined seek and read, which must refuse and behave exactly as the full paths."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import io
import os
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import fd_exists
from uringloop._files import PARALLEL_MIN, _FileLock
from uringloop._ops import table

ALL_LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


@pytest.mark.asyncio
async def test_waiters_take_the_lock_in_fifo_order() -> None:
    lock = _FileLock()
    assert lock.try_acquire()
    assert not lock.try_acquire()
    order: list[int] = []

    async def taker(i: int) -> None:
        async with lock:
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(taker(i)) for i in range(4)]
    await asyncio.sleep(0)
    assert order == [] and lock.locked()
    lock.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3]
    assert not lock.locked()


@pytest.mark.asyncio
async def test_try_acquire_never_overtakes_a_waiter() -> None:
    lock = _FileLock()
    lock.try_acquire()
    waiter = asyncio.ensure_future(lock.acquire())
    await asyncio.sleep(0)
    lock.release()
    # The waiter was woken but has not run yet: the lock is its, not a newcomer's.
    assert not lock.try_acquire()
    assert await waiter is True
    assert lock.locked()
    lock.release()
    assert lock.try_acquire()


@pytest.mark.asyncio
async def test_a_cancelled_waiter_hands_its_turn_on() -> None:
    lock = _FileLock()
    lock.try_acquire()
    first = asyncio.ensure_future(lock.acquire())
    second = asyncio.ensure_future(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` must get the lock
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


@pytest.mark.asyncio
async def test_a_waiter_closed_once_its_turn_came_hands_it_on() -> None:
    # (closed at its await: a GeneratorExit, as when its task is destroyed pending)
    lock = _FileLock()
    lock.try_acquire()
    first = lock.acquire()
    first.send(None)  # waits
    second = asyncio.ensure_future(lock.acquire())
    await asyncio.sleep(0)
    lock.release()  # the turn is `first`'s...
    first.close()  # ...which never takes it: `second` must get the lock
    assert await asyncio.wait_for(second, 1) is True
    assert lock.locked()
    lock.release()
    assert not lock.locked()


@pytest.mark.exception_handler_ok  # ("Task was destroyed but it is pending!", as asyncio's)
def test_a_waiter_closed_after_its_loop_closed_hands_nothing_on() -> None:
    # The holder releases (the first waiter woken, its wake-up still queued) and the loop
    # stops and closes; the first waiter's coroutine, closed at its await (as when its
    # task is collected), has nobody to hand its turn to: nothing is scheduled on the
    # closed loop (RuntimeError: "Event loop is closed", printed as "Exception ignored"
    # when it comes from the collector).
    loop = uringloop.Loop()
    lock = _FileLock()
    got: list[int] = []

    async def holder() -> None:
        await lock.acquire()
        await asyncio.sleep(0.01)
        lock.release()
        loop.stop()

    async def waiter(n: int) -> None:
        await lock.acquire()
        got.append(n)

    tasks = [loop.create_task(holder()), loop.create_task(waiter(1)), loop.create_task(waiter(2))]
    loop.run_forever()
    loop.close()
    tasks[1].get_coro().close()
    assert got == []


def test_release_of_an_unlocked_lock_raises() -> None:
    with pytest.raises(RuntimeError, match="not acquired"):
        _FileLock().release()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_fast_seek_and_read_refuse_as_the_builtin(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(256)) * 16)
    with open(path, "rb", buffering=0) as g:
        f = await uringloop.open(path, "rb", buffering=0)
        try:
            for args in ((5, 0.0), (5.0, 0), (-1, 0), ("5", 0)):
                with pytest.raises(Exception) as builtin:
                    g.seek(*args)
                with pytest.raises(type(builtin.value)):
                    await f.seek(*args)
            assert await f.seek(True) == g.seek(True) == 1  # bool is an int, as for os
            assert await f.read(3) == g.read(3)
            assert await f.seek(4000) == g.seek(4000)
            assert await f.read(500) == g.read(500)  # short at EOF
            assert await f.tell() == g.tell() == 4096
            assert await f.read(10) == g.read(10) == b""
            with pytest.raises(TypeError):
                await f.read(3.0)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                g.read(3.0)  # type: ignore[arg-type]
        finally:
            await f.close()
        with pytest.raises(ValueError):
            await f.read(3)
        with pytest.raises(ValueError):
            await f.seek(0)
    w = await uringloop.open(tmp_path / "w", "wb", buffering=0)
    try:
        with pytest.raises(io.UnsupportedOperation):
            await w.read(3)
    finally:
        await w.close()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_fast_read_of_a_pipe_reads_at_its_position() -> None:
    r, w = os.pipe()
    f = await uringloop.open(r, "rb", buffering=0)
    try:
        os.write(w, b"hello")
        assert await f.read(3) == b"hel"
        assert await f.read(3) == b"lo"
    finally:
        await f.close()
        os.close(w)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_seek_waits_for_the_call_that_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    async with uringloop.open(path, "rb", buffering=0) as f:
        lock = f._lock
        assert lock.try_acquire()  # another call on the file is under way
        seek = asyncio.ensure_future(f.seek(7))
        try:
            await asyncio.sleep(0)
            assert not seek.done() and f._pos == 0  # the fast path did not go around the lock
        finally:
            lock.release()
        assert await seek == 7
        assert await f.read(3) == b"789"
        assert not lock.locked()


@pytest.mark.asyncio
async def test_a_waiter_cancelled_after_the_wake_up_does_not_wake_a_second() -> None:
    lock = _FileLock()
    assert lock.try_acquire()
    inside: list[str] = []
    most_inside = 0

    async def user(name: str) -> None:
        nonlocal most_inside
        await lock.acquire()
        inside.append(name)
        most_inside = max(most_inside, len(inside))
        await asyncio.sleep(0)
        inside.remove(name)
        lock.release()

    tasks = [asyncio.ensure_future(user(n)) for n in ("t1", "t2", "t3")]
    await asyncio.sleep(0)  # all three wait
    tasks[2].cancel()  # t3 gives up while it waits...
    lock.release()  # ...after t1 was woken but before t1 ran
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:2] == [None, None] and isinstance(results[2], asyncio.CancelledError)
    assert most_inside == 1 and not lock.locked()


LAYERS = pytest.mark.parametrize(("mode", "buffering"), [("rb", 0), ("rb", -1), ("r", -1)])


async def _close_behind_the_lock(
    tmp_path: Path, mode: str, buffering: int
) -> tuple[Any, _FileLock, asyncio.Future[None]]:
    """A file whose lock another call holds, and its close() begun, waiting for it."""
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    f = await uringloop.open(path, mode, buffering)
    lock = f._lock
    assert lock.try_acquire()  # another call on the file is under way
    close = asyncio.ensure_future(f.close())
    await asyncio.sleep(0)
    return f, lock, close


@pytest.mark.asyncio
@ALL_LOOPS
@LAYERS
async def test_a_close_waits_for_the_call_that_holds_the_file(
    tmp_path: Path, mode: str, buffering: int
) -> None:
    # close() closes at once (without the lock) only when the lock is free.
    f, lock, close = await _close_behind_the_lock(tmp_path, mode, buffering)
    try:
        assert not close.done() and not f.closed
        os.fstat(f.fileno())  # still open
    finally:
        lock.release()
    await close
    assert f.closed and not lock.locked()


@pytest.mark.asyncio
@ALL_LOOPS
@LAYERS
async def test_a_close_cancelled_while_it_waits_for_the_file_still_closes_it(
    tmp_path: Path, mode: str, buffering: int
) -> None:
    # A close that has begun is not dropped: cancelled while another call holds the
    # file, it closes the file once that call ends, before any call made after it.
    f, lock, close = await _close_behind_the_lock(tmp_path, mode, buffering)
    fd = f.fileno()
    close.cancel()
    with pytest.raises(asyncio.CancelledError):
        await close
    assert not f.closed
    os.fstat(fd)  # still open: the call before the close holds the file
    later = asyncio.ensure_future(f.read())
    await asyncio.sleep(0)
    lock.release()
    with pytest.raises(ValueError, match="closed file"):
        await later
    assert f.closed and not lock.locked()
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("use_uring", [True, False], ids=["uring", "fallback"])
def test_a_close_its_loop_stopped_before_it_began_leaves_its_place_in_line(
    use_uring: bool, pipe: tuple[int, int]
) -> None:
    # close() behind a call that holds the file, made in the loop's last step: its kept
    # task never begins (the loop is closed first). The place in line it took is given up
    # then, so the holder's `async with` exit, as its coroutine is closed where no loop
    # runs, closes the file (with a blocking close) rather than being refused
    # ("no running event loop"), whichever task's coroutine is closed first.
    r, _ = pipe
    loop = uringloop.Loop(use_uring=use_uring)

    async def reads(f: Any) -> None:
        async with f:
            await f.read(1)  # (an empty pipe: it holds the file's lock)

    async def start() -> tuple[Any, asyncio.Task[None]]:
        f = await uringloop.open(os.dup(r), "rb", buffering=0)
        reader = asyncio.ensure_future(reads(f))
        while not f._lock.held:
            await asyncio.sleep(0)
        return f, reader

    async def closes() -> asyncio.Future[None]:
        return asyncio.ensure_future(f.close())  # (its first step is the loop's last)

    try:
        f, reader = loop.run_until_complete(start())
        closing = loop.run_until_complete(closes())
    finally:
        loop.close()
    assert not f._lock.waiters
    reader._log_destroy_pending = False  # type: ignore[attr-defined]
    reader.get_coro().close()  # type: ignore[union-attr]  # (as the collector would)
    assert f.closed
    closing._log_destroy_pending = False  # type: ignore[attr-defined]
    closing.get_coro().close()  # type: ignore[union-attr]


class _GatedWrites(uringloop.Loop):
    """A loop whose pwrite, the way of the file writes of these tests, waits for `gate`;
    the descriptor of each call is in `calls`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Event()
        self.calls: list[int] = []

    async def pwrite(self, fd: int, data: Any, offset: int = -1) -> int:
        self.calls.append(fd)
        await self.gate.wait()
        data = bytes(data)
        return os.write(fd, data) if offset < 0 else os.pwrite(fd, data, offset)


async def _released_after_collection(loop: _GatedWrites, fd: int, other: Path, turns: int) -> bool:
    """Right after a file was collected: whether its descriptor `fd` is still open (the
    kept work that writes through it has it); then `other` is opened, which would get
    that number had it been closed, while the gate opens and the held writes end
    (`turns` loop iterations)."""
    still_open = fd_exists(fd)
    reused = os.open(other, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        loop.gate.set()
        for _ in range(turns):
            await asyncio.sleep(0)
    finally:
        os.close(reused)
    return still_open


@pytest.mark.parametrize("mode", ["a", "w"])
def test_a_text_file_collected_while_its_cancelled_close_writes_is_not_closed_under_it(
    tmp_path: Path, mode: str, no_fd_leak: None
) -> None:
    # A text close cancelled twice, first in its flush, then in the buffer's close (a kept
    # task, which holds the buffer but not the text file): the text file, collected while
    # that close writes, leaves the descriptor to it. (Its __del__ closed it, writing the
    # buffer with blocking calls, under the kept write: written twice on the ring, into
    # another file that got the descriptor's number here.)
    path, other = tmp_path / "f", tmp_path / "other"

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _GatedWrites)
        try:
            f = await uringloop.open(path, mode, encoding="utf-8")
            await f.write("hello")
            close = asyncio.ensure_future(f.close())
            await asyncio.sleep(0)
            assert len(loop.calls) == 1  # the close's flush waits for its write
            close.cancel()  # its flush cancelled: the text close goes on to the buffer's
            await asyncio.sleep(0)
            close.cancel()  # the buffer's close, a kept task, goes on without it
            with pytest.raises(asyncio.CancelledError):
                await close
            for _ in range(3):
                await asyncio.sleep(0)
            assert len(loop.calls) == 2  # the kept close's write, waiting
            fd = loop.calls[-1]
            del f, close
            gc.collect()
            return await _released_after_collection(loop, fd, other, turns=10)
        finally:
            loop.gate.set()  # (else the kept close, and the loop's shutdown, wait for good)

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        assert uringloop.run(main(), loop_factory=_GatedWrites)
    assert path.read_bytes() == b"hello"
    assert other.read_bytes() == b""


@pytest.mark.parametrize("use_uring", [True, False])
def test_a_buffered_file_collected_while_its_cancelled_write_goes_on_is_not_closed_under_it(
    tmp_path: Path, use_uring: bool, no_fd_leak: None
) -> None:
    # A big write (parallel spans, at an offset) is kept whole once begun: its caller
    # cancelled, it goes on, holding the raw file but not the buffered one. With the
    # cancelled call's frames cleared (as unittest's assertRaises clears them), nothing else
    # holds the buffered file: collected while the write goes on, it leaves the descriptor
    # to that write and closes once it ends. (Its __del__ closed it at once, and the
    # spans' writes then went to another file given the descriptor's number.)
    path, other = tmp_path / "f", tmp_path / "other"
    data = b"x" * PARALLEL_MIN

    async def main() -> bool:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _GatedWrites)
        try:
            f = await uringloop.open(path, "wb")
            fd = f.fileno()
            writing = asyncio.ensure_future(f.write(data))
            for _ in range(3):
                await asyncio.sleep(0)
            assert loop.calls and set(loop.calls) == {fd}  # the spans' writes, waiting
            writing.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await writing
            traceback.clear_frames(info.tb)
            del f, writing, info
            gc.collect()
            return await _released_after_collection(loop, fd, other, turns=20)
        finally:
            loop.gate.set()  # (else the kept write, and the loop's shutdown, wait for good)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert uringloop.run(main(), loop_factory=lambda: _GatedWrites(use_uring=use_uring))
        gc.collect()
    assert path.read_bytes() == data
    assert other.read_bytes() == b""
    # closed as the write ended, by the collector's close (not left open)
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


@pytest.mark.parametrize("use_uring", [True, False])
def test_a_buffered_file_collected_in_another_thread_leaves_its_close_to_the_loop_thread(
    tmp_path: Path, use_uring: bool, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above, the last reference dropped in another thread while the loop runs (a
    # collector's __del__ runs in whatever thread drops it): the close left to the kept
    # write is registered on the loop's thread. (Its add_done_callback ran in the
    # collecting thread, racing the loop's completion of the write: a write that ended
    # between __del__'s look and that call had its callback scheduled from the wrong
    # thread: refused in debug mode, the buffered file's close then never made (what it
    # buffers lost, the descriptor left to the raw file's own collection); out of debug
    # mode, a call_soon from the wrong thread, which need not wake the loop.)
    # The collecting thread is held, at an add_done_callback on the write made there,
    # until the write has ended: that window, made certain.
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))
    path = tmp_path / "f"
    data = b"x" * PARALLEL_MIN

    def collect(box: list[Any], loop: _GatedWrites, work: asyncio.Future[Any]) -> None:
        def held(frame: Any, event: str, arg: Any) -> None:
            if (
                event == "c_call"
                and getattr(arg, "__name__", None) == "add_done_callback"
                and getattr(arg, "__self__", None) is work
            ):
                loop.call_soon_threadsafe(loop.gate.set)
                deadline = time.monotonic() + 10
                while not work.done() and time.monotonic() < deadline:
                    time.sleep(0.001)

        sys.setprofile(held)
        try:
            box.clear()
            gc.collect()
        finally:
            sys.setprofile(None)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, _GatedWrites)
        loop.set_debug(True)  # (a call_soon from another thread raises)
        try:
            f = await uringloop.open(path, "wb")
            fd = f.fileno()
            writing = asyncio.ensure_future(f.write(data))
            for _ in range(3):
                await asyncio.sleep(0)
            assert loop.calls and set(loop.calls) == {fd}  # the spans' writes, waiting
            writing.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await writing
            traceback.clear_frames(info.tb)
            work = f.raw._late
            assert work is not None and not work.done()
            box = [f]
            del f, writing, info
            thread = threading.Thread(target=collect, args=(box, loop, work))
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.001)
            thread.join()
            loop.gate.set()
            while not work.done():
                await asyncio.sleep(0.001)
            for _ in range(20):
                await asyncio.sleep(0)
            return fd
        finally:
            loop.gate.set()  # (else the kept write, and the loop's shutdown, wait for good)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        fd = uringloop.run(main(), loop_factory=lambda: _GatedWrites(use_uring=use_uring))
        gc.collect()
    assert unraisable == []
    assert path.read_bytes() == data
    with pytest.raises(OSError):
        os.fstat(fd)
    # closed as the write ended, by the collector's close (not left open)
    assert any(
        issubclass(w.category, ResourceWarning) and "AsyncBufferedFile" in str(w.message)
        for w in caught
    )


class _HeldJob(concurrent.futures.ThreadPoolExecutor):
    """An executor whose first job that `holds(fn)` waits for `go` once begun (`started`
    says it has): before its call, or, `after_call`, once the call has returned. Every
    other job runs at once. Its shutdown (a `with` block's end) sets `go` first."""

    def __init__(self, holds: Callable[[Any], bool], after_call: bool = False) -> None:
        super().__init__(2)
        self.holds = holds
        self.after_call = after_call
        self.go = threading.Event()
        self.started = threading.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        if not self.holds(fn) or self.started.is_set():
            return super().submit(fn, *args, **kwargs)

        def held() -> Any:
            result = fn(*args, **kwargs) if self.after_call else None
            self.started.set()
            self.go.wait(10)
            return result if self.after_call else fn(*args, **kwargs)

        return super().submit(held)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.go.set()  # (else a held job would keep the shutdown waiting)
        super().shutdown(wait, cancel_futures=cancel_futures)


def _held_truncates() -> _HeldJob:
    """An executor whose os.ftruncate job waits for `go` once begun."""
    return _HeldJob(lambda fn: fn is os.ftruncate)


async def _truncate_cancelled_once_begun(f: Any, started: threading.Event) -> None:
    """f.truncate(100), cancelled once its blocking call has begun (`started` set); the
    CancelledError's frames cleared, so that nothing of the call holds `f` afterwards."""
    task = asyncio.ensure_future(f.truncate(100))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await task
    traceback.clear_frames(info.tb)
    del task, info  # (the exception's traceback holds this frame, and so `f`)


@pytest.mark.asyncio
@pytest.mark.loops("asyncio")  # (an executor's thread, where the test can hold the truncate)
@pytest.mark.parametrize("mode", ["r+b unbuffered", "r+b", "r+"])
async def test_a_cancelled_truncate_that_goes_on_holds_the_file_until_it_ends(
    tmp_path: Path, mode: str
) -> None:
    # A truncate cancelled once its thread has begun ends all the same: the next call on
    # the file waits for it, and sees the size it left (it saw the size before, and the
    # truncate then cut the file under its answer).
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10000)
    with _held_truncates() as pool:
        buffering = 0 if "unbuffered" in mode else -1
        async with await uringloop.open(
            path, mode.split()[0], buffering=buffering, executor=pool
        ) as f:
            await _truncate_cancelled_once_begun(f, pool.started)
            end = asyncio.ensure_future(f.seek(0, 2))
            await asyncio.sleep(0.05)
            assert not end.done()
            pool.go.set()
            assert await end == 100
            assert os.fstat(f.fileno()).st_size == 100


@pytest.mark.asyncio
@pytest.mark.loops("asyncio")  # (an executor's thread, where the test can hold the truncate)
async def test_an_unbuffered_file_dropped_while_its_cancelled_truncate_goes_on_stays_open(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # A truncate cancelled once its thread has begun ends all the same. With the cancelled
    # call's frames cleared, nothing else holds an unbuffered file: the truncate holds it,
    # so that it is collected, and its descriptor closed, only once that ends. (Collected
    # at once, its descriptor was closed under the truncate, which then cut another file
    # given the descriptor's number.)
    path, other = tmp_path / "f", tmp_path / "other"
    path.write_bytes(b"x" * 10000)
    other.write_bytes(b"y" * 10000)
    with _held_truncates() as pool:
        f = await uringloop.open(path, "r+b", buffering=0, executor=pool)
        fd = f.fileno()
        await _truncate_cancelled_once_begun(f, pool.started)
        del f
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            gc.collect()
            still_open = fd_exists(fd)
            reused = os.open(other, os.O_RDWR)  # (the descriptor's number, had it been closed)
            try:
                pool.go.set()
                deadline = time.monotonic() + 10
                while fd_exists(fd) and fd != reused and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                    gc.collect()
                await asyncio.to_thread(pool.shutdown)  # (the truncate has ended)
            finally:
                os.close(reused)
    assert still_open
    assert other.stat().st_size == 10000
    assert path.stat().st_size == 100
    # closed as the truncate ended, by the collector's close (not left open)
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


def test_an_unbuffered_file_dropped_while_its_cancelled_truncate_goes_on_closes_with_the_loop(
    tmp_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As above, on the thread-pool fallback (its thread holds the truncate), and the loop
    # closed before the truncate's end reached the file: the file is collected once the
    # loop is closed, and its descriptor closed then (not left open for good).
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10000)
    go, started = threading.Event(), threading.Event()
    ftruncate = table.ftruncate.blocking

    def held(fd: int, length: int) -> None:
        started.set()
        go.wait(10)
        ftruncate(fd, length)

    monkeypatch.setattr(table.ftruncate, "blocking", held)

    async def main() -> tuple[int, bool]:
        f = await uringloop.open(path, "r+b", buffering=0)
        fd = f.fileno()
        await _truncate_cancelled_once_begun(f, started)
        del f
        gc.collect()
        return fd, fd_exists(fd)

    loop = uringloop.Loop(use_uring=False)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                fd, still_open = loop.run_until_complete(main())
            finally:
                go.set()  # (the truncate ends as the loop closes, its callbacks never run)
                loop.close()
            gc.collect()
    finally:
        go.set()
    assert still_open
    assert not fd_exists(fd)
    assert path.stat().st_size == 100
    assert any(issubclass(w.category, ResourceWarning) for w in caught)


def _run_on_a_new_loop(main: Any) -> Any:
    """asyncio.run(main()) on a thread of its own, which must end within 10 s (a file
    waiting for good fails the test instead of stalling it; the thread is left behind)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", asyncio.run(main())))
        except BaseException as exc:
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert outcome, "the file's calls on the new loop wait for good"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def _write_on_a_new_loop(f: Any, data: bytes) -> int:
    """f.write(data) on a new loop (_run_on_a_new_loop), f closed after it: its tell()
    before the close."""

    async def main() -> int:
        async with f:
            await f.write(data)
            return int(await f.tell())

    return int(_run_on_a_new_loop(main))


def _hold_first_pwrite(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """(go, started): the thread-pool fallback's first write waits for `go` once begun
    (`started` says it has); every later write runs at once."""
    go, started = threading.Event(), threading.Event()
    pwrite = table.pwrite.blocking

    def held(fd: int, data: Any, offset: int = -1) -> int:
        if not started.is_set():
            started.set()
            go.wait(10)
        return pwrite(fd, data, offset)

    monkeypatch.setattr(table.pwrite, "blocking", held)
    return go, started


def _written_on_a_closed_loop(
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
    waiting_write: bytes | None = None,
    ends_before_close: bool = False,
) -> tuple[Any, asyncio.Task[int] | None]:
    """A file of `path` (made empty) with a write of 100 b"a" cancelled once its thread
    (the thread-pool fallback's) has begun, which goes on; `waiting_write`, if given, is
    written by a task that waits in the file's line behind it. The loop is then closed,
    the write ending while the close waits for it, or, `ends_before_close`, ending while
    the loop runs, which stops at once after the lock's callback (the waiting task, given
    the turn, never runs). Returns the file and that task."""
    go, started = _hold_first_pwrite(monkeypatch)

    async def first() -> tuple[Any, asyncio.Task[int] | None]:
        f = await uringloop.open(path, "wb", buffering=0)
        task = asyncio.ensure_future(f.write(b"a" * 100))
        assert await asyncio.to_thread(started.wait, 10)
        waiting = None
        if waiting_write is not None:
            waiting = asyncio.ensure_future(f.write(waiting_write))
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return f, waiting

    loop = uringloop.Loop(use_uring=False)
    try:
        f, waiting = loop.run_until_complete(first())
        if ends_before_close:
            kept = f._lock.after
            assert kept is not None
            kept.add_done_callback(lambda _: loop.stop())  # (after the lock's own callback)
            go.set()
            loop.run_forever()
        return f, waiting
    finally:
        go.set()  # (the write ends while the loop's close waits for it)
        loop.close()


def test_a_kept_write_that_ended_as_its_loop_closed_lets_the_file_go_on_on_another_loop(
    tmp_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A write cancelled once its thread has begun goes on, and holds the file until it
    # ends. It ends as its loop closes, whose callbacks never run again: the file, used on
    # another loop, goes on after it (it waited for good), the write counted (the next
    # write lands after its bytes, not over them).
    path = tmp_path / "f"
    f, _ = _written_on_a_closed_loop(path, monkeypatch)

    assert _write_on_a_new_loop(f, b"b") == 101
    assert path.read_bytes() == b"a" * 100 + b"b"


def test_a_call_left_in_line_by_its_closed_loop_neither_blocks_nor_breaks_the_next_loop(
    tmp_path: Path,
    no_fd_leak: None,
    monkeypatch: pytest.MonkeyPatch,
    exception_handler_calls: list[dict[str, Any]],
) -> None:
    # As above, with a second write waiting in the file's line as the loop closes: its
    # task never runs again, so the next loop's call goes before it; when that task is
    # collected, its write leaves a line it is no longer in, quietly.
    path = tmp_path / "f"
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    f, waiting = _written_on_a_closed_loop(path, monkeypatch, b"b" * 10)

    assert _write_on_a_new_loop(f, b"c") == 101
    del waiting
    gc.collect()  # (the waiting write's task, destroyed pending: its coroutine closed)
    assert [u.exc_value for u in unraisable] == []
    assert [c["message"] for c in exception_handler_calls] == [
        "Task was destroyed but it is pending!"
    ]
    exception_handler_calls.clear()
    assert path.read_bytes() == b"a" * 100 + b"c"


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # (the stuck file, collected)
def test_a_kept_truncate_left_running_by_its_closed_loop_fails_the_next_calls(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # A truncate cancelled once its executor's thread has begun goes on, and holds the
    # file until it ends; its loop closed meanwhile (the executor is not the loop's, so
    # nothing waited for it). Whether and when it ends, no loop can tell the file: its
    # next calls, on another loop, raise StrandedError instead of waiting for good.
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10000)
    pool = _held_truncates()
    loop = asyncio.SelectorEventLoop()
    try:

        async def first() -> Any:
            f = await uringloop.open(path, "r+b", buffering=0, executor=pool)
            await _truncate_cancelled_once_begun(f, pool.started)
            return f

        f = loop.run_until_complete(first())
        loop.close()

        async def second(f: Any) -> None:
            with pytest.raises(uringloop.StrandedError, match="still under way"):
                await f.seek(0, os.SEEK_END)
            with pytest.raises(uringloop.StrandedError, match="still under way"):
                await f.close()

        _run_on_a_new_loop(functools.partial(second, f))
        assert not f.closed
    finally:
        pool.shutdown()
        loop.close()
    assert path.stat().st_size == 100
    del f
    gc.collect()  # (its descriptor closed by the collector's close)


@pytest.mark.exception_handler_ok  # ("Task was destroyed but it is pending!": the waiter's)
def test_a_task_of_a_closed_loop_woken_in_the_files_line_does_not_stop_the_line(
    tmp_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kept write ends and gives the file's turn to the task that waited behind it, but
    # the loop stops before that task runs, and is closed: the task never takes the lock.
    # The file's calls on another loop go on all the same (they waited for it for good
    # while the task, held by a reference cycle through the file, was not collected).
    path = tmp_path / "f"
    f, waiting = _written_on_a_closed_loop(path, monkeypatch, b"c", ends_before_close=True)
    assert waiting is not None and not waiting.done()
    assert f._lock.waiters and f._lock.waiters[0].done()  # (its turn given, never taken)

    assert _write_on_a_new_loop(f, b"b") == 101
    assert path.read_bytes() == b"a" * 100 + b"b"
    del waiting


def _held_writes() -> _HeldJob:
    """An executor whose first file write job, once it has written, waits for `go`
    before it returns."""
    return _HeldJob(lambda fn: type(fn).__name__ == "_ThreadWrite", after_call=True)


def _cancelled_on_a_closed_stock_loop(
    path: Path, pool: _HeldJob, call: Callable[[Any], Awaitable[Any]], buffering: int = -1
) -> Any:
    """A file of `path` ("wb", its I/O on `pool`) on a stock asyncio loop, with call(f)
    cancelled once the pool's held job has begun (the CancelledError's frames cleared);
    the loop is then closed, the job left to go on. Returns the file."""
    loop = asyncio.SelectorEventLoop()
    try:

        async def first() -> Any:
            f = await uringloop.open(path, "wb", buffering=buffering, executor=pool)
            task = asyncio.ensure_future(call(f))
            assert await asyncio.to_thread(pool.started.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError) as info:
                await task
            traceback.clear_frames(info.tb)
            return f

        return loop.run_until_complete(first())
    finally:
        loop.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # (the stuck file, collected)
def test_tell_after_a_kept_write_left_running_by_its_closed_loop_raises_stranded_error(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # A write cancelled once its executor's thread has begun goes on; its loop is closed
    # meanwhile, and nothing tells the file when it ends. tell() on another loop, which
    # counts such a write first, raises StrandedError, as the file's other calls do (it
    # raised InvalidStateError, and the next tell() left the write's bytes uncounted).
    path = tmp_path / "f"
    with _held_writes() as pool:
        f = _cancelled_on_a_closed_stock_loop(
            path, pool, lambda f: f.write(b"a" * 100), buffering=0
        )

        async def second(f: Any) -> None:
            for _ in range(2):
                with pytest.raises(uringloop.StrandedError, match="still under way"):
                    await f.tell()

        _run_on_a_new_loop(functools.partial(second, f))
    assert path.read_bytes() == b"a" * 100
    del f
    gc.collect()  # (its descriptor closed by the collector's close)


def test_a_file_whose_cancelled_close_was_left_running_by_a_closed_stock_loop_is_collected(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # A buffered file's close cancelled once its flush's thread has begun goes on in a
    # task of its own; a stock asyncio loop is closed meanwhile, which never runs that
    # task again. Once the flush has ended, dropping the file closes its descriptor (the
    # collector's close), as for the loop's other tasks and what they hold: the pending
    # task was held for good, and the descriptor with it, for the life of the process.
    path = tmp_path / "f"
    with _held_writes() as pool:

        async def write_then_close(f: Any) -> None:
            await f.write(b"a" * 100)  # (buffered: written by the close's flush)
            await f.close()

        f = _cancelled_on_a_closed_stock_loop(path, pool, write_then_close)
        fd = f.fileno()
    assert fd_exists(fd)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", ResourceWarning)
        del f
        gc.collect()
    assert not fd_exists(fd)
    assert path.read_bytes() == b"a" * 100
