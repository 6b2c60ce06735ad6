"""uringloop.tempfile: the tempfile module's semantics, files on the loop's ring."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
from pathlib import Path

import pytest

import uringloop
from tests.conftest import cancel_after
from uringloop import _mounts, tempfile

ALL_LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


def _submitted() -> int:
    loop = asyncio.get_running_loop()
    return loop.uring_stats().submitted if isinstance(loop, uringloop.Loop) else 0


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+", "rb+", "r+"])
async def test_temporary_file_leaves_no_name(tmp_path: Path, mode: str, no_fd_leak: None) -> None:
    data = b"Hello World!\n" if "b" in mode else "Hello World!\n"
    async with tempfile.TemporaryFile(mode=mode, dir=tmp_path) as f:
        assert os.listdir(tmp_path) == []  # O_TMPFILE, or a name removed at once
        assert isinstance(f.name, int)
        for _ in range(3):
            await f.write(data)
        await f.flush()
        await f.seek(0)
        assert [line async for line in f] == [data] * 3
    assert f.closed


@pytest.mark.asyncio
async def test_temporary_file_goes_through_the_ring(
    tmp_path: Path, no_fd_leak: None, ring_only: None
) -> None:
    before = _submitted()
    async with tempfile.TemporaryFile(dir=tmp_path, buffering=0) as f:
        assert await f.write(b"abc") == 3
        assert await f.read() == b""
    # openat, write, read at least, and close unless the filesystem closes inline
    # (test_close_inline.py): all operations of this loop's ring (fstat and lseek run
    # directly: they do no I/O).
    closes = 0 if _mounts.closes_inline(os.stat(tmp_path).st_dev) else 1
    assert _submitted() - before >= 3 + closes


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_named_temporary_file(tmp_path: Path, mode: str, no_fd_leak: None) -> None:
    data = b"Hello World!" if "b" in mode else "Hello World!"
    async with tempfile.NamedTemporaryFile(
        mode=mode, dir=tmp_path, prefix="pre-", suffix=".dat"
    ) as f:
        name = f.name
        assert f.delete and os.path.dirname(name) == str(tmp_path)
        base = os.path.basename(name)
        assert base.startswith("pre-") and base.endswith(".dat")
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
        assert f.file.name == name  # the file object's name is the path, as tempfile's
        await f.write(data)
        await f.flush()
        assert Path(name).read_bytes() == (data if "b" in mode else data.encode())
        await f.seek(0)
        assert await f.read() == data
    assert f.closed
    assert not os.path.exists(name)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_named_temporary_file_deletion_choices(tmp_path: Path, no_fd_leak: None) -> None:
    # Awaited, closed: removed at close.
    f = await tempfile.NamedTemporaryFile(dir=tmp_path)
    await f.close()
    assert not os.path.exists(f.name)
    # delete=False: kept.
    async with tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as f:
        pass
    assert os.path.exists(f.name)
    os.unlink(f.name)
    # delete_on_close=False: still there after close(), removed at the block's exit.
    async with tempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False) as f:
        await f.write(b"x")
        await f.close()
        assert Path(f.name).read_bytes() == b"x"
    assert not os.path.exists(f.name)
    # Never closed nor exited: removed when collected, and the file warns it was unclosed.
    f = await tempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False)
    name = f.name
    with pytest.warns(ResourceWarning):
        del f
        gc.collect()
    assert not os.path.exists(name)


@pytest.mark.asyncio
async def test_names_skip_existing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    tokens = iter(["taken", "taken", "free"])
    monkeypatch.setattr(tempfile.secrets, "token_hex", lambda n: next(tokens))
    (tmp_path / "tmptaken").write_bytes(b"someone else's")
    async with tempfile.NamedTemporaryFile(dir=tmp_path, prefix="tmp") as f:
        assert f.name == str(tmp_path / "tmpfree")
    assert (tmp_path / "tmptaken").read_bytes() == b"someone else's"


@pytest.mark.asyncio
async def test_bytes_names_and_type_errors(tmp_path: Path, no_fd_leak: None) -> None:
    async with tempfile.NamedTemporaryFile(dir=os.fsencode(tmp_path), suffix=b".b") as f:
        assert isinstance(f.name, bytes) and f.name.endswith(b".b")
    async with tempfile.TemporaryDirectory(prefix=b"d", dir=os.fsencode(tmp_path)) as d:
        assert isinstance(d, bytes) and os.path.isdir(d)
    with pytest.raises(TypeError, match="mix bytes"):
        await tempfile.NamedTemporaryFile(dir=tmp_path, suffix=b".b")
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
async def test_default_directory_is_the_tempfile_modules(no_fd_leak: None) -> None:
    import tempfile as stdlib

    async with tempfile.NamedTemporaryFile() as f:
        assert os.path.dirname(f.name) == stdlib.gettempdir()
        assert os.path.basename(f.name).startswith(stdlib.gettempprefix())


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_spooled_stays_in_memory_then_rolls_over(
    tmp_path: Path, mode: str, no_fd_leak: None
) -> None:
    data = b"Hello World!" if "b" in mode else "Hello World!"
    async with tempfile.SpooledTemporaryFile(max_size=len(data) + 1, mode=mode, dir=tmp_path) as f:
        await f.write(data)
        assert f.name is None and f.mode == mode  # still in memory
        assert await f.tell() == len(data)
        await f.write(data)
        assert isinstance(f.name, int)  # a TemporaryFile now: its descriptor
        assert os.listdir(tmp_path) == []
        assert await f.tell() == 2 * len(data)
        await f.seek(0)
        assert await f.read() == data + data
    assert f.closed


@pytest.mark.asyncio
async def test_spooled_rolls_over_for_fileno_and_truncate(no_fd_leak: None) -> None:
    async with tempfile.SpooledTemporaryFile(max_size=100) as f:
        await f.write(b"abc")
        await f.seek(1)
        fd = await f.fileno()
        assert f.name == fd and await f.tell() == 1
        assert await f.read() == b"bc"
    async with tempfile.SpooledTemporaryFile(max_size=100) as f:
        await f.truncate(50)
        assert f.name is None
        await f.truncate(500)
        assert isinstance(f.name, int)
    async with tempfile.SpooledTemporaryFile() as f:  # max_size 0: never by size
        await f.write(b"x" * 100_000)
        assert f.name is None
        await f.rollover()
        await f.rollover()
        await f.seek(0)
        assert len(await f.read()) == 100_000


@pytest.mark.asyncio
@ALL_LOOPS
async def test_temporary_directory(tmp_path: Path) -> None:
    async with tempfile.TemporaryDirectory(dir=tmp_path, suffix="-d") as d:
        assert isinstance(d, str) and d.endswith("-d") and os.path.isdir(d)
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        Path(d, "sub").mkdir()
        Path(d, "sub", "f").write_text("x")
    assert not os.path.exists(d)
    made = await tempfile.TemporaryDirectory(dir=tmp_path)
    assert os.path.isabs(made.name) and os.path.isdir(made.name)
    await made.cleanup()
    assert not os.path.exists(made.name)
    await made.close()  # once removed, nothing more to do
    # Not cleaned up: removed when collected, with a ResourceWarning.
    made = await tempfile.TemporaryDirectory(dir=tmp_path)
    name = made.name
    with pytest.warns(ResourceWarning, match="Implicitly cleaning up"):
        del made
        gc.collect()
    assert not os.path.exists(name)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"])
async def test_a_cancelled_constructor_leaves_nothing_behind(
    tmp_path: Path, kind: str, no_fd_leak: None
) -> None:
    # Cancelled at every step of its making, a temporary file or directory leaves neither
    # a name in the directory nor an open descriptor: what the creation made after the
    # cancellation is removed.
    async def make() -> object:
        return await getattr(tempfile, kind)(dir=tmp_path)

    for k in range(8):
        for _ in range(4):
            cancelled, made = await cancel_after(make(), k)
            if cancelled:
                continue
            await (made.cleanup() if kind == "TemporaryDirectory" else made.close())  # type: ignore[attr-defined]
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:  # the creations still running end, and are undone
        await asyncio.wait(others, timeout=10)
    await asyncio.sleep(0.01)  # their undoing callbacks run
    assert os.listdir(tmp_path) == []
