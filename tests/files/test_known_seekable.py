"""A positioned read of a descriptor its caller knows takes offsets (uringloop.open's
files, or known_seekable=True) skips the check that rules out a pipe (os.pread's ESPIPE);
every other read keeps it, whatever a file object did with its own descriptor."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop._loop import PREAD_IMPLEMENTATION

DATA = bytes(range(256)) * 64


def _position_checks_of(fd: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The check's calls on `fd` from Python (the pure-Python twin's, and the compiled
    coroutine's reference): its preadv(2) or pwritev(2) of no buffers, and lseek(2)."""
    calls: list[str] = []
    real_lseek, real_preadv, real_pwritev = os.lseek, os.preadv, os.pwritev

    def lseek(fd_: int, pos: int, how: int) -> int:
        if fd_ == fd:
            calls.append("lseek")
        return real_lseek(fd_, pos, how)

    def preadv(fd_: int, buffers: Any, *rest: Any) -> int:
        if fd_ == fd and not buffers:
            calls.append("preadv of nothing")
        return real_preadv(fd_, buffers, *rest)

    def pwritev(fd_: int, buffers: Any, *rest: Any) -> int:
        if fd_ == fd and not buffers:
            calls.append("pwritev of nothing")
        return real_pwritev(fd_, buffers, *rest)

    monkeypatch.setattr(os, "lseek", lseek)
    monkeypatch.setattr(os, "preadv", preadv)
    monkeypatch.setattr(os, "pwritev", pwritev)
    return calls


@pytest.mark.asyncio
async def test_reads_of_a_file_object_take_no_position_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    fd = os.open(path, os.O_RDONLY)
    try:  # (the spy sees the check where it is made in Python)
        calls = _position_checks_of(fd, monkeypatch)
        await asyncio.get_running_loop().pread(fd, 1, 0)  # type: ignore[attr-defined]
        if PREAD_IMPLEMENTATION == "python":
            assert calls == ["preadv of nothing"]
    finally:
        monkeypatch.undo()
        os.close(fd)
    async with uringloop.open(path, "rb", buffering=0) as f:
        calls = _position_checks_of(f.fileno(), monkeypatch)
        for k in range(5):
            await f.seek(k * 100)
            assert await f.read(10) == DATA[k * 100 : k * 100 + 10]
            await asyncio.sleep(0)  # a new loop iteration: the per-iteration cache is empty
        assert calls == []


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # (the thread pool's os.pread raises ESPIPE itself)
async def test_known_seekable_skips_the_position_check_and_only_then() -> None:
    # Seen through a pipe, which takes no offset: vouched for, the read does not look (the
    # ring's read of a pipe ignores the offset and takes its bytes); in a later loop
    # iteration, not vouched for, the check finds ESPIPE and nothing is taken. (The
    # compiled coroutine makes that check itself, where no spy of os's sees it.)
    loop: Any = asyncio.get_running_loop()
    r, w = os.pipe()
    try:
        os.write(w, b"0123456789")
        assert await loop.pread(r, 4, 0, known_seekable=True) == b"0123"
        await asyncio.sleep(0)  # a new loop iteration: what was looked at is forgotten
        with pytest.raises(OSError) as info:
            await loop.pread(r, 4, 0)
        assert info.value.errno == errno.ESPIPE
        assert os.read(r, 100) == b"456789"
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.asyncio
async def test_a_file_whose_descriptor_was_closed_under_it_vouches_for_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    f = await uringloop.open(path, "rb", buffering=0)
    assert await f.read(1) == DATA[:1]
    await asyncio.sleep(0)  # past the iteration whose checks the read may have cached
    fd = f.fileno()
    os.close(fd)  # behind the file object's back
    r, w = os.pipe()
    try:
        assert r == fd, "the test needs the freed number back"
        os.write(w, b"must stay in the pipe")
        with pytest.raises(OSError) as info:
            await asyncio.get_running_loop().pread(r, 5, 0)  # type: ignore[attr-defined]
        assert info.value.errno == errno.ESPIPE
        assert os.read(r, 100) == b"must stay in the pipe"
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OSError) as closing:  # as io.FileIO.close() after os.close()
        await f.close()
    assert closing.value.errno == errno.EBADF


def test_a_loop_subclass_with_its_own_pread_still_serves_the_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    calls: list[tuple[int, int]] = []

    class Traced(uringloop.Loop):
        async def pread(self, fd: int, size: int, offset: int = -1) -> bytes:  # type: ignore[override]
            calls.append((size, offset))
            return await super().pread(fd, size, offset)

    async def main() -> bytes:
        async with uringloop.open(path, "rb", buffering=0) as f:
            await f.seek(10)
            return bytes(await f.read(4))

    loop = Traced()
    try:
        assert loop.run_until_complete(main()) == DATA[10:14]
    finally:
        loop.close()
    assert calls == [(4, 10)]


@pytest.mark.asyncio
async def test_a_checked_descriptor_is_checked_again_after_busy_iterations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(DATA)
    loop: Any = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    assert await loop.pread(fd, 4, 0) == DATA[:4]  # checked: seekable, for this iteration
    os.close(fd)  # by code uringloop does not see
    for _ in range(3):
        await asyncio.sleep(0)  # iterations with callbacks ready and no file work
    r, w = os.pipe()
    try:
        assert r == fd, "the test needs the freed number back"
        os.write(w, b"must stay in the pipe")
        with pytest.raises(OSError) as info:
            await loop.pread(r, 5, 0)
        assert info.value.errno == errno.ESPIPE
        assert os.read(r, 100) == b"must stay in the pipe"
    finally:
        os.close(r)
        os.close(w)
