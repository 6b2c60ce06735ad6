"""read_many_cached()'s batches through a CopyRing, the small io_uring a loop's
pread_many copies through in the compiled twin: the same answers as the reference's
preadv2 calls; none in a forked child; closed when it fails, or with its loop."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import report_from_fork, run_python, twin
from uringloop._ops import hotpath

try:
    from uringloop._ops import _hotpath
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _hotpath = None  # type: ignore[assignment]

SIZE = 300_000
RUN = hotpath.COPY_RING_MIN  # the shortest run the compiled twin reads through its ring


def q(values: Any) -> array[int]:
    return array("q", values)


@pytest.fixture
def compiled() -> Any:
    return twin(_hotpath, "hot path")


@pytest.fixture
def file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A descriptor of a file of SIZE random bytes (in the page cache: just written), and
    the bytes."""
    path = tmp_path / "f.bin"
    data = os.urandom(SIZE)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def is_io_uring(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[io_uring]"
    except OSError:
        return False


def batch(fd: int, count: int, seed: int = 1) -> tuple[array[int], array[int], array[int]]:
    """`count` reads of `fd`: sizes of 1 byte to 8 KiB at offsets anywhere in the file,
    some of them across or past its end."""
    rng = random.Random(seed)
    sizes = [rng.choice((1, 100, 4096, 5000, 8192)) for _ in range(count)]
    offsets = [rng.choice((rng.randrange(SIZE), SIZE - 10, SIZE, SIZE + 4096)) for _ in sizes]
    return q([fd] * count), q(sizes), q(offsets)


def submitted(ring_fd: int) -> int:
    """How many SQEs the io_uring `ring_fd` has taken (its SqHead, from /proc)."""
    with open(f"/proc/self/fdinfo/{ring_fd}") as info:
        fields = dict(line.split(":", 1) for line in info if ":" in line)
    return int(fields["SqHead"])


def expected(data: bytes, sizes: array[int], offsets: array[int]) -> list[bytes]:
    return [data[offset : offset + size] for size, offset in zip(sizes, offsets, strict=True)]


@pytest.fixture
def ring(compiled: Any) -> Iterator[Any]:
    made = compiled.CopyRing()
    yield made
    made.close()


Batch = tuple["array[int]", "array[int]", "array[int]", tuple[list[bytes], int]]


@pytest.fixture
def batch64(file: tuple[int, bytes]) -> Batch:
    """64 reads of `file` (batch()'s columns), and read_many_cached's answer for them."""
    fd, data = file
    fds, sizes, offsets = batch(fd, 64)
    return fds, sizes, offsets, (expected(data, sizes, offsets), 0)


def test_a_batch_through_the_ring_copies_what_the_reference_copies(
    compiled: Any, ring: Any, file: tuple[int, bytes]
) -> None:
    fd, data = file
    assert is_io_uring(ring.fileno())
    entries = hotpath.COPY_RING_ENTRIES  # (64: the most one io_uring_enter makes)
    for count in (RUN, entries, entries + 1, entries + RUN, 200):  # one SQ's worth, or more
        fds, sizes, offsets = batch(fd, count, seed=count)
        before = submitted(ring.fileno())
        got = compiled.read_many_cached(fds, sizes, offsets, count, ring)
        # Through the ring, `entries` at a time, but a last run shorter than RUN: preadv2s.
        runs = [min(entries, count - start) for start in range(0, count, entries)]
        assert submitted(ring.fileno()) == before + sum(run for run in runs if run >= RUN)
        assert got == hotpath.read_many_cached(fds, sizes, offsets, count, hotpath.CopyRing())
        assert got == (expected(data, sizes, offsets), 0)
    fds, sizes, offsets = batch(fd, RUN - 1)
    before = submitted(ring.fileno())
    assert compiled.read_many_cached(fds, sizes, offsets, RUN - 1, ring)[1] == 0
    assert submitted(ring.fileno()) == before  # a shorter run: preadv2 calls
    assert hotpath.CopyRing().fileno() == -1  # (the reference's copies are preadv2 calls)


def test_a_batch_through_the_ring_stops_where_the_reference_does(
    compiled: Any, ring: Any, file: tuple[int, bytes], tmp_path: Path
) -> None:
    fd, data = file
    directory = os.open(tmp_path, os.O_RDONLY)
    try:
        # (a directory: no ring read, preadv2's answer: EOPNOTSUPP here, or EISDIR)
        for bad, errors in ((999, {errno.EBADF}), (directory, {errno.EOPNOTSUPP, errno.EISDIR})):
            fds, sizes, offsets = batch(fd, 40)
            fds[17] = bad
            answers = compiled.read_many_cached(fds, sizes, offsets, 40, ring)
            assert answers == hotpath.read_many_cached(fds, sizes, offsets, 40)
            assert answers[0] == expected(data, sizes, offsets)[:17]
            assert -answers[1] in errors
        fds, sizes, offsets = batch(fd, 100)
        assert compiled.read_many_cached(fds, sizes, offsets, 30, ring) == (
            expected(data, sizes, offsets)[:30],
            0,
        )  # the limit
        sizes[20] = 0  # b"" without a read: runs of the ring on either side
        got = compiled.read_many_cached(fds, sizes, offsets, 100, ring)
        assert got == hotpath.read_many_cached(fds, sizes, offsets, 100)
        assert got == (expected(data, sizes, offsets), 0)
        assert got[0][20] == b""
    finally:
        os.close(directory)
    assert is_io_uring(ring.fileno())  # (an error is no failure of the ring)


def test_a_file_that_cannot_say_without_waiting_answers_as_the_reference(
    compiled: Any, ring: Any
) -> None:
    fd = os.open("/proc/self/stat", os.O_RDONLY)  # (procfs: no non-blocking read)
    try:
        fds, sizes, offsets = q([fd] * 20), q([10] * 20), q([0] * 20)
        got = compiled.read_many_cached(fds, sizes, offsets, 20, ring)
        assert got == hotpath.read_many_cached(fds, sizes, offsets, 20)
        assert got == ([], -errno.EOPNOTSUPP)
    finally:
        os.close(fd)


def test_a_closed_ring_or_none_leaves_the_copies_to_preadv2(
    compiled: Any, ring: Any, batch64: Batch
) -> None:
    fds, sizes, offsets, whole = batch64
    number = ring.fileno()
    ring.close()
    assert ring.fileno() == -1 and not is_io_uring(number)
    ring.close()  # (again: nothing)
    assert compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole
    assert compiled.read_many_cached(fds, sizes, offsets, 64, None) == whole
    assert compiled.read_many_cached(fds, sizes, offsets, 64) == whole
    assert compiled.read_many_cached(fds, sizes, offsets, 64, "not a ring") == whole
    with pytest.raises(TypeError):
        compiled.CopyRing(1)


def test_a_forked_child_does_not_use_its_parent_s_ring(
    compiled: Any, ring: Any, batch64: Batch
) -> None:
    # Its maps are the parent's ring, shared memory: the child's copies are preadv2 calls.
    fds, sizes, offsets, whole = batch64
    assert compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole
    parents = ring.fileno()

    def child() -> bytes:
        report = [ring.fileno() == -1]
        report.append(compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole)
        ring.close()  # (the child's copy of the descriptor)
        return bytes(report)

    assert list(report_from_fork(child)) == [1, 1]
    assert ring.fileno() == parents and is_io_uring(parents)  # the parent's still works
    assert compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole


def test_a_ring_that_fails_is_closed_and_the_copies_go_on(
    compiled: Any, ring: Any, batch64: Batch
) -> None:
    fds, sizes, offsets, whole = batch64
    number = ring.fileno()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, number)  # its descriptor is no io_uring any more: its enter fails
    os.close(null)
    assert compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole  # by preadv2
    assert ring.fileno() == -1  # closed, and not made again
    assert not os.path.exists(f"/proc/self/fd/{number}")  # (the dup in its place, closed)
    assert compiled.read_many_cached(fds, sizes, offsets, 64, ring) == whole


