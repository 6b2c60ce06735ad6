"""uringloop.stdin/stdout/stderr and the _bytes forms: aiofiles' async standard streams."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import os
import queue
import random
import subprocess
import sys
import threading
import time
import types
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import _stdio


@pytest.mark.asyncio
@pytest.mark.loops("uring", "asyncio")
async def test_text_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert await uringloop.stdout.write("hello") == 5
    await uringloop.stderr.writelines(["wor", "ld"])
    await uringloop.stdout.flush()
    out, err = capsys.readouterr()
    assert (out, err) == ("hello", "world")
    with pytest.raises(OSError):  # pytest's stdin refuses reads while capturing
        await uringloop.stdin.read()


@pytest.mark.asyncio
@pytest.mark.loops("uring", "asyncio")
async def test_bytes_streams(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    await uringloop.stdout_bytes.write(b"hello")
    await uringloop.stderr_bytes.write(b"world")
    out, err = capsysbinary.readouterr()
    assert (out, err) == (b"hello", b"world")
    with pytest.raises(OSError):
        await uringloop.stdin_bytes.read()


@pytest.mark.asyncio
async def test_streams_are_looked_up_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\ntwo\nthree\n")))
    assert uringloop.stdin.readable() and uringloop.stdin.encoding
    assert await uringloop.stdin.readline() == "one\n"
    assert [line async for line in uringloop.stdin] == ["two\n", "three\n"]
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    await uringloop.stdout.write("captured")
    assert out.getvalue() == "captured"
    assert "sys.stdout" in repr(uringloop.stdout)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "asyncio")
async def test_a_write_no_thread_could_be_started_for_is_not_made_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At a pids limit the output streams' thread cannot start: the write raises the
    # executor's RuntimeError, and is never made. Before, the executor had queued it all
    # the same, and the thread the next write started wrote it first.
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    calls = _stdio._SerialExecutor("uringloop-stdio-refused")
    monkeypatch.setattr(_stdio, "_calls", calls)
    real_start = threading.Thread.start
    refusing = True

    def start(thread: threading.Thread) -> None:
        if refusing and thread.name.startswith("uringloop-stdio-refused"):
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    try:
        with pytest.raises(RuntimeError, match="can't start new thread"):
            await uringloop.stdout.write("refused\n")
        refusing = False
        assert await uringloop.stdout.write("written\n") == 8
        await uringloop.stdout.flush()
        assert out.getvalue() == "written\n"
    finally:
        if calls._executor is not None:
            calls._executor.shutdown()


@pytest.fixture
def stdin_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """sys.stdin reading a pipe, as a program's stdin from a shell; its write end."""
    read_end, write_end = os.pipe()
    stream = io.TextIOWrapper(io.BufferedReader(io.FileIO(read_end, "r")), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stream)
    try:
        yield write_end
    finally:
        with contextlib.suppress(OSError):
            os.close(write_end)
        stream.close()


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("kind", ["text", "bytes"])
async def test_a_stdin_read_cancelled_once_begun_leaves_what_it_reads_to_the_next(
    stdin_pipe: int, kind: str
) -> None:
    # A read waiting for input cannot be stopped (its thread is in read(2)): the caller's
    # timeout leaves it to run, and what it reads comes first to the next reads, whatever
    # they are, none lost and none out of order.
    stream = uringloop.stdin if kind == "text" else uringloop.stdin_bytes

    def given(text: str) -> Any:
        return text if kind == "text" else text.encode()

    async def soon(call: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(call, 5)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(stream.readline(), 0.1)
    with pytest.raises(asyncio.TimeoutError):  # (a second one, queued behind the first)
        await asyncio.wait_for(stream.readline(), 0.1)
    os.write(stdin_pipe, b"line1\nline2\nline3\nrest")
    assert await soon(stream.read(3)) == given("lin")
    assert await soon(stream.readline()) == given("e1\n")
    assert await soon(stream.readline(2)) == given("li")
    assert await soon(stream.readlines(3)) == [given("ne2\n")]
    if kind == "bytes":
        assert await soon(uringloop.stdin_bytes.read1(2)) == b"li"
        buffer = bytearray(4)
        assert await soon(uringloop.stdin_bytes.readinto(buffer)) == 4
        assert buffer == b"ne3\n"
    else:
        assert await soon(stream.readline()) == "line3\n"
    os.close(stdin_pipe)
    assert await soon(stream.read()) == given("rest")
    assert await soon(stream.read()) == given("")


_CHILD = """
import asyncio, sys, uringloop
kind, loop = sys.argv[1], sys.argv[2]
async def main():
    for _ in range(10):  # (more than the executor of a 2-CPU machine has threads: 6)
        try:
            await asyncio.wait_for(uringloop.stdin.readline(), 0.05)
        except asyncio.TimeoutError:
            pass
    await asyncio.wait_for(uringloop.stdout.write("writes still run\\n"), 5)
    if kind == "order":
        await asyncio.gather(*(uringloop.stderr.write(f"{i}\\n") for i in range(500)))
    await uringloop.stdout.flush()
if loop == "asyncio":
    asyncio.run(main())
else:
    uringloop.run(main(), loop_factory=lambda: uringloop.Loop(use_uring=loop == "uring"))
print("returned", flush=True)
"""


@pytest.mark.parametrize("loop", ["uring", "fallback", "asyncio"])
@pytest.mark.parametrize("kind", ["exit", "order"])
def test_stdin_reads_left_waiting_hold_up_nothing(tmp_path: Path, loop: str, kind: str) -> None:
    # A program polls stdin with a timeout, then writes, then returns, its stdin open and
    # silent: the reads left waiting do not take the threads the writes need, nor hold up
    # the loop's shutdown or the interpreter's exit (nor make it fatal), and concurrent
    # writes come out in the order they were called.
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, kind, loop],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        child.wait(timeout=20)  # (its stdin open all along: its output is a few KiB)
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail(f"the program did not exit: {child.communicate()!r}")
    out, err = child.communicate()
    assert child.returncode == 0, err[-2000:]
    assert out == b"writes still run\nreturned\n"
    if kind == "order":
        assert err == "".join(f"{i}\n" for i in range(500)).encode()
    else:
        assert err == b""


