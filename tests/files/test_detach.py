"""detach() on buffered and text files: the descriptor is handed over to a blocking io
object, as aiofiles' detach() hands over the blocking object below; checked side by side
with the built-in's detach()."""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

import uringloop

ALL_LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


@pytest.mark.asyncio
@ALL_LOOPS
async def test_buffered_detach_hands_over_the_descriptor(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    f = await uringloop.open(path, "rb")
    fd = f.fileno()
    assert await f.read(3) == b"012"  # the read buffer holds the rest: given back
    raw = f.detach()
    try:
        assert type(raw) is io.FileIO
        assert (raw.fileno(), raw.name, raw.mode, raw.closefd) == (fd, str(path), "rb", True)
        assert raw.tell() == 3
        assert raw.read() == b"3456789"
        for call in (f.read, f.close, f.flush, f.tell, f.readline):
            with pytest.raises(ValueError, match="raw stream has been detached"):
                await call()
        for attribute in ("closed", "name"):
            with pytest.raises(ValueError, match="raw stream has been detached"):
                getattr(f, attribute)
        with pytest.raises(ValueError, match="raw stream has been detached"):
            f.detach()
        with pytest.raises(ValueError, match="raw stream has been detached"):
            f.fileno()
        assert repr(f) == "<uringloop.AsyncBufferedFile [detached]>"
    finally:
        raw.close()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_async_with_block_raises_at_exit_as_the_builtin_does(
    tmp_path: Path, no_fd_leak: None
) -> None:
    """aiofiles' own test of detach(), with uringloop.open in place of aiofiles.open."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    with pytest.raises(ValueError):
        async with uringloop.open(path, "rb") as f:
            raw = f.detach()
            assert raw
            with pytest.raises(ValueError):
                await f.read()
    try:
        assert raw.read(10) == b"0123456789"
    finally:
        raw.close()
    with pytest.raises(ValueError):  # close() raises too, as the built-in's
        async with uringloop.open(path, "r") as t:
            text_raw = t.detach()
            with pytest.raises(ValueError):
                await t.read()
            assert text_raw.read(10) == b"0123456789"
    text_raw.close()


def _builtin(path: Path, mode: str, steps: list[tuple[str, Any]]) -> tuple[Any, int, bytes]:
    f = open(path, mode)  # noqa: SIM115 - detached below
    for name, arg in steps:
        getattr(f, name)(*arg)
    below = f.detach()
    try:
        return type(below), below.tell(), path.read_bytes()
    finally:
        below.close()


async def _ours(path: Path, mode: str, steps: list[tuple[str, Any]]) -> tuple[Any, int, bytes]:
    f = await uringloop.open(path, mode)
    for name, arg in steps:
        await getattr(f, name)(*arg)
    below = f.detach()
    try:
        return type(below), below.tell(), path.read_bytes()
    finally:
        below.close()


CASES = [
    ("wb", [("write", (b"abc",))]),
    ("rb+", [("read", (2,)), ("write", (b"XY",))]),
    ("ab", [("write", (b"tail",))]),
    ("ab+", [("seek", (0,)), ("read", (3,))]),
    ("r", [("read", (4,))]),
    ("r+", [("read", (2,)), ("write", ("ZZ",))]),
    ("w", [("write", ("é" * 3000,))]),  # more than one text chunk, part of it pending
    ("w+", [("write", ("abc\n",)), ("seek", (0,)), ("readline", ())]),
    ("a", [("write", ("more",))]),
]


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize(("mode", "steps"), CASES, ids=[c[0] for c in CASES])
async def test_same_as_builtin_detach(
    tmp_path: Path, mode: str, steps: list[tuple[str, Any]], no_fd_leak: None
) -> None:
    (tmp_path / "a").write_bytes(b"0123456789")
    (tmp_path / "b").write_bytes(b"0123456789")
    expected = _builtin(tmp_path / "a", mode, steps)
    assert await _ours(tmp_path / "b", mode, steps) == expected


@pytest.mark.asyncio
async def test_text_detach(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "t.txt"
    f = await uringloop.open(path, "w+", encoding="utf-8")
    await f.write("héllo")
    below = f.detach()
    try:
        assert isinstance(below, io.BufferedRandom)
        assert below.raw.name == str(path)
        assert below.tell() == len("héllo".encode())
        below.seek(0)
        assert below.read() == "héllo".encode()
    finally:
        below.close()
    with pytest.raises(ValueError, match="underlying buffer has been detached"):
        await f.write("x")
    with pytest.raises(ValueError, match="underlying buffer has been detached"):
        await f.close()
    assert f.encoding == "utf-8"  # as the built-in's, still readable
    assert "[detached]" in repr(f)


def _outcome(call: Any) -> Any:
    try:
        return ("value", call())
    except Exception as e:  # (compared with the built-in's)
        return (type(e), str(e))


async def _async_outcome(call: Any) -> Any:
    try:
        return ("value", await call())
    except Exception as e:  # (compared with the built-in's)
        return (type(e), str(e))


# A detached text file's attributes and calls, and the built-in's blocking counterparts.
_DETACHED_TEXT_ATTRIBUTES = ("name", "closed", "newlines", "encoding", "errors", "mode")
_DETACHED_TEXT_CALLS = (
    ("read", "read", ()),
    ("readline", "readline", ()),
    ("readlines", "readlines", ()),
    ("write", "write", ("x",)),
    ("writelines", "writelines", (["x"],)),
    ("tell", "tell", ()),
    ("seek", "seek", (0,)),
    ("truncate", "truncate", ()),
    ("flush", "flush", ()),
    ("close", "close", ()),
    ("seekable", "seekable", ()),
    ("writable", "writable", ()),
    ("isatty", "isatty", ()),
    ("__anext__", "__next__", ()),
)
_DETACHED_TEXT_PLAIN_CALLS = (
    ("readable", "readable"),
    ("fileno", "fileno"),
    ("detach", "detach"),
    ("__aiter__", "__iter__"),
)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_detached_text_file_raises_as_the_builtin(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "t.txt"
    path.write_text("ab\ncd\n")
    builtin = open(path, "r+", encoding="utf-8")  # noqa: SIM115
    builtin.readline()
    builtin.detach().close()
    f = await uringloop.open(path, "r+", encoding="utf-8")
    await f.readline()
    f.detach().close()
    for attribute in _DETACHED_TEXT_ATTRIBUTES:
        ours_got = _outcome(functools.partial(getattr, f, attribute))
        assert ours_got == _outcome(functools.partial(getattr, builtin, attribute)), attribute
    for ours, theirs, args in _DETACHED_TEXT_CALLS:
        assert await _async_outcome(functools.partial(getattr(f, ours), *args)) == _outcome(
            functools.partial(getattr(builtin, theirs), *args)
        ), ours
    for ours, theirs in _DETACHED_TEXT_PLAIN_CALLS:
        assert _outcome(getattr(f, ours)) == _outcome(getattr(builtin, theirs)), ours
    with pytest.raises(ValueError, match="underlying buffer has been detached"):
        builtin.__enter__()
    with pytest.raises(ValueError, match="underlying buffer has been detached"):
        async with f:
            pass


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["r", "rb", "rb0"])
async def test_iteration_and_async_with_of_a_closed_file_raise_as_the_builtin(
    tmp_path: Path, mode: str, no_fd_leak: None
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("ab\n")
    buffering = 0 if mode.endswith("0") else -1
    f = await uringloop.open(path, mode[:2], buffering=buffering)
    await f.close()
    with pytest.raises(ValueError, match="I/O operation on closed file"):
        f.__aiter__()
    with pytest.raises(ValueError, match="I/O operation on closed file"):
        async with f:
            pass


@pytest.mark.asyncio
async def test_closefd_false_stays_with_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abcdef")
    fd = os.open(path, os.O_RDONLY)
    try:
        f = await uringloop.open(fd, "rb", closefd=False)
        assert await f.read(2) == b"ab"
        raw = f.detach()
        assert not raw.closefd
        raw.close()
        assert os.pread(fd, 10, 0) == b"abcdef"  # still open
        assert os.lseek(fd, 0, os.SEEK_CUR) == 2
    finally:
        os.close(fd)


@pytest.mark.asyncio
async def test_detach_of_a_closed_file_or_during_a_call(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    f = await uringloop.open(path, "rb")
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        f.detach()
    t = await uringloop.open(path)
    await t.close()
    with pytest.raises(ValueError, match="closed file"):
        t.detach()
    async with uringloop.open(path, "rb") as f:
        async with f._lock:  # as a concurrent task's read holds it
            with pytest.raises(RuntimeError, match="in progress"):
                f.detach()
        assert await f.read(1) == b"x"  # still usable


@pytest.mark.asyncio
async def test_collected_after_detach_closes_nothing_and_warns_nothing(
    tmp_path: Path, no_fd_leak: None
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    f = await uringloop.open(path, "rb")
    t = await uringloop.open(path)
    raw, below = f.detach(), t.detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del f, t
        gc.collect()
    try:
        assert raw.read() == b"data" and below.read() == b"data"
    finally:
        raw.close()
        below.close()
    await asyncio.sleep(0)
