"""Loop.pread with an offset first copies what the page cache holds (hotpath.read_cached:
preadv2 with RWF_NOWAIT, the kernel's own first attempt at a ring READ), while the loop's
inline budget lasts; what is not cached is read on the ring. Not on O_DIRECT descriptors,
where even a non-blocking read waits for the device."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import steps_of_another_task
from tests.files.test_read_cached import (
    _cold_file,
    _partly_cached,
    reaches_the_ring,
    refuse_copies,
)
from tests.loop.test_open_inline import running, submitted
from uringloop import _loop
from uringloop._buffers import SLOT_SIZES
from uringloop._ops import hotpath

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring")]


@pytest.fixture(autouse=True, params=["as called", "vouched for"])
def vouched(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test twice: as written, and with every read at an offset of a regular file
    vouched for (known_seekable=True), which skips the look at the descriptor's position
    (an lseek per descriptor per loop iteration)."""
    if request.param == "as called":
        return
    real = _loop.Loop.pread

    def pread(self: Any, fd: Any, size: Any, offset: Any = -1, **kwargs: Any) -> Any:
        try:
            regular = type(fd) is int and type(offset) is int and offset >= 0
            regular = regular and stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        if regular:
            kwargs.setdefault("known_seekable", True)
        return real(self, fd, size, offset, **kwargs)

    monkeypatch.setattr(_loop.Loop, "pread", pread)