class ScriptedInput:
    """An input stream whose reads each return (or raise) what the test gives them, when it
    gives it: a read can be made to wait, as a read of a terminal does."""

    def __init__(self, *, text: bool = True) -> None:
        self.answers: queue.Queue[Any] = queue.Queue()
        self.calls: list[tuple[str, int]] = []
        self.empty = "" if text else b""

    def _answer(self, method: str, size: int) -> Any:
        self.calls.append((method, size))
        if size == 0:
            return self.empty
        answer = self.answers.get(timeout=10)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def read(self, size: int = -1) -> Any:
        return self._answer("read", size)

    def readline(self, size: int = -1) -> Any:
        return self._answer("readline", size)

    def readlines(self, hint: int = -1) -> Any:
        raise AssertionError("readlines() is made of readline() calls")


@pytest.fixture
def scripted_stdin(monkeypatch: pytest.MonkeyPatch) -> ScriptedInput:
    stream = ScriptedInput()
    monkeypatch.setattr(sys, "stdin", stream)
    return stream


async def _begun_then_cancelled(stream: ScriptedInput, call: Awaitable[Any]) -> None:
    """`call` waits in its stream's read, then its caller is cancelled."""
    calls = len(stream.calls)
    task = asyncio.ensure_future(call)
    while len(stream.calls) == calls:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _held_by_a_cancelled_readline(stream: ScriptedInput, answer: str) -> None:
    """A readline of `stream`, cancelled once begun, whose read then got `answer`."""
    await _begun_then_cancelled(stream, uringloop.stdin.readline())
    stream.answers.put(answer)
    while stream.answers.qsize():
        await asyncio.sleep(0.001)


