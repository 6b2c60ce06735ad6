"""A whole small file's read copies what the page cache holds at once (preadv2 with
RWF_NOWAIT, as the kernel's inline attempt at a ring read does); what is not cached is
read on the ring."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import mmap
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import cancel_after, steps_of_another_task
from uringloop import _files, _loop, _mounts
from uringloop._loop import INLINE_PER_ITERATION

# Tests of a read cancelled while it waits for the device take a fresh file when the device
# answered within the loop step they give it (a fast disk, readahead already under way).
_ATTEMPTS = 5
_NEVER_IN_FLIGHT = f"the device answered every read within one loop step ({_ATTEMPTS} files)"


def _ring_operations() -> int:
    return asyncio.get_running_loop().uring_stats().submitted  # type: ignore[attr-defined]


def _closes(path: Path) -> int:
    """The ring operations a close of a file at `path` costs (test_close_inline.py)."""
    return 0 if _mounts.closes_inline(os.stat(path).st_dev) else 1


def _cold_file(path: Path, size: int) -> bytes:
    """Write `size` random bytes to `path` and evict its pages from the page cache
    (_evict); the bytes written."""
    data = os.urandom(size)
    path.write_bytes(data)
    _evict(path)
    return data


def _evict(path: Path) -> None:
    """Evict `path`'s pages from the page cache (written back first), or skip the test
    where the filesystem keeps them (tmpfs: the page cache is its storage). Checked with
    mincore(2), which brings nothing in (a read with RWF_NOWAIT, though refused, starts
    the readahead that caches the pages after it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if not _resident_pages(fd, os.fstat(fd).st_size):
            return
    finally:
        os.close(fd)
    pytest.skip(f"{path}'s filesystem keeps its pages in the page cache")


def refuse_copies(monkeypatch: pytest.MonkeyPatch, fds: set[int] | None = None) -> None:
    """Make the page cache's copies of `fds`' reads (of every descriptor's where None)
    answer EAGAIN, as the kernel's non-blocking read of a page not cached does. For tests
    whose files, though evicted, the device brought back within the non-blocking read
    itself (the read starts the readahead; a virtual disk backed by the host's page cache
    can answer before the read looks again): they run once more with this refusal, so
    what they check of the ring's route is checked on every machine."""
    real_one, real_many = _loop.read_cached, _loop.read_many_cached

    def refused(fd: int) -> bool:
        return fds is None or fd in fds

    def read_cached(fd: int, size: int, offset: int) -> bytes | int:
        return -errno.EAGAIN if refused(fd) else real_one(fd, size, offset)

    def read_many_cached(
        many: Any, sizes: Any, offsets: Any, limit: int, *ring: Any
    ) -> tuple[list[bytes], int]:
        first = next((i for i, fd in enumerate(many) if refused(fd)), len(many))
        if first >= limit:
            return real_many(many, sizes, offsets, limit, *ring)
        answers, stopped = real_many(many[:first], sizes[:first], offsets[:first], limit, *ring)
        return answers, (stopped if len(answers) < first or stopped else -errno.EAGAIN)

    monkeypatch.setattr(_loop, "read_cached", read_cached)
    monkeypatch.setattr(_loop, "read_many_cached", read_many_cached)
    monkeypatch.setattr(_files, "read_cached", read_cached)


async def reaches_the_ring(directory: Path, read: Callable[[Path, bool], Awaitable[bool]]) -> None:
    """Check a read of a file not cached: `read(path, refused)` evicts a file at `path`,
    reads it and answers whether the read went to the ring (checking what it took there).
    Up to _ATTEMPTS files read as they are; where the device answered each within the
    non-blocking read, one more with the page cache's copies refused (refuse_copies),
    which must go to the ring."""
    for attempt in range(_ATTEMPTS):
        if await read(directory / f"cold{attempt}.bin", False):
            return
    assert await read(directory / "refused.bin", True)


def _resident_pages(fd: int, size: int) -> int:
    """How many of the file's `size` bytes' pages the page cache holds: mincore(2) of a
    mapping of them (which faults nothing in)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long
    ]  # fmt: skip
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vector = ctypes.create_string_buffer(pages)
        if libc.mincore(address, size, vector):
            raise OSError(ctypes.get_errno(), "mincore")
        return sum(byte & 1 for byte in vector.raw[:pages])
    finally:
        libc.munmap(address, size)


def _partly_cached(path: Path, size: int, check: bool = True) -> bytes:
    """_cold_file, then its first two pages read back into the page cache and the rest
    left out; the bytes. `check`: skip the test where the kernel cached more, or nothing
    (the check's own non-blocking read may start readahead of the rest, though)."""
    data = _cold_file(path, size)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead past what is read
        os.pread(fd, 8192, 0)
        cached = os.preadv(fd, [bytearray(size)], 0, os.RWF_NOWAIT) if check else 1
    finally:
        os.close(fd)
    if not 0 < cached < size:
        pytest.skip(f"the kernel cached {cached} of {size} bytes, not a part")
    return data


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # what reaches the ring is the question
@pytest.mark.parametrize(("mode", "buffering"), [("r", -1), ("rb", -1), ("rb", 0)])
async def test_a_cached_small_file_is_read_without_a_ring_read(
    tmp_path: Path, mode: str, buffering: int, no_fd_leak: None
) -> None:
    path = tmp_path / "small.txt"
    path.write_text("line\n" * 1100)  # in the page cache: just written
    before = _ring_operations()
    async with uringloop.open(path, mode, buffering=buffering) as f:
        data = await f.read()
    assert data == ("line\n" * 1100 if mode == "r" else b"line\n" * 1100)
    # The open resolved from the dentry cache (test_open_inline.py) and the read copied
    # from the page cache: no ring operation (but the close, where it cannot be close(2)).
    assert _ring_operations() - before == _closes(tmp_path)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_file_not_cached_is_read_on_the_ring(
    tmp_path: Path, no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop: Any = asyncio.get_running_loop()

    async def on_the_ring(path: Path, refused: bool) -> bool:
        data = _cold_file(path, 300_000)
        if refused:
            refuse_copies(monkeypatch)
        async with uringloop.open(path, "rb") as f:
            # (The open itself may take no ring operation: the dentry cache answers it.)
            before = loop.uring_stats().submitted if isinstance(loop, uringloop.Loop) else 0
            assert await f.read() == data
            if not isinstance(loop, uringloop.Loop):
                return True
            return bool(loop.uring_stats().submitted - before >= 1)  # the read, at least

    await reaches_the_ring(tmp_path, on_the_ring)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_partly_cached_file_is_read_whole(tmp_path: Path, no_fd_leak: None) -> None:
    # Its first pages cached, the rest not: the cached bytes are copied at once, and the
    # read goes on from there on the ring.
    path = tmp_path / "half.bin"
    data = _partly_cached(path, 400_000)
    async with uringloop.open(path, "rb") as f:
        assert await f.read() == data
        assert await f.tell() == len(data)


def test_nothing_cached_or_an_error_reads_nothing(tmp_path: Path) -> None:
    copy = _files.read_cached  # the twin the files use: bytes, or -errno
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert copy(fd, 11, 0) == b"0123456789"  # short of the size: EOF
        assert copy(fd, 4, 3) == b"3456"
        assert copy(fd, 4, 100) == b""  # past EOF
    finally:
        os.close(fd)
    assert copy(fd, 4, 0) == -errno.EBADF  # left for the ring's read
    read_end, write_end = os.pipe()
    try:
        assert copy(read_end, 4, 0) == -errno.ESPIPE
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_descriptor_closed_behind_the_file_s_back_fails_as_the_built_in(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.txt"
    path.write_text("hello")
    builtin = open(path, "rb")  # noqa: SIM115
    os.close(builtin.fileno())
    with pytest.raises(OSError) as expected:
        builtin.read()
    with pytest.raises(OSError):
        builtin.close()
    assert expected.value.errno == errno.EBADF
    f = await uringloop.open(path, "rb")
    os.close(f.fileno())
    with pytest.raises(OSError) as info:
        await f.read()
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError):
        await f.close()


def _append_uncached(path: Path, extra: bytes) -> None:
    """Append `extra` to `path` so that the file's old pages are in the page cache and the
    new ones are not (as an O_DIRECT writer appending leaves them)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, extra)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    if _mounts.filesystem_of(os.stat(path).st_dev) == "tmpfs":
        pytest.skip(f"{path}'s filesystem keeps its pages in the page cache")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead past the old part
        os.pread(fd, os.fstat(fd).st_size - len(extra), 0)
    finally:
        os.close(fd)
    # (Not checked with a non-blocking read: that would start readahead of the new part.)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("mode", ["rb", "r"])
async def test_a_file_grown_past_its_size_at_open_is_read_whole(
    tmp_path: Path, mode: str, no_fd_leak: None
) -> None:
    # The size at open is a page multiple and the pages added since are not cached: the
    # copy from the page cache stops exactly at the old size, which is no EOF.
    path = tmp_path / "grows.bin"
    path.write_bytes(b"A" * 8192)
    with open(path, mode) as g:
        f = await uringloop.open(path, mode)
        try:
            _append_uncached(path, b"B" * 4096)
            got = await f.read()  # first: the built-in's read caches the new pages
            assert got == g.read()
            assert await f.tell() == g.tell() == 12288
        finally:
            await f.close()


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("buffering", [0, -1])
async def test_a_cancelled_read_leaves_the_position_where_it_was(
    tmp_path: Path, buffering: int, no_fd_leak: None
) -> None:
    # Cancelled while the part not cached is read, read() takes nothing: the position
    # stays, and the next read() returns the whole file.
    for attempt in range(_ATTEMPTS):
        path = tmp_path / f"part{attempt}.bin"
        data = _partly_cached(path, 400_000, check=False)
        async with uringloop.open(path, "rb", buffering=buffering) as f:
            cancelled, got = await cancel_after(f.read(), 1)
            if not cancelled:  # the device answered within the step: another file
                assert got == data
                continue
            assert await f.tell() == 0
            assert await f.read() == data
            return
    pytest.skip(_NEVER_IN_FLIGHT)


@pytest.mark.asyncio
@pytest.mark.loops("asyncio", "fallback")
async def test_off_the_ring_the_loop_thread_reads_nothing_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # Without the ring the loop thread would take on the readahead a non-blocking read
    # starts for pages not cached: whole reads go to the executor (or the pool) as before.
    calls: list[int] = []
    real = _files.read_cached

    def recording(fd: int, size: int, offset: int) -> bytes | int:
        calls.append(size)
        return real(fd, size, offset)

    monkeypatch.setattr(_files, "read_cached", recording)
    path = tmp_path / "f.txt"
    path.write_text("hello")
    async with uringloop.open(path) as f:
        assert await f.read() == "hello"
    assert calls == []


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("second", [-1, 300_000])
async def test_a_cancelled_buffered_read_gives_back_what_it_had_taken(
    tmp_path: Path, second: int, no_fd_leak: None
) -> None:
    # A read that takes the buffer's bytes, then waits for the file and is cancelled:
    # those bytes are read again by the next read, nothing is skipped.
    for attempt in range(_ATTEMPTS):
        path = tmp_path / f"part{attempt}.bin"
        data = _cold_file(path, 400_000)
        async with uringloop.open(path, "rb") as f:
            first = await f.read(10)  # fills the buffer: its rest is taken by the next read
            cancelled, got = await cancel_after(f.read(second), 1)
            if not cancelled:  # the device answered within the step: another file
                assert first + got == (data if second < 0 else data[: 10 + second])
                continue
            assert await f.tell() == 10
            assert first + await f.read() == data
            return
    pytest.skip(_NEVER_IN_FLIGHT)


@pytest.mark.asyncio
@pytest.mark.loops("uring")
async def test_a_task_reading_a_cached_file_in_a_loop_still_yields(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # Each copy from the page cache spends a turn of the iteration's budget (inline_turn);
    # once spent, the read goes through the ring and the loop's other work runs.
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 5000)
    async with steps_of_another_task() as other, uringloop.open(path, "rb", buffering=0) as f:
        for _ in range(10 * (INLINE_PER_ITERATION + 1)):
            await f.seek(0)
            assert len(await f.read()) == 5000
    assert other.steps >= 9


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # what reaches the ring is the question
async def test_a_cached_read_of_n_bytes_takes_no_ring_operation(
    tmp_path: Path, no_fd_leak: None
) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(20_000)
    path.write_bytes(data)  # in the page cache: just written
    async with uringloop.open(path, "rb", buffering=0) as f:
        before = _ring_operations()
        await f.seek(1000)
        assert await f.read(4096) == data[1000:5096]
        buf = bytearray(3000)
        assert await f.readinto(buf) == 3000 and buf == data[5096:8096]
        assert await f.read(50_000) == data[8096:]  # up to EOF, inside a page: no more
        assert _ring_operations() == before
        assert await f.tell() == len(data)
        assert await f.read(10) == b""  # at EOF: the ring's read says so
    async with uringloop.open(path, "rb") as g:  # buffered: its raw reads do the same
        before = _ring_operations()
        await g.seek(10_000)
        assert await g.read(100) == data[10_000:10_100]
        assert await g.read(5000) == data[10_100:15_100]
        assert _ring_operations() == before


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("into", [False, True])
async def test_a_read_of_n_bytes_partly_cached_is_whole(
    tmp_path: Path, into: bool, no_fd_leak: None
) -> None:
    # Its first pages cached, the rest not: the copy stops at the first page not cached,
    # and the rest of the read is done on the ring; the result is whole, as the built-in's.
    path = tmp_path / "half.bin"
    data = _partly_cached(path, 400_000)
    async with uringloop.open(path, "rb", buffering=0) as f:
        await f.seek(100)
        if into:
            buf = bytearray(100_000)
            assert await f.readinto(buf) == 100_000
            assert buf == data[100:100_100]
        else:
            assert await f.read(100_000) == data[100:100_100]
        assert await f.tell() == 100_100


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_read_of_n_bytes_past_pages_added_uncached_is_whole(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # The copy stops exactly at a page boundary, where the file goes on: no EOF.
    path = tmp_path / "grows.bin"
    path.write_bytes(b"A" * 8192)
    _append_uncached(path, b"B" * 4096)
    async with uringloop.open(path, "rb", buffering=0) as f:
        assert await f.read(12288) == b"A" * 8192 + b"B" * 4096


@pytest.mark.asyncio
@pytest.mark.loops("uring")
async def test_a_file_that_refuses_copies_is_asked_once(
    monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # tmpfs (here) answers a non-blocking read with EOPNOTSUPP: the file's reads then go
    # straight to the ring, for the file's life.
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    fd, name = tempfile.mkstemp(dir="/dev/shm")
    os.write(fd, b"x" * 10_000)
    os.close(fd)
    answers: list[Any] = []
    real = _files.read_cached
    monkeypatch.setattr(_files, "read_cached", lambda *a: answers.append(real(*a)) or answers[-1])
    the_loops: list[Any] = []  # nor does the loop's pread try the copy for it
    monkeypatch.setattr(uringloop._loop, "read_cached", lambda *a: the_loops.append(a) or -1)
    try:
        async with uringloop.open(name, "rb", buffering=0) as f:
            for offset in (0, 100, 4096):
                await f.seek(offset)
                assert await f.read(10) == b"x" * 10
                await asyncio.sleep(0)  # (a new loop iteration: the loop forgot what it saw)
        if answers and isinstance(answers[0], bytes):
            pytest.skip("/dev/shm takes non-blocking reads here")
        assert answers == [-errno.EOPNOTSUPP]
        assert the_loops == []
    finally:
        os.unlink(name)


@pytest.mark.asyncio
@pytest.mark.loops("uring")
@pytest.mark.parametrize("given", ["descriptor", "opener"])
async def test_an_o_direct_descriptor_the_file_was_not_told_of_is_never_copied_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str, no_fd_leak: None
) -> None:
    # Given as a descriptor, or opened by an opener that adds O_DIRECT: the file reads
    # as a buffered one (direct=False), but a non-blocking read there would still wait
    # for the device on the loop's thread: no copies.
    path = tmp_path / "f.bin"
    data = os.urandom(1 << 16)
    path.write_bytes(data)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    calls: list[Any] = []
    real = _files.read_cached
    monkeypatch.setattr(_files, "read_cached", lambda *a: calls.append(a) or real(*a))
    fd = -1
    try:
        if given == "descriptor":
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            f = await uringloop.open(fd, "rb", buffering=0, closefd=False)
        else:
            opener = lambda p, flags: os.open(p, flags | os.O_DIRECT)  # noqa: E731
            f = await uringloop.open(path, "rb", buffering=0, opener=opener)
        async with f:
            assert await f.read(4096) == data[:4096]  # (on the ring: into a pool slot)
        assert calls == []
    finally:
        if fd >= 0:
            os.close(fd)


@pytest.mark.asyncio
@pytest.mark.loops("uring")
@pytest.mark.parametrize("how", ["read(n)", "buffered read(n)"])
async def test_a_read_not_cached_tries_the_copy_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, no_fd_leak: None
) -> None:
    # The file object tries the page-cache copy itself; what it could not copy goes to
    # the loop's pread, which does not try the same copy again before the ring.
    path = tmp_path / "cold.bin"
    data = _cold_file(path, 300_000)
    ours: list[Any] = []
    the_loops: list[Any] = []
    for module, made in ((_files, ours), (uringloop._loop, the_loops)):
        real = module.read_cached
        monkeypatch.setattr(
            module, "read_cached", lambda *a, real=real, made=made: made.append(a) or real(*a)
        )
    buffering = -1 if how.startswith("buffered") else 0
    async with uringloop.open(path, "rb", buffering=buffering) as f:
        await f.seek(200_000)
        assert await f.read(5000) == data[200_000:205_000]
    assert ours, "the file tried no copy (the test needs one)"
    assert not {(fd, offset) for fd, _, offset in ours} & {
        (fd, offset) for fd, _, offset in the_loops
    }


@pytest.mark.asyncio
@pytest.mark.loops("uring")
async def test_a_read_past_the_budget_does_not_ask_the_loop_for_the_copy_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # The iteration's budget spent, the file's read goes to the ring; the loop's pread is
    # told the copy was decided, and does not look at the descriptor's flags to try it.
    path = tmp_path / "f.bin"
    data = os.urandom(20_000)
    path.write_bytes(data)
    looked: list[int] = []
    real = uringloop._loop.copies_cached
    monkeypatch.setattr(uringloop._loop, "copies_cached", lambda fd: looked.append(fd) or real(fd))
    loop = asyncio.get_running_loop()
    async with uringloop.open(path, "rb", buffering=0) as f:
        for how in ("read(n)", "readall"):
            await asyncio.sleep(0)  # a fresh iteration, with descriptors forgotten
            while loop.inline_turn():  # spend the budget
                pass
            await f.seek(1000)
            got = await (f.read(4096) if how == "read(n)" else f.read())
            assert got == (data[1000:5096] if how == "read(n)" else data[1000:])
            assert looked == [], how


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_tasks_reading_one_file_at_once_each_get_their_own_bytes(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # read(n)'s copies take no lock (nothing awaited), its ring reads do: with some reads
    # copied and some waiting for the device, four tasks reading one file at once still
    # read each byte once, each read whole at the position it found.
    path = tmp_path / "shared.bin"
    data = _cold_file(path, 400_000)
    chunk = 9_000
    pieces: list[bytes] = []
    async with uringloop.open(path, "rb", buffering=0) as f:

        async def reader() -> None:
            while piece := await f.read(chunk):
                pieces.append(piece)
                if len(pieces) % 3 == 0:
                    await asyncio.sleep(0)

        await asyncio.gather(*(reader() for _ in range(4)))
    offsets = sorted((data.find(piece), len(piece)) for piece in pieces)
    assert [offset for offset, _ in offsets] == list(range(0, len(data), chunk))
    assert all(n == min(chunk, len(data) - offset) for offset, n in offsets)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("buffering", [0, -1])
async def test_a_cancelled_readline_leaves_the_position_where_it_was(
    tmp_path: Path, buffering: int, no_fd_leak: None
) -> None:
    # A long line is read in several reads; cancelled after some came back and while
    # another waits for the device, readline() takes nothing: the position stays (raw),
    # or what it had taken goes back to the buffer (buffered), and the next readline()
    # returns the whole line.
    line = b"a" * 65_535 + b"\n"
    path = tmp_path / "lines.bin"
    took = 0
    for steps in range(1, 25):
        path.write_bytes(line + b"second\n")
        _evict(path)
        async with uringloop.open(path, "rb", buffering=buffering) as f:
            cancelled, got = await cancel_after(f.readline(), steps)
            if not cancelled:
                assert got == line
                continue
            took += 1
            assert await f.tell() == 0, steps
            assert await f.readline() == line, steps
            assert await f.readline() == b"second\n"
    if not took:
        pytest.skip(_NEVER_IN_FLIGHT)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_a_cancelled_buffered_readinto_gives_back_what_it_had_taken(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # readinto() takes the buffer's bytes into the caller's buffer, then waits for the
    # file and is cancelled: the bytes it had taken are read again by the next read.
    for attempt in range(_ATTEMPTS):
        path = tmp_path / f"into{attempt}.bin"
        data = _cold_file(path, 65_536)
        async with uringloop.open(path, "rb") as f:  # buffered: 8 KiB
            first = await f.read(10)  # fills the buffer: its rest goes into the next call
            _evict(path)
            buf = bytearray(10_000)
            cancelled, got = await cancel_after(f.readinto(buf), 1)
            if not cancelled:  # the device answered within the step: another file
                assert buf[:got] == data[10 : 10 + got]
                continue
            assert await f.tell() == 10
            assert first + await f.read() == data
            return
    pytest.skip(_NEVER_IN_FLIGHT)


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("buffering", [0, -1])
async def test_a_readinto_cancelled_while_a_thread_reads_raises_cancelled_error(
    buffering: int, no_fd_leak: None
) -> None:
    # An empty pipe: the read waits (off the ring, in a worker thread, which goes on
    # holding the caller's buffer). The cancellation comes out as such, not as the
    # BufferError of releasing a view the thread still writes through.
    r, w = os.pipe()
    try:
        async with uringloop.open(r, "rb", buffering=buffering, closefd=False) as f:
            buf = bytearray(100)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(f.readinto(buf), 0.05)
            os.write(w, b"x")  # (lets a worker thread's read return)
            await asyncio.sleep(0.05)
    finally:
        os.close(w)
        os.close(r)
