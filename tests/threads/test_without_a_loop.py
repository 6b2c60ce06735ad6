"""uringloop.threads where no uringloop loop serves the calling thread: each function
makes the plain os call itself, in that thread, with the results and errors of the ring
path."""

from __future__ import annotations

import asyncio
import ctypes
import decimal
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import threads


def _workload(root: Path, **kw: Any) -> list[Any]:
    """Every function of the module once; what it saw, comparable across paths."""
    seen: list[Any] = []
    with pytest.raises(FileNotFoundError) as missing:
        threads.open(root / "missing", **kw)
    seen.append(missing.value.filename == str(root / "missing"))
    threads.mkdir(root / "d", 0o755, **kw)
    with pytest.raises(FileExistsError):
        threads.mkdir(root / "d", **kw)
    threads.write_file(root / "d" / "f", b"0123456789", **kw)
    seen.append(threads.read_file(root / "d" / "f", **kw))
    fd = threads.open(root / "d" / "f", os.O_RDWR, **kw)
    try:
        seen.append(os.get_inheritable(fd))
        seen.append(threads.pread(fd, 4, 2, **kw))
        seen.append(threads.pread(fd, 3, -1, **kw))  # at the descriptor's offset: 0
        seen.append(threads.pread(fd, 3, -1, **kw))  # ... which moved to 3
        buf = bytearray(5)
        seen.append((threads.preadinto(fd, buf, 5, **kw), bytes(buf)))
        seen.append(threads.pwrite(fd, b"AB", 0, **kw))
        threads.pwrite_all(fd, memoryview(b"xyz" * 1000), 10, **kw)
        threads.fsync(fd, **kw)
        threads.fdatasync(fd, **kw)
        seen.append(threads.fstat(fd, **kw).st_size)
        threads.ftruncate(fd, 4, **kw)
    finally:
        threads.close(fd, **kw)
    with pytest.raises(OSError):
        threads.close(fd, **kw)  # EBADF
    st = threads.stat(root / "d" / "f", **kw)
    sx = threads.statx(root / "d" / "f", **kw)
    seen.append((st.st_size, sx.size, sx.mode == st.st_mode, sx.mtime.ns == st.st_mtime_ns))
    seen.append(threads.read_file(root / "d" / "f", **kw))
    threads.rename(root / "d" / "f", root / "d" / "g", **kw)
    threads.unlink(root / "d" / "g", **kw)
    threads.rmdir(root / "d", **kw)
    seen.append(os.listdir(root))
    return seen


def _in_thread(func: Callable[[], Any]) -> Any:
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(func()))
    thread.start()
    thread.join()
    assert box, "the thread failed"
    return box[0]


def test_same_results_without_a_loop_as_through_one(tmp_path: Path) -> None:
    (tmp_path / "direct").mkdir()
    (tmp_path / "ring").mkdir()
    assert threads.default_loop() is None
    direct = _workload(tmp_path / "direct", timeout=5)  # no loop: os, in this thread
    loop = uringloop.Loop()
    running = threading.Event()
    loop.call_soon(running.set)
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert running.wait(10)
        before = loop.uring_stats().foreign_submissions
        assert threads.default_loop() is loop
        ring = _workload(tmp_path / "ring", loop=loop)
        assert loop.uring_stats().foreign_submissions - before >= 20
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    assert direct == ring
    assert direct[1] == b"0123456789" and direct[-2] == b"AB23"


