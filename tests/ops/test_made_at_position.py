"""made_at_position: how a read or write at a descriptor's file position (offset -1) is
made, from one F_GETFL: the system call at once at an O_NONBLOCK stream's position (where
io_uring's read would wait) and at an O_DIRECT descriptor's (where io_uring's would leave
the position), else on the ring: STREAM_ON_RING at a stream that may wait (a pipe, a
socket), whose operations the loop's selector watches (_stream_watch.py), ON_RING at a
file. The same answer as never_waits, then ring_leaves_position, which it replaces where
both were asked, then the descriptor's kind."""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uringloop._ops import table
from uringloop._ops.operation import (
    DIRECT_NOW,
    ON_RING,
    STREAM_NOW,
    STREAM_ON_RING,
    made_at_position,
    ring_leaves_position,
)
from uringloop._stream_wait import never_waits


def _both_asked(fd: int) -> int:
    """What the two questions asked one after the other answer."""
    if never_waits(fd):
        return STREAM_NOW
    if ring_leaves_position(fd):
        return DIRECT_NOW
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, OverflowError):
        return ON_RING
    if stat.S_ISREG(mode) or stat.S_ISBLK(mode) or stat.S_ISDIR(mode):
        return ON_RING
    return STREAM_ON_RING


@pytest.fixture
def descriptors(tmp_path: Path) -> Iterator[dict[str, int]]:
    path = tmp_path / "file.bin"
    path.write_bytes(b"x" * 8192)
    fds = {
        "file": os.open(path, os.O_RDONLY),
        "nonblocking file": os.open(path, os.O_RDONLY | os.O_NONBLOCK),
    }
    r, w = os.pipe()
    fds["pipe"] = r
    fds["pipe, write end"] = w
    nr, nw = os.pipe()
    os.set_blocking(nr, False)
    os.set_blocking(nw, False)
    fds["nonblocking pipe"] = nr
    fds["nonblocking pipe, write end"] = nw
    try:
        fds["O_DIRECT file"] = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:  # (tmpfs refuses O_DIRECT: the case is left out)
        pass
    fds["directory"] = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    a, b = socket.socketpair()
    fds["socket"] = a.detach()
    b.setblocking(False)
    fds["nonblocking socket"] = b.detach()
    yield fds
    for fd in fds.values():
        os.close(fd)


EXPECTED = {
    "file": ON_RING,
    "nonblocking file": ON_RING,  # a regular file's reads wait for the storage all the same
    "pipe": STREAM_ON_RING,
    "pipe, write end": STREAM_ON_RING,
    "socket": STREAM_ON_RING,
    "nonblocking socket": STREAM_NOW,
    "directory": ON_RING,
    "nonblocking pipe": STREAM_NOW,
    "nonblocking pipe, write end": STREAM_NOW,
    "O_DIRECT file": DIRECT_NOW,
}


def test_each_kind_of_descriptor(descriptors: dict[str, int]) -> None:
    for name, fd in descriptors.items():
        assert made_at_position(fd) == EXPECTED[name] == _both_asked(fd), name


@pytest.mark.parametrize("fd", [-1, 2**31, 2**70])
def test_what_is_no_descriptor_goes_to_the_ring(fd: Any) -> None:
    # (The operation, or its argument checks before, report it as the system call would.)
    assert made_at_position(fd) == ON_RING == _both_asked(fd)


def test_what_is_no_int_is_refused_as_before() -> None:
    # (Callers convert the descriptor first: this is not reached with a str.)
    with pytest.raises(TypeError):
        made_at_position("3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _both_asked("3")  # type: ignore[arg-type]


def test_a_closed_descriptor_goes_to_the_ring(tmp_path: Path) -> None:
    fd = os.open(tmp_path, os.O_RDONLY)
    os.close(fd)
    assert made_at_position(fd) == ON_RING


def test_a_read_at_the_position_asks_the_flags_once(
    descriptors: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = fcntl.fcntl

    def counting(fd: int, cmd: int, *rest: Any) -> Any:
        if cmd == fcntl.F_GETFL:
            asked.append(fd)
        return real(fd, cmd, *rest)

    monkeypatch.setattr(fcntl, "fcntl", counting)
    fd = descriptors["file"]
    op = table.pread.build(fd, 100)  # at the position: on the ring
    assert asked == [fd]
    op.release()
    asked.clear()
    buf = bytearray(10)
    op = table.preadinto.build(fd, buf)
    assert asked == [fd]
    op.complete(0)
