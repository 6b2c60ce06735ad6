"""O_DIRECT through uringloop.open(..., direct=True) and aligned buffers."""

from __future__ import annotations

import asyncio
import errno
import mmap
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import _aligned, _files


@pytest.fixture
def direct_path(tmp_path: Path) -> Iterator[Path]:
    """A path on a filesystem that accepts O_DIRECT (skip where it does not)."""
    path = tmp_path / "direct.bin"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"the filesystem under {tmp_path} refuses O_DIRECT")
        raise
    os.close(fd)
    yield path


def test_aligned_buffer() -> None:
    buf = uringloop.aligned_buffer(10_000)
    try:
        assert len(buf) == 10_000
        assert _aligned.buffer_address(buf) % mmap.PAGESIZE == 0
        buf[:3] = b"abc"
        assert bytes(memoryview(buf)[:3]) == b"abc"
    finally:
        buf.close()
    with pytest.raises(ValueError, match="power of two"):
        uringloop.aligned_buffer(4096, 3000)
    with pytest.raises(ValueError, match="positive"):
        uringloop.aligned_buffer(0)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_direct_round_trip(direct_path: Path, no_fd_leak: None) -> None:
    payload = os.urandom(3 * 4096 + 1000)
    async with uringloop.open(direct_path, "w+b", buffering=0, direct=True) as f:
        assert f.direct
        mem_align, off_align = f.dio_alignment
        assert mem_align > 0 and off_align > 0 and 4096 % off_align == 0
        aligned = uringloop.aligned_buffer(4 * 4096)
        aligned[: len(payload)] = payload
        assert await f.write(aligned) == 4 * 4096
        # Unaligned memory (bytes) is copied into an aligned buffer for the kernel.
        assert await f.write(payload[:4096]) == 4096
        await f.truncate(len(payload))
        await f.seek(0)
        assert await f.read(4096) == payload[:4096]
        into = uringloop.aligned_buffer(4096)
        assert await f.readinto(into) == 4096
        assert bytes(into) == payload[4096:8192]
        assert await f.read() == payload[8192:]
        await f.seek(0)
        assert await f.readall() == payload
    assert direct_path.read_bytes() == payload


@pytest.mark.asyncio
async def test_direct_alignment_comes_from_statx(direct_path: Path, no_fd_leak: None) -> None:
    running = asyncio.get_running_loop()
    assert isinstance(running, uringloop.Loop)
    info = await running.statx(
        direct_path, mask=int(uringloop.StatxMask.BASIC_STATS | uringloop.StatxMask.DIOALIGN)
    )
    async with uringloop.open(direct_path, "rb", buffering=0, direct=True) as f:
        if info.dio_offset_align:
            assert f.dio_alignment == (info.dio_mem_align, info.dio_offset_align)
        else:
            assert f.dio_alignment == (4096, 4096)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_misaligned_requests_name_the_alignment(direct_path: Path, no_fd_leak: None) -> None:
    direct_path.write_bytes(b"z" * 8192)
    async with uringloop.open(direct_path, "r+b", buffering=0, direct=True) as f:
        _, align = f.dio_alignment
        with pytest.raises(ValueError, match=f"length aligned to {align} bytes"):
            await f.read(align + 1)
        with pytest.raises(ValueError, match=f"length aligned to {align} bytes"):
            await f.write(b"x" * 100)
        await f.seek(1)
        with pytest.raises(ValueError, match=f"file position aligned to {align} bytes"):
            await f.read(align)
        await f.seek(0)
        buf = uringloop.aligned_buffer(2 * 4096)
        with memoryview(buf) as view, pytest.raises(ValueError, match="buffer address aligned"):
            await f.readinto(view[1 : 1 + align])
        assert await f.read(4096) == b"z" * 4096


@pytest.mark.asyncio
async def test_direct_needs_unbuffered_binary(tmp_path: Path, no_fd_leak: None) -> None:
    for mode, buffering in (("rb", -1), ("r", -1), ("wb", 4096)):
        with pytest.raises(ValueError, match="unbuffered binary"):
            await uringloop.open(tmp_path / "f", mode, buffering, direct=True)


