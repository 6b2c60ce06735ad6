"""Data integrity: a file written through the loop with many concurrent operations at random
offsets reads back bit-exact, through the loop and through the built-in open(), buffered
and with O_DIRECT. 32 MiB in the default run, 512 MiB with -m slow."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import mmap
import os
import pathlib
import random

import pytest

import uringloop

from ._support import run_fresh

CHUNK = 128 << 10  # bytes per operation; a multiple of any O_DIRECT alignment
CONCURRENCY = 48  # operations in flight at once


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _make_data(size: int, seed: int) -> memoryview:
    rng = random.Random(seed)
    return memoryview(b"".join(rng.randbytes(1 << 20) for _ in range(size >> 20)))


async def _run_workers(jobs: list[int], work: object) -> None:
    """Run `work(offset)` for every offset, CONCURRENCY at a time, in the given order."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            await work(queue.pop())  # type: ignore[operator]

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _buffered_roundtrip(path: pathlib.Path, size: int, seed: int) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop) and loop.uring_available
    data = _make_data(size, seed)
    expected = hashlib.sha256(data).hexdigest()
    rng = random.Random(seed + 1)
    offsets = list(range(0, size, CHUNK))
    rng.shuffle(offsets)

    fd = await loop.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await loop.fallocate(fd, 0, size)

        async def write(off: int) -> None:
            piece = data[off : off + CHUNK]
            if off // CHUNK % 3 == 0:  # some gathered writes in the mix
                half = len(piece) // 2
                n = await loop.pwritev(fd, [piece[:half], piece[half:]], off)
                if n < len(piece):
                    await loop.pwrite_all(fd, piece[n:], off + n)
            else:
                await loop.pwrite_all(fd, piece, off)

        await _run_workers(offsets, write)
        await loop.fsync(fd)
        assert (await loop.fstat(fd)).st_size == size

        # Read back in a different random order, into one big buffer and as new bytes.
        back = bytearray(size)
        view = memoryview(back)
        rng.shuffle(offsets)

        async def read(off: int) -> None:
            if off // CHUNK % 2:
                got = await loop.preadinto(fd, view[off : off + CHUNK], off)
                assert got == min(CHUNK, size - off)
            else:
                block = await loop.pread(fd, CHUNK, off)
                view[off : off + len(block)] = block

        await _run_workers(offsets, read)
        view.release()  # no operation still exports a slice of it
        assert hashlib.sha256(back).hexdigest() == expected
    finally:
        await loop.close_fd(fd)
    assert await loop.run_in_executor(None, _sha256_file, path) == expected
    stats = loop.uring_stats()
    assert stats.in_flight == 0 and stats.backlog == 0


async def _direct_roundtrip(path: pathlib.Path, size: int, seed: int) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop) and loop.uring_available
    data = _make_data(size, seed)
    expected = hashlib.sha256(data).hexdigest()
    rng = random.Random(seed + 1)
    offsets = list(range(0, size, CHUNK))
    rng.shuffle(offsets)
    try:
        fd = await loop.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"the filesystem of {path.parent} refuses O_DIRECT")
        raise
    # Page-aligned buffers (anonymous mmaps), one per operation in flight.
    free = [mmap.mmap(-1, CHUNK) for _ in range(CONCURRENCY)]
    try:

        async def write(off: int) -> None:
            buf = free.pop()
            try:
                buf[:] = data[off : off + CHUNK]
                assert await loop.pwrite(fd, buf, off) == CHUNK
            finally:
                free.append(buf)

        await _run_workers(offsets, write)
        await loop.fsync(fd)

        rng.shuffle(offsets)
        digests: dict[int, bytes] = {}

        async def read(off: int) -> None:
            buf = free.pop()
            try:
                assert await loop.preadinto(fd, buf, off) == CHUNK
                digests[off] = hashlib.sha256(buf).digest()
            finally:
                free.append(buf)

        await _run_workers(offsets, read)
        for off, digest in digests.items():
            assert digest == hashlib.sha256(data[off : off + CHUNK]).digest(), off
    finally:
        await loop.close_fd(fd)
        for buf in free:
            buf.close()  # raises BufferError if an operation still held it
    assert len(free) == CONCURRENCY
    assert await loop.run_in_executor(None, _sha256_file, path) == expected


@pytest.mark.parametrize("mode", ["buffered", "direct"])
def test_integrity_32m(mode: str, tmp_path: pathlib.Path, no_fd_leak: None) -> None:
    path = tmp_path / f"{mode}.bin"
    roundtrip = _buffered_roundtrip if mode == "buffered" else _direct_roundtrip
    try:
        run_fresh(lambda: roundtrip(path, 32 << 20, seed=32))
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["buffered", "direct"])
def test_integrity_512m(mode: str, tmp_path: pathlib.Path, no_fd_leak: None) -> None:
    path = tmp_path / f"{mode}.bin"
    roundtrip = _buffered_roundtrip if mode == "buffered" else _direct_roundtrip
    try:
        run_fresh(lambda: roundtrip(path, 512 << 20, seed=512))
    finally:
        path.unlink(missing_ok=True)