def _soon(call: Awaitable[Any]) -> Awaitable[Any]:
    return asyncio.wait_for(call, 5)


@pytest.mark.asyncio
async def test_readers_waiting_behind_a_cancelled_read_get_its_data_first_in_call_order(
    scripted_stdin: ScriptedInput,
) -> None:
    # Two readers called while a cancelled read is still waiting for input: the first called
    # gets what that read gets, the second the next line. (Both once took the same held
    # read, and one got IndexError.)
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    first = asyncio.ensure_future(uringloop.stdin.readline())
    second = asyncio.ensure_future(uringloop.stdin.readline())
    await asyncio.sleep(0.05)
    scripted_stdin.answers.put("1\n")
    scripted_stdin.answers.put("2\n")
    assert await _soon(asyncio.gather(first, second)) == ["1\n", "2\n"]
    assert scripted_stdin.calls == [("readline", -1)] * 2


@pytest.mark.asyncio
async def test_an_input_end_a_cancelled_read_met_is_the_next_reads_answer(
    scripted_stdin: ScriptedInput,
) -> None:
    # The end of input a cancelled read met (Ctrl-D on a terminal) is the next read's
    # answer, and its data ("abc" with no newline: the end came after it) is a read's own.
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    scripted_stdin.answers.put("")
    assert await _soon(uringloop.stdin.readline()) == ""
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    scripted_stdin.answers.put("abc")
    scripted_stdin.answers.put("def\n")
    assert await _soon(uringloop.stdin.readline()) == "abc"
    assert await _soon(uringloop.stdin.readline()) == "def\n"
    # A read(size) cut short by the end: the end, after the data, goes to the read after.
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.read(10))
    scripted_stdin.answers.put("xyz")
    assert await _soon(uringloop.stdin.read(2)) == "xy"
    assert await _soon(uringloop.stdin.read(2)) == "z"
    scripted_stdin.answers.put("next")
    assert await _soon(uringloop.stdin.read(4)) == "next"


