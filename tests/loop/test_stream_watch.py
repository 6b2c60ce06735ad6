"""Reads and writes at a stream's position on the ring wake the loop when the stream is
ready (_stream_watch.py), not when the ring's eventfd says so: on a DEFER_TASKRUN ring the
kernel signals it 13-20 ms late for them (Linux 6.18).

Each test silences the eventfd (IORING_UNREGISTER_EVENTFD): without the loop's own watch
of the stream, the operation would then wait for ever (a watchdog wakes the loop after
10 s, and the test fails).
The watches are private duplicates of the descriptors: none is left open afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop._ring import abi, syscalls

BOUND = 10.0  # seconds: far past any wake-up, short of a hang


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def loop() -> Iterator[uringloop.Loop]:
    loop = uringloop.Loop()
    if not loop.uring_available:
        loop.close()
        pytest.skip("io_uring is unavailable here")
    before = _open_fds()
    yield loop
    loop.close()
    # (The loop's own descriptors were open before: only duplicates could be left.)
    assert _open_fds() <= before


def _silence_eventfd(loop: uringloop.Loop) -> None:
    """The ring's completions no longer signal the loop's eventfd."""
    ring = loop._driver._ring  # type: ignore[attr-defined]
    syscalls.register(ring.fd, abi.Register.UNREGISTER_EVENTFD, 0, 0)


def _later(delay: float, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _count_watches(loop: uringloop.Loop) -> list[int]:
    """The inode of the stream of each watch the loop makes from now on, in order."""
    streams = loop._state.streams
    add = streams._add  # type: ignore[union-attr]
    made: list[int] = []

    def counted(fd: int, writes: bool, fired: Callable[[], None]) -> None:
        made.append(os.fstat(fd).st_ino)
        add(fd, writes, fired)

    streams._add = counted  # type: ignore[union-attr]
    return made


def _in_a_thread(work: Callable[[], None]) -> None:
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def _run(loop: uringloop.Loop, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """loop.run_until_complete(main()) with the eventfd silenced. Nothing else wakes the
    loop but a watchdog thread, after BOUND seconds: the test fails if it had to."""
    finished = threading.Event()
    woken = threading.Event()

    def watchdog() -> None:
        if not finished.wait(BOUND):
            woken.set()
            loop.call_soon_threadsafe(lambda: None)

    async def silenced() -> Any:
        _silence_eventfd(loop)
        return await main()

    thread = threading.Thread(target=watchdog)
    thread.start()
    try:
        result = loop.run_until_complete(silenced())
    finally:
        finished.set()
        thread.join()
    assert not woken.is_set(), "it completed only once the watchdog woke the loop"
    return result


def _stream(fd: int) -> tuple[int, int]:
    status = os.fstat(fd)
    return status.st_dev, status.st_ino


def _watches(loop: uringloop.Loop) -> dict[tuple[tuple[int, int], int, bool], int]:
    return loop._state.streams._watches  # type: ignore[union-attr]


def test_a_pipe_read_completes_when_data_arrives(loop: uringloop.Loop) -> None:
    r, w = os.pipe()
    seen: list[dict[tuple[tuple[int, int], int, bool], int]] = []

    async def main() -> bytes:
        writer = _later(0.05, lambda: os.write(w, b"data"))
        read = asyncio.ensure_future(loop.pread(r, 10))
        await asyncio.sleep(0.02)  # the loop blocked with the read in flight
        seen.append(dict(_watches(loop)))
        data = await read
        writer.join()
        await asyncio.sleep(0)
        return data

    try:
        assert _run(loop, main) == b"data"
        assert list(seen[0]) == [(_stream(r), r, False)]  # a duplicate of r was watched
        assert not _watches(loop)  # and is no longer
    finally:
        os.close(r)
        os.close(w)


def test_a_pipe_write_completes_when_room_is_made(loop: uringloop.Loop) -> None:
    r, w = os.pipe()
    os.set_blocking(w, False)
    filled = 0
    try:
        while True:
            filled += os.write(w, b"f" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)

    def drain() -> None:
        left = filled
        while left:
            left -= len(os.read(r, left))

    async def main() -> int:
        drainer = _later(0.05, drain)
        written = await loop.pwrite(w, b"y" * 10)
        drainer.join()
        return written

    try:
        assert _run(loop, main) == 10
        assert os.read(r, 100) == b"y" * 10
    finally:
        os.close(r)
        os.close(w)


def test_a_socket_read_completes_when_data_arrives(loop: uringloop.Loop) -> None:
    a, b = socket.socketpair()

    async def main() -> bytes:
        writer = _later(0.05, lambda: b.send(b"hello"))
        data = await loop.pread(a.fileno(), 10)
        writer.join()
        return data

    with a, b:
        assert _run(loop, main) == b"hello"


def test_a_read_from_another_thread_completes(loop: uringloop.Loop) -> None:
    r, w = os.pipe()
    ops = loop.threadsafe

    async def main() -> bytes:
        writer = _later(0.1, lambda: os.write(w, b"foreign"))
        result = await asyncio.to_thread(lambda: ops.pread(r, 20).result(BOUND))
        writer.join()
        return result

    try:
        assert _run(loop, main) == b"foreign"
    finally:
        os.close(r)
        os.close(w)


def test_a_batch_with_a_pipe_completes(loop: uringloop.Loop, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"file bytes")
    fd = os.open(path, os.O_RDONLY)
    r, w = os.pipe()

    async def main() -> list[bytes]:
        writer = _later(0.05, lambda: os.write(w, b"piped"))
        result = await loop.pread_many([(fd, 4, 0), (r, 10, -1)])
        writer.join()
        return result

    try:
        assert _run(loop, main) == [b"file", b"piped"]
    finally:
        for each in (fd, r, w):
            os.close(each)


def test_a_fifo_read_through_open_completes(loop: uringloop.Loop, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    holder = os.open(fifo, os.O_RDWR)  # (so that the open for reading does not wait)

    async def main() -> bytes:
        async with uringloop.open(fifo, "rb", buffering=0) as f:
            writer = _later(0.05, lambda: os.write(holder, b"line\n"))
            data = await f.read(5)
            writer.join()
            return data  # type: ignore[no-any-return]

    try:
        assert _run(loop, main) == b"line\n"
    finally:
        os.close(holder)


def test_close_with_a_read_in_flight_closes_the_watch(loop: uringloop.Loop) -> None:
    r, w = os.pipe()
    before = _open_fds()
    ops = loop.threadsafe

    async def main() -> concurrent.futures.Future[bytes]:
        # (A read no task waits for: from another thread; it never completes.)
        read = await asyncio.to_thread(ops.pread, r, 10)
        await asyncio.sleep(0.05)
        assert len(_open_fds() - before) == 1  # the duplicate
        return read

    try:
        read = _run(loop, main)
        loop.close()
        assert isinstance(read.exception(0), uringloop.LoopClosedError)
        assert not _watches(loop)
        assert _open_fds() <= before
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("first_read", ["cancelled", "in flight"])
def test_a_descriptor_number_reused_gets_a_watch_of_its_own(
    loop: uringloop.Loop, first_read: str
) -> None:
    # A read of one pipe is cancelled (or still in flight: the kernel keeps its pipe open),
    # its descriptor closed, and the number reused by another pipe that a read waits on
    # before the loop next blocks: that pipe is watched, not only a duplicate of the old.
    r1, w1 = os.pipe()
    old = os.fstat(r1).st_ino
    pipes: list[int] = [w1]

    async def main() -> bytes:
        first = asyncio.ensure_future(loop.pread(r1, 10))
        await asyncio.sleep(0.02)
        if first_read == "cancelled":
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
        os.close(r1)
        r2, w2 = os.pipe()
        pipes.extend((r2, w2))
        assert r2 == r1  # (the lowest number free)
        second = asyncio.ensure_future(loop.pread(r2, 10))
        await asyncio.sleep(0.02)
        watched = sorted(os.fstat(duplicate).st_ino for duplicate in _watches(loop).values())
        new = os.fstat(r2).st_ino
        assert watched == ([new] if first_read == "cancelled" else sorted([old, new]))
        writer = _later(0.02, lambda: os.write(w2, b"second"))
        data = await second
        writer.join()
        if first_read == "in flight":
            os.write(w1, b"first")
            assert await first == b"first"
        return data

    try:
        assert _run(loop, main) == b"second"
    finally:
        for fd in pipes:
            os.close(fd)


def test_a_batch_watches_only_the_streams_its_parts_still_wait_on(
    loop: uringloop.Loop,
) -> None:
    # The part on r1 reads at once and leaves r1 readable; the part on r2 waits. Were r1
    # still watched, the loop would wake for it at every iteration until r2 has data.
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, b"a" * 100)

    made = _count_watches(loop)

    async def main() -> list[bytes]:
        batch = asyncio.ensure_future(loop.pread_many([(r1, 1, -1), (r2, 10, -1)]))
        await asyncio.sleep(0.05)
        writer = _later(0.02, lambda: os.write(w2, b"b"))
        result = await batch
        writer.join()
        return result

    try:
        assert _run(loop, main) == [b"a", b"b"]
        assert made == [os.fstat(r2).st_ino]  # (one watch, made once: r1 never)
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_a_call_on_another_loop_takes_only_its_own_note(loop: uringloop.Loop) -> None:
    # In one step this loop's task starts a read of r, and a call of another loop's
    # threadsafe operations, in the same thread, reads r2: each loop watches its own.
    other = uringloop.Loop()
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    r, w = os.pipe()
    r2, w2 = os.pipe()

    async def main() -> bytes:
        read = asyncio.ensure_future(loop.pread(r, 10))
        await asyncio.sleep(0)  # (the read is built: noted in this thread)
        theirs = other.threadsafe.pread(r2, 10)
        await asyncio.sleep(0.05)
        assert list(_watches(loop)) == [(_stream(r), r, False)]
        writer = _later(0.02, lambda: os.write(w, b"mine"))
        data = await read
        writer.join()
        os.write(w2, b"theirs")
        assert theirs.result(BOUND) == b"theirs"
        return data

    try:
        assert _run(loop, main) == b"mine"
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join()
        other.close()
        for fd in (r, w, r2, w2):
            os.close(fd)


def test_a_cancelled_read_leaves_no_watch_when_the_loop_stops(loop: uringloop.Loop) -> None:
    # A watched read is cancelled and the loop stops: the duplicate of the read end is
    # closed, so that closing the program's own read end breaks the pipe.
    r, w = os.pipe()

    async def main() -> None:
        read = asyncio.ensure_future(loop.pread(r, 10))
        await asyncio.sleep(0.02)
        assert _watches(loop)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read

    try:
        _run(loop, main)
        assert not _watches(loop)
        os.close(r)
        with pytest.raises(BrokenPipeError):
            os.write(w, b"x")
    finally:
        os.close(w)


def test_a_forked_child_lets_go_of_the_streams_watched(loop: uringloop.Loop) -> None:
    r, w = os.pipe()

    async def main() -> bytes:
        read = asyncio.ensure_future(loop.pread(r, 10))
        await asyncio.sleep(0.02)
        [duplicate] = _watches(loop).values()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (3.12+: threads)
            pid = os.fork()
        if pid == 0:  # the child: its copy of the duplicate no longer holds the pipe
            code = 1
            try:
                code = 0 if os.fstat(duplicate).st_ino != os.fstat(r).st_ino else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        writer = _later(0.02, lambda: os.write(w, b"after fork"))
        data = await read  # (the parent's watch is still in its epoll)
        writer.join()
        return data

    try:
        assert _run(loop, main) == b"after fork"
    finally:
        os.close(r)
        os.close(w)


def test_a_thread_ring_batch_leaves_no_note_behind(tmp_path: Path) -> None:
    # uringloop.threads' batches run on the thread's own ring, which no loop drains: the
    # thread's notes of them are dropped, not kept with their results.
    import uringloop.threads
    from uringloop._ops import take_stream_waits

    r, w = os.pipe()
    os.write(w, b"abc")
    left: list[Any] = []

    def work() -> None:
        assert uringloop.threads.pread_many([(r, 1, -1), (r, 1, -1)]) in (
            [b"a", b"b"],
            [b"b", b"a"],
        )
        left.extend(take_stream_waits())

    _in_a_thread(work)
    os.close(r)
    os.close(w)
    assert left == []


def test_two_eventfds_are_two_streams(loop: uringloop.Loop) -> None:
    # Eventfds (anonymous inodes) share one device and inode: each is watched all the same.
    first, second = os.eventfd(0), os.eventfd(0)

    async def main() -> list[bytes]:
        reads = [asyncio.ensure_future(loop.pread(fd, 8)) for fd in (first, second)]
        await asyncio.sleep(0.02)
        assert len(_watches(loop)) == 2
        writer = _later(0.02, lambda: os.eventfd_write(second, 2))
        done, _ = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
        writer.join()
        assert done == {reads[1]}
        os.eventfd_write(first, 1)
        return [await read for read in reads]

    try:
        assert _run(loop, main) == [(1).to_bytes(8, sys.byteorder), (2).to_bytes(8, sys.byteorder)]
    finally:
        os.close(first)
        os.close(second)


def test_a_batch_past_the_in_flight_cap_is_watched(capped_stream_waits: None) -> None:
    # Eight parts, four in flight at most (counted against the cap here, as slow reads
    # are): the batch is still queued while its first four parts wait on the pipe, and its
    # stream is watched all the same.
    loop = uringloop.Loop(sq_entries=4, cq_entries=4)
    r, w = os.pipe()

    async def main() -> list[bytes]:
        batch = asyncio.ensure_future(loop.pread_many([(r, 1, -1)] * 8))
        await asyncio.sleep(0.02)
        assert len(_watches(loop)) == 1
        writer = _later(0.02, lambda: os.write(w, b"abcdefgh"))
        result = await batch
        writer.join()
        return result  # type: ignore[no-any-return]

    try:
        if not loop.uring_available:
            pytest.skip("io_uring is unavailable here")
        assert sorted(_run(loop, main)) == [bytes([c]) for c in b"abcdefgh"]
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_a_refused_submission_leaves_no_note(loop: uringloop.Loop) -> None:
    from uringloop._ops import STREAM_WAITS_NOTED, take_stream_waits

    closed = uringloop.Loop()
    closed.close()
    r, w = os.pipe()
    seen: list[Any] = []

    def work() -> None:
        with pytest.raises(uringloop.LoopClosedError):
            closed.threadsafe.pread(r, 10)
        seen.append(threading.get_native_id() in STREAM_WAITS_NOTED)
        seen.append(take_stream_waits())

    _in_a_thread(work)
    os.close(r)
    os.close(w)
    assert seen == [False, []]


def test_an_interrupted_watch_leaves_no_duplicate(loop: uringloop.Loop) -> None:
    # A signal handler's KeyboardInterrupt while the selector takes the watch: it is
    # raised, and the duplicate is not left open nor registered.
    streams = loop._state.streams
    r, w = os.pipe()
    before = _open_fds()

    def interrupted(fd: int, writes: bool, fired: Callable[[], None]) -> None:
        loop._add_reader(fd, fired)  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    streams._add = interrupted  # type: ignore[union-attr]

    async def main() -> None:
        loop.create_task(loop.pread(r, 10))
        await asyncio.sleep(0.02)

    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        assert not _watches(loop)
        assert _open_fds() <= before
        assert all(key.fd in before for key in loop._selector.get_map().values())
        os.write(w, b"x")  # (the read completes, and the loop closes cleanly)
        loop.run_until_complete(asyncio.sleep(0.02))
    finally:
        os.close(r)
        os.close(w)


def test_the_duplicates_leave_the_program_descriptors(loop: uringloop.Loop) -> None:
    # With the limit on open files close, reads wait unwatched rather than take the
    # program's last descriptors (they complete, late: the eventfd is not silenced here).
    import resource

    from uringloop._stream_watch import HEADROOM

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pipes = [os.pipe() for _ in range(4)]
    highest = max(max(pair) for pair in pipes)
    fillers: list[int] = []  # every number up to `highest` taken: a duplicate gets the next
    while (filler := os.open(os.devnull, os.O_RDONLY)) < highest:
        fillers.append(filler)
    os.close(filler)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 2 + HEADROOM, hard))

    async def main() -> list[bytes]:
        reads = [asyncio.ensure_future(loop.pread(r, 10)) for r, _ in pipes]
        await asyncio.sleep(0.02)
        assert list(_watches(loop).values()) == [highest + 1]  # one, below the headroom
        for _, w in pipes:
            os.write(w, b"x")
        return await asyncio.gather(*reads)

    try:
        assert loop.run_until_complete(main()) == [b"x"] * len(pipes)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in fillers:
            os.close(fd)
        for pair in pipes:
            os.close(pair[0])
            os.close(pair[1])


@pytest.mark.parametrize("own_read", [False, True], ids=["idle", "with-its-own-read"])
def test_two_loops_run_in_turn_by_one_thread_watch_their_own(own_read: bool) -> None:
    # Loop A starts a read and stops before blocking; loop B then runs in the same thread
    # (with a read of its own in flight, or not): B does not take A's note, and A, run
    # again, watches its read.
    first, second = uringloop.Loop(), uringloop.Loop()
    r, w = os.pipe()
    r2, w2 = os.pipe()

    async def start() -> asyncio.Future[bytes]:
        read = asyncio.ensure_future(first.pread(r, 10))
        await asyncio.sleep(0)  # (built and queued; the loop stops without blocking)
        return read

    async def other() -> asyncio.Future[bytes] | None:
        read = asyncio.ensure_future(second.pread(r2, 10)) if own_read else None
        await asyncio.sleep(0.02)
        return read

    async def finish() -> bytes:
        await asyncio.sleep(0.02)
        assert list(_watches(first)) == [(_stream(r), r, False)]
        writer = _later(0.02, lambda: os.write(w, b"first"))
        data = await read
        writer.join()
        return data

    try:
        if not first.uring_available:
            pytest.skip("io_uring is unavailable here")
        theirs = second.run_until_complete(other())  # (B's own read, before A's note)
        read = first.run_until_complete(start())
        second.run_until_complete(asyncio.sleep(0.02))
        assert list(_watches(second)) == ([(_stream(r2), r2, False)] if own_read else [])
        assert _run(first, finish) == b"first"
        if theirs is not None:
            os.write(w2, b"second")
            assert second.run_until_complete(theirs) == b"second"
    finally:
        first.close()
        second.close()
        for fd in (r, w, r2, w2):
            os.close(fd)


def test_a_write_that_poll_cannot_promise_room_for_is_not_watched(
    loop: uringloop.Loop,
) -> None:
    # An eventfd near its maximum polls writable while a write of 5 waits: a watch would
    # wake the loop at every iteration. Only pipes' and sockets' writes are watched.
    efd = os.eventfd(0)
    os.eventfd_write(efd, 2**64 - 3)
    made = _count_watches(loop)

    async def main() -> int:
        write = asyncio.ensure_future(loop.pwrite(efd, (5).to_bytes(8, sys.byteorder)))
        await asyncio.sleep(0.02)
        assert made == [] and not write.done()
        os.eventfd_read(efd)  # (room: the write completes, its wake-up late)
        return await write

    try:
        assert loop.run_until_complete(main()) == 8
        assert os.eventfd_read(efd) == 5
    finally:
        os.close(efd)


def test_a_note_of_an_operation_never_queued_is_dropped(loop: uringloop.Loop) -> None:
    from uringloop._ops import STREAM_WAITS_NOTED, table, take_stream_waits

    r, w = os.pipe()

    async def main() -> None:
        table.pread.builder()(r, 10)  # (built, never queued)
        read = asyncio.ensure_future(loop.pread(r, 10))
        await asyncio.sleep(0.02)  # (the loop blocks: it takes its thread's notes)
        assert threading.get_native_id() not in STREAM_WAITS_NOTED
        assert take_stream_waits() == []
        os.write(w, b"x")
        assert await read == b"x"

    try:
        loop.run_until_complete(main())
    finally:
        os.close(r)
        os.close(w)
