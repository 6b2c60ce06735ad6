"""Every file operation of the loop, on io_uring and on the thread-pool fallback."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import uringloop

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring", "fallback")]


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


async def test_uring_available_matches_the_mode() -> None:
    loop = running()
    assert loop.uring_available == (loop._driver.uses_ring)  # type: ignore[union-attr]


async def test_nop() -> None:
    assert await running().nop() is None


async def test_pread_at_offsets(data_file: tuple[str, bytes], no_fd_leak: None) -> None:
    path, data = data_file
    loop = running()
    fd = await loop.open_fd(path)
    try:
        assert await loop.pread(fd, 4096, 0) == data[:4096]
        assert await loop.pread(fd, 100, 12345) == data[12345:12445]
        assert await loop.pread(fd, 200_000, 7) == data[7:200_007]  # larger than a pool slot
        assert await loop.pread(fd, 4096, len(data) - 10) == data[-10:]  # short at EOF
        assert await loop.pread(fd, 4096, len(data) + 10) == b""
        assert await loop.pread(fd, 0, 0) == b""
    finally:
        await loop.close_fd(fd)


async def test_pread_at_file_position(data_file: tuple[str, bytes], no_fd_leak: None) -> None:
    path, data = data_file
    loop = running()
    fd = await loop.open_fd(path)
    try:
        assert await loop.pread(fd, 10) == data[:10]
        assert await loop.pread(fd, 10, -1) == data[10:20]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 20
    finally:
        await loop.close_fd(fd)


async def test_pread_many_in_order(data_file: tuple[str, bytes], no_fd_leak: None) -> None:
    path, data = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    try:
        offsets = [(i * 7919) % (len(data) - 4096) for i in range(500)]
        chunks = await loop.pread_many([(fd, 4096, off) for off in offsets])
        assert chunks == [data[off : off + 4096] for off in offsets]
        assert await loop.pread_many([]) == []
        mixed = await loop.pread_many([(fd, 100_000, 1), (fd, 5, 2)])
        assert mixed == [data[1:100_001], data[2:7]]
    finally:
        os.close(fd)


async def test_pread_many_checks_every_request(data_file: tuple[str, bytes]) -> None:
    path, data = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    try:
        # Each request is checked as os.pread checks its arguments.
        with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
            await loop.pread_many([(fd, 10, 0), (float(fd), 10, 0)])
        with pytest.raises(TypeError, match=r"\(fd, size, offset\) tuple"):
            await loop.pread_many([(fd, 10, 0), (fd, 10)])
        with pytest.raises(OSError) as info:
            await loop.pread_many([(fd, 10, -2)])
        assert info.value.errno == errno.EINVAL
        with pytest.raises(OverflowError):
            await loop.pread_many([(fd, 10, 2**63)])
        with pytest.raises(TypeError, match=r"\(fd, size, offset\) tuple"):
            await loop.pread_many([fd])
        with pytest.raises(OSError) as info:
            await loop.pread_many(iter([(fd, -1, 0)]))
        assert info.value.errno == errno.EINVAL
        assert await loop.pread_many(iter([(fd, 3, 2)])) == [data[2:5]]
        # A generator, and an int subclass, are accepted as os.pread accepts them.
        got = await loop.pread_many((fd, n, True) for n in (3, 4))
        assert got == [data[1:4], data[1:5]]
        assert loop._pool.in_use() == 0
    finally:
        os.close(fd)


async def test_pread_many_raises_first_failure_after_all(data_file: tuple[str, bytes]) -> None:
    path, _ = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as info:
            await loop.pread_many([(fd, 10, 0), (987654, 10, 0), (fd, 10, 5)])
        assert info.value.errno == 9  # EBADF
        assert loop.uring_stats().in_flight == 0
    finally:
        os.close(fd)


async def test_preadinto_and_preadv(data_file: tuple[str, bytes], no_fd_leak: None) -> None:
    path, data = data_file
    loop = running()
    fd = await loop.open_fd(path)
    try:
        buf = bytearray(1000)
        assert await loop.preadinto(fd, buf, 500) == 1000
        assert buf == data[500:1500]
        view = memoryview(bytearray(64))[8:24]
        assert await loop.preadinto(fd, view, 3) == 16
        assert view.tobytes() == data[3:19]
        a, b = bytearray(3), bytearray(5)
        assert await loop.preadv(fd, [a, b], 10) == 8
        assert bytes(a + b) == data[10:18]
    finally:
        await loop.close_fd(fd)


async def test_write_paths(tmp_path: os.PathLike[str], no_fd_leak: None) -> None:
    loop = running()
    path = os.path.join(tmp_path, "out")
    fd = await loop.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        assert await loop.pwrite(fd, b"hello", 0) == 5
        assert await loop.pwrite(fd, bytearray(b"__"), 5) == 2
        assert await loop.pwrite(fd, memoryview(b"xyz")[1:], 7) == 2
        assert await loop.pwritev(fd, [b"ab", b"cd"], 9) == 4
        await loop.pwrite_all(fd, b"Z" * 300_000, 13)
        await loop.fsync(fd)
        await loop.fdatasync(fd)
        with open(path, "rb") as f:
            assert f.read() == b"hello__yzabcd" + b"Z" * 300_000
        assert (await loop.fstat(fd)).st_size == 13 + 300_000
        await loop.ftruncate(fd, 4)
        await loop.fallocate(fd, 0, 1 << 20)
        st = await loop.fstat(fd)
        assert st.st_size == 1 << 20
        assert st.st_mode & 0o777 == 0o600
    finally:
        await loop.close_fd(fd)


async def test_append_at_file_position(tmp_path: os.PathLike[str], no_fd_leak: None) -> None:
    loop = running()
    path = os.path.join(tmp_path, "log")
    fd = await loop.open_fd(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        await loop.pwrite(fd, b"one,")
        await loop.pwrite(fd, b"two")
    finally:
        await loop.close_fd(fd)
    with open(path, "rb") as f:
        assert f.read() == b"one,two"


async def test_stat_matches_os_stat(data_file: tuple[str, bytes]) -> None:
    path, data = data_file
    loop = running()
    ours = await loop.stat(path)
    theirs = os.stat(path)
    for field in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.st_mtime_ns == theirs.st_mtime_ns
    sx = await loop.statx(path)
    assert sx.size == len(data) and sx.is_file() and not sx.is_dir()


async def test_stat_times_as_floats_are_os_stats_to_the_last_bit(tmp_path: Path) -> None:
    # Small seconds show the rounding: os.stat computes sec + nsec * 1e-9.
    path = tmp_path / "old"
    path.write_bytes(b"")
    loop = running()
    for ns in (157_511_828, 1_157_511_828, 1_700_000_000_123_456_789, 999_999_999):
        os.utime(path, ns=(ns, ns))
        ours, theirs = await loop.stat(path), os.stat(path)
        assert (ours.st_atime, ours.st_mtime) == (theirs.st_atime, theirs.st_mtime), ns
        assert ours.st_ctime == theirs.st_ctime


async def test_directory_operations(tmp_path: os.PathLike[str]) -> None:
    loop = running()
    base = os.fspath(tmp_path)
    d = os.path.join(base, "d")
    await loop.mkdir(d, 0o755)
    assert stat.S_ISDIR((await loop.stat(d)).st_mode)
    f = os.path.join(d, "f")
    with open(f, "w") as fh:
        fh.write("x")
    await loop.symlink(f, os.path.join(base, "sym"))
    assert os.readlink(os.path.join(base, "sym")) == f
    lst = await loop.stat(os.path.join(base, "sym"), follow_symlinks=False)
    assert stat.S_ISLNK(lst.st_mode)
    await loop.link(f, os.path.join(base, "hard"))
    assert os.stat(f).st_nlink == 2
    await loop.rename(f, os.path.join(base, "moved"))
    assert os.path.exists(os.path.join(base, "moved")) and not os.path.exists(f)
    await loop.unlink(os.path.join(base, "moved"))
    await loop.unlink(os.path.join(base, "hard"))
    await loop.unlink(os.path.join(base, "sym"))
    await loop.rmdir(d)
    assert os.listdir(base) == []


async def test_dir_fd_relative_paths(tmp_path: os.PathLike[str], no_fd_leak: None) -> None:
    loop = running()
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = await loop.open_fd("rel.txt", os.O_WRONLY | os.O_CREAT, dir_fd=dfd)
        await loop.pwrite(fd, b"rel", 0)
        await loop.close_fd(fd)
        assert (await loop.stat("rel.txt", dir_fd=dfd)).st_size == 3
        await loop.rename("rel.txt", "rel2.txt", src_dir_fd=dfd, dst_dir_fd=dfd)
        await loop.unlink("rel2.txt", dir_fd=dfd)
        assert os.listdir(tmp_path) == []
    finally:
        os.close(dfd)


async def test_paths_as_bytes_and_pathlike(tmp_path: os.PathLike[str], no_fd_leak: None) -> None:
    import pathlib

    loop = running()
    p = pathlib.Path(tmp_path) / "p.txt"
    p.write_bytes(b"abc")
    for path in (p, os.fsencode(p), str(p)):
        fd = await loop.open_fd(path)
        assert await loop.pread(fd, 3, 0) == b"abc"
        await loop.close_fd(fd)


async def test_opened_fd_is_cloexec(data_file: tuple[str, bytes], no_fd_leak: None) -> None:
    loop = running()
    fd = await loop.open_fd(data_file[0])
    try:
        assert not os.get_inheritable(fd)
    finally:
        await loop.close_fd(fd)


async def test_threadsafe_from_loop_thread_does_not_block(data_file: tuple[str, bytes]) -> None:
    path, data = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    try:
        cf = loop.threadsafe.pread(fd, 10, 0)
        assert await asyncio.wrap_future(cf) == data[:10]
    finally:
        os.close(fd)


@pytest.mark.loops("uring")
async def test_lone_reads_complete_without_a_loop_iteration_but_still_yield(
    data_file: tuple[str, bytes], ring_only: None
) -> None:
    from uringloop._loop import EAGER_PER_ITERATION

    path, data = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    try:
        await loop.pread(fd, 4096, 0)  # warm the page cache
        # Count the loop iterations that ran the pre-select step (the slow path of the
        # selector: every iteration with file work queued or in flight).
        selector = loop._selector
        pre_select = selector._before
        steps = [0]

        def counting(timeout: float | None) -> float | None:
            steps[0] += 1
            return pre_select(timeout)  # type: ignore[misc]

        seen_by_other_task: list[int] = []
        done = [0]
        loop.call_soon(lambda: seen_by_other_task.append(done[0]))
        reads = 10 * EAGER_PER_ITERATION
        selector._before = counting
        try:
            for i in range(reads):
                assert await loop.pread(fd, 100, i * 100) == data[i * 100 : i * 100 + 100]
                done[0] = i + 1
        finally:
            selector._before = pre_select
        iterations = steps[0]
    finally:
        os.close(fd)
    # Most reads needed no loop iteration of their own ...
    assert iterations < reads // 2
    # ... yet the loop kept turning, and other callbacks ran while the reads went on.
    assert iterations >= reads // EAGER_PER_ITERATION - 1
    assert seen_by_other_task and seen_by_other_task[0] < reads


async def test_stat_of_a_descriptor_refuses_and_names_as_os_stat(tmp_path: Path) -> None:
    loop = running()
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        unused = os.dup(fd)
        os.close(unused)
        for kwargs in ({"dir_fd": fd}, {"follow_symlinks": False}):
            with pytest.raises(ValueError) as ours:
                await loop.stat(fd, **kwargs)
            with pytest.raises(ValueError) as theirs:
                os.stat(fd, **kwargs)
            assert str(ours.value) == str(theirs.value)
        with pytest.raises(OSError) as ours_:
            await loop.stat(unused)
        with pytest.raises(OSError) as theirs_:
            os.stat(unused)
        assert (ours_.value.errno, ours_.value.filename) == (theirs_.value.errno, unused)
        assert theirs_.value.filename == unused
    finally:
        os.close(fd)


async def test_edges_fail_as_os_does() -> None:
    loop = running()
    # A write of nothing still checks its descriptor, as os.pwrite's does.
    with pytest.raises(OSError) as ours:
        await loop.pwrite_all(-1, b"", 0)
    assert ours.value.errno == errno.EBADF
    # os.stat takes -1 for "no descriptor" and stats a NULL path, whether it follows
    # symbolic links or not; it lets descriptor 0 not follow them (fstat), and refuses
    # that for the others.
    for fd in (-1, -2):
        for follow in (True, False):
            with pytest.raises(OSError) as ours:
                await loop.stat(fd, follow_symlinks=follow)
            with pytest.raises(OSError) as theirs:
                os.stat(fd, follow_symlinks=follow)
            assert (ours.value.errno, ours.value.filename) == (theirs.value.errno, fd)

    # An object with __index__ is a descriptor too, and is named as given.
    class Index:
        def __index__(self) -> int:
            return -2

    index = Index()
    with pytest.raises(OSError) as ours:
        await loop.stat(index)  # type: ignore[arg-type]
    assert (ours.value.errno, ours.value.filename) == (errno.EBADF, index)

    # An int is a descriptor even when its class has __fspath__, as os.stat takes it.
    class PathInt(int):
        def __fspath__(self) -> str:
            return "/"

    r_, w_ = os.pipe()
    try:
        ours_stat = await loop.stat(PathInt(r_))  # type: ignore[arg-type]
        assert ours_stat.st_ino == os.stat(PathInt(r_)).st_ino == os.fstat(r_).st_ino
    finally:
        os.close(r_)
        os.close(w_)
    try:  # (descriptor 0 is whatever the test run's stdin is, or none)
        theirs_ = ("ok", os.stat(0, follow_symlinks=False).st_ino)
    except OSError as exc:
        theirs_ = ("error", exc.errno)
    try:
        ours_ = ("ok", (await loop.stat(0, follow_symlinks=False)).st_ino)
    except OSError as exc:
        ours_ = ("error", exc.errno)
    assert ours_ == theirs_
    r, w = os.pipe()
    try:
        with pytest.raises(ValueError):
            await loop.stat(r, follow_symlinks=False)
    finally:
        os.close(r)
        os.close(w)


async def test_a_failing_index_is_reported_as_os_reports_it(data_fd: tuple[bytes, int]) -> None:
    """An integer argument whose __index__ raises, or returns a non-int, fails with what
    os raises for it (that TypeError's own message), not "cannot be interpreted as an
    integer", which os says only of an object without __index__."""
    loop = running()
    _, fd = data_fd

    class Raises:
        def __index__(self) -> int:
            raise TypeError("the index's own error")

    class NotAnInt:
        def __index__(self) -> float:
            return 1.5

    into = bytearray(2)
    for bad in (Raises(), NotAnInt()):
        calls: list[tuple[Any, Any]] = [
            (partial(os.pread, fd, 4, bad), partial(loop.pread, fd, 4, bad)),
            (partial(os.pread, bad, 4, 0), partial(loop.pread, bad, 4, 0)),
            (partial(os.pwrite, fd, b"x", bad), partial(loop.pwrite, fd, b"x", bad)),
            (partial(os.preadv, fd, [into], bad), partial(loop.preadv, fd, [into], bad)),
            (partial(os.ftruncate, fd, bad), partial(loop.ftruncate, fd, bad)),
            (partial(os.close, bad), partial(loop.close_fd, bad)),
        ]
        for theirs, ours in calls:
            with pytest.raises(TypeError) as expected:
                theirs()
            with pytest.raises(TypeError) as got:
                await ours()
            assert str(got.value) == str(expected.value)
    with pytest.raises(TypeError, match="'float' object cannot be interpreted as an integer"):
        await loop.pread(fd, 4, 1.5)  # type: ignore[arg-type]
    assert os.pread(fd, 4, 0) == data_fd[0][:4]  # nothing was written