@pytest.mark.asyncio
async def test_the_error_a_cancelled_read_raised_is_raised_to_the_next(
    scripted_stdin: ScriptedInput,
) -> None:
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    scripted_stdin.answers.put(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    with pytest.raises(UnicodeDecodeError):
        await _soon(uringloop.stdin.readline())
    scripted_stdin.answers.put("after\n")
    assert await _soon(uringloop.stdin.readline()) == "after\n"


@pytest.mark.asyncio
async def test_what_a_cancelled_read_got_stays_with_its_stream(
    scripted_stdin: ScriptedInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sys.stdin replaced (as pytest's monkeypatch does between tests): the new stream's
    # reads get its own data, not what a cancelled read of the old one got.
    await _held_by_a_cancelled_readline(scripted_stdin, "old\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("new\n"))
    assert await _soon(uringloop.stdin.readline()) == "new\n"
    monkeypatch.setattr(sys, "stdin", scripted_stdin)
    assert await _soon(uringloop.stdin.readline()) == "old\n"


class _GatedBytes(io.BytesIO):
    """A seekable input whose first read waits for `gate`."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.gate = threading.Event()
        self.reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        assert self.gate.wait(10)
        return super().read(size)


async def _five_read_then_ten_held(
    monkeypatch: pytest.MonkeyPatch, stdin: Callable[[_GatedBytes], Any]
) -> None:
    """sys.stdin = stdin(15 bytes, AAAAABBBBBBBBBB); stdin_bytes: read(5) returned, then a
    read(10) cancelled once begun, which got its 10 bytes for the next reads."""
    stream = _GatedBytes(b"A" * 5 + b"B" * 10)
    monkeypatch.setattr(sys, "stdin", stdin(stream))
    stream.gate.set()
    assert await _soon(uringloop.stdin_bytes.read(5)) == b"AAAAA"
    stream.gate.clear()
    task = asyncio.ensure_future(uringloop.stdin_bytes.read(10))
    while stream.reads < 2:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stream.gate.set()


@pytest.mark.asyncio
async def test_a_seek_drops_what_a_cancelled_read_got_and_tell_does_not_count_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _five_read_then_ten_held(monkeypatch, lambda stream: types.SimpleNamespace(buffer=stream))
    assert await _soon(uringloop.stdin_bytes.tell()) == 5  # (the caller got 5 bytes)
    assert await _soon(uringloop.stdin_bytes.seek(0)) == 0
    assert await _soon(uringloop.stdin_bytes.read(10)) == b"AAAAABBBBB"


def _assert_no_descriptor_left(rounds: Callable[[], Awaitable[None]], count: int) -> None:
    """`rounds()` run `count` times, each in uringloop.run, with the garbage collector off
    (a cycle would keep what it refers to): the descriptors open are not more after."""
    original = sys.stdin
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # (closed when dropped)
            uringloop.run(rounds())  # (its threads, its ring: made here)
            before = len(os.listdir("/proc/self/fd"))
            for _ in range(count):
                uringloop.run(rounds())
        assert len(os.listdir("/proc/self/fd")) <= before
    finally:
        gc.enable()
        sys.stdin = original


def test_a_replaced_stdin_read_through_uringloop_is_closed_when_dropped() -> None:
    # Each stream object read is released once its read is over: a file put in as
    # sys.stdin and dropped is closed by its last reference going (here, no cycle either).
    async def read_replaced_stdins() -> None:
        for _ in range(20):
            sys.stdin = open(os.devnull)  # noqa: SIM115  (closed when dropped)
            assert await uringloop.stdin.read() == ""
            sys.stdin = sys.__stdin__

    _assert_no_descriptor_left(read_replaced_stdins, 1)


@pytest.mark.parametrize("loops", [1, 3])
def test_readers_with_timeouts_in_loops_on_threads_share_stdin_whole(
    stdin_pipe: int, loops: int
) -> None:
    # Readers that time out at random, in loops on several threads, reading one stdin: every
    # line is read once, none lost, and each reader's lines come in the input's order.
    count = 600
    got: dict[tuple[int, int], list[int]] = {}
    errors: list[BaseException] = []

    async def reader(key: tuple[int, int]) -> None:
        mine = got.setdefault(key, [])
        rng = random.Random(hash(key))
        while True:
            try:
                line = await asyncio.wait_for(uringloop.stdin.readline(), rng.uniform(0.001, 0.01))
            except asyncio.TimeoutError:
                continue
            except BaseException as exc:
                errors.append(exc)
                return
            if not line:
                return
            mine.append(int(line))

    async def readers(index: int) -> None:
        await asyncio.gather(*(reader((index, task)) for task in range(4)))

    threads = [threading.Thread(target=uringloop.run, args=(readers(i),)) for i in range(loops)]
    for thread in threads:
        thread.start()
    for number in range(count):
        os.write(stdin_pipe, f"{number}\n".encode())
        if number % 50 == 0:
            time.sleep(0.005)
    os.close(stdin_pipe)
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert errors == []
    assert sorted(n for lines in got.values() for n in lines) == list(range(count))
    assert all(lines == sorted(lines) for lines in got.values())


@pytest.mark.asyncio
async def test_a_text_stdins_tell_refuses_while_it_holds_what_a_cancelled_read_got(
    scripted_stdin: ScriptedInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A text stream's position is a cookie: less what is held, it means nothing.
    monkeypatch.setattr(ScriptedInput, "tell", lambda self: 7, raising=False)
    assert await _soon(uringloop.stdin.tell()) == 7
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    scripted_stdin.answers.put("held\n")
    with pytest.raises(io.UnsupportedOperation):
        await _soon(uringloop.stdin.tell())
    assert await _soon(uringloop.stdin.readline()) == "held\n"
    assert await _soon(uringloop.stdin.tell()) == 7


@pytest.mark.asyncio
async def test_a_read_whose_data_came_with_its_cancellation_leaves_it_to_the_next(
    scripted_stdin: ScriptedInput,
) -> None:
    # The data is there when the cancellation reaches the read: the cancellation stands
    # (a shutdown's, a task group's, a timeout's), and the next read gets the data.
    task = asyncio.ensure_future(uringloop.stdin.readline())
    while not scripted_stdin.calls:
        await asyncio.sleep(0.001)
    scripted_stdin.answers.put("came\n")
    while scripted_stdin.answers.qsize():
        time.sleep(0.001)  # (the loop blocked: the task does not see the answer yet)
    time.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _soon(uringloop.stdin.readline()) == "came\n"
    scripted_stdin.answers.put("next\n")
    assert await _soon(uringloop.stdin.readline()) == "next\n"


@pytest.mark.asyncio
async def test_a_cancelled_readlines_leaves_its_lines_then_its_error_in_order(
    scripted_stdin: ScriptedInput,
) -> None:
    # readlines() cancelled while its read waits: the lines it took, the part line, then the
    # error that read ends with, each to the next reads in that order.
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.read(3))
    scripted_stdin.answers.put("x\na")
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readlines())
    scripted_stdin.answers.put(ValueError("the read's error"))
    assert await _soon(uringloop.stdin.readline()) == "x\n"
    assert await _soon(uringloop.stdin.readline()) == "a"
    with pytest.raises(ValueError, match="the read's error"):
        await _soon(uringloop.stdin.readline())
    scripted_stdin.answers.put("y\n")
    assert await _soon(uringloop.stdin.readline()) == "y\n"


@pytest.mark.asyncio
async def test_a_raw_stdins_reads_are_its_own_read_calls(stdin_pipe: int) -> None:
    raw = uringloop.stdin_bytes.raw
    os.write(stdin_pipe, b"abcdef\n")
    assert await _soon(raw.read(3)) == b"abc"
    buffer = bytearray(8)
    assert await _soon(raw.readinto(buffer)) == 4
    assert buffer[:4] == b"def\n"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(raw.read(100), 0.1)
    os.write(stdin_pipe, b"xy")
    assert await _soon(raw.read(1)) == b"x"  # (what the cancelled read got, as one read(2))
    assert await _soon(raw.read(100)) == b"y"


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_raw_stream_put_in_sys_stdin_has_no_input_end_made_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sys.stdin replaced by an unbuffered binary stream: a read of it is one read(2), and
    # a cancelled read's short answer is not the input's end. Before, the next reads
    # returned b"" after it, as at the end, though more input came.
    read_end, write_end = os.pipe()
    with open(read_end, "rb", buffering=0) as raw, open(write_end, "wb", buffering=0) as w:
        monkeypatch.setattr(sys, "stdin", raw)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(uringloop.stdin.read(10), 0.1)
        w.write(b"abc")
        assert await _soon(uringloop.stdin.read(3)) == b"abc"
        w.write(b"def")
        assert await _soon(uringloop.stdin.read(3)) == b"def"
        w.close()
        assert await _soon(uringloop.stdin.read(3)) == b""


@pytest.mark.asyncio
async def test_a_relative_seek_counts_from_where_the_callers_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cancelled read got 10 bytes no caller has: seek(0, 1) stays where the callers
    # are, and what is held is read again from there.
    await _five_read_then_ten_held(monkeypatch, lambda stream: types.SimpleNamespace(buffer=stream))
    assert await _soon(uringloop.stdin_bytes.seek(-2, 1)) == 3
    assert await _soon(uringloop.stdin_bytes.read(4)) == b"AABB"


@pytest.mark.asyncio
async def test_a_seek_of_the_text_layer_drops_what_is_held_below_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _five_read_then_ten_held(
        monkeypatch, lambda stream: io.TextIOWrapper(stream, encoding="ascii")
    )
    assert await _soon(uringloop.stdin.seek(0)) == 0
    assert await _soon(uringloop.stdin_bytes.read(7)) == b"AAAAABB"


@pytest.mark.asyncio
async def test_questions_to_stdin_are_not_queued_behind_a_read_waiting_for_input(
    scripted_stdin: ScriptedInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ScriptedInput, "isatty", lambda self: False, raising=False)
    monkeypatch.setattr(ScriptedInput, "seekable", lambda self: False, raising=False)
    await _begun_then_cancelled(scripted_stdin, uringloop.stdin.readline())
    assert await _soon(uringloop.stdin.isatty()) is False  # (the read still waits)
    assert await _soon(uringloop.stdin.seekable()) is False
    scripted_stdin.answers.put("line\n")
    assert await _soon(uringloop.stdin.readline()) == "line\n"


@pytest.mark.asyncio
async def test_stdin_sizes_are_checked_as_the_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"ab\ncdefgh\nij\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
    with pytest.raises(ValueError, match="non-negative or -1"):
        await uringloop.stdin_bytes.read(-5)
    with pytest.raises(TypeError):
        await uringloop.stdin.readline(None)
    with pytest.raises(TypeError):
        await uringloop.stdin_bytes.read1(None)
    with pytest.raises(OverflowError):
        await uringloop.stdin.readlines(2**70)
    assert await uringloop.stdin.readlines(3) == ["ab\n", "cdefgh\n"]  # (past the hint)


def _a_read_begun_in_a_loop_left_stopped(
    stream: ScriptedInput,
) -> tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]:
    """A readline begun in a loop then stopped, its task neither cancelled nor awaited
    (asyncio's "destroyed but pending" report of it silenced: left so on purpose)."""
    loop = uringloop.Loop()
    task = loop.create_task(uringloop.stdin.readline())
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    while not stream.calls:
        loop.run_until_complete(asyncio.sleep(0.001))
    return loop, task


def test_a_read_whose_loop_closed_leaves_what_it_gets_to_the_next(
    scripted_stdin: ScriptedInput,
) -> None:
    # A loop closed with a read of stdin still waiting (its task neither cancelled nor
    # awaited): what that read gets goes to the next read, in another loop.
    loop, _task = _a_read_begun_in_a_loop_left_stopped(scripted_stdin)  # (kept: not collected)
    loop.close()
    scripted_stdin.answers.put("for the next\n")
    assert uringloop.run(_soon(uringloop.stdin.readline())) == "for the next\n"


@pytest.mark.asyncio
async def test_a_closed_stdin_holding_data_raises_as_the_builtin(
    scripted_stdin: ScriptedInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _held_by_a_cancelled_readline(scripted_stdin, "held\n")
    monkeypatch.setattr(ScriptedInput, "closed", True, raising=False)
    with pytest.raises(ValueError, match="closed file"):
        await _soon(uringloop.stdin.readline())


@pytest.mark.asyncio
@pytest.mark.parametrize("method", ["read", "readinto"])
async def test_a_read_of_a_closed_stdin_buffer_names_its_method_as_the_builtin(
    monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    closed = io.TextIOWrapper(io.BufferedReader(io.BytesIO(b"data")))
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    args = (bytearray(4),) if method == "readinto" else (4,)
    with pytest.raises(ValueError) as theirs:
        getattr(closed.buffer, method)(*args)
    with pytest.raises(ValueError) as ours:
        await getattr(uringloop.stdin_bytes, method)(*args)
    assert str(ours.value) == str(theirs.value) == f"{method} of closed file"


def test_a_dropped_stdin_is_closed_though_a_cancelled_read_of_it_got_data(
    stdin_pipe: int,
) -> None:
    # What is held for a stream does not keep the stream: replaced and dropped, it closes.
    async def hold_some() -> None:
        read_end, write_end = os.pipe()
        sys.stdin = open(read_end)  # noqa: SIM115  (closed when dropped)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(uringloop.stdin.readline(), 0.05)
        os.write(write_end, b"held\n")
        os.close(write_end)
        await asyncio.sleep(0.05)  # (the read gets it, and holds it)
        sys.stdin = original

    original = sys.stdin
    _assert_no_descriptor_left(hold_some, 5)


@pytest.mark.asyncio
async def test_iterating_a_stdin_that_is_none_or_closed_raises_as_the_builtin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(TypeError, match="not iterable"):
        async for _ in uringloop.stdin:
            pass
    closed = io.StringIO("line\n")
    closed.close()
    monkeypatch.setattr(sys, "stdin", closed)
    with pytest.raises(ValueError, match="closed file"):
        async for _ in uringloop.stdin:
            pass


@pytest.mark.asyncio
@pytest.mark.parametrize("then", ["taken", "cancelled"])
async def test_a_loop_blocked_on_another_loops_read_does_not_hold_it_up(
    scripted_stdin: ScriptedInput, then: str
) -> None:
    # This loop has a read's answer it has not taken yet, and blocks (a synchronous wait)
    # on a read made in another loop: the thread does not wait for it for ever. Its task
    # then takes the answer, even if cancelled: the next reads did not wait for it.
    other = asyncio.new_event_loop()
    runner = threading.Thread(target=other.run_forever)
    runner.start()
    try:
        task = asyncio.ensure_future(uringloop.stdin.readline())
        while not scripted_stdin.calls:
            await asyncio.sleep(0.001)
        scripted_stdin.answers.put("1\n")
        scripted_stdin.answers.put("2\n")
        elsewhere = asyncio.run_coroutine_threadsafe(uringloop.stdin.readline(), other)
        assert elsewhere.result(timeout=10) == "2\n"  # (this loop blocked meanwhile)
        if then == "cancelled":  # (as the loop comes back: later reads are past it)
            task.cancel()
        assert await task == "1\n"
    finally:
        other.call_soon_threadsafe(other.stop)
        runner.join()
        other.close()


def test_a_read_whose_loop_closed_after_it_was_passed_over_is_late_not_lost(
    scripted_stdin: ScriptedInput,
) -> None:
    # A loop stopped with a read's answer not taken: the next read, in another loop, does
    # not wait for it past a second. Closed later without taking it, that loop's answer
    # goes to the read after.
    loop, _task = _a_read_begun_in_a_loop_left_stopped(scripted_stdin)  # (kept: not collected)
    scripted_stdin.answers.put("1\n")
    scripted_stdin.answers.put("2\n")
    assert uringloop.run(_soon(uringloop.stdin.readline())) == "2\n"
    loop.close()
    assert uringloop.run(_soon(uringloop.stdin.readline())) == "1\n"


@pytest.mark.asyncio
async def test_stdins_questions_are_answered_at_once_beside_a_write_waiting_for_room(
    scripted_stdin: ScriptedInput, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = threading.Event()
    monkeypatch.setattr(sys, "stdout", types.SimpleNamespace(write=lambda text: room.wait(10)))
    monkeypatch.setattr(ScriptedInput, "isatty", lambda self: False, raising=False)
    writing = asyncio.ensure_future(uringloop.stdout.write("waits"))
    await asyncio.sleep(0.05)
    try:
        assert await _soon(uringloop.stdin.isatty()) is False
    finally:
        room.set()
        await writing


@pytest.mark.asyncio
async def test_the_last_read_answer_is_not_kept_once_its_caller_has_it(
    scripted_stdin: ScriptedInput,
) -> None:
    class Line(str):
        pass

    scripted_stdin.answers.put(Line("a line\n"))
    line = await _soon(uringloop.stdin.readline())
    gone = weakref.ref(line)
    del line
    for _ in range(100):  # (the thread may still be returning from the read)
        gc.collect()
        if gone() is None:
            break
        await asyncio.sleep(0.01)
    assert gone() is None
