"""Reads and writes of an O_DIRECT descriptor.

Loop.pread and Loop.pread_many give the same bytes on either route: the ring reads into
page-aligned pool slots, and the thread-pool fallback (Loop(use_uring=False), or a ring
given up) reads again into page-aligned memory where the system call refuses a new bytes
object's (EINVAL). At the file position (offset -1) every read and write moves the
position, as the system call does: io_uring's did not there (Linux 6.18), so they are made
as the system call."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uringloop._ops.operation import read_blocking


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[tuple[bytes, int]]:
    """A file's bytes, and a descriptor of it open with O_DIRECT (skipped where the
    filesystem refuses O_DIRECT, as tmpfs does)."""
    path = tmp_path / "direct.bin"
    data = os.urandom(1 << 16)
    path.write_bytes(data)
    try:
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    # The premise: the plain system call refuses unaligned memory. (Asked with memory one
    # byte off a page, not a new bytes object, whose address may happen to be aligned
    # enough for the device: the test would skip or not by the allocator's luck.)
    off_by_one = memoryview(mmap.mmap(-1, 8192))[1 : 1 + 4096]
    try:
        os.preadv(fd, [off_by_one], 0)
    except OSError as exc:
        assert exc.errno == errno.EINVAL
    else:
        pytest.skip("this filesystem takes unaligned memory for O_DIRECT")
    finally:
        off_by_one.release()
    yield data, fd
    os.close(fd)


@pytest.mark.asyncio
async def test_pread_gives_the_bytes(direct: tuple[bytes, int]) -> None:
    data, fd = direct
    loop = asyncio.get_running_loop()
    assert await loop.pread(fd, 4096, 8192) == data[8192:12288]  # type: ignore[attr-defined]
    assert await loop.pread(fd, 8192, 0, direct=True) == data[:8192]  # type: ignore[attr-defined]
    os.lseek(fd, 4096, os.SEEK_SET)
    assert await loop.pread(fd, 4096) == data[4096:8192]  # type: ignore[attr-defined]
    assert os.lseek(fd, 0, os.SEEK_CUR) == 8192


@pytest.mark.asyncio
async def test_pread_many_gives_the_bytes(direct: tuple[bytes, int]) -> None:
    data, fd = direct
    loop = asyncio.get_running_loop()
    got = await loop.pread_many([(fd, 4096, 0), (fd, 4096, 40960)])  # type: ignore[attr-defined]
    assert got == [data[:4096], data[40960:45056]]


@pytest.mark.asyncio
async def test_an_unaligned_size_is_still_refused(direct: tuple[bytes, int]) -> None:
    _, fd = direct
    loop = asyncio.get_running_loop()
    with pytest.raises(OSError) as info:
        await loop.pread(fd, 100, 0)  # type: ignore[attr-defined]
    assert info.value.errno == errno.EINVAL


def test_read_blocking_reads_again_only_for_o_direct(
    direct: tuple[bytes, int], tmp_path: Path
) -> None:
    data, fd = direct
    assert read_blocking(fd, 4096, 4096) == data[4096:8192]
    with pytest.raises(OSError) as info:
        read_blocking(fd, 100, 0)
    assert info.value.errno == errno.EINVAL
    plain = os.open(tmp_path / "direct.bin", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            read_blocking(plain, 10, -5)  # EINVAL, not O_DIRECT's: raised as it is
        assert info.value.errno == errno.EINVAL
        assert read_blocking(plain, 10, 5) == data[5:15]
    finally:
        os.close(plain)


def _aligned(data: bytes) -> mmap.mmap:
    memory = mmap.mmap(-1, len(data))
    memory[:] = data
    return memory


@pytest.mark.asyncio
async def test_reads_at_the_position_move_it(direct: tuple[bytes, int]) -> None:
    data, fd = direct
    loop: Any = asyncio.get_running_loop()
    assert await loop.pread(fd, 4096) == data[:4096]
    assert await loop.pread(fd, 4096) == data[4096:8192]
    into = _aligned(b"\0" * 4096)
    assert await loop.preadinto(fd, into, -1) == 4096 and into[:] == data[8192:12288]
    assert await loop.preadv(fd, [into], -1) == 4096 and into[:] == data[12288:16384]
    assert await loop.pread_many([(fd, 4096, -1), (fd, 4096, -1)]) == [
        data[16384:20480],
        data[20480:24576],
    ]
    assert os.lseek(fd, 0, os.SEEK_CUR) == 24576


@pytest.mark.asyncio
async def test_writes_at_the_position_move_it(direct: tuple[bytes, int]) -> None:
    data, fd = direct
    loop: Any = asyncio.get_running_loop()
    first, second = os.urandom(4096), os.urandom(4096)
    assert await loop.pwrite(fd, _aligned(first), -1) == 4096
    assert await loop.pwritev(fd, [_aligned(second)], -1) == 4096
    assert os.lseek(fd, 0, os.SEEK_CUR) == 8192
    assert await loop.pread(fd, 8192, 0, direct=True) == first + second
    assert await loop.pread(fd, 4096, 8192) == data[8192:12288]
