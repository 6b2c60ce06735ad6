"""A raw file's read() and seek() return coroutines, whichever twin makes them (the compiled
FileCall of _files_c.c, or the `async def` methods of AsyncFileIO): nothing happens before
their first step, tasks and gather take them, and they answer send, throw and close as a
coroutine does."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import uringloop
from uringloop import _files

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring")]

DATA = os.urandom(3 * 4096 + 100)


async def _opened(
    tmp_path: Path, kind: type, buffering: int = -1, data: bytes = DATA, mode: str = "rb"
) -> Any:
    """A file of `data` opened with `mode` and `buffering` (text: UTF-8): a `kind`."""
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    encoding = None if "b" in mode else "utf-8"
    f = await uringloop.open(path, mode, buffering=buffering, encoding=encoding)
    assert type(f) is kind
    return f


@pytest_asyncio.fixture
async def raw(tmp_path: Path) -> AsyncIterator[Any]:
    f = await _opened(tmp_path, _files.AsyncFileIO, 0)
    yield f
    await f.close()


async def test_they_are_coroutines_that_tasks_and_gather_take(raw: Any) -> None:
    for made in (raw.read(10), raw.seek(5)):
        assert asyncio.iscoroutine(made)
        made.close()
    assert await asyncio.create_task(raw.seek(100)) == 100
    assert await asyncio.create_task(raw.read(50)) == DATA[100:150]
    assert await asyncio.gather(raw.seek(4000), raw.read(200)) == [4000, DATA[4000:4200]]
    assert await asyncio.wait_for(raw.read(size=10), 10) == DATA[4200:4210]
    assert await raw.seek(offset=7, whence=os.SEEK_SET) == 7
    assert await raw.read() == DATA[7:]


async def test_nothing_happens_before_the_first_step(raw: Any) -> None:
    later_seek = raw.seek(4096)
    later_read = raw.read(5)
    assert await raw.read(3) == DATA[:3]  # neither moved the position
    assert await later_read == DATA[3:8]
    assert await later_seek == 4096
    assert await raw.read(4) == DATA[4096:4100]


async def test_their_arguments_are_looked_at_when_awaited(raw: Any) -> None:
    wrong_size = raw.read("3")
    wrong_offset = raw.seek(1.5)
    wrong_whence = raw.seek(0, 7)
    with pytest.raises(TypeError):
        await wrong_size
    with pytest.raises(TypeError):
        await wrong_offset
    with pytest.raises(OSError):
        await wrong_whence
    # Arguments no call takes fail at the call, as the reference's do.
    with pytest.raises(TypeError):
        raw.read(1, 2)
    with pytest.raises(TypeError):
        raw.seek()
    with pytest.raises(TypeError):
        raw.read(sizes=3)
    assert await raw.read(True) == DATA[:1]  # (a bool is an int: read(1))
    assert await raw.seek(True) == 1


async def test_one_never_awaited_warns_as_a_coroutine_does(raw: Any) -> None:
    for name in ("read", "seek"):
        with pytest.warns(RuntimeWarning, match=f"'AsyncFileIO.{name}' was never awaited"):
            getattr(raw, name)(10)
            gc.collect()
    assert await raw.read(2) == DATA[:2]


async def test_closed_or_thrown_into_before_its_first_step_it_does_nothing(raw: Any) -> None:
    raw.seek(100).close()
    read = raw.read(10)
    read.close()
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        read.send(None)
    seek = raw.seek(200)
    with pytest.raises(TypeError, match="throw expected at least 1 argument, got 0"):
        seek.throw()
    with pytest.raises(TypeError, match="throw expected at most 3 arguments, got 4"):
        seek.throw(KeyError, None, None, None)
    with pytest.raises(KeyError):
        seek.throw(KeyError("in"))
    assert await raw.read(4) == DATA[:4]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        await seek


async def test_a_copy_the_page_cache_cuts_short_is_read_on(
    raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy stops at a page's end (read_cached made it give less): the rest is read
    # after it (AsyncFileIO._read_rest), with the lock held meanwhile.
    copies: list[tuple[int, int]] = []
    read_cached = _files.read_cached

    def one_page_at_most(fd: int, size: int, offset: int) -> Any:
        copies.append((size, offset))
        return read_cached(fd, min(size, 4096 - offset % 4096), offset)

    monkeypatch.setattr(_files, "read_cached", one_page_at_most)
    await raw.seek(4000)
    read = asyncio.ensure_future(raw.read(300))
    await asyncio.sleep(0)
    if not read.done():  # (on the ring: the lock is held until it completes)
        assert raw._lock.held
    assert await read == DATA[4000:4300]
    assert copies[:1] == [(300, 4000)]
    assert not raw._lock.held
    assert await raw.read(3) == DATA[4300:4303]


async def test_a_file_the_page_cache_refuses_stops_copying(
    raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_files, "read_cached", lambda fd, size, offset: _files._NO_NOWAIT)
    assert await raw.read(10) == DATA[:10]
    assert raw._copies is False
    monkeypatch.undo()
    assert await raw.read(10) == DATA[10:20]  # (on the ring, not copied)
    assert raw._copies is False


async def test_a_read_behind_another_waits_for_it(raw: Any) -> None:
    # The second read finds the lock held: it waits its turn, and reads where the first
    # left the position.
    with_ring = uringloop.Loop.inline_turn
    try:
        uringloop.Loop.inline_turn = lambda self, nbytes=0: False  # type: ignore[method-assign]
        raw._io_cache = None  # (its inline_turn is taken again from the patched loop)
        first = asyncio.ensure_future(raw.read(100))
        await asyncio.sleep(0)
        assert raw._lock.held
        second = asyncio.ensure_future(raw.read(100))
        seek = asyncio.ensure_future(raw.seek(0, os.SEEK_CUR))
        assert await first == DATA[:100]
        assert await second == DATA[100:200]
        assert await seek == 200
    finally:
        uringloop.Loop.inline_turn = with_ring  # type: ignore[method-assign]


async def test_a_closed_file_raises_at_the_await(raw: Any) -> None:
    read, seek = raw.read(1), raw.seek(1)
    await raw.close()
    with pytest.raises(ValueError, match="closed file"):
        await read
    with pytest.raises(ValueError, match="closed file"):
        await seek


async def test_a_cancelled_read_on_the_ring_gives_the_lock_back(raw: Any) -> None:
    with_ring = uringloop.Loop.inline_turn
    try:
        uringloop.Loop.inline_turn = lambda self, nbytes=0: False  # type: ignore[method-assign]
        raw._io_cache = None
        asyncio.get_running_loop().call_soon(lambda: None)  # (queued, not eager)
        read = asyncio.ensure_future(raw.read(100))
        await asyncio.sleep(0)
        assert raw._lock.held
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert not raw._lock.held
    finally:
        uringloop.Loop.inline_turn = with_ring  # type: ignore[method-assign]
    assert await raw.read(5) == DATA[:5]


class _Replaces:
    """A flag whose truth, when looked at, replaces what the file's step holds (as any
    code a step calls may do): its I/O and position, or its lock."""

    def __init__(self, f: Any, what: str, truth: bool) -> None:
        self.f, self.what, self.truth = f, what, truth

    def __bool__(self) -> bool:
        if self.what == "io":
            self.f._io_cache = _files._io_for(None)
            self.f._pos = int("4100")  # (a new int object: the old one goes)
        else:
            self.f._lock = _files._FileLock()
        gc.collect()
        return self.truth


async def test_a_step_whose_calls_replace_the_files_state_reads_what_it_took(raw: Any) -> None:
    # (Compiled, the step holds what it read from the file until it is done with it:
    # without that, this test crashed the interpreter.)
    raw._pos = int("4000")
    assert await raw.read(1) == DATA[4000:4001]  # (its I/O set up for this loop)
    raw._copies = _Replaces(raw, "io", True)
    assert await raw.read(10) == DATA[4001:4011]
    raw._copies = True
    held = raw._lock.held = _Replaces(raw, "lock", False)
    assert await raw.seek(5) == 5
    assert type(held.f._lock) is _files._FileLock and not raw._lock.held


async def test_a_stop_iteration_raised_in_a_step_is_a_runtime_error(
    raw: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a native coroutine makes it (PEP 479): the StopIteration a call inside raised does
    # not end the awaiting frame's `await` as if it returned.
    def exhausted(fd: int, size: int, offset: int) -> Any:
        raise StopIteration

    monkeypatch.setattr(_files, "read_cached", exhausted)
    with pytest.raises(RuntimeError, match="coroutine raised StopIteration") as raised:
        await raw.read(3)
    assert isinstance(raised.value.__cause__, StopIteration)
    assert not raw._lock.held
    monkeypatch.setattr(uringloop._loop, "read_cached", exhausted)
    with pytest.raises(RuntimeError, match="coroutine raised StopIteration"):
        await asyncio.get_running_loop().pread(raw.fileno(), 3, 0)


@pytest_asyncio.fixture
async def buffered(tmp_path: Path) -> AsyncIterator[Any]:
    f = await _opened(tmp_path, _files.AsyncBufferedFile, 100)
    yield f
    await f.close()


async def test_a_buffered_read_is_a_coroutine_served_from_the_buffer(buffered: Any) -> None:
    first = buffered.read(10)
    assert asyncio.iscoroutine(first)
    assert await first == DATA[:10]  # (fills the buffer: 100 bytes)
    later = buffered.read(5)  # nothing happens before its first step
    assert await buffered.read(3) == DATA[10:13]
    assert await later == DATA[13:18]
    assert await asyncio.gather(buffered.read(2), buffered.read(80)) == [
        DATA[18:20],
        DATA[20:100],  # the rest of the buffer, which is then empty
    ]
    assert buffered._rbuf == b"" and buffered._rpos == 0
    assert await buffered.tell() == 100
    assert await buffered.read(1) == DATA[100:101]
    assert await buffered.read(150) == DATA[101:251]  # (more than it holds: the reference)
    assert await buffered.read(size=2) == DATA[251:253]
    with pytest.raises(TypeError):
        buffered.read(1, 2)


async def test_a_buffered_read_never_awaited_warns(buffered: Any) -> None:
    assert await buffered.read(1) == DATA[:1]
    with pytest.warns(RuntimeWarning, match="'AsyncBufferedFile.read' was never awaited"):
        buffered.read(10)
        gc.collect()
    assert await buffered.read(2) == DATA[1:3]


async def test_a_buffered_read_behind_another_or_of_a_closed_file(buffered: Any) -> None:
    assert await buffered.read(1) == DATA[:1]
    lock = buffered._lock
    lock.held = True  # (another call holds the file: this read waits for it)
    waiting = asyncio.ensure_future(buffered.read(4))
    await asyncio.sleep(0)
    assert not waiting.done() and lock.waiters
    lock.release()
    assert await waiting == DATA[1:5]
    read = buffered.read(1)
    await buffered.close()
    with pytest.raises(ValueError, match="read of closed file"):
        await read


async def test_a_buffered_read_takes_the_buffer_its_checks_left(buffered: Any) -> None:
    # A flag whose truth, looked at, replaced the buffer: the bytes come from the new one,
    # as the reference's _take reads the buffer after its checks.
    assert await buffered.read(1) == DATA[:1]

    class Replaces:
        def __init__(self, length: int) -> None:
            self.length = length

        def __bool__(self) -> bool:
            buffered._rbuf, buffered._rpos = bytes(range(self.length)), 0
            gc.collect()
            return False

    raw = buffered.raw
    raw._closed_flag = Replaces(50)
    try:
        assert await buffered.read(10) == bytes(range(10))
        assert buffered._rpos == 10
        # A buffer shorter than the read: what it holds (_take's answer), the file not read.
        assert buffered._rbuf[buffered._rpos :]
        position = raw._pos
        raw._closed_flag = Replaces(5)
        assert await buffered.read(10) == bytes(range(5))
        assert buffered._rbuf == b"" and raw._pos == position
    finally:
        raw._closed_flag = False


TEXT = "".join(f"line {i} \u00e9t\u00e9\n" for i in range(400))


@pytest_asyncio.fixture
async def text(tmp_path: Path) -> AsyncIterator[Any]:
    f = await _opened(tmp_path, _files.AsyncTextFile, data=TEXT.encode(), mode="r")
    yield f
    await f.close()


async def test_a_text_files_lines_and_reads_are_coroutines(text: Any) -> None:
    lines = TEXT.splitlines(keepends=True)
    first = text.__anext__()
    assert asyncio.iscoroutine(first)
    assert await first == lines[0]  # (decodes a chunk: the reference's readline)
    later = text.__anext__()  # nothing happens before its first step
    assert await text.readline() == lines[1]
    assert await later == lines[2]
    assert await text.read(4) == lines[3][:4]
    chars = text.read(3)
    assert await text.read(2) == lines[3][4:6]
    assert await chars == lines[3][6:9]
    assert await text.read(size=1) == lines[3][9:10]
    rest = [line async for line in text]
    assert rest == [lines[3][10:], *lines[4:]]
    with pytest.raises(StopAsyncIteration):
        await text.__anext__()
    assert await text.read(5) == ""


async def test_a_text_files_coroutines_never_awaited_warn(text: Any) -> None:
    assert await text.read(1) == TEXT[0]
    # (__anext__ is _FileBase's, which the reference's warning names)
    for make, name in (
        (lambda: text.read(3), "AsyncTextFile.read"),
        (text.__anext__, "_FileBase.__anext__"),
    ):
        with pytest.warns(RuntimeWarning, match=f"'{name}' was never awaited"):
            make()
            gc.collect()
    assert await text.read(3) == TEXT[1:4]


async def test_newlines_are_translated_as_the_reference_translates_them(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a\r\nb\rc\nd\r\n")
    for newline, lines in (
        (None, ["a\n", "b\n", "c\n", "d\n"]),
        ("", ["a\r\n", "b\r", "c\n", "d\r\n"]),
    ):
        async with uringloop.open(path, newline=newline) as f:
            assert [line async for line in f] == lines
        with open(path, newline=newline) as builtin:
            assert list(builtin) == lines


async def test_a_text_files_coroutine_of_a_closed_file_raises_at_the_await(text: Any) -> None:
    assert await text.read(1) == TEXT[0]
    line, chars = text.__anext__(), text.read(2)
    await text.close()
    with pytest.raises(ValueError, match="closed file"):
        await line
    with pytest.raises(ValueError, match="closed file"):
        await chars


async def test_a_text_read_takes_the_characters_its_checks_left(text: Any) -> None:
    # A flag whose truth, looked at, replaced the decoded characters: the line's bounds
    # found before are taken from the new ones (as the reference's _buffered_line does),
    # and a read takes them as its _get_decoded does.
    assert await text.read(1) == TEXT[0]

    class Replaces:
        def __init__(self, chars: Any) -> None:
            self.chars = chars

        def __bool__(self) -> bool:
            text._decoded = self.chars
            gc.collect()
            return False

    text._pending = Replaces("0123456789abcdefghij")
    start = text._used
    end = TEXT.index("\n", start) + 1
    try:
        assert await text.__anext__() == "0123456789abcdefghij"[start:end]
        assert text._used == end
        text._used = 0
        text._pending = Replaces("0123456789abcdefghij")
        assert await text.read(3) == "012"
    finally:
        text._pending = []


async def test_a_line_whose_checks_drop_its_characters_raises_as_the_reference(
    text: Any,
) -> None:
    # (Compiled, the characters were looked up before `_used` was stored, whose old
    # value's release here deletes them: that crashed the interpreter.)
    assert await text.read(1) == TEXT[0]

    class Deletes:
        def __del__(self) -> None:
            del text._decoded

    class Replaces:
        def __bool__(self) -> bool:
            text._used = Deletes()
            return False

    text._pending = Replaces()
    try:
        with pytest.raises(AttributeError, match="_decoded"):
            await text.__anext__()
        assert text._used == TEXT.index("\n") + 1  # stored first, as the reference does
    finally:
        text._pending = []
    with pytest.raises(TypeError, match="positional argument"):
        text.__anext__(1)  # (as the reference's call refuses it)


async def test_a_buffered_files_lines_are_coroutines_served_from_the_buffer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lines.bin"
    path.write_bytes(TEXT.encode())
    lines = TEXT.encode().splitlines(keepends=True)
    async with uringloop.open(path, "rb", buffering=64) as f:
        assert type(f) is _files.AsyncBufferedFile
        first = f.__anext__()
        assert asyncio.iscoroutine(first)
        assert await first == lines[0]  # (fills the buffer: the reference's readline)
        later = f.__anext__()  # nothing happens before its first step
        assert await f.read(3) == lines[1][:3]
        assert await later == lines[1][3:]
        with pytest.warns(RuntimeWarning, match="'_FileBase.__anext__' was never awaited"):
            f.__anext__()
            gc.collect()
        assert [line async for line in f] == lines[2:]  # (lines across the buffer's end)
        with pytest.raises(StopAsyncIteration):
            await f.__anext__()
        assert await f.tell() == len(TEXT.encode())
        with pytest.raises(TypeError, match="positional argument"):
            f.__anext__(1)
    with pytest.raises(ValueError, match="closed file"):
        await f.__anext__()


@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_readline_is_a_coroutine_served_from_what_the_file_holds(
    tmp_path: Path, mode: str
) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(TEXT.encode())
    with open(path, mode, encoding=None if "b" in mode else "utf-8") as builtin:
        lines = builtin.readlines()
    empty = lines[0][:0]
    async with uringloop.open(path, mode, buffering=64 if "b" in mode else -1) as f:
        first = f.readline()
        assert asyncio.iscoroutine(first)
        assert await first == lines[0]  # (fills: the reference's readline)
        later = f.readline()  # nothing happens before its first step
        assert await f.read(3) == lines[1][:3]
        assert await later == lines[1][3:]
        if "b" in mode:
            assert await f.readline(None) == lines[2]
        else:  # (refused, as by the built-in TextIOWrapper's, with a line held or not)
            with pytest.raises(TypeError):
                await f.readline(None)
            assert await f.readline() == lines[2]
        assert await f.readline(-5) == lines[3]
        assert await f.readline(size=-1) == lines[4]
        assert await f.readline(3) == lines[5][:3]  # (a limit: the reference's)
        assert await asyncio.gather(f.readline(), f.readline()) == [lines[5][3:], lines[6]]
        assert await asyncio.create_task(f.readline()) == lines[7]
        with pytest.warns(RuntimeWarning, match="'_FileBase.readline' was never awaited"):
            f.readline()
            gc.collect()
        with pytest.raises(TypeError):
            f.readline(1, 2)  # (as the reference's call refuses them)
        with pytest.raises(TypeError):
            f.readline(limit=1)
        with pytest.raises(TypeError):
            await f.readline("1")  # (its argument is looked at when awaited)
        assert [await f.readline() for _ in lines[8:]] == lines[8:]
        assert await f.readline() == empty  # at the end: nothing, not StopAsyncIteration
        behind_close = f.readline()
    with pytest.raises(ValueError, match="closed file"):
        await behind_close


@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_a_readline_behind_another_call_waits_for_it(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "lines.txt"
    path.write_bytes(TEXT.encode())
    async with uringloop.open(path, mode, buffering=64 if "b" in mode else -1) as f:
        first = await f.readline()
        lock = f._lock
        lock.held = True  # (another call holds the file: this readline waits for it)
        waiting = asyncio.ensure_future(f.readline())
        await asyncio.sleep(0)
        assert not waiting.done() and lock.waiters
        lock.release()
        assert first + await waiting == (TEXT.encode() if "b" in mode else TEXT)[: len(first) * 2]


@pytest.mark.parametrize(
    ("mode", "kind", "line"),
    [("wb", "AsyncBufferedFile", b"a line\n"), ("w", "AsyncTextFile", "une ligne \u00e9t\u00e9\n")],
)
async def test_write_is_a_coroutine_whose_data_joins_the_buffer(
    tmp_path: Path, mode: str, kind: str, line: Any
) -> None:
    path = tmp_path / "written"
    encoded = line if "b" in mode else line.encode()
    async with uringloop.open(path, mode, encoding=None if "b" in mode else "utf-8") as f:
        first = f.write(line)
        assert asyncio.iscoroutine(first)
        later = f.write(line[:3])  # nothing happens before its first step
        assert await f.write(line) == len(line)
        assert await first == len(line)
        assert await later == 3
        assert await asyncio.gather(f.write(line), f.write(line)) == [len(line)] * 2
        assert await asyncio.create_task(f.write(line)) == len(line)
        name = "data" if "b" in mode else "text"
        assert await f.write(**{name: line}) == len(line)  # (the reference takes its name)
        with pytest.warns(RuntimeWarning, match=f"'{kind}.write' was never awaited"):
            f.write(line)
            gc.collect()
        with pytest.raises(TypeError):
            f.write()
        with pytest.raises(TypeError):
            f.write(line, line)
        with pytest.raises(TypeError):
            await f.write(7)  # (its argument is looked at when awaited)
        assert await f.write(line[:0]) == 0
        behind_close = f.write(line)
    assert path.read_bytes() == encoded * 2 + encoded[:3] + encoded * 4
    with pytest.raises(ValueError, match="closed file"):
        await behind_close


@pytest.mark.parametrize("mode", ["wb", "w"])
async def test_writes_past_the_buffer_and_behind_another_call(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "written"
    line: Any = b"0123456789" * 100 if "b" in mode else "0123456789" * 100
    async with uringloop.open(path, mode, buffering=4096) as f:
        for _ in range(100):  # (flushes as the buffer fills: the reference's path)
            assert await f.write(line) == 1000
        lock = f._lock
        lock.held = True  # (another call holds the file: this write waits for it)
        waiting = asyncio.ensure_future(f.write(line))
        await asyncio.sleep(0)
        assert not waiting.done() and lock.waiters
        lock.release()
        assert await waiting == 1000
    assert path.read_bytes() == (line if "b" in mode else line.encode()) * 101


async def test_a_write_into_an_exported_buffer_raises_as_the_reference(tmp_path: Path) -> None:
    async with uringloop.open(tmp_path / "written", "wb") as f:
        assert await f.write(b"abc") == 3
        view = memoryview(f._wbuf)
        try:
            with pytest.raises(BufferError):
                await f.write(b"def")
        finally:
            view.release()
        assert await f.write(b"ghi") == 3
    assert (tmp_path / "written").read_bytes() == b"abcghi"


async def test_a_text_write_encodes_once_whatever_its_error_handler_does(
    tmp_path: Path,
) -> None:
    import codecs

    calls: list[str] = []

    def counting(error: UnicodeError) -> tuple[str, int]:
        assert isinstance(error, UnicodeEncodeError)
        calls.append(error.object[error.start : error.end])
        return "?", error.end

    codecs.register_error("uringloop-test-counting", counting)
    path = tmp_path / "written"
    async with uringloop.open(path, "w", encoding="ascii", errors="uringloop-test-counting") as f:
        assert await f.write("caf\u00e9\n") == 5
        assert calls == ["\u00e9"]
        # A flush due: the encoded text goes on to the file, not encoded again.
        assert await f.write("\u00e9" + "x" * 9000) == 9001
        assert len(calls) == 2
    assert path.read_bytes() == b"caf?\n?" + b"x" * 9000
    async with uringloop.open(path, "a", encoding="ascii") as strict:
        with pytest.raises(UnicodeEncodeError):
            await strict.write("\u00e9")
        assert await strict.write("ok") == 2
    assert path.read_bytes() == b"caf?\n?" + b"x" * 9000 + b"ok"


async def test_a_text_write_to_a_file_also_read_drops_what_was_decoded(tmp_path: Path) -> None:
    # As the built-in's: the line read decoded the whole file, which the write follows;
    # the characters decoded and not returned are dropped (_wrote()).
    path = tmp_path / "both"
    path.write_text("abc\ndef\n")
    async with uringloop.open(path, "r+") as f:
        assert await f.readline() == "abc\n"
        assert await f.write("XY") == 2
        assert await f.read() == ""
    assert path.read_text() == "abc\ndef\nXY"
    with open(path, "w+") as builtin:
        builtin.write("abc\ndef\n")
        builtin.seek(0)
        assert builtin.readline() == "abc\n"
        builtin.write("XY")
        assert builtin.read() == ""
    assert path.read_text() == "abc\ndef\nXY"


async def test_a_buffered_write_after_a_read_goes_where_the_read_stopped(tmp_path: Path) -> None:
    path = tmp_path / "both"
    path.write_bytes(b"0123456789")
    async with uringloop.open(path, "r+b") as f:
        assert await f.read(2) == b"01"  # (the rest is in the read buffer)
        assert await f.write(b"XY") == 2
        assert await f.read(2) == b"45"
    with open(path, "r+b") as builtin:
        assert builtin.read(2) == b"01"
        builtin.write(b"ab")
        assert builtin.read(2) == b"45"
    assert path.read_bytes() == b"01ab456789"


@pytest.mark.parametrize("how", ["replace", "delete"])
async def test_a_text_write_takes_the_lock_it_looked_at_first(tmp_path: Path, how: str) -> None:
    # The reference's `lock = self._lock` comes before the checks, which may run code that
    # replaces or deletes the file's lock: the flush then holds and releases the first one.
    # (Compiled, the lock was looked up after the checks: another one, or a crash.)
    f = await uringloop.open(tmp_path / "written", "w", encoding="utf-8")
    first = f._lock

    class Held:
        def __bool__(self) -> bool:
            if how == "delete":
                del f._lock
            else:
                f._lock = _files._FileLock()
            return False

    first.held = Held()
    try:
        assert await f.write("x" * 9000) == 9000  # (a flush is due)
        assert first.held is False  # taken (held = True), then released
    finally:
        f._lock = first
        first.held = False
        await f.close()
    assert (tmp_path / "written").read_text() == "x" * 9000


_REPLACED_NAMES = """
import codecs, sys
import uringloop

