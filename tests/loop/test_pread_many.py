"""pread_many against os.pread over many batch shapes and ring sizes."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import run_python


@pytest.mark.parametrize("sq_entries,cq_entries", [(8, 16), (256, 1024)])
def test_pread_many_batch_shapes_match_os_pread(
    data_file: tuple[str, bytes], sq_entries: int, cq_entries: int
) -> None:
    """Uniform batches (one pool region, SQEs written as one array) and mixed ones (parts
    sharing regions, parts over a region's size in their own), several fds, batches
    longer than the SQ (the SQE run wraps around the ring) and than the in-flight cap,
    concurrent batches whose CQEs interleave: every result equals os.pread, and every
    pool slot comes back."""
    import random

    path, data = data_file
    rng = random.Random(7)
    loop = uringloop.Loop(sq_entries=sq_entries, cq_entries=cq_entries)
    fds = [os.open(path, os.O_RDONLY) for _ in range(3)]

    def batch(n: int, uniform: bool, many_fds: bool) -> list[tuple[int, int, int]]:
        size = rng.choice([1, 512, 4096, 5000])
        out = []
        for _ in range(n):
            fd = rng.choice(fds) if many_fds else fds[0]
            part = size if uniform else rng.choice(mixed)
            out.append((fd, part, rng.randrange(len(data) + 10)))  # some past EOF
        return out

    mixed = [0, 1, 17, 100, 512, 1536, 4096, 5000, 70_000, 1 << 20, (1 << 20) + 1, 3 << 20]
    shapes = [
        batch(n, uniform, many_fds)
        for n in (1, 2, 7, 64, 300)
        for uniform in (True, False)
        for many_fds in (False, True)
    ]

    async def main() -> list[list[bytes]]:
        first = [await loop.pread_many(reqs) for reqs in shapes]
        together = await asyncio.gather(*(loop.pread_many(reqs) for reqs in shapes))
        return first + list(together)

    try:
        results = loop.run_until_complete(main())
        assert loop._pool.in_use() == 0
    finally:
        loop.close()
        for fd in fds:
            os.close(fd)
    for reqs, got in zip(shapes + shapes, results, strict=True):
        assert got == [data[off : off + size] for _, size, off in reqs]


def test_pread_many_parts_completing_out_of_order(data_file: tuple[str, bytes]) -> None:
    """Parts that wait for pipes complete in the order the pipes are written, not in
    request order; results still land in request order. A part larger than the pool's
    largest slot reads into a mapping of its own."""
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    pipes = [os.pipe() for _ in range(3)]

    async def main() -> list[bytes]:
        reqs = [(r, 10, -1) for r, _ in pipes] + [(fd, 2_000_000, 0)]
        task = asyncio.ensure_future(loop.pread_many(reqs))
        for _ in range(3):
            await asyncio.sleep(0)  # the batch is in the kernel, the pipe reads wait
        for i, (_, w) in reversed(list(enumerate(pipes))):
            os.write(w, b"pipe %d" % i)
        return await task

    try:
        got = loop.run_until_complete(main())
        assert loop._pool.in_use() == 0
    finally:
        loop.close()
        os.close(fd)
        for r, w in pipes:
            os.close(r)
            os.close(w)
    assert got == [b"pipe 0", b"pipe 1", b"pipe 2", data]


@pytest.mark.asyncio
async def test_a_zero_size_read_of_a_directory_in_a_batch_fails_as_os_pread(
    tmp_path: Path, data_file: tuple[str, bytes]
) -> None:
    # read(2) of 0 bytes reports EISDIR; io_uring's would return 0: the batch asks the
    # system call for its empty reads, as pread does for one.
    loop = asyncio.get_running_loop()
    path, _ = data_file
    dirfd = os.open(tmp_path, os.O_RDONLY)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(IsADirectoryError):
            os.pread(dirfd, 0, 0)
        with pytest.raises(IsADirectoryError):
            await loop.pread_many([(fd, 10, 0), (dirfd, 0, 0)])  # type: ignore[attr-defined]
        with pytest.raises(IsADirectoryError):
            await loop.pread_many([(dirfd, 0, 0), (fd, 0, 0)])  # type: ignore[attr-defined]
        got = await loop.pread_many([(fd, 0, 0), (fd, 3, 0)])  # type: ignore[attr-defined]
        assert got == [b"", os.pread(fd, 3, 0)]
    finally:
        os.close(dirfd)
        os.close(fd)


@pytest.mark.asyncio
async def test_vector_io_argument_errors_as_os(tmp_path: Path) -> None:
    # More than IOV_MAX buffers on a bad descriptor: EBADF, as os.preadv; buffers given as
    # an iterator: TypeError, as os.preadv and os.pwritev (they take a sequence).
    loop: Any = asyncio.get_running_loop()
    many = [bytearray(1)] * 1025
    with pytest.raises(OSError) as ours:
        await loop.preadv(-1, many, 0)
    with pytest.raises(OSError) as theirs:
        os.preadv(-1, many, 0)
    assert ours.value.errno == theirs.value.errno == errno.EBADF
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        with pytest.raises(TypeError):
            os.preadv(fd, iter([bytearray(1)]), 0)
        with pytest.raises(TypeError):
            await loop.preadv(fd, iter([bytearray(1)]), 0)
        with pytest.raises(TypeError):
            await loop.pwritev(fd, iter([b"x"]), 0)
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)


@pytest.fixture
def stream() -> Iterator[tuple[int, int]]:
    """(read end, write end) of a pipe whose read end has O_NONBLOCK."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


_ROUTES = ["loop", "threads", "threads-loop"]


async def _pread_many(route: str, requests: list[tuple[int, int, int]]) -> list[bytes]:
    """pread_many through the running loop, uringloop.threads on a thread's own ring, or
    uringloop.threads through the running loop (loop=)."""
    loop: Any = asyncio.get_running_loop()
    if route == "loop":
        return await asyncio.wait_for(loop.pread_many(requests), 10)  # type: ignore[no-any-return]
    if route == "threads-loop":
        call = lambda: uringloop.threads.pread_many(requests, loop=loop)  # noqa: E731
    else:
        call = lambda: uringloop.threads.pread_many(requests)  # noqa: E731
    return await _in_a_thread(call)


async def _in_a_thread(call: Callable[[], list[bytes]]) -> list[bytes]:
    """call() in a thread of its own (which closes its ring as it ends), awaited."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[list[bytes]] = loop.create_future()

    def run() -> None:
        try:
            result = call()
        except BaseException as exc:
            loop.call_soon_threadsafe(done.set_exception, exc)
        else:
            loop.call_soon_threadsafe(done.set_result, result)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        return await asyncio.wait_for(done, 10)
    finally:
        thread.join(10)


@pytest.mark.asyncio
@pytest.mark.parametrize("route", _ROUTES)
async def test_pread_many_at_an_o_nonblock_streams_position_reads_at_once(
    route: str, stream: tuple[int, int], data_file: tuple[str, bytes], tmp_path: Path
) -> None:
    # As pread's: EAGAIN where the stream has nothing, where io_uring's read would wait;
    # in a batch with reads on the ring, the first failure in request order is raised.
    read_end, write_end = stream
    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    dirfd = os.open(tmp_path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            await _pread_many(route, [(read_end, 10, -1), (fd, 4, 0)])
        with pytest.raises(BlockingIOError):
            await _pread_many(route, [(read_end, 10, -1), (read_end, 1, -1)])
        with pytest.raises(BlockingIOError):
            await _pread_many(route, [(read_end, 1, -1), (dirfd, 4, 0)])
        with pytest.raises(IsADirectoryError):
            await _pread_many(route, [(dirfd, 4, 0), (read_end, 1, -1)])
        os.write(write_end, b"abcdefghij")
        got = await _pread_many(route, [(read_end, 3, -1), (fd, 4, 8), (read_end, 3, -1)])
        assert got == [b"abc", data[8:12], b"def"]
        assert await _pread_many(route, [(read_end, 2, -1), (read_end, 5, -1)]) == [b"gh", b"ij"]
    finally:
        os.close(fd)
        os.close(dirfd)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["task-cancelled", "thread-timeout"])
async def test_a_cancelled_pread_many_takes_nothing_from_an_o_nonblock_stream(
    stream: tuple[int, int], how: str
) -> None:
    # The reads made at once wait for the ring's: cancelled before those complete (the
    # task, or a thread's timeout, which cancels the operation), the batch has read
    # nothing from the stream.
    loop: Any = asyncio.get_running_loop()
    read_end, write_end = stream
    waiting_end, feeding_end = os.pipe()  # a blocking pipe: its read waits on the ring
    requests = [(read_end, 4, -1), (waiting_end, 4, -1)]
    try:
        os.write(write_end, b"kept")
        if how == "task-cancelled":
            task = asyncio.ensure_future(loop.pread_many(requests))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(TimeoutError):
                await _in_a_thread(
                    lambda: uringloop.threads.pread_many(requests, loop=loop, timeout=0.1)
                )
        assert os.read(read_end, 10) == b"kept"
    finally:
        os.close(waiting_end)
        os.close(feeding_end)


@pytest.mark.asyncio
@pytest.mark.parametrize("route", [*_ROUTES, "threads-no-ring"])
@pytest.mark.parametrize("nonblocking", [False, True])
async def test_a_failed_batch_gives_what_its_pipe_reads_took(
    route: str, nonblocking: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read at a pipe's position takes its bytes from the pipe: when another read of the
    # batch fails, the exception carries them in `partial` (None where nothing was read).
    # On a blocking pipe the read is one of the ring's (a plain call without a ring); on
    # an O_NONBLOCK one it is made at once, after the others.
    if route == "threads-no-ring":
        monkeypatch.setattr(uringloop.threads, "thread_ring", lambda: None)
        route = "threads"
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, not nonblocking)
    other_end, other_write_end = os.pipe()
    os.set_blocking(other_end, False)
    dirfd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.write(write_end, b"took")
        with pytest.raises(IsADirectoryError) as failed:
            await _pread_many(route, [(read_end, 4, -1), (dirfd, 4, 0)])
        assert failed.value.partial == [b"took", None]  # type: ignore[attr-defined]
        # With a read made at once after the failure too (an O_NONBLOCK pipe's).
        os.write(write_end, b"also")
        os.write(other_write_end, b"nb!!")
        with pytest.raises(IsADirectoryError) as failed:
            await _pread_many(route, [(read_end, 4, -1), (dirfd, 4, 0), (other_end, 4, -1)])
        assert failed.value.partial == [b"also", None, b"nb!!"]  # type: ignore[attr-defined]
        # A lone request: nothing read.
        with pytest.raises(IsADirectoryError) as failed:
            await _pread_many(route, [(dirfd, 4, 0)])
        assert failed.value.partial == [None]  # type: ignore[attr-defined]
    finally:
        for fd in (dirfd, read_end, write_end, other_end, other_write_end):
            os.close(fd)


@pytest.mark.asyncio
async def test_a_timed_out_batch_gives_what_its_pipe_reads_took() -> None:
    # One pipe holds bytes, the other none: the batch times out after the first read took
    # them. They come with the TimeoutError. (The thread pool's batch is one call, which
    # cannot be stopped once begun: its TimeoutError says it may still happen.)
    loop: Any = asyncio.get_running_loop()
    if not loop.uring_available:
        pytest.skip("a batch on the thread pool is not cancelled once begun")
    full_r, full_w = os.pipe()
    empty_r, empty_w = os.pipe()
    requests = [(full_r, 8, -1), (empty_r, 8, -1)]
    try:
        os.write(full_w, b"precious")
        with pytest.raises(TimeoutError) as timed_out:
            await _in_a_thread(
                lambda: uringloop.threads.pread_many(requests, loop=loop, timeout=0.2)
            )
        assert timed_out.value.partial == [b"precious", None]  # type: ignore[attr-defined]
        os.set_blocking(full_r, False)
        with pytest.raises(BlockingIOError):
            os.read(full_r, 8)  # (taken by the batch: the pipe is empty)
    finally:
        for fd in (full_r, full_w, empty_r, empty_w):
            os.close(fd)


@pytest.mark.parametrize("use_uring", [True, False])
def test_a_batch_the_loop_closes_on_gives_a_partial_as_long_as_its_requests(
    use_uring: bool,
) -> None:
    # Queued by a thread on a loop that closes before taking it: LoopClosedError, and
    # nothing read, for each of the three requests.
    loop = uringloop.Loop(use_uring=use_uring)
    read_end, write_end = os.pipe()
    box: list[BaseException] = []

    def call() -> None:
        try:
            uringloop.threads.pread_many([(read_end, 2, -1)] * 3, loop=loop)
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=call)
    try:
        os.write(write_end, b"abcdef")
        thread.start()
        deadline = time.monotonic() + 10
        while not loop.uring_stats().foreign_submissions and time.monotonic() < deadline:
            time.sleep(0.01)
        loop.close()
        thread.join(10)
        [error] = box
        assert isinstance(error, uringloop.LoopClosedError)
        assert error.partial == [None, None, None]  # type: ignore[attr-defined]
        assert os.read(read_end, 10) == b"abcdef"
    finally:
        loop.close()
        os.close(read_end)
        os.close(write_end)


def test_a_batch_cancelled_part_written_leaves_the_loop_turning(tmp_path: Path) -> None:
    # More reads than the ring takes in flight (16 here), waiting at an empty pipe's
    # position: the cancelled batch's parts not yet written are dropped, and the loop goes
    # on (it once spun in its fill step, the batch at the head of its backlog with nothing
    # left to write).
    script = """
import asyncio, faulthandler, os, uringloop
faulthandler.dump_traceback_later(20, exit=True)
loop = uringloop.Loop(sq_entries=8, cq_entries=16)
r, w = os.pipe()
async def main():
    task = asyncio.ensure_future(loop.pread_many([(r, 1, -1)] * 17))
    await asyncio.sleep(0.1)
    task.cancel()
    for _ in range(3):
        await asyncio.sleep(0.01)
    print("turning", task.cancelled())
loop.run_until_complete(main())
loop.close()
"""
    done = run_python(tmp_path, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["turning", "True"]


def test_a_batch_of_no_parts_that_reaches_the_ring_is_answered() -> None:
    # No public call builds one (pread_many([]) answers at once), but the ring's fill step
    # answers it as such a batch is answered, [], rather than drop it unanswered.
    from array import array

    from uringloop._ops.operation import ReadBatch

    loop = uringloop.Loop()
    try:
        op = ReadBatch(array("q"), array("q"), array("q"), loop._pool)
        assert loop.run_until_complete(asyncio.wait_for(loop._run(op), 10)) == []
        assert loop.uring_stats().backlog == 0
    finally:
        loop.close()


def test_a_batch_in_flight_as_its_loop_closes_gives_what_it_took() -> None:
    # A thread's batch: one read took a pipe's bytes, the other waits, as the loop closes
    # (on its own thread). Its LoopClosedError carries them in `partial`.
    loop = uringloop.Loop()
    started = threading.Event()
    full_r, full_w = os.pipe()
    empty_r, empty_w = os.pipe()

    def serve() -> None:
        loop.call_soon(started.set)
        loop.run_forever()
        loop.close()

    server = threading.Thread(target=serve)
    server.start()
    box: list[BaseException] = []

    def call() -> None:
        try:
            uringloop.threads.pread_many([(full_r, 5, -1), (empty_r, 5, -1)], loop=loop)
        except BaseException as exc:
            box.append(exc)

    caller = threading.Thread(target=call)
    try:
        assert started.wait(10)
        os.write(full_w, b"first")
        caller.start()
        deadline = time.monotonic() + 10
        while loop.uring_stats().completed < 1:  # (the full pipe's read)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        loop.call_soon_threadsafe(loop.stop)
        server.join(10)
        caller.join(10)
        [error] = box
        assert isinstance(error, uringloop.LoopClosedError)
        assert error.partial == [b"first", None]  # type: ignore[attr-defined]
    finally:
        for fd in (full_r, full_w, empty_r, empty_w):
            os.close(fd)


@pytest.mark.asyncio
async def test_pread_many_reads_of_one_pipe_that_wait_share_its_bytes() -> None:
    # Two reads at one pipe's position that both wait: each gets one write's bytes whole,
    # in the order the kernel wakes them (not request order, see Loop.pread_many).
    loop: Any = asyncio.get_running_loop()
    r, w = os.pipe()

    def writes() -> None:
        time.sleep(0.05)
        os.write(w, b"ab")
        time.sleep(0.05)
        os.write(w, b"cd")

    writer = threading.Thread(target=writes)
    writer.start()
    try:
        got = await loop.pread_many([(r, 2, -1), (r, 2, -1)])
    finally:
        writer.join()
        os.close(r)
        os.close(w)
    assert sorted(got) == [b"ab", b"cd"]


@pytest.mark.parametrize("sizes", [[10, 1 << 21], [10, 10]])  # mixed sizes, one size
def test_a_part_without_a_buffer_whose_write_was_undone_is_not_the_batch_s_failure(
    monkeypatch: pytest.MonkeyPatch, sizes: list[int]
) -> None:
    # A part whose buffer could not be made is written as a NOP and fails with
    # MemoryError; if that write is undone (an interrupt before it was counted, which the
    # fill repairs by giving the slots back) and the batch is then cancelled, the batch
    # ends with no part written, and without an IndexError from the failure noted.
    from array import array

    from uringloop._ops import operation

    def no_memory(size: int) -> None:
        raise MemoryError

    monkeypatch.setattr(operation, "ScratchBuffer", no_memory)
    fd = os.open("/dev/zero", os.O_RDONLY)
    try:
        batch = operation.ReadBatch(
            array("q", [fd, fd]), array("q", sizes), array("q", [0, 0]), None
        )
        batch.user_data = 100
        entries = bytearray(2 * 64)
        assert batch.prep_parts(entries, memoryview(entries).cast("q"), [0, 64], 0) == (0, 2)
        assert entries[0] == operation.abi.Op.NOP  # (the part's SQE: a NOP)
        assert batch.drop_unwritten() == 0  # (interrupted: parts_written() not called)
        assert batch.state == operation.DONE
    finally:
        os.close(fd)


def test_a_batch_of_many_small_reads_takes_about_the_memory_of_their_bytes(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 70,000 reads of 17 bytes (1.2 MB, more than one pool slot holds) share regions. With
    # a buffer each (a pool page, then, the pool's class full, a page-aligned buffer of
    # the size and a page) they took about 4.2 KiB per read: 290 MB for 1.2 MB of bytes.
    from uringloop import _buffers
    from uringloop._ops import operation

    taken: list[int] = []  # bytes of each buffer made for the batch
    real_alloc = _buffers.SlotPool.alloc

    def alloc(self: _buffers.SlotPool, size: int) -> int:
        slot = real_alloc(self, size)
        if slot >= 0:
            taken.append(min(c for c in _buffers.SLOT_SIZES if size <= c))
        return slot

    class Counted(_buffers.ScratchBuffer):
        __slots__ = ()

        def __init__(self, size: int) -> None:
            taken.append(size + _buffers.PAGE)
            super().__init__(size)

    monkeypatch.setattr(_buffers.SlotPool, "alloc", alloc)
    monkeypatch.setattr(operation, "ScratchBuffer", Counted)
    path, data = data_file
    loop = uringloop.Loop(inline=False)  # (no page-cache copies: every read on the ring)
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, 17, i * 13) for i in range(70_000)]
        got = loop.run_until_complete(loop.pread_many(reqs))
        assert loop.uring_stats().submitted == len(reqs)
    finally:
        os.close(fd)
        loop.close()
    assert got == [data[offset : offset + 17] for _, _, offset in reqs]
    assert sum(taken) < 4 << 20, (len(taken), sum(taken))


def test_a_batch_on_a_thread_s_ring_reads_parts_of_every_size() -> None:
    # A thread's own ring has no buffer pool: the parts' shared regions are scratch buffers
    # (heap up to 64 KiB, mappings beyond), each part read at its place in its region.
    import random

    from uringloop import threads

    rng = random.Random(3)
    data = os.urandom(3 << 20)
    fd = os.memfd_create("parts")
    try:
        os.write(fd, data)
        sizes = [0, 1, 17, 512, 1536, 4096, 5000, 70_000, 1 << 20, (1 << 20) + 1]
        for n in (2, 9, 400):
            reqs = [(fd, rng.choice(sizes), rng.randrange(len(data))) for _ in range(n)]
            want = [data[offset : offset + size] for _, size, offset in reqs]
            outcome: list[Any] = []

            def read(reqs: list[tuple[int, int, int]] = reqs, into: list[Any] = outcome) -> None:
                into.append(threads.pread_many(reqs))

            thread = threading.Thread(target=read)
            thread.start()
            thread.join(30)
            assert outcome == [want]
    finally:
        os.close(fd)


@pytest.mark.parametrize("sizes", [[4096] * 32, [4096, 5000] * 16])  # equal sizes, mixed
def test_a_batch_on_a_thread_s_ring_reads_into_heap_buffers(
    monkeypatch: pytest.MonkeyPatch, sizes: list[int]
) -> None:
    # Without a pool, the parts share ScratchBuffers no larger than those made on the
    # heap: a mapping of their own would cost a page fault per page and a munmap each
    # batch, where the parts' buffers (a heap buffer each, before they shared) cost none.
    from uringloop import _buffers, threads
    from uringloop._ops import operation

    made: list[int] = []

    class Counted(_buffers.ScratchBuffer):
        __slots__ = ()

        def __init__(self, size: int) -> None:
            made.append(size)
            super().__init__(size)

    monkeypatch.setattr(operation, "ScratchBuffer", Counted)
    fd = os.memfd_create("parts")
    try:
        data = os.urandom(1 << 20)
        os.write(fd, data)
        reqs = [(fd, size, 8192 * i) for i, size in enumerate(sizes)]
        outcome: list[Any] = []

        def read() -> None:
            outcome.append(threads.pread_many(reqs))

        thread = threading.Thread(target=read)
        thread.start()
        thread.join(30)
    finally:
        os.close(fd)
    assert outcome == [[data[offset : offset + size] for _, size, offset in reqs]]
    assert made and max(made) <= _buffers.SCRATCH_HEAP_MAX, made
