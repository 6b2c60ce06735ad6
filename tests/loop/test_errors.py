"""Bad input and failed operations: the right exception, never a crash or a hang."""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import errno
import gc
import os
import socket
import subprocess
import sys
import threading
import tracemalloc
from typing import Any

import pytest

import uringloop
import uringloop._loop
import uringloop._ops.table
from tests.conftest import full_nonblocking_pipe
from uringloop._ops.operation import STREAM_NOW

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring", "fallback")]


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


async def test_an_error_answered_without_the_ring_shows_no_internal_exception() -> None:
    # An empty path, or one of PATH_MAX bytes or more, is answered by the system call at
    # once: its error is raised as os raises it, with nothing of uringloop's in its chain.
    for call in (lambda: running().stat(""), lambda: running().open_fd("x" * 5000)):
        with pytest.raises(OSError) as info:
            await call()
        assert info.value.__context__ is None


async def test_missing_file_is_file_not_found_with_filename(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "missing")
    with pytest.raises(FileNotFoundError) as info:
        await running().open_fd(path)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == path
    with pytest.raises(FileNotFoundError) as info:
        await running().stat(path)
    assert info.value.filename == path


async def test_directory_for_writing_is_is_a_directory(tmp_path: os.PathLike[str]) -> None:
    with pytest.raises(IsADirectoryError):
        await running().open_fd(tmp_path, os.O_WRONLY)


