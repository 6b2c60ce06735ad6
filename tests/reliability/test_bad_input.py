"""Bad input: clear exceptions, and nothing left behind (no fd, no pinned buffer, nothing
in flight or queued, no pool slot taken)."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import pathlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

import uringloop
from tests.conftest import mounted_tmpfs

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.loops("uring", "fallback"),
    pytest.mark.usefixtures("no_fd_leak"),
]


def _loop() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


async def _assert_clean(loop: uringloop.Loop) -> None:
    """Nothing queued, in flight or holding a pooled buffer; the loop still works."""
    await loop.nop()
    stats = loop.uring_stats()
    assert stats.in_flight == 0
    assert stats.backlog == 0
    assert loop._pool.in_use() == 0


@pytest.fixture
def fd_1m(data_file: tuple[str, bytes]) -> Iterator[tuple[int, bytes]]:
    path, data = data_file
    fd = os.open(path, os.O_RDWR)
    yield fd, data
    os.close(fd)


# -- sizes and offsets -----------------------------------------------------------------------


async def test_negative_sizes_and_offsets(fd_1m: tuple[int, bytes]) -> None:
    """Negative sizes and offsets (below -1, "at the file position") are EINVAL, as the os
    functions and system calls say; pwrite_all, which has no os counterpart, needs an
    explicit offset (ValueError)."""
    loop = _loop()
    fd, _ = fd_1m
    calls: list[Any] = [
        lambda: loop.pread(fd, -1, 0),
        lambda: loop.pread(fd, 10, -2),
        lambda: loop.preadinto(fd, bytearray(10), -7),
        lambda: loop.preadv(fd, [bytearray(10)], -2),
        lambda: loop.pwrite(fd, b"x", -2),
        lambda: loop.pwritev(fd, [b"x"], -100),
        lambda: loop.pread_many([(fd, 10, 0), (fd, -10, 0)]),
        lambda: loop.fallocate(fd, -1, 10),
        lambda: loop.fallocate(fd, 0, -10),
        lambda: loop.ftruncate(fd, -1),
    ]
    for call in calls:
        with pytest.raises(OSError) as info:
            await call()
        assert info.value.errno == errno.EINVAL
    for reference in (lambda: os.pread(fd, -1, 0), lambda: os.ftruncate(fd, -1)):
        with pytest.raises(OSError) as info:
            reference()
        assert info.value.errno == errno.EINVAL  # what os says to the same arguments
    with pytest.raises(ValueError):
        await loop.pwrite_all(fd, b"x", -1)
    assert os.fstat(fd).st_size == 1 << 20  # nothing was written or truncated
    await _assert_clean(loop)


async def test_out_of_range_and_wrongly_typed_numbers(fd_1m: tuple[int, bytes]) -> None:
    loop = _loop()
    fd, _ = fd_1m
    with pytest.raises(OverflowError):
        await loop.pread(fd, 10, 2**63)
    with pytest.raises(OverflowError):
        await loop.pread(2**31, 10, 0)
    with pytest.raises(OverflowError):
        await loop.pwrite(fd, b"x", 2**64)
    for bad in ("3", 3.0, None):
        with pytest.raises(TypeError):
            await loop.pread(bad, 10, 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await loop.pread(fd, bad, 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await loop.pread(fd, 10, bad)  # type: ignore[arg-type]
    await _assert_clean(loop)


async def test_huge_sizes_read_what_is_there(fd_1m: tuple[int, bytes]) -> None:
    """A size far beyond memory is a bound, not an allocation: the read returns the file."""
    loop = _loop()
    fd, data = fd_1m
    assert await loop.pread(fd, 2**62, 0) == data
    assert await loop.pread(fd, 2**40, len(data) - 5) == data[-5:]
    assert await loop.pread_many([(fd, 2**50, 0), (fd, 3, 1)]) == [data, data[1:4]]
    # A huge offset is past the end of file: nothing to read.
    assert await loop.pread(fd, 10, 2**62) == b""
    await _assert_clean(loop)


# -- file descriptors ------------------------------------------------------------------------


async def test_closed_and_invalid_fds(data_file: tuple[str, bytes]) -> None:
    loop = _loop()
    path, _ = data_file
    closed = os.open(path, os.O_RDONLY)
    os.close(closed)
    for fd in (closed, -1, -5, 1_000_000):
        with pytest.raises(OSError) as info:
            await loop.pread(fd, 10, 0)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await loop.preadinto(fd, bytearray(4), 0)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await loop.pwrite(fd, b"abc", 0)
        assert info.value.errno == errno.EBADF
        # os.fsync() (the fallback) refuses a negative fd with ValueError before any
        # system call; the ring reports EBADF. Both are clear; neither leaves state behind.
        with pytest.raises((OSError, ValueError)) as fsync_info:
            await loop.fsync(fd)
        if isinstance(fsync_info.value, OSError):
            assert fsync_info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await loop.fstat(fd)
        assert info.value.errno == errno.EBADF
    await _assert_clean(loop)


async def test_write_to_read_only_fd_and_read_from_write_only(
    data_file: tuple[str, bytes],
) -> None:
    loop = _loop()
    path, data = data_file
    ro = await loop.open_fd(path, os.O_RDONLY)
    wo = await loop.open_fd(path, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as info:
            await loop.pwrite(ro, b"zzz", 0)
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await loop.pread(wo, 10, 0)
        assert info.value.errno == errno.EBADF
    finally:
        await loop.close_fd(ro)
        await loop.close_fd(wo)
    with open(path, "rb") as f:
        assert f.read() == data
    await _assert_clean(loop)


async def test_directories(tmp_path: pathlib.Path) -> None:
    loop = _loop()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC):
        with pytest.raises(IsADirectoryError) as info:
            await loop.open_fd(tmp_path, flags)
        assert info.value.filename == os.fspath(tmp_path)  # as os.open() reports it
    dfd = await loop.open_fd(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(IsADirectoryError):
            await loop.pread(dfd, 10, 0)
        with pytest.raises(OSError) as write_info:
            await loop.pwrite(dfd, b"x", 0)
        assert write_info.value.errno == errno.EBADF
        assert (await loop.fstat(dfd)).st_mode == os.fstat(dfd).st_mode
    finally:
        await loop.close_fd(dfd)
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        await loop.open_fd(tmp_path / "plain" / "y", os.O_RDONLY)
    await _assert_clean(loop)


# -- buffers ---------------------------------------------------------------------------------


async def test_non_buffer_objects(fd_1m: tuple[int, bytes]) -> None:
    loop = _loop()
    fd, data = fd_1m
    for bad in (12345, "text", None, [1, 2, 3], object()):
        with pytest.raises(TypeError):
            await loop.pwrite(fd, bad, 0)
        with pytest.raises(TypeError):
            await loop.preadinto(fd, bad, 0)
        with pytest.raises(TypeError):
            await loop.pwritev(fd, [b"ok", bad], 0)
    # A vectored call that fails on its second buffer releases the first one's export:
    # a bytearray still exported could not be resized.
    first = bytearray(b"first")
    with pytest.raises(TypeError):
        await loop.pwritev(fd, [first, "second"], 0)
    with pytest.raises(BufferError):  # as os.preadv
        await loop.preadv(fd, [first, b"read-only"], 0)
    first.extend(b" and more")
    assert os.pread(fd, 100, 0) == data[:100]
    await _assert_clean(loop)


async def test_too_many_buffers_are_released_with_the_einval(fd_1m: tuple[int, bytes]) -> None:
    """More than IOV_MAX (1024) buffers is EINVAL, as os.preadv and os.pwritev say; the
    buffers are no longer exported by then: a bytearray among them can be resized in the
    except block (as after os's own EINVAL)."""
    loop = _loop()
    fd, data = fd_1m
    for call in (loop.preadv, loop.pwritev):
        buffer = bytearray(b"buffer")
        try:
            await call(fd, [buffer] * 1025, 0)
        except OSError as exc:
            assert exc.errno == errno.EINVAL
            buffer.extend(b"!")  # BufferError while a view of it is kept
        else:
            pytest.fail("1025 buffers were taken")
        assert buffer == b"buffer!"
    assert os.pread(fd, 100, 0) == data[:100]
    await _assert_clean(loop)


async def test_read_only_buffers_given_to_a_read(fd_1m: tuple[int, bytes]) -> None:
    """BufferError, as os.preadv raises."""
    loop = _loop()
    fd, _ = fd_1m
    frozen = b"\0" * 16
    for ro in (frozen, memoryview(bytearray(16)).toreadonly(), memoryview(frozen)):
        with pytest.raises(BufferError, match="not writable"):
            await loop.preadinto(fd, ro, 0)
        with pytest.raises(BufferError, match="not writable"):
            await loop.preadv(fd, [bytearray(4), ro], 0)
        with pytest.raises(BufferError, match="not writable"):
            os.preadv(fd, [bytearray(4), ro], 0)
    assert frozen == b"\0" * 16
    await _assert_clean(loop)


async def test_strided_empty_and_mapped_buffers_given_to_a_read(fd_1m: tuple[int, bytes]) -> None:
    loop = _loop()
    fd, data = fd_1m
    strided = memoryview(bytearray(16))[::2]
    with pytest.raises(BufferError, match="contiguous"):  # as os.preadv
        await loop.preadinto(fd, strided, 0)
    assert await loop.preadinto(fd, bytearray(), 0) == 0
    mapped = mmap.mmap(-1, 4096)
    assert await loop.preadinto(fd, mapped, 4096) == 4096
    assert mapped[:] == data[4096:8192]
    mapped.close()  # the pin was released with the completion
    await _assert_clean(loop)


async def test_buffer_is_pinned_while_in_flight() -> None:
    """A bytearray given to a read cannot be resized (freed) while the kernel may write it."""
    loop = _loop()
    r, w = os.pipe()
    try:
        buf = bytearray(8)
        task = asyncio.ensure_future(loop.preadinto(r, buf, -1))
        await asyncio.sleep(0.01)
        assert not task.done()
        with pytest.raises(BufferError):
            buf.extend(b"more")
        os.write(w, b"12345678")
        assert await task == 8
        assert buf == b"12345678"
        buf.extend(b"more")  # released after the completion
    finally:
        os.close(r)
        os.close(w)
    await _assert_clean(loop)


# -- paths -----------------------------------------------------------------------------------


async def test_bytes_and_pathlike_paths(tmp_path: pathlib.Path) -> None:
    loop = _loop()
    p = tmp_path / "a.bin"
    fd = await loop.open_fd(p, os.O_WRONLY | os.O_CREAT, 0o600)
    await loop.pwrite_all(fd, b"hello", 0)
    await loop.close_fd(fd)
    fd = await loop.open_fd(os.fsencode(p))
    assert await loop.pread(fd, 10, 0) == b"hello"
    await loop.close_fd(fd)
    assert (await loop.stat(os.fsencode(p))).st_size == 5
    assert (await loop.stat(p)).st_ino == os.stat(p).st_ino
    await loop.rename(p, os.fsencode(tmp_path / "b.bin"))
    await loop.mkdir(tmp_path / "d")
    await loop.rename(os.fsencode(tmp_path / "b.bin"), tmp_path / "d" / "c.bin")
    assert sorted(os.listdir(tmp_path / "d")) == ["c.bin"]
    await loop.unlink(os.fsencode(tmp_path / "d" / "c.bin"))
    await loop.rmdir(tmp_path / "d")
    assert os.listdir(tmp_path) == []
    # Errors carry the path as os.open() and os.stat() report it.
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError) as info:
        await loop.open_fd(missing)
    assert info.value.filename == os.fspath(missing)
    with pytest.raises(FileNotFoundError) as info:
        await loop.stat(os.fsencode(missing))
    assert info.value.filename == os.fsencode(missing)
    await _assert_clean(loop)


