"""uringloop.open's files close a regular file on a filesystem whose close the ring runs
inline (ext2/3/4, XFS, tmpfs) with close(2) directly; any other file through the ring."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import _mounts


def _mount_type_of(path: Path) -> str:
    """The filesystem type of the mount holding `path`, from /proc/self/mounts (by mount
    point, not by device as _mounts looks it up)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, point, fstype = line.split()[:3]
            point = point.replace("\\040", " ")
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fstype
    return kind


def test_a_device_s_filesystem_is_the_one_mounted_there(tmp_path: Path) -> None:
    assert _mounts.filesystem_of(os.stat(tmp_path).st_dev) == _mount_type_of(tmp_path)


def test_mountinfo_lines_are_read_past_their_optional_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "21 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "22 21 8:2 / /my\\040disk rw shared:2 master:3 - xfs /dev/sda2 rw\n"
        "23 21 0:40 / /net rw - nfs4 server:/ rw\n"
        "24 21 0:41 / /broken rw no-separator\n"
        "25 21 0:42 / /short rw -\n"
    )
    monkeypatch.setattr(_mounts, "MOUNTINFO", str(info))
    assert _mounts.filesystem_of(os.makedev(8, 1)) == "ext4"
    assert _mounts.filesystem_of(os.makedev(8, 2)) == "xfs"
    assert _mounts.filesystem_of(os.makedev(0, 40)) == "nfs4"
    assert _mounts.filesystem_of(os.makedev(0, 41)) is None
    assert _mounts.filesystem_of(os.makedev(0, 42)) is None
    assert _mounts.filesystem_of(os.makedev(9, 9)) is None  # not mounted
    monkeypatch.setattr(_mounts, "MOUNTINFO", str(tmp_path / "missing"))
    assert _mounts.filesystem_of(os.makedev(8, 1)) is None


def _inline_or_skip(path: Path) -> None:
    kind = _mount_type_of(path)
    if kind not in _mounts.CLOSES_INLINE:
        pytest.skip(f"{path} is on {kind}, whose close the ring hands to a worker")


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # what reaches the ring is the question
async def test_a_regular_file_there_closes_without_a_ring_operation(
    tmp_path: Path, no_fd_leak: None
) -> None:
    path = tmp_path / "small.txt"
    path.write_text("hello")
    _inline_or_skip(tmp_path)
    loop: Any = asyncio.get_running_loop()
    for mode in ("r", "rb", "wb"):
        f = await uringloop.open(path, mode, **({"buffering": 0} if mode == "wb" else {}))
        if mode == "r":
            assert await f.read() == "hello"
        fd = f.fileno()
        before = loop.uring_stats().submitted
        await f.close()
        assert loop.uring_stats().submitted == before  # close(2), not the ring's CLOSE
        with pytest.raises(OSError) as info:
            os.fstat(fd)
        assert info.value.errno == errno.EBADF


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # what reaches the ring is the question
async def test_other_files_close_through_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # A filesystem not known to close inline, and a pipe, wherever it is.
    path = tmp_path / "small.txt"
    path.write_text("hello")
    loop: Any = asyncio.get_running_loop()
    with monkeypatch.context() as patch:
        patch.setattr(_mounts, "closes_inline", lambda st_dev: False)
        f = await uringloop.open(path)
    read_end, write_end = os.pipe()
    os.close(write_end)
    pipe = await uringloop.open(read_end, "rb", buffering=0)
    for file in (f, pipe):
        fd = file.fileno()
        before = loop.uring_stats().submitted
        await file.close()
        assert loop.uring_stats().submitted == before + 1
        with pytest.raises(OSError) as info:
            os.fstat(fd)
        assert info.value.errno == errno.EBADF


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # the kernel's behaviour is the question
async def test_where_files_close_inline_the_ring_s_close_completes_inside_the_enter(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # The premise of close(2) there: the ring's CLOSE of such a file completes inside the
    # io_uring_enter that submits it (one enter; a close handed to a kernel worker
    # completes later, found by another enter).
    places = [tmp_path, Path("/dev/shm")]
    checked = 0
    loop: Any = asyncio.get_running_loop()
    for place in places:
        if not place.is_dir() or _mount_type_of(place) not in _mounts.CLOSES_INLINE:
            continue
        assert _mounts.closes_inline(os.stat(place).st_dev)
        path = place / f"uringloop-close-{os.getpid()}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b"x" * 10_000)  # dirty pages: ext4's close may flush them
            assert await loop.nop() is None  # nothing in flight from here on
            before = loop.uring_stats()
            await loop.close_fd(fd)
            after = loop.uring_stats()
            assert (after.submitted - before.submitted, after.enter_calls - before.enter_calls) == (
                1,
                1,
            ), place
            checked += 1
        finally:
            path.unlink(missing_ok=True)
    if not checked:
        pytest.skip("no filesystem here that closes inline")


@pytest.mark.asyncio
@pytest.mark.loops("uring")  # the order of the ring's operations is the question
async def test_a_close_never_overtakes_an_operation_queued_on_its_descriptor(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # Two file objects on one descriptor (the second closefd=False): a write queued by
    # the second, then the owner's close, then a new open that gets the same number. The
    # write must land in the owner's file, as it does with the built-in files.
    _inline_or_skip(tmp_path)
    owner_path, other_path = tmp_path / "owner.bin", tmp_path / "other.bin"
    owner_path.write_bytes(b"")
    other_path.write_bytes(b"")
    owner = await uringloop.open(owner_path, "r+b", buffering=0)
    view = await uringloop.open(owner.fileno(), "r+b", buffering=0, closefd=False)
    writing = asyncio.ensure_future(view.write(b"for the owner"))
    await asyncio.sleep(0)  # the write is queued for the ring
    await owner.close()
    other = open(other_path, "r+b")  # noqa: SIM115  # may take the descriptor's number
    try:
        assert await writing == len(b"for the owner")
    finally:
        other.close()
        await view.close()
    assert owner_path.read_bytes() == b"for the owner"
    assert other_path.read_bytes() == b""


def test_an_answer_is_looked_up_again_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A device number is reused by whatever is mounted after an unmount: what a device
    # holds is read again once RECHECK_AFTER has passed.
    info = tmp_path / "mountinfo"
    info.write_text("40 1 0:77 / /scratch rw - tmpfs tmpfs rw\n")
    monkeypatch.setattr(_mounts, "MOUNTINFO", str(info))
    clock = [1000.0]
    monkeypatch.setattr(_mounts, "_monotonic", lambda: clock[0])
    dev = os.makedev(0, 77)
    assert _mounts.closes_inline(dev)
    info.write_text("41 1 0:77 / /scratch rw - fuse.sshfs host: rw\n")  # remounted
    clock[0] += _mounts.RECHECK_AFTER / 2
    assert _mounts.closes_inline(dev)  # the answer kept
    clock[0] += _mounts.RECHECK_AFTER
    assert not _mounts.closes_inline(dev)  # looked up again
