"""A write or a read into the caller's buffer that fails leaves that buffer free.

os.write and the built-in files release the caller's buffer before they raise: a
bytearray can be resized in the `except` block. The views uringloop makes of it (and of
its parts, for big transfers) must be released too, not kept by the failure's traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import threads

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/full") or not os.path.exists("/proc/self/mem"),
    reason="needs /dev/full (ENOSPC on write) and /proc/self/mem (EIO at address 0)",
)

BIG = 1 << 20  # several parts written or read in parallel, and past the write buffer


async def _fails_then_resizes(
    operation: Callable[[bytearray], Awaitable[Any]], size: int, error: int
) -> None:
    """`operation` given a bytearray of `size` bytes must raise OSError(`error`); inside
    the except block, as a caller would, the bytearray must be resizable."""
    buffer = bytearray(size)
    try:
        await asyncio.wait_for(operation(buffer), 30)
    except OSError as exc:
        assert exc.errno == error
        buffer.extend(b"!")  # BufferError while a view of it is kept
    else:
        pytest.fail("the operation did not fail")
    assert len(buffer) == size + 1


@pytest.fixture
def full_fd() -> Iterator[int]:
    fd = os.open("/dev/full", os.O_WRONLY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


async def _write_to_full(buffer: bytearray, buffering: int) -> None:
    f = await uringloop.open("/dev/full", "wb", buffering=buffering)
    try:
        await f.write(buffer)
        await f.flush()
    finally:
        with contextlib.suppress(OSError):  # (what is still buffered fails again)
            await f.close()


async def _read_from_address_0(buffer: bytearray, buffering: int) -> None:
    # Reading this process's memory at address 0 fails with EIO.
    async with uringloop.open("/proc/self/mem", "rb", buffering=buffering) as f:
        await f.readinto(buffer)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("size", [10, BIG])
@pytest.mark.parametrize("buffering", [0, -1])
@pytest.mark.parametrize(
    ("call", "error"),
    [(_write_to_full, errno.ENOSPC), (_read_from_address_0, errno.EIO)],
    ids=["write", "readinto"],
)
async def test_a_failing_file_call_leaves_the_buffer_free(
    size: int,
    buffering: int,
    call: Callable[[bytearray, int], Awaitable[None]],
    error: int,
    no_fd_leak: None,
) -> None:
    await _fails_then_resizes(lambda buffer: call(buffer, buffering), size, error)


@pytest.mark.asyncio
@pytest.mark.loops("uring")
@pytest.mark.parametrize("size", [10, BIG])
async def test_a_failing_pwrite_all_leaves_the_buffer_free(size: int, full_fd: int) -> None:
    loop: Any = asyncio.get_running_loop()
    await _fails_then_resizes(lambda b: loop.pwrite_all(full_fd, b, 0), size, errno.ENOSPC)


@pytest.mark.parametrize("size", [10, BIG])
def test_a_failing_threads_pwrite_all_leaves_the_buffer_free(size: int, full_fd: int) -> None:
    buffer = bytearray(size)
    with pytest.raises(OSError) as failure:
        try:
            threads.pwrite_all(full_fd, buffer, 0)
        finally:
            buffer.extend(b"!")  # with the failure still being raised
    assert failure.value.errno == errno.ENOSPC
    assert len(buffer) == size + 1


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_cancelled_write_leaves_the_buffer_free_once_its_io_ends(
    no_fd_leak: None,
) -> None:
    # While the write may be in flight the buffer stays exported (the kernel, or a
    # thread, reads it); once it has ended, even with the cancellation still being
    # handled, nothing of ours may keep it.
    read_end, write_end = os.pipe()
    buffer = bytearray(BIG)
    try:
        os.set_blocking(write_end, False)  # filled: the write waits for a reader
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, bytes(65536))
        os.set_blocking(write_end, True)
        f = await uringloop.open(write_end, "wb", buffering=0, closefd=False)
        try:
            await asyncio.wait_for(f.write(buffer), 0.1)
        except asyncio.TimeoutError:
            os.close(read_end)  # the write ends (EPIPE)
            read_end = -1
            for _ in range(500):
                try:
                    buffer.extend(b"!")
                    break
                except BufferError:
                    await asyncio.sleep(0.01)
            assert len(buffer) == BIG + 1
        else:
            pytest.fail("the write did not wait")
        finally:
            await f.close()
    finally:
        os.close(write_end)
        if read_end >= 0:
            os.close(read_end)


def _refused(buffer: bytearray, kind: str) -> Any:
    return {
        "not contiguous": lambda: memoryview(buffer)[::2],
        "read-only": lambda: memoryview(buffer).toreadonly(),
        "bytes": lambda: bytes(buffer),
        "str": lambda: "text",
        "None": lambda: None,
        "released": lambda: _released(buffer),
    }[kind]()


def _released(buffer: bytearray) -> memoryview:
    view = memoryview(buffer)
    view.release()
    return view


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize(
    "kind", ["not contiguous", "read-only", "bytes", "str", "None", "released"]
)
@pytest.mark.parametrize(
    ("buffering", "call"), [(0, "readinto"), (-1, "readinto"), (-1, "readinto1")]
)
async def test_readinto_refuses_its_argument_as_the_builtin_and_keeps_nothing(
    tmp_path: Path, kind: str, buffering: int, call: str, no_fd_leak: None
) -> None:
    # The built-in's TypeError, before anything else (the file is closed here), and the
    # caller's buffer free once the caller releases its own view.
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    outcomes = []
    for ours in (False, True):
        buffer = bytearray(10)
        argument = _refused(buffer, kind)
        try:
            if ours:
                f = await uringloop.open(path, "rb", buffering=buffering)
                await f.close()
                await getattr(f, call)(argument)
            else:
                with open(path, "rb", buffering=buffering) as g:
                    pass
                getattr(g, call)(argument)
        except Exception as exc:
            if isinstance(argument, memoryview):
                argument.release()
            buffer.extend(b"!")  # BufferError if a view of ours is kept
            outcomes.append((type(exc), str(exc)))
    assert len(outcomes) == 2 and outcomes[0] == outcomes[1]


N_WRITES = 1600


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_text_file_whose_flushes_keep_failing_keeps_a_bounded_amount() -> None:
    # Every write's flush fails (ENOSPC): what the file keeps to write later stays under
    # its buffer's size, as the built-in's does; each write it cannot take raises that
    # error. It kept every write's bytes: 2000 writes of 5000 characters held 10 MB.
    import tracemalloc

    f = await uringloop.open("/dev/full", "w", encoding="utf-8")
    refused = 0
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(N_WRITES):
            try:
                await f.write("x" * 5000)
                await f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                refused += 1
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        with contextlib.suppress(OSError):
            await f.close()
    assert refused == N_WRITES
    assert grown < 1 << 20, grown  # (kept: 8 MB and more; a fixed 0.6 MB on an executor)