def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record each page-cache copy Loop.pread makes (the real one): (fd, bytes copied, or
    -errno)."""
    made: list[tuple[int, int]] = []
    real = _loop.read_cached

    def recording(fd: int, size: int, offset: int) -> bytes | int:
        head = real(fd, size, offset)
        made.append((fd, head if isinstance(head, int) else len(head)))
        return head

    monkeypatch.setattr(_loop, "read_cached", recording)
    return made


@pytest.fixture
def cached(tmp_path: Path) -> tuple[int, bytes]:
    """A descriptor of a file just written (in the page cache) that ends inside a page, and
    its bytes."""
    data = os.urandom((64 << 10) + 1000)
    path = tmp_path / "cached.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data  # type: ignore[misc]
    os.close(fd)


async def test_a_cached_read_takes_no_ring_operation(cached: tuple[int, bytes]) -> None:
    fd, data = cached
    loop = running()
    await asyncio.sleep(0)  # (a fresh budget)
    before, attempts = submitted(), loop.uring_stats().direct_attempts
    assert await loop.pread(fd, 4096, 8192) == data[8192:12288]
    assert await loop.pread(fd, 100, 5) == data[5:105]
    assert await loop.pread(fd, 100, len(data) - 10) == data[-10:]  # stopped inside a page
    assert await loop.pread(fd, 100, len(data)) == b""  # at EOF
    assert await loop.pread(fd, 100, len(data) + 5000) == b""  # past EOF
    assert await loop.pread(fd, 100, 1 << 20) == b""  # past EOF, at a page's start
    assert submitted() == before
    assert loop.uring_stats().direct_attempts == attempts + 6


async def test_a_read_ending_at_eof_on_a_page_boundary_is_whole(tmp_path: Path) -> None:
    # The copy stops at a page's end short of the size: EOF, or a page not cached. The
    # rest is asked of the ring, which says EOF.
    data = os.urandom(16384)
    path = tmp_path / "pages.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        before = submitted()
        assert await running().pread(fd, 8192, 12288) == data[12288:]
        assert submitted() == before + 1
    finally:
        os.close(fd)


async def test_the_position_read_is_the_ring_s(cached: tuple[int, bytes]) -> None:
    # offset -1 reads at the file position and moves it: a ring READ, never a copy.
    fd, data = cached
    loop = running()
    os.lseek(fd, 100, os.SEEK_SET)
    before, attempts = submitted(), loop.uring_stats().direct_attempts
    assert await loop.pread(fd, 10) == data[100:110]
    assert os.lseek(fd, 0, os.SEEK_CUR) == 110
    assert submitted() == before + 1
    assert loop.uring_stats().direct_attempts == attempts


async def test_a_read_not_cached_is_read_on_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def on_the_ring(path: Path, refused: bool) -> bool:
        data = _cold_file(path, 300_000)
        fd = os.open(path, os.O_RDONLY)
        try:
            before = submitted()
            if refused:
                refuse_copies(monkeypatch, {fd})
            assert await running().pread(fd, 8192, 65536) == data[65536 : 65536 + 8192]
            if submitted() == before:
                return False
            assert submitted() == before + 1
            return True
        finally:
            os.close(fd)

    await reaches_the_ring(tmp_path, on_the_ring)


async def test_a_partly_cached_read_copies_the_head_and_reads_the_rest_on_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "half.bin"
    data = _partly_cached(path, 400_000)  # its first two pages cached
    made = copies(monkeypatch)
    fd = os.open(path, os.O_RDONLY)
    try:
        before = submitted()
        assert await running().pread(fd, len(data), 0) == data
        if made == [(fd, len(data))]:  # the readahead _partly_cached's check started, done
            pytest.skip("the kernel cached the whole file meanwhile")
        assert made[0][1] > 0 and made[0][1] % 4096 == 0  # a head, up to a page's end
        assert submitted() == before + 1  # and one ring read for the rest
    finally:
        os.close(fd)


async def test_a_copy_from_inside_a_page_to_a_page_s_end_goes_on_on_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started inside the first page, the copy stops at the end of the second (the first
    # not cached comes next): short of the size at a page's end, which is not EOF.
    path = tmp_path / "half.bin"
    data = _partly_cached(path, 400_000)
    made = copies(monkeypatch)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert await running().pread(fd, 300_000, 100) == data[100:300_100]
        if made == [(fd, 300_000)]:  # the readahead _partly_cached's check started, done
            pytest.skip("the kernel cached the whole file meanwhile")
        assert made[0][1] > 0 and (100 + made[0][1]) % 4096 == 0
    finally:
        os.close(fd)


async def test_a_read_past_the_largest_pool_slot_is_the_ring_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its buffer would be allocated before the copy, whatever the file holds.
    data = os.urandom(SLOT_SIZES[-1] + 4096)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    made = copies(monkeypatch)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert await running().pread(fd, len(data), 0) == data
        assert made == []
        assert await running().pread(fd, SLOT_SIZES[-1], 0) == data[: SLOT_SIZES[-1]]
        assert made == [(fd, SLOT_SIZES[-1])]
    finally:
        os.close(fd)


@pytest.fixture
def refusing() -> Iterator[int]:
    """A descriptor of a file of 10,000 bytes "x" whose filesystem answers a non-blocking
    read with EOPNOTSUPP (tmpfs, here), or a skip."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    fd, path = tempfile.mkstemp(dir="/dev/shm")
    try:
        os.write(fd, b"x" * 10_000)
        if hotpath.read_cached(fd, 10, 0) != -errno.EOPNOTSUPP:
            pytest.skip("/dev/shm takes non-blocking reads here")
        yield fd
    finally:
        os.close(fd)
        os.unlink(path)