def test_where_no_ring_can_be_made_the_copies_are_preadv2_calls(
    compiled: Any, tmp_path: Path
) -> None:
    # A process out of descriptors: io_uring_setup fails (EMFILE), and the batch is
    # copied all the same.
    (tmp_path / "data").write_bytes(os.urandom(2000))
    program = """
import os, resource, sys
from array import array
from uringloop._ops import _hotpath
fd = os.open(sys.argv[1], os.O_RDONLY)
fds, sizes, offsets = array("q", [fd] * 20), array("q", [100] * 20), array("q", range(0, 2000, 100))
highest = max(int(name) for name in os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 1, highest + 1))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
ring = _hotpath.CopyRing()
got = _hotpath.read_many_cached(fds, sizes, offsets, 20, ring)
print(got == ([os.pread(fd, 100, o) for o in offsets], 0), ring.fileno())
"""
    out = run_python(tmp_path, program)
    assert out.stdout.split() == ["True", "-1"], out.stderr


@pytest.mark.asyncio
@pytest.mark.loops("uring")
async def test_pread_many_copies_a_cached_batch_through_the_loop_s_ring(
    file: tuple[int, bytes],
) -> None:
    fd, data = file
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    fds, sizes, offsets = batch(fd, 64, seed=7)
    requests = list(zip(fds, sizes, offsets, strict=True))
    before = loop.uring_stats().submitted
    rings = rings_open()
    assert await loop.pread_many(requests[: RUN - 1]) == expected(data, sizes, offsets)[: RUN - 1]
    assert rings_open() == rings  # too few for the copy ring: none made
    assert await loop.pread_many(requests) == expected(data, sizes, offsets)
    assert loop.uring_stats().submitted == before  # copies: the loop's own ring not used
    made = rings_open() - rings
    assert len(made) == (1 if hotpath.COPY_RING is not hotpath.CopyRing else 0)
    assert all(submitted(ring) == 64 for ring in made)
    assert await loop.pread_many(requests) == expected(data, sizes, offsets)
    assert rings_open() - rings == made  # (one for the loop's life; closed with it)


