"""Operations that wait on a stream (a read of an empty pipe or socket, a write to a full
pipe, at its position) do not take the places of the others: on the ring they are not
counted against the in-flight cap (the CQ's size), on the fallback they do not take the
thread pool's workers. Before, a cap (a pool) full of them kept every later operation
out, the write that would have ended them too: the program hung.

Each test parks more such operations than the cap (the pool) holds, then awaits other
operations with a bound far past their cost: a TimeoutError is the hang.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import uringloop
from tests.conftest import full_nonblocking_pipe
from uringloop._loop import _ForeignFuture
from uringloop._ops import Read

BOUND = 10.0  # seconds: far past any of these operations, short of a hang
CQ = 16  # the ring's in-flight cap in these tests
PARKED = 24  # more than CQ; on the fallback, more than its pool's workers (at most 32)...
FALLBACK_PARKED = 40  # ...so 40 there


def _loop(kind: str) -> uringloop.Loop:
    if kind == "fallback":
        return uringloop.Loop(use_uring=False)
    loop = uringloop.Loop(sq_entries=CQ, cq_entries=CQ)
    if not loop.uring_available:
        loop.close()
        pytest.skip("io_uring is unavailable here")
    return loop


@pytest.fixture(params=["uring", "fallback"])
def loop(request: pytest.FixtureRequest) -> Iterator[uringloop.Loop]:
    loop = _loop(request.param)
    yield loop
    loop.close()


def _parked(loop: uringloop.Loop) -> int:
    return PARKED if loop.uring_available else FALLBACK_PARKED


def _drain(r: int) -> bytes:
    """What the O_NONBLOCK read end `r` of a pipe holds."""
    got = bytearray()
    with contextlib.suppress(BlockingIOError):
        while True:
            got += os.read(r, 65536)
    return bytes(got)


def _run(loop: uringloop.Loop, main: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), 4 * BOUND)

    return loop.run_until_complete(bounded())


async def _others_go_on(loop: uringloop.Loop, path: str) -> None:
    """Operations that wait on nothing complete, with the parked ones still in flight."""
    await asyncio.wait_for(loop.nop(), BOUND)
    fd = await asyncio.wait_for(loop.open_fd(path), BOUND)
    try:
        assert await asyncio.wait_for(loop.pread(fd, 5, 0), BOUND) == b"hello"
        assert (await asyncio.wait_for(loop.fstat(fd), BOUND)).st_size == 5
    finally:
        await asyncio.wait_for(loop.close_fd(fd), BOUND)


@pytest.fixture
def hello(tmp_path: Any) -> str:
    path = tmp_path / "hello"
    path.write_bytes(b"hello")
    return str(path)


def test_reads_of_empty_pipes_leave_room(loop: uringloop.Loop, hello: str) -> None:
    pipes = [os.pipe() for _ in range(_parked(loop))]

    async def main() -> list[bytes]:
        reads = [asyncio.ensure_future(loop.pread(r, 3)) for r, _ in pipes]
        await asyncio.sleep(0.05)
        assert not any(read.done() for read in reads)
        await _others_go_on(loop, hello)
        # The write that ends the first read, made through the loop too.
        assert await asyncio.wait_for(loop.pwrite(pipes[0][1], b"one"), BOUND) == 3
        assert await asyncio.wait_for(reads[0], BOUND) == b"one"
        for _, w in pipes[1:]:
            os.write(w, b"abc")
        return await asyncio.wait_for(asyncio.gather(*reads[1:]), BOUND)

    try:
        assert _run(loop, main) == [b"abc"] * (len(pipes) - 1)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_reads_of_idle_sockets_leave_room(loop: uringloop.Loop, hello: str) -> None:
    pairs = [socket.socketpair() for _ in range(_parked(loop))]

    async def main() -> list[bytes]:
        reads = [asyncio.ensure_future(loop.pread(a.fileno(), 3)) for a, _ in pairs]
        await asyncio.sleep(0.05)
        await _others_go_on(loop, hello)
        for _, b in pairs:
            b.send(b"abc")
        return await asyncio.wait_for(asyncio.gather(*reads), BOUND)

    try:
        assert _run(loop, main) == [b"abc"] * len(pairs)
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_writes_to_full_pipes_leave_room(loop: uringloop.Loop, hello: str) -> None:
    pipes = [full_nonblocking_pipe() for _ in range(_parked(loop))]
    for _, w in pipes:
        os.set_blocking(w, True)  # (a write waits for room)

    async def main() -> list[int]:
        writes = [asyncio.ensure_future(loop.pwrite(w, b"xyz")) for _, w in pipes]
        await asyncio.sleep(0.05)
        assert not any(write.done() for write in writes)
        await _others_go_on(loop, hello)
        ends = []
        for r, _ in pipes:
            ends.append(_drain(r))
        counts = await asyncio.wait_for(asyncio.gather(*writes), BOUND)
        for (r, _), end in zip(pipes, ends, strict=True):
            assert (end + _drain(r)).endswith(b"xyz")
        return counts

    try:
        assert _run(loop, main) == [3] * len(pipes)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_batches_of_pipe_reads_leave_room(loop: uringloop.Loop, hello: str) -> None:
    pipes = [os.pipe() for _ in range(_parked(loop) // 2)]

    async def main() -> list[list[bytes]]:
        batches = [
            asyncio.ensure_future(loop.pread_many([(r, 1, -1), (r, 1, -1)])) for r, _ in pipes
        ]
        await asyncio.sleep(0.05)
        await _others_go_on(loop, hello)
        for _, w in pipes:
            os.write(w, b"ab")
        return await asyncio.wait_for(asyncio.gather(*batches), BOUND)

    try:
        assert [sorted(got) for got in _run(loop, main)] == [[b"a", b"b"]] * len(pipes)
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)


def test_the_cap_holds_again_once_they_complete() -> None:
    """The cap is raised by the stream waits in flight only while they are: operations
    that count (here reads of a pipe built as plain Reads, which the driver cannot tell
    from slow ones: not marked as waiting on a stream) then find it at the CQ's size."""
    loop = _loop("uring")
    pipes = [os.pipe() for _ in range(PARKED)]
    r, w = os.pipe()
    plain: list[concurrent.futures.Future[bytes]] = []

    async def main() -> tuple[int, int]:
        reads = [asyncio.ensure_future(loop.pread(pr, 1)) for pr, _ in pipes]
        await asyncio.sleep(0.05)
        assert loop.uring_stats().in_flight == PARKED  # past the cap
        for _, pw in pipes:
            os.write(pw, b"x")
        await asyncio.wait_for(asyncio.gather(*reads), BOUND)
        for _ in range(PARKED):
            op = Read(r, 1, -1, None)
            future: concurrent.futures.Future[bytes] = _ForeignFuture()
            op.waiter = future
            loop.threadsafe.submit(op)
            plain.append(future)
        await asyncio.sleep(0.05)
        stats = loop.uring_stats()
        os.write(w, b"y" * PARKED)
        got = await asyncio.wait_for(
            asyncio.gather(*(asyncio.wrap_future(f) for f in plain)), BOUND
        )
        assert got == [b"y"] * PARKED
        return stats.in_flight, stats.backlog

    try:
        assert _run(loop, main) == (CQ, PARKED - CQ)
    finally:
        loop.close()
        for pr, pw in pipes:
            os.close(pr)
            os.close(pw)
        os.close(r)
        os.close(w)


def test_only_a_batchs_reads_at_a_streams_position_are_counted(tmp_path: Any) -> None:
    # The driver counts out of its cap the entries that may wait: of a batch, only its
    # parts at a stream's position, not its reads of files, which complete (counting
    # those let more operations in flight than the CQ holds: it overflowed).
    from array import array

    from uringloop._ops.operation import StreamRead, StreamReadBatch

    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    r, w = os.pipe()
    fd = os.open(path, os.O_RDONLY)
    try:
        batch = StreamReadBatch(
            array("q", [r, fd, fd]), array("q", [1, 4, 4]), array("q", [-1, 0, 4]), None
        )
        batch.user_data = 100
        assert [batch.part_waits_on_stream(ud) for ud in (100, 101, 102)] == [True, False, False]
        assert StreamRead(r, 1, -1, None).part_waits_on_stream(0)
        assert not Read(fd, 1, 0, None).part_waits_on_stream(0)
        batch.release()
    finally:
        os.close(fd)
        os.close(r)
        os.close(w)