async def test_a_file_that_refuses_copies_is_not_asked_again_in_the_iteration(
    refusing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One attempt, then the descriptor's reads go straight to the ring until the next
    # loop iteration (a number reused unseen must not lose its copies for longer).
    fd = refusing
    made = copies(monkeypatch)
    loop = running()
    await asyncio.sleep(0)  # (a fresh iteration)
    got = await asyncio.gather(*(loop.pread(fd, 10, offset) for offset in (0, 100, 200)))
    assert got == [b"x" * 10] * 3
    assert made == [(fd, -errno.EOPNOTSUPP)]
    assert await loop.pread(fd, 10, 0) == b"x" * 10  # a later iteration: asked again
    assert made == [(fd, -errno.EOPNOTSUPP)] * 2


async def test_o_direct_reads_are_never_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A non-blocking read of an O_DIRECT file still waits for the device: such descriptors
    # read on the ring, whatever the page cache holds.
    path = tmp_path / "direct.bin"
    data = os.urandom(1 << 16)
    path.write_bytes(data)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    made = copies(monkeypatch)
    try:
        before = submitted()
        assert await running().pread(fd, 4096, 4096) == data[4096:8192]
        assert await running().pread(fd, 4096, 0) == data[:4096]
        assert submitted() == before + 2
        assert made == []
    finally:
        os.close(fd)


async def test_a_number_reused_for_o_direct_is_looked_at_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a descriptor number allowed is forgotten when uringloop closes or opens it: the
    # same number opened again with O_DIRECT in the same loop iteration reads on the ring.
    loop = running()
    path = tmp_path / "f.bin"
    data = os.urandom(1 << 16)
    path.write_bytes(data)
    fd = await loop.open_fd(path, os.O_RDONLY)
    assert await loop.pread(fd, 4096, 0) == data[:4096]  # copied: the number allowed it
    await loop.close_fd(fd)
    try:
        again = await loop.open_fd(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    try:
        assert again == fd, "the number was not reused (the test needs it)"
        made = copies(monkeypatch)
        before = submitted()
        assert await loop.pread(again, 4096, 4096) == data[4096:8192]
        assert submitted() == before + 1
        assert made == []
    finally:
        os.close(again)


async def test_reading_in_a_loop_still_yields(cached: tuple[int, bytes]) -> None:
    # Each copy takes a turn of the loop's inline budget: once it is spent, the read goes
    # to the ring and the coroutine yields to the loop's other work.
    fd, data = cached
    loop = running()
    reads = 10 * _loop.INLINE_PER_ITERATION
    async with steps_of_another_task() as other:
        for i in range(reads):
            offset = (i * 4096) % len(data)
            assert await loop.pread(fd, 4096, offset) == data[offset : offset + 4096]
    assert other.steps >= 9


async def test_without_a_turn_the_read_is_the_ring_s(
    cached: tuple[int, bytes], ring_only: None
) -> None:
    fd, data = cached
    before = submitted()
    assert await running().pread(fd, 4096, 0) == data[:4096]
    assert submitted() == before + 1


@pytest.mark.loops("fallback")
async def test_the_fallback_loop_reads_in_its_thread_pool(cached: tuple[int, bytes]) -> None:
    # No ring, no budget: the read goes to the pool, and still reads what the file holds.
    fd, data = cached
    loop: Any = asyncio.get_running_loop()
    assert await loop.pread(fd, 100, 50) == data[50:150]
    assert loop.uring_stats().direct_attempts == 0


async def test_bad_descriptors_fail_as_os_pread(tmp_path: Path) -> None:
    loop = running()
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(OSError) as espipe:
            await loop.pread(read_end, 10, 0)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert espipe.value.errno == 29  # ESPIPE, as os.pread
    with pytest.raises(OSError) as ebadf:
        await loop.pread(read_end, 10, 0)  # closed
    assert ebadf.value.errno == 9  # EBADF


# -- pread_many ----------------------------------------------------------------------------


async def test_a_cached_batch_takes_no_ring_operation(cached: tuple[int, bytes]) -> None:
    fd, data = cached
    loop = running()
    await asyncio.sleep(0)  # (a fresh budget)
    offsets = [0, 4096, 100, len(data) - 10, len(data) + 4096]
    before, attempts = submitted(), loop.uring_stats().direct_attempts
    got = await loop.pread_many([(fd, 4096, offset) for offset in offsets])
    assert got == [data[offset : offset + 4096] for offset in offsets]
    assert submitted() == before
    assert loop.uring_stats().direct_attempts == attempts + len(offsets)


async def test_a_batch_goes_on_on_the_ring_from_its_first_read_not_cached(
    tmp_path: Path, cached: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    hot, hot_data = cached

    async def on_the_ring(path: Path, refused: bool) -> bool:
        cold_data = _cold_file(path, 300_000)
        cold = os.open(path, os.O_RDONLY)
        try:
            if refused:
                refuse_copies(monkeypatch, {cold})
            requests = [(hot, 100, 0), (hot, 100, 4096), (cold, 100, 200_000), (hot, 100, 8192)]
            before = submitted()
            got = await running().pread_many(requests)
            assert got == [hot_data[:100], hot_data[4096:4196], cold_data[200_000:200_100],
                           hot_data[8192:8292]]  # fmt: skip
            if submitted() == before:
                return False
            assert submitted() == before + 2  # the cold read and the one after it, as a batch
            return True
        finally:
            os.close(cold)

    await reaches_the_ring(tmp_path, on_the_ring)


async def test_a_batch_with_a_position_read_or_o_direct_is_the_ring_s(
    tmp_path: Path, cached: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, data = cached
    made: list[Any] = []
    real = _loop.read_many_cached
    monkeypatch.setattr(_loop, "read_many_cached", lambda *a: made.append(a) or real(*a))
    loop = running()
    os.lseek(fd, 0, os.SEEK_SET)
    assert await loop.pread_many([(fd, 10, 50), (fd, 10, -1)]) == [data[50:60], data[:10]]
    path = tmp_path / "direct.bin"
    path.write_bytes(data[:8192])
    try:
        direct = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    try:
        got = await loop.pread_many([(fd, 4096, 0), (direct, 4096, 4096)])
        assert got == [data[:4096], data[4096:8192]]
    finally:
        os.close(direct)
    assert made == []


async def test_a_batch_with_the_budget_spent_copies_after_one_loop_iteration(
    cached: tuple[int, bytes],
) -> None:
    # Spent by other work: the batch waits one loop iteration (the budget is renewed at
    # its pre-select step) and copies then, rather than take the ring's round trips.
    fd, data = cached
    loop = running()
    while loop.inline_turn():
        pass
    before = submitted()
    async with steps_of_another_task() as other:
        got = await loop.pread_many([(fd, 100, offset) for offset in range(0, 6400, 100)])
        assert other.steps >= 1  # it yielded
    assert got == [data[offset : offset + 100] for offset in range(0, 6400, 100)]
    assert submitted() == before


async def test_reading_batches_in_a_loop_still_yields(cached: tuple[int, bytes]) -> None:
    fd, data = cached
    loop = running()
    batches = 10 * _loop.INLINE_PER_ITERATION // 16
    async with steps_of_another_task() as other:
        for _ in range(batches):
            got = await loop.pread_many([(fd, 4096, 4096 * k) for k in range(16)])
            assert got[3] == data[12288:16384]
    assert other.steps >= 9


async def test_the_default_loop_makes_inline_work(cached: tuple[int, bytes]) -> None:
    loop = running()
    assert loop.inline and loop.inline_turn()


async def test_a_batch_with_a_read_past_the_largest_pool_slot_is_the_ring_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(SLOT_SIZES[-1] + 4096)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    made: list[Any] = []
    real = _loop.read_many_cached
    monkeypatch.setattr(_loop, "read_many_cached", lambda *a: made.append(a) or real(*a))
    fd = os.open(path, os.O_RDONLY)
    try:
        got = await running().pread_many([(fd, 10, 0), (fd, len(data), 0)])
        assert got == [data[:10], data]
        assert made == []
    finally:
        os.close(fd)


async def test_a_batch_on_a_file_that_refuses_copies_asks_once_in_the_iteration(
    refusing: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = refusing
    stops: list[int] = []
    real = _loop.read_many_cached

    def recording(*columns: Any) -> tuple[list[bytes], int]:
        answers, stopped = real(*columns)
        stops.append(stopped)
        return answers, stopped

    monkeypatch.setattr(_loop, "read_many_cached", recording)
    loop = running()
    await asyncio.sleep(0)  # (a fresh iteration)
    batch = [(fd, 10, 0), (fd, 10, 100)]
    got = await asyncio.gather(*(loop.pread_many(batch) for _ in range(3)))
    assert got == [[b"x" * 10, b"x" * 10]] * 3
    assert stops == [-errno.EOPNOTSUPP]


async def test_cached_copy_false_reads_on_the_ring(
    cached: tuple[int, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, data = cached
    made = copies(monkeypatch)
    before = submitted()
    assert await running().pread(fd, 4096, 4096, cached_copy=False) == data[4096:8192]
    assert submitted() == before + 1
    assert made == []
