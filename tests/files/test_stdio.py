"""uringloop.stdin/stdout/stderr and the _bytes forms: aiofiles' async standard streams."""

from __future__ import annotations

import io
import sys

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