def rings_open() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd") if is_io_uring(int(name))}


def test_the_loop_s_copy_ring_is_closed_with_the_loop(file: tuple[int, bytes]) -> None:
    fd, data = file
    fds, sizes, offsets = batch(fd, 64, seed=3)
    requests = list(zip(fds, sizes, offsets, strict=True))
    loop = uringloop.Loop()
    try:
        if not loop.uring_available:
            pytest.skip("no io_uring here")
        rings = rings_open()
        assert loop.run_until_complete(loop.pread_many(requests)) == expected(data, sizes, offsets)
        made = rings_open() - rings
        assert len(made) == (1 if hotpath.COPY_RING is not hotpath.CopyRing else 0)
    finally:
        loop.close()
    assert not any(is_io_uring(ring) for ring in made)  # the loop still referenced here


def test_a_copy_stopping_at_a_page_s_end_stops_the_batch_as_the_reference_s(
    compiled: Any, ring: Any, tmp_path: Path
) -> None:
    # A file of 20 pages: the read of 2 pages at its last page copies one, and stops at a
    # page's end, short of its size: not whole (the next page may be one not cached).
    data = os.urandom(4096 * 20)
    path = tmp_path / "pages.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        sizes = q([4096] * 15 + [8192] + [4096] * 5)
        offsets = q([4096 * k for k in range(15)] + [4096 * 19] + [0] * 5)
        fds = q([fd] * 21)
        got = compiled.read_many_cached(fds, sizes, offsets, 21, ring)
        assert got == hotpath.read_many_cached(fds, sizes, offsets, 21)
        assert got == ([data[4096 * k : 4096 * (k + 1)] for k in range(15)], 0)
    finally:
        os.close(fd)


def test_a_descriptor_without_offsets_is_not_read_through_the_ring(
    compiled: Any, ring: Any
) -> None:
    # io_uring's READ of a pipe ignores the offset and takes what the pipe holds, where
    # preadv2 fails with ESPIPE: such a descriptor's requests are left to preadv2.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b"x" * 1000)
        fds, sizes, offsets = q([read_end] * 20), q([10] * 20), q([0] * 20)
        before = submitted(ring.fileno())
        got = compiled.read_many_cached(fds, sizes, offsets, 20, ring)
        assert got == hotpath.read_many_cached(fds, sizes, offsets, 20) == ([], -errno.ESPIPE)
        assert submitted(ring.fileno()) == before
        assert os.read(read_end, 2000) == b"x" * 1000  # all still there
    finally:
        os.close(read_end)
        os.close(write_end)


