"""The seed's bug and its fix: a foreign thread's operation must wake an idle loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Iterator

import pytest

import uringloop

# The wakeup bound: an idle loop with its next timer 10 s away must serve a foreign
# operation well within this. Without the wakeup it waits for the timer (the seed: 499 ms
# in QEMU, here 10 s), so the bound separates the two outcomes by an order of magnitude.
WAKEUP_BOUND = 1.0


class LoopThread:
    """A uringloop Loop running in a thread of its own, idle with a far-away timer."""

    def __init__(self, **loop_kwargs: object) -> None:
        self.loop = uringloop.Loop(**loop_kwargs)  # type: ignore[arg-type]
        self.loop.call_later(10, lambda: None)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        while not self.loop.is_running():
            time.sleep(0.001)
        time.sleep(0.05)  # let it reach select and fall asleep

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        assert not self._thread.is_alive()
        self.loop.close()


@pytest.fixture
def read_fd(data_file: tuple[str, bytes]) -> Iterator[int]:
    fd = os.open(data_file[0], os.O_RDONLY)
    yield fd
    os.close(fd)


def test_foreign_read_wakes_an_idle_loop(read_fd: int, data_file: tuple[str, bytes]) -> None:
    lt = LoopThread()
    try:
        future = lt.loop.threadsafe.pread(read_fd, 4096, 8192)
        assert future.result(timeout=WAKEUP_BOUND) == data_file[1][8192:12288]
        stats = lt.loop.uring_stats()
        assert stats.foreign_submissions == 1
        assert stats.wakeups_sent == 1
    finally:
        lt.stop()


@pytest.mark.parametrize("use_uring", [True, False])
def test_the_wakeup_goes_through_the_eventfd_or_the_self_pipe(
    read_fd: int, data_file: tuple[str, bytes], use_uring: bool
) -> None:
    """With a ring the foreign wakeup writes the ring's eventfd (one syscall; its reader is
    watched anyway), never asyncio's self-pipe; on the thread-pool fallback, the self-pipe."""
    lt = LoopThread(use_uring=use_uring)
    pipe_writes = [0]
    write_to_self = lt.loop._write_to_self

    def counting() -> None:
        pipe_writes[0] += 1
        write_to_self()

    lt.loop._write_to_self = counting  # type: ignore[method-assign]
    try:
        future = lt.loop.threadsafe.pread(read_fd, 4096, 0)
        assert future.result(timeout=WAKEUP_BOUND) == data_file[1][:4096]
        assert lt.loop.uring_stats().wakeups_sent == 1
    finally:
        lt.stop()  # stop() itself goes through call_soon_threadsafe: one pipe write
    if use_uring:
        assert pipe_writes[0] == 1
    else:  # the wakeup, the worker thread's completion, stop()
        assert pipe_writes[0] >= 3


def test_a_wake_after_close_writes_nothing() -> None:
    """A foreign thread that decided to wake the loop just before close() must not write
    to the closed eventfd's number, which a new file may already reuse."""
    loop = uringloop.Loop()
    driver = loop._driver
    assert driver is not None and driver.uses_ring
    efd = driver.efd  # type: ignore[union-attr]
    loop.close()
    pipes: list[tuple[int, int]] = []
    try:
        while len(pipes) < 32 and not any(efd in p for p in pipes):
            pipes.append(os.pipe())
        [(r, w)] = [p for p in pipes if efd in p]  # the number was handed out again
        driver.wake()  # type: ignore[union-attr]
        os.set_blocking(r, False)
        if w == efd:
            with pytest.raises(BlockingIOError):
                os.read(r, 8)
        # (if r has the old number, a write to it would have raised EBADF in wake())
    finally:
        for pair in pipes:
            os.close(pair[0])
            os.close(pair[1])


def test_without_the_wakeup_the_read_waits(read_fd: int, data_file: tuple[str, bytes]) -> None:
    """The seed's bug reproduced: foreign_wakeup=False leaves the read queued."""
    lt = LoopThread(foreign_wakeup=False)
    try:
        future = lt.loop.threadsafe.pread(read_fd, 4096, 0)
        with pytest.raises(concurrent.futures.TimeoutError):
            future.result(timeout=WAKEUP_BOUND)
        assert lt.loop.uring_stats().wakeups_sent == 0
        # Anything else that wakes the loop submits it (the seed's busy ssh socket).
        lt.loop.call_soon_threadsafe(lambda: None)
        assert future.result(timeout=WAKEUP_BOUND) == data_file[1][:4096]
    finally:
        lt.stop()


def test_every_foreign_operation_kind_wakes_the_loop(tmp_path: os.PathLike[str]) -> None:
    lt = LoopThread()
    ts = lt.loop.threadsafe
    try:
        path = os.path.join(tmp_path, "f")
        fd = ts.open_fd(path, os.O_RDWR | os.O_CREAT, 0o644).result(WAKEUP_BOUND)
        assert ts.pwrite(fd, b"abcdef", 0).result(WAKEUP_BOUND) == 6
        ts.fsync(fd).result(WAKEUP_BOUND)
        buf = bytearray(3)
        assert ts.preadinto(fd, buf, 2).result(WAKEUP_BOUND) == 3 and buf == b"cde"
        assert ts.fstatx(fd).result(WAKEUP_BOUND).size == 6
        ts.close_fd(fd).result(WAKEUP_BOUND)
        ts.rename(path, path + "2").result(WAKEUP_BOUND)
        ts.unlink(path + "2").result(WAKEUP_BOUND)
        assert os.listdir(tmp_path) == []
    finally:
        lt.stop()


