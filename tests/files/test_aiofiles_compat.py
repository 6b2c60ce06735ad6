"""Code written for aiofiles runs unchanged on uringloop: only the import differs."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import uringloop
import uringloop.os


async def workload(aio: Any, root: Path) -> list[Any]:
    """aiofiles-style code; `aio` is the aiofiles module or its uringloop stand-in."""
    seen: list[Any] = []
    await aio.os.makedirs(root / "sub", exist_ok=True)
    path = root / "sub" / "notes.txt"
    async with aio.open(path, "w") as f:
        await f.write("first line\n")
        await f.writelines(["second\n", "third\n"])
        seen.append((await f.tell(), await f.writable(), await f.seekable()))
    async with aio.open(path) as f:
        seen.append(await f.readline())
        seen.append([line async for line in f])
        await f.seek(0)
        seen.append(await f.read(5))
        # (readable() stays out: aiofiles makes it a coroutine on text files only.)
        seen.append((f.closed, f.name == str(path), f.mode))
    f = await aio.open(path, "rb")
    try:
        seen.append(await f.read1(4))
        seen.append(await f.peek(1) != b"")
        buf = bytearray(4)
        seen.append((await f.readinto(buf), bytes(buf)))
        seen.append((isinstance(f.fileno(), int), f.readable()))
    finally:
        await f.close()
    seen.append(f.closed)
    seen.append((await aio.os.stat(path)).st_size)
    seen.append(await aio.os.path.exists(path))
    seen.append(await aio.os.path.getsize(path))
    await aio.os.rename(path, root / "sub" / "renamed.txt")
    seen.append(sorted(await aio.os.listdir(root / "sub")))
    await aio.os.remove(root / "sub" / "renamed.txt")
    await aio.os.rmdir(root / "sub")
    seen.append(await aio.os.path.isdir(root / "sub"))
    with pytest.raises(FileNotFoundError):
        await aio.open(root / "missing")
    return seen


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_same_results_as_aiofiles(tmp_path: Path, no_fd_leak: None) -> None:
    aiofiles = pytest.importorskip("aiofiles")
    pytest.importorskip("aiofiles.os")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    expected = await workload(aiofiles, tmp_path / "a")
    ours = SimpleNamespace(open=uringloop.open, os=uringloop.os)
    assert await workload(ours, tmp_path / "b") == expected
    assert os.listdir(tmp_path / "a") == os.listdir(tmp_path / "b") == []
