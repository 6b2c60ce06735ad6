"""loop.sendfile and loop.sock_sendfile of a file of uringloop.open, beside a built-in file.

asyncio reads the file with blocking calls (os.sendfile(2) at the offset given, or, where
that is not available, seek() and readinto() on its executor) and leaves it positioned
past what it sent. A uringloop file's seek() and readinto() are coroutines: asyncio sent
the bytes with os.sendfile but the file's position stayed where it was, and without
os.sendfile it failed (TypeError, "coroutine ... was never awaited")."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

import uringloop

# Not the stock loop: its sendfile calls a file's seek() as a blocking call.
LOOPS = pytest.mark.loops("uring", "fallback")
PAYLOAD = os.urandom(100_000)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


@pytest.fixture(params=["native", "no os.sendfile"])
def native(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both of asyncio's ways: os.sendfile(2), and its fallback where os.sendfile is missing."""
    if request.param != "native":
        monkeypatch.delattr(os, "sendfile")
    return bool(request.param == "native")


async def _maybe(value: Any) -> Any:
    return await value if isinstance(value, Awaitable) else value


async def _send(how: str, f: Any, offset: int, count: int | None) -> tuple[int, bytes]:
    """sendfile (`how`: "transport") or sock_sendfile ("sock") of `f`: the count and the
    bytes received."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            got.set_result(await reader.read())
        except Exception as exc:
            got.set_exception(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    address = server.sockets[0].getsockname()
    try:
        if how == "transport":
            _, writer = await asyncio.open_connection(*address)
            try:
                sent = await loop.sendfile(writer.transport, f, offset, count)
            finally:
                writer.close()
                await writer.wait_closed()
        else:
            with socket.socket() as sock:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                sent = await loop.sock_sendfile(sock, f, offset, count)
        return sent, await got
    finally:
        await asyncio.wait([got], timeout=10)  # (the client is closed: the server reads EOF)
        if got.done():
            got.exception()  # (retrieved, where a failure of the send is raised)
        server.close()
        await server.wait_closed()


async def _builtin(path: Path, mode: str, buffering: int) -> Any:
    return open(path, mode, buffering=buffering)  # (closed by the test)


async def _ours(path: Path, mode: str, buffering: int) -> Any:
    return await uringloop.open(path, mode, buffering=buffering)


@pytest.mark.asyncio
@LOOPS
@pytest.mark.parametrize("how", ["transport", "sock"])
@pytest.mark.parametrize("buffering", [0, -1])
async def test_sendfile_leaves_the_file_past_the_bytes_sent(
    path: Path, native: bool, how: str, buffering: int, no_fd_leak: None
) -> None:
    # After a read (the buffered file's read-ahead then holds the next 8 KiB): the bytes
    # from `offset`, and the file's position just past them, where its next read starts.
    results = []
    for opener in (_builtin, _ours):
        f = await opener(path, "rb", buffering)
        try:
            assert await _maybe(f.read(10)) == PAYLOAD[:10]
            sent, received = await _send(how, f, 1000, 5000)
            position = await _maybe(f.tell())
            after = await _maybe(f.read(4))
            results.append((sent, received == PAYLOAD[1000:6000], position, after))
        finally:
            await _maybe(f.close())
    if buffering == 0:  # (the built-in's buffered reader, after os.sendfile, is confused)
        assert results[0] == results[1]
    assert results[1] == (5000, True, 6000, PAYLOAD[6000:6004])


@pytest.mark.asyncio
@LOOPS
@pytest.mark.parametrize("how", ["transport", "sock"])
async def test_sendfile_to_the_end_and_again_and_of_nothing(
    path: Path, native: bool, how: str, no_fd_leak: None
) -> None:
    async with uringloop.open(path, "rb") as f:
        assert await _send(how, f, 0, None) == (len(PAYLOAD), PAYLOAD)
        assert await f.tell() == len(PAYLOAD)
        assert await f.read() == b""
        await f.seek(7)
        assert await _send(how, f, 99_990, None) == (10, PAYLOAD[99_990:])
        assert await f.tell() == len(PAYLOAD)
        # A count asyncio refuses (0), and an offset past the end (nothing sent): the
        # file stays where it was, as a built-in file sent with os.sendfile.
        await f.seek(0)
        assert await f.read(10) == PAYLOAD[:10]
        with pytest.raises(ValueError, match="count must be a positive integer"):
            await _send(how, f, 5000, 0)
        assert await f.tell() == 10
        assert await _send(how, f, len(PAYLOAD) + 100, None) == (0, b"")
        assert await f.tell() == 10
        assert await f.read(4) == PAYLOAD[10:14]


@pytest.mark.asyncio
@LOOPS
async def test_sendfile_sends_what_a_buffered_write_left(
    path: Path, native: bool, no_fd_leak: None
) -> None:
    # The write buffer is written first, as a seek() would write it.
    async with uringloop.open(path, "r+b") as f:
        assert await f.write(b"new") == 3
        assert await _send("transport", f, 0, 10) == (10, b"new" + PAYLOAD[3:10])
        assert await f.tell() == 10
    assert path.read_bytes() == b"new" + PAYLOAD[3:]


@pytest.mark.asyncio
@LOOPS
@pytest.mark.parametrize("how", ["transport", "sock"])
async def test_sendfile_refuses_a_text_file_as_asyncio_refuses_the_builtins(
    path: Path, how: str, no_fd_leak: None
) -> None:
    with open(path, encoding="latin-1") as g, pytest.raises(ValueError) as builtins:
        await _send(how, g, 0, None)
    async with uringloop.open(path, encoding="latin-1") as f:
        with pytest.raises(ValueError) as ours:
            await _send(how, f, 0, None)
        assert await f.tell() == 0
    assert str(ours.value) == str(builtins.value) == "file should be opened in binary mode"


@pytest.mark.asyncio
@LOOPS
@pytest.mark.parametrize("mode", ["r", "r+b"])
async def test_sendfile_to_a_closing_transport_refuses_before_the_file_is_touched(
    path: Path, mode: str, no_fd_leak: None
) -> None:
    # asyncio's sendfile first refuses a closing transport (RuntimeError), whatever the
    # file: a uringloop file is not looked at either (a text one was a ValueError; a
    # binary one's buffered writes were written first).
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        _, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
        writer.close()
        encoding = None if "b" in mode else "latin-1"
        with open(path, mode, encoding=encoding) as g, pytest.raises(RuntimeError) as builtins:
            await loop.sendfile(writer.transport, g)
        async with uringloop.open(path, mode, encoding=encoding) as f:
            if "+" in mode:
                await f.write(b"new")  # (buffered: not written by a refused call)
            with pytest.raises(RuntimeError) as ours:
                await loop.sendfile(writer.transport, f)
            assert path.read_bytes() == PAYLOAD
        assert str(ours.value) == str(builtins.value) == "Transport is closing"
        await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
