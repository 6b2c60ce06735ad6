"""Bad input and failed operations: the right exception, never a crash or a hang."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

import uringloop

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring", "fallback")]


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


async def test_missing_file_is_file_not_found_with_filename(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "missing")
    with pytest.raises(FileNotFoundError) as info:
        await running().open_fd(path)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == path
    with pytest.raises(FileNotFoundError) as info:
        await running().stat(path)
    assert info.value.filename == path


async def test_directory_for_writing_is_is_a_directory(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(IsADirectoryError):
        await running().open_fd(tmp_path, os.O_WRONLY)


async def test_exclusive_create_of_existing_is_file_exists(data_file: tuple[str, bytes]) -> None:
    with pytest.raises(FileExistsError) as info:
        await running().open_fd(data_file[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert info.value.filename == data_file[0]


async def test_rename_error_names_both_paths(tmp_path: os.PathLike[str]) -> None:
    src = os.path.join(tmp_path, "nope")
    dst = os.path.join(tmp_path, "dst")
    with pytest.raises(FileNotFoundError) as info:
        await running().rename(src, dst)
    assert (info.value.filename, info.value.filename2) == (src, dst)


async def test_bad_fd_is_ebadf() -> None:
    loop = running()
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    for coro in (loop.pread(r, 10, 0), loop.pwrite(w, b"x", 0), loop.fsync(r), loop.fstat(r)):
        with pytest.raises(OSError) as info:
            await coro
        assert info.value.errno == errno.EBADF


async def test_argument_checks_come_before_anything_is_queued() -> None:
    """Refused as os.pread refuses them, and before anything reaches the kernel."""
    loop = running()
    before = loop.uring_stats().submitted
    with pytest.raises(OSError) as info:
        await loop.pread(0, -1, 0)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        await loop.pread(0, 10, -2)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        await loop.pread("0", 10, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await loop.pread(0, 1.5, 0)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        await loop.pread(2**40, 10, 0)
    with pytest.raises(OverflowError):
        await loop.pread(0, 10, 2**64)
    with pytest.raises(ValueError, match="null"):
        await loop.open_fd("a\0b")
    with pytest.raises(TypeError):
        await loop.open_fd(42.0)  # type: ignore[arg-type]
    assert loop.uring_stats().submitted == before


async def test_buffers_of_the_wrong_kind_are_refused(data_file: tuple[str, bytes]) -> None:
    """As os.preadv and os.pwrite refuse them: BufferError for a buffer that is read-only or
    not contiguous, TypeError for an object that is no buffer."""
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        data = b"immutable"
        with pytest.raises(BufferError, match="writable"):
            await loop.preadinto(fd, data, 0)  # a bytes object is never written into
        assert data == b"immutable"
        with pytest.raises(BufferError, match="writable"):
            await loop.preadinto(fd, memoryview(bytearray(4)).toreadonly(), 0)
        with pytest.raises(TypeError):
            await loop.preadinto(fd, [1, 2, 3], 0)
        with pytest.raises(TypeError):
            await loop.pwrite(fd, "text", 0)
        with pytest.raises(BufferError, match="contiguous"):
            await loop.preadinto(fd, memoryview(bytearray(8))[::2], 0)
    finally:
        os.close(fd)


async def test_huge_read_size_fails_cleanly(data_file: tuple[str, bytes]) -> None:
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        # Clamped to the kernel's MAX_RW_COUNT, like os.read: a short read, not a crash.
        data = await loop.pread(fd, 2**62, 0)
        assert data == data_file[1]
    finally:
        os.close(fd)


async def test_write_to_read_only_fd_is_ebadf(data_file: tuple[str, bytes]) -> None:
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            await loop.pwrite(fd, b"x", 0)
        assert info.value.errno == errno.EBADF
    finally:
        os.close(fd)


@pytest.mark.loops("uring")
async def test_operations_on_a_closed_loop_raise() -> None:
    other = uringloop.Loop()
    other.close()
    with pytest.raises(RuntimeError, match="closed"):
        other.threadsafe.nop()
    coro = other.nop()
    with pytest.raises(RuntimeError, match="closed"):
        coro.send(None)
    coro.close()
