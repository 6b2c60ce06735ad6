"""open_cached(), the kernel's non-blocking first attempt at an open made by the caller, on
both twins: the pure-Python reference (uringloop/_ops/hotpath.py, openat2 through ctypes)
and the compiled one (_hotpath.c). Each case is run on both, and their answers compared."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fifo_writer_later, twin
from uringloop._ops import hotpath

try:
    from uringloop._ops import _hotpath
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _hotpath = None  # type: ignore[assignment]

TWINS = {"c": _hotpath, "python": hotpath}
AT_FDCWD = -100


@pytest.fixture(params=sorted(TWINS))
def open_cached(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "hot path").open_cached


@pytest.fixture
def cached_file(tmp_path: Path) -> Iterator[bytes]:
    """A file just written (its dentry cached) and its path, as bytes."""
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789")
    yield os.fsencode(path)


def _opened(fd: int) -> int:
    """The file status flags of a descriptor open_cached returned; closes it."""
    assert fd >= 0, os.strerror(-fd)
    try:
        return fcntl.fcntl(fd, fcntl.F_GETFL)
    finally:
        os.close(fd)


def test_an_open_from_the_cache_is_blocking_as_asked(open_cached: Any, cached_file: bytes) -> None:
    # O_NONBLOCK was only for the attempt: the descriptor is the one os.open would give.
    flags = _opened(open_cached(AT_FDCWD, cached_file, os.O_RDONLY | os.O_CLOEXEC))
    assert not flags & os.O_NONBLOCK
    fd = open_cached(AT_FDCWD, cached_file, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
    try:
        assert os.read(fd, 4) == b"0123"
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        flags = _opened(fd)
    assert flags & os.O_APPEND and flags & os.O_ACCMODE == os.O_RDWR
    assert not flags & os.O_NONBLOCK


def test_o_nonblock_asked_for_stays(open_cached: Any, cached_file: bytes) -> None:
    assert _opened(open_cached(AT_FDCWD, cached_file, os.O_RDONLY | os.O_NONBLOCK)) & os.O_NONBLOCK


def test_a_relative_path_from_a_directory_descriptor(open_cached: Any, cached_file: bytes) -> None:
    dirfd = os.open(os.path.dirname(cached_file), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(10):  # (-EAGAIN: the dentry not cached after all; looked up again)
            fd = open_cached(dirfd, b"f.txt", os.O_RDONLY)
            if fd != -errno.EAGAIN:
                break
            os.stat(cached_file)
        assert fd >= 0, os.strerror(-fd)
        try:
            assert os.read(fd, 10) == b"0123456789"
        finally:
            os.close(fd)
        assert open_cached(dirfd, b"missing", os.O_RDONLY) in (-errno.ENOENT, -errno.EAGAIN)
    finally:
        os.close(dirfd)


def test_errors_are_returned_not_raised(open_cached: Any, cached_file: bytes) -> None:
    assert open_cached(AT_FDCWD, cached_file, os.O_RDONLY | os.O_DIRECTORY) == -errno.ENOTDIR
    assert open_cached(AT_FDCWD, os.path.dirname(cached_file), os.O_WRONLY) == -errno.EISDIR
    assert open_cached(12345, b"f.txt", os.O_RDONLY) == -errno.EBADF
    # openat2 refuses flags it does not know, where openat ignores them: the caller sends
    # such an open to the ring.
    assert open_cached(AT_FDCWD, cached_file, os.O_RDONLY | 1 << 30) == -errno.EINVAL


def test_a_fifo_opens_without_waiting(open_cached: Any, tmp_path: Path) -> None:
    # As the kernel's attempt inside io_uring_enter: never waits for the other end. For
    # reading it opens at once; for writing without a reader, ENXIO (as the ring's open
    # answers too, where os.open waits for a reader).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with fifo_writer_later(fifo):
        started = time.monotonic()
        fd = open_cached(AT_FDCWD, os.fsencode(fifo), os.O_RDONLY)
        waited = time.monotonic() - started
    assert not _opened(fd) & os.O_NONBLOCK
    assert waited < 1.5, "the open waited for the writer"
    assert open_cached(AT_FDCWD, os.fsencode(fifo), os.O_WRONLY) == -errno.ENXIO


def test_a_bytes_subclass_is_a_path(open_cached: Any, cached_file: bytes) -> None:
    class Name(bytes):
        pass

    assert _opened(open_cached(AT_FDCWD, Name(cached_file), os.O_RDONLY)) >= 0


def test_where_o_nonblock_cannot_be_taken_off_the_ring_opens_it(
    cached_file: bytes, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # (The pure-Python twin: its fcntl can be made to fail.) The open is undone, and the
    # answer is EAGAIN, which sends the open to the ring, not the fcntl's error.
    def refused(*args: Any) -> int:
        raise PermissionError(errno.EPERM, "refused")

    monkeypatch.setattr(hotpath.fcntl, "fcntl", refused)
    assert hotpath.open_cached(AT_FDCWD, cached_file, os.O_RDONLY) == -errno.EAGAIN


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ((AT_FDCWD, "f.txt", 0), TypeError, "path must be bytes"),
        ((AT_FDCWD, bytearray(b"f.txt"), 0), TypeError, "path must be bytes"),
        ((AT_FDCWD, b"f\0.txt", 0), ValueError, "embedded null byte"),
        ((1 << 31, b"f.txt", 0), OverflowError, "too large to convert to C int"),
        ((AT_FDCWD, b"f.txt", -(1 << 31) - 1), OverflowError, "too large to convert to C int"),
    ],
)
def test_bad_arguments_raise_the_same_on_both(
    open_cached: Any, arguments: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        open_cached(*arguments)


def test_the_twins_agree(tmp_path: Path) -> None:
    compiled = twin(_hotpath, "hot path").open_cached
    (tmp_path / "f").write_bytes(b"x")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (os.fsencode(tmp_path / "f"), os.O_RDONLY),
        (type("Name", (bytes,), {})(os.fsencode(tmp_path / "f")), os.O_RDONLY),
        (os.fsencode(tmp_path / "f"), os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK),
        (os.fsencode(tmp_path / "f"), os.O_RDONLY | os.O_DIRECTORY),
        (os.fsencode(tmp_path), os.O_RDONLY | os.O_DIRECTORY),
        (os.fsencode(tmp_path), os.O_RDWR),
        (os.fsencode(fifo), os.O_WRONLY),
        (os.fsencode(fifo), os.O_RDONLY),
        (b"/proc/self/status", os.O_RDONLY),
    ]

    def answer(func: Any, path: bytes, flags: int) -> Any:
        fd = func(AT_FDCWD, path, flags | os.O_CLOEXEC)
        return ("fd", _opened(fd)) if fd >= 0 else ("errno", -fd)

    for path, flags in cases:
        assert answer(compiled, path, flags) == answer(hotpath.open_cached, path, flags), path