def test_busy_loop_gets_no_self_pipe_writes(read_fd: int) -> None:
    """While the loop is busy (never about to block), foreign pushes skip the self-pipe."""
    loop = uringloop.Loop()
    n = 200
    results: list[bytes] = []

    def foreign() -> None:
        for i in range(n):
            results.append(loop.threadsafe.pread(read_fd, 8, i).result(timeout=10))

    async def main() -> None:
        thread = threading.Thread(target=foreign)
        thread.start()
        while thread.is_alive():  # keep the loop busy: a callback is always ready
            await asyncio.sleep(0)
        thread.join()

    try:
        loop.run_until_complete(main())
        stats = loop.uring_stats()
    finally:
        loop.close()
    assert len(results) == n
    assert stats.foreign_submissions == n
    assert stats.wakeups_sent == 0
    assert stats.wakeups_skipped == n


def test_pending_foreign_work_keeps_the_loop_from_sleeping() -> None:
    """An op pushed before the loop's pre-select step is submitted in that step."""
    loop = uringloop.Loop(foreign_wakeup=False)
    try:
        future = loop.threadsafe.nop()  # queued while the loop is not running at all
        loop.call_later(10, loop.stop)

        async def wait() -> None:
            await asyncio.wrap_future(future)

        start = time.monotonic()
        loop.run_until_complete(wait())
        assert time.monotonic() - start < WAKEUP_BOUND
    finally:
        loop.close()


def test_a_threadsafe_future_s_result_with_no_time_left_only_looks() -> None:
    """result(timeout) of 0 or less raises TimeoutError at once, as a
    concurrent.futures.Future's does (a deadline already past: not ValueError, and -1 is
    not "wait for ever")."""
    loop = uringloop.Loop()
    try:
        future = loop.threadsafe.nop()  # queued on a loop that is not running: not done
        outcomes: list[type[BaseException]] = []

        def wait() -> None:
            for timeout in (0, -0.5, -1):
                try:
                    future.result(timeout=timeout)
                except BaseException as exc:
                    outcomes.append(type(exc))

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        waiter.join(5)
        assert outcomes == [concurrent.futures.TimeoutError] * 3
    finally:
        loop.close()
    with pytest.raises(uringloop.LoopClosedError):
        future.result(timeout=-1)


@pytest.mark.parametrize("timeout", [0, 0.5])
def test_a_threadsafe_future_done_as_its_result_found_the_latch_held_returns_it(
    timeout: float,
) -> None:
    """result() that finds the latch held by another caller of result() for a moment (it
    took the latch as the outcome came) returns the outcome, as a
    concurrent.futures.Future's does: it raised TimeoutError for a done future."""
    loop = uringloop.Loop()
    try:
        future = loop.threadsafe.nop()  # queued on a loop that is not running: not done

        class HeldAMoment:
            # The outcome comes as this caller looks; another caller's result(), woken
            # by it, holds the latch when this one tries it (no wait, or its deadline).
            def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
                concurrent.futures.Future.set_result(future, 42)
                return False

            def release(self) -> None:
                raise AssertionError("released a latch it did not take")

        future._latch = HeldAMoment()  # type: ignore[attr-defined]
        assert future.result(timeout=timeout) == 42
    finally:
        loop.close()


@pytest.mark.parametrize("use_uring", [True, False], ids=["uring", "fallback"])
def test_locked_protocol_wakes_an_idle_loop(
    read_fd: int, data_file: tuple[str, bytes], use_uring: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the GIL the queue runs the locked form of the protocol (docs/model -DLOCKED).
    Forced here on the GIL build: a burst of foreign reads from several threads against an
    idle loop all complete, with no more wakeups than pushes and at least one."""
    monkeypatch.setattr("uringloop._foreign.gil_enabled", lambda: False)
    lt = LoopThread(use_uring=use_uring)
    try:
        assert lt.loop._foreign.locked
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = list(
                pool.map(lambda i: lt.loop.threadsafe.pread(read_fd, 100, i * 100), range(40))
            )
            got = [f.result(timeout=WAKEUP_BOUND * 5) for f in futures]
        assert got == [data_file[1][i * 100 : (i + 1) * 100] for i in range(40)]
        stats = lt.loop.uring_stats()
        assert stats.foreign_submissions == 40
        assert 1 <= stats.wakeups_sent <= 40
        assert stats.wakeups_sent + stats.wakeups_skipped == 40
    finally:
        lt.stop()


def test_the_gil_build_runs_the_unlocked_protocol() -> None:
    """The locked form costs a lock per push; with the GIL it is not needed."""
    loop = uringloop.Loop()
    try:
        assert loop._foreign.locked is not uringloop._foreign.gil_enabled()
    finally:
        loop.close()