def test_threads_sharing_a_ring_take_turns_and_a_close_is_left_to_the_call(
    compiled: Any, tmp_path: Path
) -> None:
    # Between two runs of a call the GIL is released (a copy of 64 KiB or more): another
    # thread's call then copies with preadv2 rather than through the ring in use, and a
    # close() from another thread closes the ring when that call ends, not under it.
    # In a process of its own: what this guards against is a crash or a hang.
    (tmp_path / "data").write_bytes(os.urandom(8 << 20))
    program = """
import os, sys, threading
from array import array
from uringloop._ops import _hotpath
fd = os.open(sys.argv[1], os.O_RDONLY)
data = os.pread(fd, 8 << 20, 0)
fds = array("q", [fd] * 202)
sizes = array("q", [4 << 20, 0] + [4096] * 200)
offsets = array("q", [0, 0] + [4096 * k for k in range(200)])
whole = ([data[: 4 << 20], b""] + [data[4096 * k : 4096 * (k + 1)] for k in range(200)], 0)
shared = [_hotpath.CopyRing()]
bad = []
stop = False

def reader():
    for _ in range(150):
        if _hotpath.read_many_cached(fds, sizes, offsets, 202, shared[0]) != whole:
            bad.append(1)

def closer():
    while not stop:
        old = shared[0]
        shared[0] = _hotpath.CopyRing()
        old.close()

threads = [threading.Thread(target=reader) for _ in range(2)]
closing = threading.Thread(target=closer)
closing.start()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
stop = True
closing.join()
shared[0].close()

def is_ring(name):
    try:
        return os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[io_uring]"
    except OSError:
        return False

rings = [name for name in os.listdir("/proc/self/fd") if is_ring(name)]
print("ok" if not bad and not rings else f"{len(bad)} wrong, {len(rings)} rings open")
"""
    out = run_python(tmp_path, program)
    assert (out.returncode, out.stdout.strip()) == (0, "ok"), out.stderr


def test_a_forked_child_closes_its_copy_of_a_ring_its_parent_was_using(
    compiled: Any, tmp_path: Path
) -> None:
    # Forked while another thread's call held the ring (busy): no thread of the child
    # will end that call, so the child's close() closes its copy at once.
    (tmp_path / "data").write_bytes(os.urandom(4 << 20))
    program = """
import os, sys, threading, time, warnings
from array import array
from uringloop._ops import _hotpath
warnings.simplefilter("ignore", DeprecationWarning)
fd = os.open(sys.argv[1], os.O_RDONLY)
os.pread(fd, 4 << 20, 0)
fds, sizes = array("q", [fd] * 64), array("q", [65536] * 64)
offsets = array("q", [65536 * k for k in range(64)])
ring = _hotpath.CopyRing()
number = ring.fileno()
stop = False

def reader():
    while not stop:
        _hotpath.read_many_cached(fds, sizes, offsets, 64, ring)

thread = threading.Thread(target=reader)
thread.start()
left_open = 0
for _ in range(10):
    time.sleep(0.01)
    pid = os.fork()
    if pid == 0:
        ring.close()
        os._exit(1 if os.path.exists(f"/proc/self/fd/{number}") else 0)
    left_open += os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
stop = True
thread.join()
print(left_open)
"""
    out = run_python(tmp_path, program)
    assert (out.returncode, out.stdout.strip()) == (0, "0"), out.stderr


def test_only_the_first_descriptors_a_call_names_are_looked_at(
    compiled: Any, ring: Any, file: tuple[int, bytes]
) -> None:
    # An fstat each for the first 8; the requests of the others are preadv2 calls.
    fd, data = file
    many = [os.dup(fd) for _ in range(9)]
    try:
        sizes, offsets = q([100] * 90), q([1000 * k for k in range(90)])
        whole = ([data[offset : offset + 100] for offset in offsets], 0)
        for names, through_ring in ((many[:8], True), (many, False)):
            fds = q([names[k % len(names)] for k in range(90)])
            before = submitted(ring.fileno())
            assert compiled.read_many_cached(fds, sizes, offsets, 90, ring) == whole
            assert (submitted(ring.fileno()) > before) == through_ring
    finally:
        for one in many:
            os.close(one)