async def main(path):
    async with uringloop.open(path, "w", encoding="ascii", errors="test-replacing") as f:
        def replacing(error):
            f._stateless_encoding = "utf-8"  # (the last references to the names in use)
            f._encode_errors = "strict"
            raise ValueError("from the handler")

        codecs.register_error("test-replacing", replacing)
        f._stateless_encoding = "cp1" + str(252)  # (a str of its own, not interned)
        f._encode_errors = "test-" + "replacing"
        try:
            await f.write("\\u0100")
        except ValueError as exc:
            print(exc, getattr(exc, "__notes__", None))

def plain(error):
    raise ValueError("from the handler")

codecs.register_error("test-plain", plain)
try:  # what str.encode says, in words that change with the Python version
    "\\u0100".encode("cp1252", "test-plain")
except ValueError as exc:
    print(exc, getattr(exc, "__notes__", None))
uringloop.run(main(sys.argv[1]))
"""


async def test_a_text_write_keeps_the_codecs_names_its_error_handler_replaces(
    tmp_path: Path,
) -> None:
    # (Compiled, the names were borrowed from the slots across the encoding: freed by the
    # handler, then read for the error's message. The debug allocator overwrites what is
    # freed, so that such a read shows.)
    import subprocess
    import sys

    env = {**os.environ, "PYTHONMALLOC": "debug"}
    out = subprocess.run(
        [sys.executable, "-c", _REPLACED_NAMES, str(tmp_path / "written")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    expected, got = out.splitlines()
    assert "cp1252" in expected
    assert got == expected
