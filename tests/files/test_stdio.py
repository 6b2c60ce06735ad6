"""uringloop.stdin/stdout/stderr and the _bytes forms: aiofiles' async standard streams."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop


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
