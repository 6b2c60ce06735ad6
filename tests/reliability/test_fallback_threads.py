"""The thread-pool fallback when its pool cannot start a thread (a pids limit, as containers
set; the interpreter shutting down): the operation fails as `run_in_executor` would, the
loop goes on, a close still closes, and an operation a worker took all the same completes."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop._ops import operation

pytestmark = pytest.mark.usefixtures("no_fd_leak")


class RefusedThreads:
    """threading.Thread.start patched: while `refusing`, the fallback pool's new threads
    fail to start as they do at a pids limit; `before_refusal` runs first."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refusing = False
        self.refused = 0
        self.before_refusal: Any = None
        real_start = threading.Thread.start

        def start(thread: threading.Thread) -> None:
            if self.refusing and thread.name.startswith("uringloop-fallback"):
                self.refused += 1
                if self.before_refusal is not None:
                    self.before_refusal()
                raise RuntimeError("can't start new thread")
            real_start(thread)

        monkeypatch.setattr(threading.Thread, "start", start)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(b"0123456789")
    return path


def test_an_operation_no_thread_can_run_fails_and_the_loop_goes_on(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = RefusedThreads(monkeypatch)
    loop = uringloop.Loop(use_uring=False)
    fd = os.open(data, os.O_RDONLY)

    async def main() -> None:
        threads.refusing = True
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await loop.pread(fd, 4, 2, cached_copy=False)
        # A close must run: without a thread, it runs on the loop's.
        other = os.dup(fd)
        await loop.close_fd(other)
        with pytest.raises(OSError) as closed:
            os.fstat(other)
        assert closed.value.errno == errno.EBADF
        threads.refusing = False
        assert await loop.pread(fd, 4, 2, cached_copy=False) == b"2345"
        stats = loop.uring_stats()
        assert (stats.in_flight, stats.backlog) == (0, 0)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        os.close(fd)
    assert threads.refused == 2


def test_an_operation_a_worker_took_as_its_thread_failed_completes(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool queues its work item before it starts the thread meant for it: should that
    # start fail, a worker already there may take the item. Here it does, deterministically:
    # the first read holds the pool's only worker until the second read's thread start is
    # refused, then the worker finishes and takes the second read before the refusal.
    threads = RefusedThreads(monkeypatch)
    release = threading.Event()
    taken: list[int] = []
    real_read = operation.read_blocking

    def read_blocking(fd: int, size: int, offset: int) -> bytes:
        taken.append(offset)
        if offset == 0:
            release.wait(10)
        return real_read(fd, size, offset)

    monkeypatch.setattr(operation, "read_blocking", read_blocking)

    def let_the_worker_take_it() -> None:
        release.set()
        deadline = time.monotonic() + 10
        while 5 not in taken and time.monotonic() < deadline:
            time.sleep(0.001)
        assert 5 in taken

    threads.before_refusal = let_the_worker_take_it
    loop = uringloop.Loop(use_uring=False)
    fd = os.open(data, os.O_RDONLY)

    async def main() -> list[bytes]:
        first = asyncio.ensure_future(loop.pread(fd, 3, 0, cached_copy=False))
        while not taken:  # (the first read holds the worker)
            await asyncio.sleep(0.001)
        threads.refusing = True
        second = await loop.pread(fd, 3, 5, cached_copy=False)
        return [await first, second]

    try:
        assert loop.run_until_complete(main()) == [b"012", b"567"]
        stats = loop.uring_stats()
        assert (stats.in_flight, stats.backlog) == (0, 0)
    finally:
        loop.close()
        os.close(fd)
    assert threads.refused == 1