async def test_paths_with_nul_bytes_and_non_paths(tmp_path: pathlib.Path) -> None:
    loop = _loop()
    for bad in ("a\0b", b"a\0b", pathlib.Path("x\0y")):
        with pytest.raises(ValueError):
            await loop.open_fd(bad, os.O_WRONLY | os.O_CREAT)
        with pytest.raises(ValueError):
            await loop.stat(bad)
        with pytest.raises(ValueError):
            await loop.unlink(bad)
        with pytest.raises(ValueError):
            await loop.mkdir(bad)
        with pytest.raises(ValueError):
            await loop.rename(tmp_path / "x", bad)
    for not_a_path in (None, 4.5):
        with pytest.raises(TypeError):
            await loop.open_fd(not_a_path)
        with pytest.raises(TypeError):
            await loop.stat(not_a_path)
    with pytest.raises(TypeError):
        await loop.open_fd(123)
    with pytest.raises(OSError) as info:
        await loop.stat(123)  # a descriptor, as os.stat(123) takes it
    assert info.value.errno == errno.EBADF
    assert os.listdir(tmp_path) == []
    await _assert_clean(loop)


# -- the world changes under us --------------------------------------------------------------


async def test_file_truncated_by_another_process_while_read(tmp_path: pathlib.Path) -> None:
    loop = _loop()
    size, chunk, new_size = 8 << 20, 64 << 10, 1 << 20
    data = os.urandom(size)
    path = tmp_path / "shrinking.bin"
    path.write_bytes(data)
    fd = await loop.open_fd(path)
    try:
        shrink = loop.run_in_executor(
            None,
            lambda: subprocess.run(
                ["truncate", "-s", str(new_size), str(path)], check=True, timeout=60
            ),
        )
        seen: list[tuple[int, bytes]] = []
        while not shrink.done():
            offsets = list(range(0, size, chunk))
            got = await asyncio.gather(*(loop.pread(fd, chunk, off) for off in offsets))
            seen.extend(zip(offsets, got, strict=True))
        await shrink
        # Every read returned a prefix of what was there: whole, short at the new end of
        # file, or empty past it. Never garbage, never an error.
        for off, block in seen:
            assert block == data[off : off + len(block)]
        after = await asyncio.gather(*(loop.pread(fd, chunk, o) for o in range(0, size, chunk)))
        assert b"".join(after) == data[:new_size]
        assert (await loop.fstat(fd)).st_size == new_size
    finally:
        await loop.close_fd(fd)
    await _assert_clean(loop)