async def test_exclusive_create_of_existing_is_file_exists(data_file: tuple[str, bytes]) -> None:
    with pytest.raises(FileExistsError) as info:
        await running().open_fd(data_file[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert info.value.filename == data_file[0]


async def test_rename_error_names_both_paths(tmp_path: os.PathLike[str]) -> None:
    src = os.path.join(tmp_path, "nope")
    dst = os.path.join(tmp_path, "dst")
    with pytest.raises(FileNotFoundError) as info:
        await running().rename(src, dst)
    assert (info.value.filename, info.value.filename2) == (src, dst)


async def test_bad_fd_is_ebadf() -> None:
    loop = running()
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    for coro in (loop.pread(r, 10, 0), loop.pwrite(w, b"x", 0), loop.fsync(r), loop.fstat(r)):
        with pytest.raises(OSError) as info:
            await coro
        assert info.value.errno == errno.EBADF


async def test_argument_checks_come_before_anything_is_queued() -> None:
    """Refused as os.pread refuses them, and before anything reaches the kernel."""
    loop = running()
    before = loop.uring_stats().submitted
    with pytest.raises(OSError) as info:
        await loop.pread(0, -1, 0)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        await loop.pread(0, 10, -2)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        await loop.pread("0", 10, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await loop.pread(0, 1.5, 0)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        await loop.pread(2**40, 10, 0)
    with pytest.raises(OverflowError):
        await loop.pread(0, 10, 2**64)
    with pytest.raises(ValueError, match="null"):
        await loop.open_fd("a\0b")
    with pytest.raises(TypeError):
        await loop.open_fd(42.0)  # type: ignore[arg-type]
    assert loop.uring_stats().submitted == before


async def test_buffers_of_the_wrong_kind_are_refused(data_file: tuple[str, bytes]) -> None:
    """As os.preadv and os.pwrite refuse them: BufferError for a buffer that is read-only or
    not contiguous, TypeError for an object that is no buffer."""
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        data = b"immutable"
        with pytest.raises(BufferError, match="writable"):
            await loop.preadinto(fd, data, 0)  # a bytes object is never written into
        assert data == b"immutable"
        with pytest.raises(BufferError, match="writable"):
            await loop.preadinto(fd, memoryview(bytearray(4)).toreadonly(), 0)
        with pytest.raises(TypeError):
            await loop.preadinto(fd, [1, 2, 3], 0)
        with pytest.raises(TypeError):
            await loop.pwrite(fd, "text", 0)
        with pytest.raises(BufferError, match="contiguous"):
            await loop.preadinto(fd, memoryview(bytearray(8))[::2], 0)
    finally:
        os.close(fd)


async def test_huge_read_size_fails_cleanly(data_file: tuple[str, bytes]) -> None:
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        # Clamped to the kernel's MAX_RW_COUNT, like os.read: a short read, not a crash.
        data = await loop.pread(fd, 2**62, 0)
        assert data == data_file[1]
    finally:
        os.close(fd)


async def test_write_to_read_only_fd_is_ebadf(data_file: tuple[str, bytes]) -> None:
    loop = running()
    fd = os.open(data_file[0], os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            await loop.pwrite(fd, b"x", 0)
        assert info.value.errno == errno.EBADF
    finally:
        os.close(fd)


@pytest.mark.loops("uring")
async def test_operations_on_a_closed_loop_raise() -> None:
    other = uringloop.Loop()
    other.close()
    with pytest.raises(RuntimeError, match="closed"):
        other.threadsafe.nop()
    coro = other.nop()
    with pytest.raises(RuntimeError, match="closed"):
        coro.send(None)
    coro.close()


async def test_an_o_nonblocking_stream_answers_eagain_at_once_as_os_does() -> None:
    # io_uring's read of a pipe waits for data (and its write for room) whatever the
    # descriptor's flags; os.read and os.write of an O_NONBLOCK pipe raise BlockingIOError
    # (EAGAIN) at once, and so do the loop's operations at the file position, and their
    # thread-safe forms. A regular file opened O_NONBLOCK reads as before.
    loop = running()
    r, w = full_nonblocking_pipe()
    empty_r, empty_w = os.pipe()
    os.set_blocking(empty_r, False)
    buffer = bytearray(10)
    try:
        calls = {
            "pread": lambda: loop.pread(empty_r, 10),
            "preadinto": lambda: loop.preadinto(empty_r, buffer),
            "preadv": lambda: loop.preadv(empty_r, [buffer, bytearray(5)]),
            "pwrite": lambda: loop.pwrite(w, b"y"),
            "pwrite of a bytearray": lambda: loop.pwrite(w, bytearray(b"y")),
            "pwritev": lambda: loop.pwritev(w, [b"y", b"z"]),
            "threadsafe pread": lambda: asyncio.wrap_future(loop.threadsafe.pread(empty_r, 10)),
            "threadsafe pwrite": lambda: asyncio.wrap_future(loop.threadsafe.pwrite(w, b"y")),
        }
        for name, call in calls.items():
            with pytest.raises(BlockingIOError) as info:
                await asyncio.wait_for(call(), 5)
            assert info.value.errno == errno.EAGAIN, name
        assert buffer == bytearray(10)
        assert await loop.pread(r, 3) == b"xxx"  # (what is there is read, as before)
        os.write(empty_w, b"abc")
        assert await asyncio.wait_for(loop.preadv(empty_r, [buffer]), 5) == 3
        assert buffer[:3] == b"abc"
    finally:
        for fd in (r, w, empty_r, empty_w):
            os.close(fd)


async def test_a_regular_file_opened_o_nonblocking_is_read_at_its_position(
    data_file: tuple[str, bytes],
) -> None:
    # On the ring, or the fallback's pool: not by a read(2) in the loop's thread, which
    # O_NONBLOCK would not stop from waiting for the storage.
    path, data = data_file
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        loop = running()
        before = loop.uring_stats().submitted
        assert await loop.pread(fd, 100) == data[:100]
        buffer = bytearray(100)
        assert await loop.preadinto(fd, buffer) == 100
        assert buffer == data[100:200]
        assert loop.uring_stats().submitted == before + 2
    finally:
        os.close(fd)


async def test_a_stream_whose_o_nonblocking_is_cleared_meanwhile_still_answers_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The flag is looked at, then the call made: another thread or process sharing the
    # open file may clear O_NONBLOCK in between. The call still cannot wait (RWF_NOWAIT),
    # so the loop's thread is never held in read(2) or write(2). Here the descriptors
    # are blocking all along, and said to be O_NONBLOCK.
    loop = running()
    r, w = full_nonblocking_pipe()
    empty_r, empty_w = os.pipe()
    os.set_blocking(w, True)
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:  # (no room for one more datagram, even an empty one)
            sender.send(b"x")
    sender.setblocking(True)
    said = lambda fd, writes=False: STREAM_NOW  # noqa: E731  # (made_at_position: an O_NONBLOCK stream)
    monkeypatch.setattr(uringloop._loop, "made_at_position", said)
    monkeypatch.setattr(uringloop._ops.table, "made_at_position", said)
    released = threading.Event()

    def release() -> None:  # (a call that waits after all: let it go, and fail)
        if not released.wait(5):
            os.write(empty_w, b"late")
            os.read(r, 65536)
            receiver.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    receiver.recv(10)

    watchdog = threading.Thread(target=release)
    watchdog.start()
    try:
        for call in (
            lambda: loop.pread(empty_r, 10),
            lambda: loop.preadinto(empty_r, bytearray(10)),
            lambda: loop.preadv(empty_r, [bytearray(10)]),
            lambda: loop.pwrite(w, b"y"),
            lambda: loop.pwritev(w, [b"y"]),
            lambda: loop.pwrite(sender.fileno(), b""),  # (send(2), not write(2))
        ):
            with pytest.raises(BlockingIOError):
                await call()
    finally:
        released.set()
        watchdog.join()
        for fd in (r, w, empty_r, empty_w):
            os.close(fd)
        sender.close()
        receiver.close()


async def test_a_read_answered_at_once_too_large_for_memory_is_a_memory_error() -> None:
    # As os.read's: MemoryError, not the OSError (ENOMEM) of the mapping a large read
    # goes into. (In a child process, whose address space is limited.)
    script = """if True:
        import asyncio, os, resource, uringloop
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.write(w, b"abc")
        limit = 256 << 20
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + limit, size + limit))
        if True:
            loop = uringloop.Loop(use_uring=USE_URING)
            for size in (1 << 20, 2 * limit):
                try:
                    print(repr(loop.run_until_complete(loop.pread(r, size))[:3]))
                except BaseException as exc:
                    print(type(exc).__name__)
                os.write(w, b"abc")
            loop.close()
        """
    script = script.replace("USE_URING", str(running().uring_available))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["b'abc'", "MemoryError"], done.stderr


async def test_reads_too_large_for_memory_are_memory_errors_and_the_loop_goes_on() -> None:
    # A batch whose parts' buffers cannot be made (a part too large for what is left of
    # the address space) fails with MemoryError, as os.pread does, from a coroutine or a
    # thread; the loop goes on. (Before, the batch stayed at the head of the queue and its
    # error came out of every later loop iteration.) A single read too large: MemoryError
    # too, not the mapping's OSError (ENOMEM). In a child process, its address space
    # limited.
    script = """if True:
        import asyncio, os, resource, sys, tempfile, uringloop
        with tempfile.TemporaryFile() as sparse:
            sparse.truncate(1 << 30)
            fd = sparse.fileno()
            limit = 256 << 20
            with open("/proc/self/status") as status:
                size = next(
                    int(line.split()[1]) << 10 for line in status if line.startswith("VmSize")
                )
            resource.setrlimit(resource.RLIMIT_AS, (size + limit, size + limit))
            loop = uringloop.Loop(use_uring=USE_URING)
            huge = [(fd, 2 * limit, 0), (fd, 10, 0), (fd, 2 * limit, 1 << 29)]

            async def main():
                for call in (
                    lambda: loop.pread_many(huge),
                    lambda: asyncio.wrap_future(loop.threadsafe.pread_many(huge)),
                    lambda: loop.pread(fd, 2 * limit, 0),
                ):
                    try:
                        got = await call()
                    except BaseException as exc:
                        partial = getattr(exc, "partial", None)
                        print(type(exc).__name__, partial == [None, bytes(10), None])
                    else:
                        print("read", len(got))
                    print("then", await loop.pread(fd, 3, 0) == bytes(3))

            loop.run_until_complete(main())
            loop.close()
        """
    script = script.replace("USE_URING", str(running().uring_available))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        *("MemoryError", "True", "then", "True") * 2,  # (the batches: their part read too)
        *("MemoryError", "False", "then", "True"),
    ], done.stdout


async def test_a_slot_pool_without_memory_for_a_new_arena_has_no_slot_to_give() -> None:
    # As when its class is full: -1, and the read gets a buffer of its own (or, that
    # failing too, MemoryError), where the arena's OSError (ENOMEM) escaped the driver.
    script = """if True:
        import resource
        from uringloop._buffers import SLOT_SIZES, SlotPool
        pool = SlotPool()
        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 20), size + (1 << 20)))
        print(pool.alloc(SLOT_SIZES[-1]), pool.in_use())
        """
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-1", "0"]


async def test_a_failed_write_of_a_bytearray_lets_go_of_it_at_once() -> None:
    # The view a write takes of a bytearray is released when the write fails, not when
    # the collector frees the exception (a traceback cycle): the bytearray can be resized.
    loop = running()
    full_r, full_w = full_nonblocking_pipe()
    broken_r, broken_w = os.pipe()
    os.close(broken_r)
    gc.disable()
    try:
        for expected, fd in ((BlockingIOError, full_w), (BrokenPipeError, broken_w)):
            for write in (loop.pwrite, _threadsafe_pwrite):
                data = bytearray(b"abc")
                with pytest.raises(expected):
                    await asyncio.wait_for(write(fd, data), 5)
                data.extend(b"d")  # (BufferError while a view is exported)
    finally:
        gc.enable()
        for fd in (full_r, full_w, broken_w):
            os.close(fd)


def _threadsafe_pwrite(fd: int, data: bytearray) -> asyncio.Future[int]:
    return asyncio.wrap_future(running().threadsafe.pwrite(fd, data))


async def test_a_read_of_a_listening_socket_fails_at_once_as_os_read() -> None:
    # read(2) of a listening socket fails (ENOTCONN), while poll(2) says nothing until a
    # connection comes: a thread's read does not wait for it.
    loop = running()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        fd = listener.fileno()
        with pytest.raises(OSError) as expected:
            os.read(fd, 8)
        for call in (
            lambda: loop.pread(fd, 8),
            lambda: loop.preadinto(fd, bytearray(8)),
            lambda: loop.preadv(fd, [bytearray(8)]),
        ):
            with pytest.raises(OSError) as info:
                await asyncio.wait_for(call(), 5)
            assert info.value.errno == expected.value.errno == errno.ENOTCONN


async def test_calls_answered_at_once_match_os_at_the_edges() -> None:
    # A size far past what one read returns is clamped, as os.read's, and a large buffer
    # is not allocated whole for three bytes; a write of nothing reaches the socket, as
    # write(2)'s does (a datagram socket sends an empty datagram).
    loop = running()
    r, w = os.pipe()
    os.set_blocking(r, False)
    one, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    one.setblocking(False)
    other.setblocking(False)
    try:
        os.write(w, b"abc")
        ask = asyncio.wrap_future(loop.threadsafe.pread(r, 2**40))
        assert await asyncio.wait_for(ask, 5) == b"abc"
        os.write(w, b"def")
        tracemalloc.start()
        try:
            assert await asyncio.wait_for(loop.pread(r, 1 << 30), 5) == b"def"
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20
        for write in (loop.pwrite, _threadsafe_pwrite):
            assert await asyncio.wait_for(write(one.fileno(), bytearray()), 5) == 0
            assert other.recv(10) == b""
    finally:
        os.close(r)
        os.close(w)
        one.close()
        other.close()


async def test_a_thread_read_of_a_socket_leaves_it_blocking_under_a_default_timeout() -> None:
    # socket.setdefaulttimeout() makes every socket object made afterwards non-blocking,
    # one made for a descriptor (socket.socket(fileno=...)) too: looking at the socket
    # does not make one.
    loop = running()
    one, other = socket.socketpair()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        other.send(b"x")
        assert await asyncio.wait_for(loop.pread(one.fileno(), 10), 5) == b"x"
        assert os.get_blocking(one.fileno())
    finally:
        socket.setdefaulttimeout(previous)
        one.close()
        other.close()


@pytest.mark.parametrize("data", ["abc", 5, None, decimal.Decimal(1)], ids=repr)
async def test_data_that_is_not_bytes_like_is_refused_with_os_s_message(
    tmp_path: os.PathLike[str], data: object
) -> None:
    # The same TypeError and message as os.pwrite and os.preadv (the type quoted and named
    # as CPython names it), on the loop and through its thread-safe form.
    path = os.path.join(tmp_path, "f")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    loop: Any = running()
    try:
        with pytest.raises(TypeError) as expected:
            os.pwrite(fd, data, 0)  # type: ignore[arg-type]
        for write in (
            lambda: loop.pwrite(fd, data, 0),
            lambda: asyncio.wrap_future(loop.threadsafe.pwrite(fd, data, 0)),
        ):
            with pytest.raises(TypeError) as got:
                await write()
            assert str(got.value) == str(expected.value)
        with pytest.raises(TypeError) as expected:
            os.preadv(fd, [data], 0)  # type: ignore[list-item]
        with pytest.raises(TypeError) as got:
            await loop.preadinto(fd, data, 0)
        assert str(got.value) == str(expected.value)
    finally:
        os.close(fd)


async def test_nothing_moved_at_a_streams_position_is_the_system_calls() -> None:
    # write(2) of nothing reports what the stream refuses: EINVAL at an eventfd (which
    # takes 8 bytes); io_uring's WRITE of nothing returned 0 there. Elsewhere both give 0.
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    efd = os.eventfd(0)
    r, w = os.pipe()
    try:
        for data in (b"", bytearray()):
            with pytest.raises(OSError) as raised:
                await loop.pwrite(efd, data)
            assert raised.value.errno == errno.EINVAL
            assert await loop.pwrite(w, data) == 0
        # readv(2) and writev(2) of nothing return 0 (io_uring's read of nothing at an
        # eventfd was EINVAL); preadinto is readv's.
        assert os.readv(efd, [bytearray()]) == os.writev(efd, [b""]) == 0
        assert await loop.preadv(efd, [bytearray()]) == 0
        assert await loop.preadinto(efd, bytearray()) == 0
        assert await loop.pwritev(efd, [b""]) == 0
    finally:
        for fd in (efd, r, w):
            os.close(fd)
