"""uringloop under other libraries: anyio's asyncio backend, stdlib streams, loop.sendfile."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import anyio
import pytest

import uringloop

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def _uring_loop_factory() -> asyncio.AbstractEventLoop:
    return uringloop.new_event_loop()


def _fallback_loop_factory() -> asyncio.AbstractEventLoop:
    return uringloop.Loop(use_uring=False)


@pytest.mark.parametrize("factory", [_uring_loop_factory, _fallback_loop_factory])
def test_anyio_program(factory: object, tmp_path: Path) -> None:
    """A task group, anyio file I/O and a TCP echo, all on one uringloop Loop."""
    payload = os.urandom(64 * 1024)
    source = tmp_path / "source.bin"
    copy = tmp_path / "copy.bin"
    source.write_bytes(payload)

    async def main() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        results: dict[str, object] = {}

        async def copy_file() -> None:
            async with await anyio.open_file(source, "rb") as src:
                data = await src.read()
            async with await anyio.open_file(copy, "wb") as dst:
                await dst.write(data)
            results["copied"] = len(data)

        async def ring_read() -> None:
            # The loop's own file operations work from an anyio task too.
            fd = await loop.open_fd(str(source))
            try:
                results["head"] = await loop.pread(fd, 16, 0)
            finally:
                await loop.close_fd(fd)

        async def uringloop_open() -> None:
            async with uringloop.open(source, "rb") as f:
                results["via_open"] = await f.read()

        async def echo_round_trip() -> None:
            async def handle(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    async for chunk in stream:
                        await stream.send(chunk)

            listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with listener, anyio.create_task_group() as server:
                server.start_soon(listener.serve, handle)
                async with await anyio.connect_tcp("127.0.0.1", port) as client:
                    await client.send(payload)
                    received = bytearray()
                    while len(received) < len(payload):
                        received += await client.receive()
                results["echo"] = bytes(received)
                server.cancel_scope.cancel()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(copy_file)
                tg.start_soon(ring_read)
                tg.start_soon(uringloop_open)
                tg.start_soon(echo_round_trip)
        results["loop_type"] = type(loop)
        return results

    results = anyio.run(main, backend="asyncio", backend_options={"loop_factory": factory})
    assert results["loop_type"] is uringloop.Loop
    assert results["copied"] == len(payload)
    assert copy.read_bytes() == payload
    assert results["head"] == payload[:16]
    assert results["via_open"] == payload
    assert results["echo"] == payload


def test_anyio_task_group_error_propagates_on_uringloop() -> None:
    async def boom() -> None:
        await anyio.sleep(0)
        raise ValueError("from a task")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep_forever)
            tg.start_soon(boom)

    with pytest.raises(ExceptionGroup) as info:
        anyio.run(
            main, backend="asyncio", backend_options={"loop_factory": uringloop.new_event_loop}
        )
    assert info.group_contains(ValueError, match="from a task")


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_stdlib_streams_echo() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [(f"line {i} " * (i + 1) + "\n").encode() for i in range(50)]
        for line in lines:
            writer.write(line)
        await writer.drain()
        writer.write_eof()
        got = [await reader.readline() for _ in lines]
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
    assert got == [line.upper() for line in lines]


async def _receive_all(port_future: asyncio.Future[int], size: int) -> bytes:
    """Accept one connection on 127.0.0.1 and return everything it sends."""
    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(size)
        done.set_result(data)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        port_future.set_result(server.sockets[0].getsockname()[1])
        return await done


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_loop_sendfile_over_a_transport(tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    loop = asyncio.get_running_loop()
    port: asyncio.Future[int] = loop.create_future()
    receiver = asyncio.create_task(_receive_all(port, len(payload) - 100))
    _, writer = await asyncio.open_connection("127.0.0.1", await port)
    with open(path, "rb") as f:
        sent = await loop.sendfile(writer.transport, f, offset=100)
        # sendfile leaves the file position just after the data sent.
        assert f.tell() == len(payload)
    writer.close()
    await writer.wait_closed()
    assert sent == len(payload) - 100
    assert await receiver == payload[100:]


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_sock_sendfile(tmp_path: Path) -> None:
    payload = os.urandom(256 * 1024)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    loop = asyncio.get_running_loop()
    port: asyncio.Future[int] = loop.create_future()
    receiver = asyncio.create_task(_receive_all(port, 1000))
    with socket.socket() as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", await port))
        with open(path, "rb") as f:
            sent = await loop.sock_sendfile(sock, f, offset=5, count=1000)
    assert sent == 1000
    assert await receiver == payload[5:1005]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """anyio's pytest plugin runs `@pytest.mark.anyio` tests on this backend."""
    return "asyncio", {"loop_factory": uringloop.new_event_loop}


@pytest.mark.anyio
async def test_anyio_pytest_plugin_on_uringloop(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path = tmp_path / "f.txt"
    await anyio.Path(path).write_text("through anyio\n")
    fd = await loop.open_fd(str(path))
    try:
        assert await loop.pread(fd, 100, 0) == b"through anyio\n"
    finally:
        await loop.close_fd(fd)