@pytest_asyncio.fixture
async def tiny_fs(tmp_path: pathlib.Path) -> AsyncIterator[pathlib.Path]:
    """A 1 MiB tmpfs, or a skip saying why it cannot be made."""
    async with mounted_tmpfs(tmp_path / "tiny", "1m") as mount_point:
        yield mount_point


async def test_full_disk(tiny_fs: pathlib.Path) -> None:
    loop = _loop()
    data = os.urandom(3 << 20)
    path = tiny_fs / "big.bin"
    fd = await loop.open_fd(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as info:
            await loop.pwrite_all(fd, data, 0)
        assert info.value.errno == errno.ENOSPC
        # What was written before the disk filled is intact and accounted for.
        written = (await loop.fstat(fd)).st_size
        assert 0 < written < len(data)
        assert await loop.pread(fd, len(data), 0) == data[:written]
        # A plain pwrite at the end reports ENOSPC too, not a silent 0.
        with pytest.raises(OSError) as info:
            await loop.pwrite(fd, data[:65536], written)
        assert info.value.errno == errno.ENOSPC
        # Freeing space makes the same fd usable again.
        await loop.ftruncate(fd, 0)
        assert await loop.pwrite(fd, b"after", 0) == 5
        await loop.fsync(fd)
        assert await loop.pread(fd, 10, 0) == b"after"
    finally:
        await loop.close_fd(fd)
    await _assert_clean(loop)