@pytest.mark.asyncio
async def test_thread_of_another_event_loop_calls_os_itself(tmp_path: Path) -> None:
    """A uringloop loop runs (this test's), but the calling thread runs stock asyncio."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    before = loop.uring_stats().foreign_submissions

    async def on_stock_asyncio() -> tuple[Any, bytes]:
        return threads.default_loop(), threads.read_file(path)

    def stock() -> tuple[Any, bytes]:
        return asyncio.run(on_stock_asyncio())

    chosen, data = await asyncio.to_thread(_in_thread, stock)
    assert chosen is None and data == b"payload"
    assert loop.uring_stats().foreign_submissions == before
    # loop= still sends it to the named loop, from that thread too.

    async def named() -> bytes:
        return threads.read_file(path, loop=loop)

    assert await asyncio.to_thread(_in_thread, lambda: asyncio.run(named())) == b"payload"
    assert loop.uring_stats().foreign_submissions > before


@pytest.mark.asyncio
@pytest.mark.loops("asyncio")
async def test_to_thread_on_stock_asyncio(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "f"
    await asyncio.to_thread(threads.write_file, path, b"from a worker")
    assert await asyncio.to_thread(threads.read_file, path) == b"from a worker"
    # On the stock loop's own thread the call is direct too (blocking, as os calls are).
    assert threads.stat(path).st_size == len(b"from a worker")


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (TypeError, BufferError, OverflowError, OSError) as exc:
        return type(exc), str(exc)


@pytest.mark.parametrize(
    "data",
    [
        memoryview(b"abcdef")[::2],
        "abc",
        5,
        decimal.Decimal(1),
        ((ctypes.c_char * 0) * 2)(),
        memoryview(bytearray(b"ab")),
        type("é" * 60, (), {})(),
    ],
    ids=[
        "not C-contiguous",
        "str",
        "int",
        "Decimal",
        "zero in its shape",
        "a good view",
        "long name",
    ],
)
@pytest.mark.parametrize("fd", ["file", "x", 2**40, -1, decimal.Decimal(3)])
@pytest.mark.parametrize("offset", [-1, 0])
def test_pwrite_takes_and_refuses_what_os_write_does(
    tmp_path: Path, data: Any, fd: Any, offset: int
) -> None:
    # Without a loop threads.pwrite makes the os call itself: the same result, or the same
    # exception and message, as os.write/os.pwrite, the descriptor checked first as os
    # converts it (a view that is not C-contiguous is a BufferError, not memoryview.cast's
    # TypeError; a type is named as CPython names it, 'decimal.Decimal').
    path = tmp_path / "f"
    path.write_bytes(b"")
    opened = os.open(path, os.O_RDWR)
    target = opened if fd == "file" else fd
    try:
        expected = _outcome(
            lambda: os.write(target, data) if offset == -1 else os.pwrite(target, data, offset)
        )
        os.ftruncate(opened, 0)
        os.lseek(opened, 0, os.SEEK_SET)
        assert _outcome(lambda: threads.pwrite(target, data, offset)) == expected
    finally:
        os.close(opened)
    assert path.read_bytes() == (b"ab" if expected == 2 else b"")


def test_a_number_reused_for_a_pipe_is_refused_an_offset_after_a_direct_pread(
    tmp_path: Path,
) -> None:
    # A direct pread off the plain-int path (a size past one read's) leaves no note that
    # its descriptor takes offsets: the pipe that gets the number next is refused one
    # (ESPIPE, as os.pread refuses it), and its bytes stay.
    path = tmp_path / "f"
    path.write_bytes(b"file data")

    def reused() -> tuple[int, int]:
        fd = os.open(path, os.O_RDONLY)
        assert threads.pread(fd, 2**31, 0) == b"file data"
        os.close(fd)
        r, w = os.pipe()
        if r != fd:  # (the number the file had, whatever else took it)
            os.dup2(r, fd)
            os.close(r)
        os.write(w, b"PIPE")
        return fd, w

    def refused_each_time() -> list[int]:
        seen = []
        for call in (
            lambda r: threads.pread_many([(r, 4, 0), (r, 4, 4)]),
            lambda r: threads.pread(r, 4, 0, timeout=5.0),
            lambda r: threads.preadinto(r, bytearray(4), 0),
        ):
            r, w = reused()
            try:
                try:
                    call(r)
                except OSError as exc:
                    seen.append(exc.errno)
                assert os.read(r, 10) == b"PIPE"
            finally:
                os.close(r)
                os.close(w)
        return seen

    # (In a thread of its own: its ring goes with it.)
    assert _in_thread(refused_each_time) == [errno.ESPIPE] * 3