@pytest.mark.asyncio
async def test_a_batch_of_direct_reads_of_mixed_sizes_reads_each_part(
    direct_path: Path, no_fd_leak: None
) -> None:
    # A pread_many of parts of several sizes on an O_DIRECT descriptor: the parts share
    # buffers, each on a boundary its size allows (a multiple of the block size), so
    # the kernel takes every read.
    data = os.urandom(64 * 4096)
    direct_path.write_bytes(data)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    fd = os.open(direct_path, os.O_RDONLY | os.O_DIRECT)
    try:
        info = await loop.statx(
            direct_path, mask=int(uringloop.StatxMask.BASIC_STATS | uringloop.StatxMask.DIOALIGN)
        )
        block = max(info.dio_offset_align or 4096, info.dio_mem_align or 4096)
        sizes = [block, 4096, 3 * block, 8192, block, 5 * 4096, 2 * block, 4096]
        reqs = [(fd, size, 4096 * (7 * i % 40)) for i, size in enumerate(sizes)]
        got = await loop.pread_many(reqs)
    finally:
        os.close(fd)
    assert got == [data[offset : offset + size] for _, size, offset in reqs]


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_cancelled_direct_read_to_the_end_moves_nothing(
    direct_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A size that is a multiple of the alignment: the first read comes back full and a
    # second one looks for EOF. Cancelled there, read() must leave the position where it
    # was, as it does on other files: it had moved past all the bytes it never returned.
    data = os.urandom(2 * 4096)
    direct_path.write_bytes(data)
    calls = 0
    real = _files._read_into_parallel

    async def second_waits(io_: Any, fd: int, view: memoryview, offset: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            await asyncio.Event().wait()
        return await real(io_, fd, view, offset)

    monkeypatch.setattr(_files, "_read_into_parallel", second_waits)
    async with uringloop.open(direct_path, "rb", buffering=0, direct=True) as f:
        task = asyncio.ensure_future(f.read())
        while calls < 2:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await f.tell() == 0
        monkeypatch.undo()
        assert await f.read() == data
        assert await f.tell() == len(data)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_reads_at_the_unaligned_end_find_nothing(direct_path: Path, no_fd_leak: None) -> None:
    # A file whose size is not aligned: the read that meets its end leaves the position
    # there, and the reads after it find nothing, as on any file (the kernel's answer
    # too), where they raised ValueError for the misaligned position.
    data = os.urandom(2 * 4096 + 1000)
    direct_path.write_bytes(data)
    async with uringloop.open(direct_path, "r+b", buffering=0, direct=True) as f:
        chunks = []
        while chunk := await f.read(4096):
            chunks.append(chunk)
        assert b"".join(chunks) == data
        assert await f.tell() == len(data)
        assert await f.read() == b""
        assert await f.read(4096) == b""
        assert await f.readinto(uringloop.aligned_buffer(4096)) == 0
        assert await f.tell() == len(data)
        # A misaligned length is refused there still, and so is a write at that position.
        with pytest.raises(ValueError, match="length aligned"):
            await f.read(100)
        with pytest.raises(ValueError, match="file position aligned"):
            await f.write(uringloop.aligned_buffer(4096))
        await f.seek(1)
        with pytest.raises(ValueError, match="file position aligned"):
            await f.read(4096)
    assert direct_path.read_bytes() == data


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_an_append_checks_the_end_of_the_file(direct_path: Path, no_fd_leak: None) -> None:
    # An append writes at the end of the file, whatever the position: that is where the
    # alignment is needed, not at the position (which refused an append the kernel takes,
    # and let the kernel refuse one with EINVAL, naming no alignment).
    block = uringloop.aligned_buffer(4096)
    block[:] = b"b" * 4096
    direct_path.write_bytes(b"a" * 8192)
    async with uringloop.open(direct_path, "a+b", buffering=0, direct=True) as f:
        await f.seek(1)
        assert await f.write(block) == 4096
        assert await f.tell() == 3 * 4096
    assert direct_path.read_bytes() == b"a" * 8192 + b"b" * 4096
    direct_path.write_bytes(b"a" * 5000)
    async with uringloop.open(direct_path, "a+b", buffering=0, direct=True) as f:
        await f.seek(0)
        with pytest.raises(ValueError, match="end of the file aligned to"):
            await f.write(block)
        assert await f.tell() == 0
    assert direct_path.read_bytes() == b"a" * 5000


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_nothing_to_move_needs_no_alignment(direct_path: Path, no_fd_leak: None) -> None:
    # read(0), readinto() of an empty buffer and write(b"") move nothing, so nothing is
    # misaligned: at any position they return b"" or 0, as the built-in's do over an
    # O_DIRECT descriptor (they raised ValueError for the position).
    data = os.urandom(8192)
    direct_path.write_bytes(data)
    for mode in ("r+b", "a+b"):
        async with uringloop.open(direct_path, mode, buffering=0, direct=True) as f:
            await f.seek(1)
            assert await f.read(0) == b""
            assert await f.readinto(bytearray()) == 0
            assert await f.write(b"") == 0
            assert await f.tell() == 1
    assert direct_path.read_bytes() == data


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_block_device_checks_its_position_at_any_size(
    direct_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A block device's fstat(2) says st_size 0: a misaligned position on it is not "at
    # or past the end", and is refused with the ValueError naming the alignment (it went
    # to the kernel, whose EINVAL named nothing). The file stands in for a block device.
    direct_path.write_bytes(os.urandom(8192))
    real = os.fstat
    async with uringloop.open(direct_path, "rb", buffering=0, direct=True) as f:
        fd = f.fileno()

        def as_block_device(target: int) -> os.stat_result:
            st = real(target)
            if target != fd:
                return st
            fields = list(st)
            fields[0] = stat.S_IFBLK | 0o600
            fields[6] = 0  # st_size
            return os.stat_result(fields)

        await f.seek(1)
        monkeypatch.setattr(os, "fstat", as_block_device)
        with pytest.raises(ValueError, match="file position aligned"):
            await f.read(4096)
        with pytest.raises(ValueError, match="file position aligned"):
            await f.readinto(uringloop.aligned_buffer(4096))
        with pytest.raises(ValueError, match="file position aligned"):
            await f.read()
        monkeypatch.undo()
        assert await f.tell() == 1
