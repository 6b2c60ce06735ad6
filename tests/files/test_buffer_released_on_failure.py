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
