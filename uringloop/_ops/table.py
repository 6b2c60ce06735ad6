"""Every io_uring operation uringloop submits, declared once, grouped by the kernel that
added it (as tokio-rs/io-uring's opcode table is).

Each declaration is a stub with the operation's public signature. Its body checks the
arguments as the matching os function does (args.py) and builds the whole SQE, naming
each field it sets (sqe.py: fd s32, off u64, addr u64, len u32, op_flags u32, ...).
`@declare` states the rest: opcode, kernel version, result conversion, the blocking call
with the same signature (fallback, threads), what undoes an unclaimed result, and whether
a cancellation may drop the operation. The Loop's coroutine methods, `loop.threadsafe`
and `uringloop.threads` are derived from these (see _loop.py, threads.py), so adding an
operation is one declaration here, plus its tests and docs.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from stat import S_ISSOCK
from typing import Any, NamedTuple, TypeVar

from .._buffers import PIN, Pin, anonymous_map, flat_view
from .._errors import os_error
from .._ring import abi
from .._twins import compiled
from . import args, libc
from .hotpath import OPEN_CACHED, PINNED_AT, SPLIT_REQUESTS
from .operation import (
    DIRECT_NOW,
    MAX_RW_COUNT,
    ON_RING,
    STREAM_NOW,
    STREAM_ON_RING,
    Entry,
    Operation,
    Positioned,
    Read,
    ReadBatch,
    RunNow,
    StreamPositioned,
    StreamRead,
    StreamReadBatch,
    check_position,
    check_write_position,
    copies_cached,
    forget_descriptor,
    made_at_position,
    make_calls,
    note_stream_wait,
    read_args,
    read_blocking,
    reads_in_turn,
)
from .spec import Spec, declare
from .sqe import address, build
from .statx import StatxResult

StrOrBytesPath = Any  # str, bytes or os.PathLike, as os takes them
FileDescriptorLike = Any  # an int, or an object with fileno(), as os.fsync takes
Buffer = Any  # a bytes-like object

BASIC_STATX = int(abi.StatxMask.BASIC_STATS | abi.StatxMask.BTIME)
_AT_SYMLINK_FOLLOW = 0x400
_U64 = args.U64_MASK
_READ, _WRITE = int(abi.Op.READ), int(abi.Op.WRITE)  # the hot opcodes, as plain ints
_WRITES = frozenset((_WRITE, int(abi.Op.WRITEV)))
_SINGLE = frozenset((_READ, _WRITE))  # (one buffer: `length` is its size, not an iovec count)
_STATX_RESERVED = 0x80000000
_IOV_MAX = 1024
_IOVEC = abi.IOVEC
_POOLED_MAX = 1 << 20
_PATH_MAX = 4096  # (Linux's, with the NUL: getname() refuses a longer path)


def entry(
    opcode: int,
    *,
    fd: int = 0,
    off: Any = 0,
    addr: Any = 0,
    len: int = 0,
    op_flags: int = 0,
    keep: tuple[Any, ...] = (),
    data: Any = None,
    filename: Any = None,
    filename2: Any = None,
) -> Operation:
    """An Operation of one whole, checked SQE (sqe.build), keeping what it points into."""
    sqe, refs = build(opcode, fd, off, addr, len, op_flags, keep)
    return Entry(sqe, refs, data, filename, filename2)


# -- result conversions: a CQE's res >= 0 to the value ---------------------------------------------


def nothing(op: Operation, res: int) -> None:
    return None


def count(op: Operation, res: int) -> int:
    """A byte count."""
    return res


def descriptor(op: Operation, res: int) -> int:
    """A new file descriptor; the number may have named another file before."""
    forget_descriptor(res)
    return res


def statx_record(op: Operation, res: int) -> StatxResult:
    return StatxResult.from_buffer(op.data)


def stat_record(op: Operation, res: int) -> os.stat_result:
    return StatxResult.from_buffer(op.data).to_stat_result()


def by_operation(op: Operation, res: int) -> Any:
    """The operation class converts its own result (Read, ReadBatch)."""
    raise AssertionError(f"{type(op).__name__} completes itself")


# -- argument helpers shared by several declarations -----------------------------------------------


def _positioned(
    opcode: int,
    fd: int,
    offset: int,
    keep: tuple[Any, ...],
    addr: Any,
    length: int,
    now: Callable[..., int],
) -> Operation:
    """A read or write at `offset` (-1: the file position), its other arguments converted.

    More than IOV_MAX buffers is preadv(2)'s error (_iovec_count). As pread(2)/pwrite(2):
    EINVAL for a negative offset before the descriptor is looked at, then ESPIPE for a
    descriptor that cannot seek. At the position of an O_NONBLOCK stream,
    which io_uring would wait for, `now` answers at once (RunNow). `keep` (pinned buffers)
    is released if the operation is refused or answered so.
    """
    made = ON_RING
    try:
        if opcode not in _SINGLE and length > _IOV_MAX:  # (an iovec count)
            _iovec_count(fd, offset, opcode in _WRITES)
        if offset != -1:
            if offset < -1:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            (check_write_position if opcode in _WRITES else check_position)(fd, offset)
        else:
            made = made_at_position(fd, opcode in _WRITES)
            if made == STREAM_NOW:
                raise RunNow(now)
            if made == DIRECT_NOW:
                raise RunNow  # the declaration's blocking call: it moves the position
            if made == STREAM_ON_RING and not (
                length if opcode in _SINGLE else sum(pin.nbytes for pin in keep)
            ):
                # Nothing to move: the system call's answer, which does not wait. write(2)
                # of nothing still reports what the stream refuses (EINVAL at an
                # eventfd), where readv(2) and writev(2) of nothing return 0; io_uring's
                # write returns 0, its read EINVAL there.
                raise RunNow(now)
    except BaseException:
        for pin in keep:
            pin.release()
        raise
    if type(addr) is not int:  # bytes written from, or an iovec array
        keep += (addr,)
        addr = address(addr)
    cls = StreamPositioned if made == STREAM_ON_RING else Positioned
    op = cls(opcode, fd, offset & _U64, addr, length, keep)
    if made == STREAM_ON_RING:
        note_stream_wait(op, fd, opcode in _WRITES)
    return op


def _path(value: Any) -> bytes:
    """A path for an SQE. An empty one, or one of PATH_MAX bytes or more, is answered by
    the system call at once (RunNow): io_uring copies every path of a request when it is
    prepared and reports ENOENT or ENAMETOOLONG for it before anything else, where the
    system call may report another error first (linkat(2) looks up its source before it
    reads the new path; renameat(2) resolves the source's directory first)."""
    raw = args.path(value)
    if raw == b"\0" or len(raw) > _PATH_MAX:  # (raw ends with its NUL)
        raise RunNow
    return raw


def _pins(
    buffers: Iterable[Buffer], writable: bool
) -> tuple[list[Pin], ctypes.Array[ctypes.c_char]]:
    """Pinned buffers and their struct iovec array."""
    pins: list[Pin] = []
    try:
        for buf in buffers:
            pins.append(PIN(buf, writable=writable))
    except BaseException:
        for pin in pins:
            pin.release()
        raise
    iov = ctypes.create_string_buffer(max(len(pins), 1) * _IOVEC.size)
    for i, pin in enumerate(pins):
        _IOVEC.pack_into(iov, i * _IOVEC.size, pin.address, pin.nbytes)
    return pins, iov


def _buffer_list(buffers: Any) -> list[Any]:
    # A sequence, as os.preadv and os.pwritev take (an iterator or a dict is refused).
    if isinstance(buffers, dict) or not hasattr(type(buffers), "__getitem__"):
        raise TypeError("buffers must be a sequence of bytes-like objects")
    try:
        return list(buffers)
    except TypeError:
        raise TypeError("buffers must be a sequence of bytes-like objects") from None


def _no_negative_fd(fd: int, mask: int = 0) -> int:
    """statx with AT_EMPTY_PATH would read AT_FDCWD (-100) as the working directory: a
    negative descriptor is EBADF, as fstat(2) says, after statx's own EINVAL for a reserved
    mask bit (the order statx(2) checks them in)."""
    if fd < 0:
        if mask & _STATX_RESERVED:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return fd


def _iovec_count(fd: int, offset: int, writing: bool) -> None:
    """More than IOV_MAX buffers: the EINVAL preadv(2)/pwritev(2) give, after the errors they
    check first (a negative offset, a bad or wrongly opened descriptor, ESPIPE), which
    io_uring would report in another order. Raises in every case."""
    if offset < -1:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    try:
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except (OSError, ValueError):  # ValueError: fcntl refuses a negative descriptor
        raise OSError(errno.EBADF, os.strerror(errno.EBADF)) from None
    (check_write_position if writing else check_position)(fd, offset)
    if access == (os.O_RDONLY if writing else os.O_WRONLY):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))


# -- blocking counterparts (same signatures as the stubs) ------------------------------------------


def _nop() -> None:
    return None


def _pread(fd: int, size: int, offset: int = -1) -> bytes:
    # os.pread checks plain ints itself (EINVAL, ESPIPE, EBADF, ...); the rest are converted
    # as the ring's pread converts them (offset -1: the file position; a size clamped).
    # Not looked at for ESPIPE (os.pread raises it): a descriptor found to take offsets
    # stays so in the cache until a loop iteration forgets it, and nothing here would.
    if type(offset) is not int or type(size) is not int or size > MAX_RW_COUNT:
        fd, size, offset = read_args(fd, size, offset, known_seekable=True)
    return os.read(fd, size) if offset == -1 else os.pread(fd, size, offset)


def _pread_many(requests: Iterable[tuple[int, int, int]]) -> list[bytes]:
    # Every request checked first, as on the ring's route: a bad one reads nothing.
    batch = read_many_args(requests)
    return reads_in_turn(zip(batch.fds, batch.sizes, batch.offsets, strict=True))


def _preadinto(fd: int, buffer: Buffer, offset: int = -1) -> int:
    if type(buffer) is memoryview:  # a view of its own for the call (see release_views)
        with memoryview(buffer) as own:
            return _preadv(fd, [own], offset)
    return _preadv(fd, [buffer], offset)


def _preadv(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> int:
    offset = args.off_t(offset)
    return os.readv(fd, buffers) if offset == -1 else os.preadv(fd, buffers, offset)


@contextmanager
def _write_view(data: Buffer) -> Iterator[memoryview]:
    """`data`'s bytes as os.write takes them, up to MAX_RW_COUNT of them, refused as it
    refuses them (TypeError for what is not bytes-like, BufferError for a view that is not
    C-contiguous). Released on leaving, not when an exception that leaves the caller's
    frame is freed."""
    with flat_view(data) as flat, flat[:MAX_RW_COUNT] as view:
        yield view


def _pwrite(fd: int, data: Buffer, offset: int = -1) -> int:
    fd = args.c_int(fd)  # (first, as os.write converts it)
    with _write_view(data) as view:
        offset = args.off_t(offset)
        return os.write(fd, view) if offset == -1 else os.pwrite(fd, view, offset)


def _pwritev(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> int:
    offset = args.off_t(offset)
    return os.writev(fd, buffers) if offset == -1 else os.pwritev(fd, buffers, offset)


# At the position of an O_NONBLOCK stream (never_waits) io_uring would wait, and the
# system call does not: these make the call so that it cannot wait even if another thread
# or process clears the flag meanwhile (preadv2/pwritev2 with RWF_NOWAIT), or, where the
# file refuses that flag (a tty: EOPNOTSUPP), the plain call. The arguments were checked.

_R = TypeVar("_R")


def _without_waiting(nowait: Callable[[], _R], plain: Callable[[], _R]) -> _R:
    try:
        return nowait()
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
    return plain()


def read_now(fd: int, size: int, offset: int = -1) -> bytes:
    """pread's call at an O_NONBLOCK stream's position (its arguments as the caller gave
    them: converted and the size clamped here, as _pread does)."""
    fd, size, _ = read_args(fd, size, -1)

    def nowait() -> bytes:
        if size <= _SMALL_READ:
            small = bytearray(size)
            count = os.preadv(fd, [small], -1, os.RWF_NOWAIT)
            return bytes(small) if count == size else bytes(memoryview(small)[:count])
        # A mapping's pages are not touched until the read writes them: a large size with
        # a few bytes to read costs what os.read's buffer does, not `size` zeroed bytes.
        large = anonymous_map(size)  # (MemoryError where it has no room: os.read's)
        with large, memoryview(large) as view:
            count = os.preadv(fd, [view], -1, os.RWF_NOWAIT)
            return bytes(view[:count])

    return _without_waiting(nowait, lambda: os.read(fd, size))


def read_direct_now(fd: int, size: int, offset: int = -1) -> bytes:
    """pread's call at the position of an O_DIRECT descriptor (ring_leaves_position), made
    blocking (its arguments as the caller gave them, converted here as _pread does)."""
    fd, size, _ = read_args(fd, size, -1)
    return read_blocking(fd, size, -1)


# The call that makes a read at the file position at once, by made_at_position's answer
# (none: on the ring).
AT_ONCE: dict[int, Callable[[int, int], bytes]] = {
    STREAM_NOW: read_now,
    DIRECT_NOW: read_direct_now,
}

# read_now's reads up to this size go into a bytearray, larger ones into a mapping.
_SMALL_READ = 1 << 16


def _preadv_now(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> int:
    return _without_waiting(
        lambda: os.preadv(fd, buffers, -1, os.RWF_NOWAIT), lambda: os.readv(fd, buffers)
    )


def _preadinto_now(fd: int, buffer: Buffer, offset: int = -1) -> int:
    return _preadv_now(fd, [buffer])


def _pwritev_now(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> int:
    return _without_waiting(
        lambda: os.pwritev(fd, buffers, -1, os.RWF_NOWAIT), lambda: os.writev(fd, buffers)
    )


def _pwrite_now(fd: int, data: Buffer, offset: int = -1) -> int:
    with _write_view(data) as view:
        if view.nbytes:
            return _pwritev_now(fd, [view])
    # A vectored write of nothing never reaches the file; write(2) does: a socket sends an
    # empty datagram, or raises EPIPE (with MSG_DONTWAIT: it may wait for room otherwise).
    # Elsewhere write(2) of nothing returns at once.
    try:
        socket_fd = S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        socket_fd = False
    return libc.send_nothing(fd) if socket_fd else os.write(fd, b"")


def _open(
    path: StrOrBytesPath, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
) -> int:
    fd = os.open(args.os_path(path), args.c_int(flags) | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    forget_descriptor(fd)
    return fd


# Opens the kernel never tries inline (it hands them to a worker at once), and O_PATH, which
# openat2 takes with no other flag.
# (O_TMPFILE is __O_TMPFILE | O_DIRECTORY: the first alone tells it.) uringloop.open asks
# it too, so as not to spend an inline turn on such an open.
NEVER_INLINE = (
    os.O_CREAT | os.O_TRUNC | os.O_PATH | (getattr(os, "O_TMPFILE", 0o20200000) & ~os.O_DIRECTORY)
)
# An inline open's failures that are the kernel's answer to the open itself, whoever asks:
# the ring's open would fail the same way. (ENXIO too: a FIFO's writer without a reader
# gets it from the ring's open as well, whose own first attempt is this one, and which
# retries only on EAGAIN; os.open waits for the reader.) Any other (EAGAIN: not in the
# dentry cache, or a lease; EINVAL: a flag openat2 refuses where openat ignores it;
# ENOSYS) sends the open to the ring.
_FINAL_OPEN_ERRORS = frozenset({
    errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ELOOP,
    errno.ENAMETOOLONG, errno.EROFS, errno.EMFILE, errno.ENFILE, errno.EBADF, errno.ETXTBSY,
    errno.ENXIO,
})  # fmt: skip
# The probe's failures that say nothing of openat2 (it is tried again at the next open).
_PROBE_AGAIN = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR})
_inline_opens: list[bool] = []  # [whether openat2 with RESOLVE_CACHED works here], once known


def _open_inline(
    path: StrOrBytesPath, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
) -> int | None:
    """open_fd's inline attempt (hotpath.open_cached): the new descriptor, or None."""
    if type(flags) is not int or flags & NEVER_INLINE or not args.INT_MIN <= flags <= args.INT_MAX:
        return None
    if type(mode) is not int or not args.INT_MIN <= mode <= args.INT_MAX:
        return None
    if dir_fd is None:
        dirfd = args.AT_FDCWD
    elif type(dir_fd) is int and args.INT_MIN <= dir_fd <= args.INT_MAX:
        dirfd = dir_fd
    else:
        return None
    try:
        raw = args.fs_bytes(path)  # str, bytes or os.PathLike, as args.path takes them
    except Exception:  # the stub raises it again, as on the ring's route
        return None
    if not raw or b"\0" in raw or not (_inline_opens or _probe_inline_opens())[0]:
        return None
    fd = OPEN_CACHED(dirfd, raw, flags | os.O_CLOEXEC)
    if fd >= 0:
        try:
            forget_descriptor(fd)
        except BaseException:  # an interrupt: the descriptor is not lost
            os.close(fd)
            raise
        return fd
    if -fd in _FINAL_OPEN_ERRORS:
        raise os_error(fd, path)
    return None


# open_fd's inline attempt: compiled (where its common case is made in C), else the above.
_install_open_inline = compiled("uringloop._ops._hotpath", "install_open_inline")
OPEN_INLINE: Callable[..., int | None] = (
    _open_inline if _install_open_inline is None else _install_open_inline(_open_inline, globals())
)


def _probe_inline_opens() -> list[bool]:
    """Whether openat2 with RESOLVE_CACHED works here (Linux 5.12; a seccomp filter may
    refuse openat2, with ENOSYS, EPERM or another errno): try it on the root directory,
    always cached. A failure that says nothing of openat2 (no descriptor free) leaves the
    question for the next open, which goes to the ring meanwhile."""
    fd = OPEN_CACHED(args.AT_FDCWD, b"/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if fd >= 0:
        os.close(fd)
    elif -fd in _PROBE_AGAIN:
        return [False]
    _inline_opens[:] = [fd >= 0]
    return _inline_opens


def _close(fd: int) -> None:
    forget_descriptor(args.c_int(fd))
    os.close(fd)


def _fallocate(fd: int, offset: int, length: int, mode: int = 0) -> None:
    libc.fallocate(args.c_int(fd), args.c_int(mode), args.off_t(offset), args.off_t(length))


def _statx(
    path: StrOrBytesPath,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    mask: int = BASIC_STATX,
    flags: int = 0,
) -> StatxResult:
    flags = args.c_int(flags) | (0 if follow_symlinks else abi.AT_SYMLINK_NOFOLLOW)
    buf = libc.statx(args.dir_fd(dir_fd), args.path(path), flags, args.c_uint(mask), path)
    return StatxResult.from_buffer(buf)


def _fstatx(fd: int, *, mask: int = BASIC_STATX) -> StatxResult:
    fd, mask = args.c_int(fd), args.c_uint(mask)
    buf = libc.statx(_no_negative_fd(fd, mask), b"\0", abi.AT_EMPTY_PATH, mask)
    return StatxResult.from_buffer(buf)


def _stat(
    path: StrOrBytesPath, *, dir_fd: int | None = None, follow_symlinks: bool = True
) -> os.stat_result:
    return os.stat(args.os_path(path, allow_fd=True), dir_fd=dir_fd,
                   follow_symlinks=follow_symlinks)  # fmt: skip


def _rename(
    src: StrOrBytesPath,
    dst: StrOrBytesPath,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    flags: int = 0,
) -> None:
    if not args.c_uint(flags):  # (None refused, as the ring's rename refuses it)
        os.rename(args.os_path(src), args.os_path(dst), src_dir_fd=src_dir_fd,
                  dst_dir_fd=dst_dir_fd)  # fmt: skip
        return
    libc.renameat2(args.dir_fd(src_dir_fd), args.path(src), args.dir_fd(dst_dir_fd),
                   args.path(dst), args.c_uint(flags), (src, dst))  # fmt: skip


def _symlink(target: StrOrBytesPath, link: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    os.symlink(args.os_path(target), args.os_path(link), dir_fd=dir_fd)


def _link(
    src: StrOrBytesPath,
    dst: StrOrBytesPath,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    follow_symlinks: bool = False,
) -> None:
    if not follow_symlinks:
        os.link(args.os_path(src), args.os_path(dst), src_dir_fd=src_dir_fd,
                dst_dir_fd=dst_dir_fd, follow_symlinks=False)  # fmt: skip
        return
    # os.link(follow_symlinks=True) calls link(2), which does not follow a symlink on Linux.
    libc.linkat(args.dir_fd(src_dir_fd), args.path(src), args.dir_fd(dst_dir_fd),
                args.path(dst), _AT_SYMLINK_FOLLOW, (src, dst))  # fmt: skip


def _unlink(path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    os.unlink(args.os_path(path), dir_fd=dir_fd)


def _rmdir(path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    os.rmdir(args.os_path(path), dir_fd=dir_fd)


def _mkdir(path: StrOrBytesPath, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
    os.mkdir(args.os_path(path), mode, dir_fd=dir_fd)


def _fsync(fd: FileDescriptorLike) -> None:
    os.fsync(args.fildes(fd))


def _fdatasync(fd: FileDescriptorLike) -> None:
    os.fdatasync(args.fildes(fd))


def _close_quietly(fd: int) -> None:
    """Close a descriptor nobody took (a late open's); it is ours, so it is open."""
    forget_descriptor(fd)
    os.close(fd)


# === 5.1 ========================================================================================


@declare(abi.Op.NOP, since="5.1", result=nothing, blocking=_nop)
def nop() -> Operation:
    """A no-op round trip through the ring."""
    return entry(abi.Op.NOP, fd=-1)


@declare(abi.Op.READV, since="5.1", result=count, blocking=_preadv)
def preadv(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> Operation:
    """Scatter-read into writable buffers at `offset` (-1: the file position); the count."""
    fd, offset = args.c_int(fd), args.off_t(offset)
    pins, iov = _pins(_buffer_list(buffers), writable=True)
    return _positioned(abi.Op.READV, fd, offset, tuple(pins), iov, len(pins), _preadv_now)


@declare(abi.Op.WRITEV, since="5.1", result=count, blocking=_pwritev)
def pwritev(fd: int, buffers: Sequence[Buffer], offset: int = -1) -> Operation:
    """Gather-write bytes-like objects at `offset` (-1: the file position); the count."""
    fd, offset = args.c_int(fd), args.off_t(offset)
    pins, iov = _pins(_buffer_list(buffers), writable=False)
    return _positioned(abi.Op.WRITEV, fd, offset, tuple(pins), iov, len(pins), _pwritev_now)


@declare(abi.Op.FSYNC, since="5.1", result=nothing, blocking=_fsync)
def fsync(fd: FileDescriptorLike) -> Operation:
    """fsync(2): flush the file's data and metadata to storage."""
    return entry(abi.Op.FSYNC, fd=args.fildes(fd))


@declare(abi.Op.FSYNC, since="5.1", result=nothing, blocking=_fdatasync)
def fdatasync(fd: FileDescriptorLike) -> Operation:
    """fdatasync(2): flush the file's data, and the metadata needed to read it back."""
    return entry(abi.Op.FSYNC, fd=args.fildes(fd), op_flags=abi.FSYNC_DATASYNC)


# === 5.6 ========================================================================================


@declare(abi.Op.READ, since="5.6", result=by_operation, blocking=_pread, returns="bytes")
def pread(fd: int, size: int, offset: int = -1) -> Operation:
    """Read up to `size` bytes at `offset` (-1: at the file position) into new bytes."""
    fd, size, offset = read_args(fd, size, offset)
    if not size:
        raise RunNow  # read(2) of 0 bytes still reports EISDIR, EBADF...; io_uring's does not
    made = ON_RING
    if offset == -1:
        # EAGAIN where io_uring's would wait (an O_NONBLOCK stream); the blocking call where
        # io_uring's would leave the position (an O_DIRECT descriptor)
        made = made_at_position(fd)
        at_once = AT_ONCE.get(made)
        if at_once is not None:
            raise RunNow(at_once)
    # Without a pool, a read gets a buffer of its own and its bytes are copied out of it:
    # past the loop's largest slot, where that would hold the size twice, it goes into
    # the bytes returned (the compiled twin's) if the descriptor is not O_DIRECT. (A
    # smaller read is not worth the fcntl that says so, from a thread with no loop.)
    into_result = size > _POOLED_MAX and copies_cached(fd)
    op = (StreamRead if made == STREAM_ON_RING else Read)(fd, size, offset, None, into_result)
    if made == STREAM_ON_RING:
        note_stream_wait(op, fd, False)
    return op


@declare(abi.Op.READ, since="5.6", result=by_operation, blocking=_pread_many,
         returns="list[bytes]")  # fmt: skip
def pread_many(requests: Iterable[tuple[int, int, int]]) -> Operation:
    """Many preads with one wait: [(fd, size, offset), ...] -> [bytes, ...] in order.

    The first failure, in request order, is raised after all completed, with `partial`:
    the bytes of each read that completed, in request order, None for the others (a read
    at a pipe's position took its bytes from the pipe). Reads at the position of an
    O_NONBLOCK stream are made as pread makes one (EAGAIN where io_uring's read would
    wait), once the others have completed. Several reads at the position of one pipe or
    socket that wait for data are made in the order the kernel wakes them, not in
    request order.
    """
    batch = read_many_args(requests)
    if not batch.fds:
        raise RunNow  # nothing to submit: []
    streams: list[int] = []
    at_once = reads_at_once(batch, streams)
    if len(at_once) == len(batch.fds):
        raise RunNow(lambda *_, **__: read_many_now(at_once))
    op = (StreamReadBatch if streams else ReadBatch)(
        batch.fds, batch.sizes, batch.offsets, None, at_once
    )
    note_stream_reads(op, streams)
    return op


def reads_at_once(
    batch: ReadRequests, streams: list[int] | None = None
) -> list[tuple[int, Callable[[], bytes]]]:
    """(request index, call) for pread_many's reads at the position of an O_NONBLOCK
    stream or of an O_DIRECT descriptor (made_at_position, asked once per descriptor): made
    at once, as pread makes such a read (EAGAIN where io_uring's would wait; the blocking
    call where io_uring's would not move the position). The descriptors of streams that
    may wait, read at their position on the ring, are added to `streams` (once each)."""
    if batch.lowest >= 0:
        return []
    calls: dict[int, Callable[[int, int], bytes] | None] = {}
    found: list[tuple[int, Callable[[], bytes]]] = []
    for i, (fd, size, offset) in enumerate(zip(batch.fds, batch.sizes, batch.offsets, strict=True)):
        if offset == -1:
            if fd in calls:
                call = calls[fd]
            else:
                made = made_at_position(fd)
                call = calls[fd] = AT_ONCE.get(made)
                if made == STREAM_ON_RING and streams is not None:
                    streams.append(fd)
            if call is not None:
                found.append((i, partial(call, fd, size)))
    return found


def note_stream_reads(op: Operation, streams: Iterable[int]) -> None:
    """`op`, a batch just built, reads at the position of each of `streams` (reads_at_once)."""
    for fd in streams:
        note_stream_wait(op, fd, False)


def read_many_now(calls: Sequence[tuple[int, Callable[[], bytes]]]) -> list[bytes]:
    """A batch whose every read is made at once (reads_at_once): all made, in order, then
    the first failure raised, as a batch's."""
    answers = [b""] * len(calls)  # (every request is one: the indices are 0, 1, ...)
    failures: dict[int, BaseException] = {}
    make_calls(calls, answers, failures)
    if failures:
        first = failures[min(failures)]
        first.partial = [None if i in failures else answers[i] for i in range(len(answers))]  # type: ignore[attr-defined]
        raise first
    return answers


@declare(abi.Op.READ, since="5.6", result=count, blocking=_preadinto)
def preadinto(fd: int, buffer: Buffer, offset: int = -1) -> Operation:
    """Read into a writable bytes-like `buffer` at `offset`; return the byte count."""
    # The common case (an O_DIRECT read's), the conversions and _positioned made at once:
    # the same checks in the same order, nothing to convert.
    op = PINNED_AT(Positioned, check_position, _READ, fd, offset, buffer, True)
    if op is not None:
        return op
    fd, offset = args.c_int(fd), args.off_t(offset)
    pin = PIN(buffer, True)
    return _positioned(
        _READ, fd, offset, (pin,), pin.address, min(pin.nbytes, MAX_RW_COUNT), _preadinto_now
    )


@declare(abi.Op.WRITE, since="5.6", result=count, blocking=_pwrite)
def pwrite(fd: int, data: Buffer, offset: int = -1) -> Operation:
    """Write a bytes-like object at `offset` (-1: at the file position); return the count.

    Like os.pwrite this may write less than len(data); see pwrite_all().

    A cancelled write is cancelled in the kernel. It may have written all the same (its
    completion on its way, or delivered before the task resumed), and the call raises
    CancelledError regardless: a caller that must know what a cancelled write at a
    stream's position wrote uses Loop.pwrite_kept.
    """
    if type(data) is not bytes:
        # The common case of a write from memory pinned: as preadinto's.
        op = PINNED_AT(Positioned, check_write_position, _WRITE, fd, offset, data, False)
        if op is not None:
            return op
    fd = args.c_int(fd)
    if type(data) is bytes:
        offset = args.off_t(offset)
        return _positioned(_WRITE, fd, offset, (), data, min(len(data), MAX_RW_COUNT), _pwrite_now)
    pin = PIN(data, False)
    try:
        offset = args.off_t(offset)
    except BaseException:
        pin.release()
        raise
    return _positioned(
        _WRITE, fd, offset, (pin,), pin.address, min(pin.nbytes, MAX_RW_COUNT), _pwrite_now
    )


@declare(abi.Op.OPENAT, since="5.6", result=descriptor, blocking=_open, discard=_close_quietly,
         inline=OPEN_INLINE)  # fmt: skip
def open_fd(
    path: StrOrBytesPath, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
) -> Operation:
    """openat(2), like os.open: return a new file descriptor (always O_CLOEXEC).

    Awaited as `loop.open_fd(...)` on the loop's own thread, an open that neither creates
    nor truncates is first tried as the kernel tries it inside io_uring_enter: resolved
    from the dentry cache alone, without waiting (a FIFO opens at once, as on the ring:
    O_WRONLY without O_CREAT with no reader yet fails with ENXIO, as io_uring's open does,
    where os.open waits for a reader; with O_CREAT the ring's open waits too).
    Where that answers, it answers at once, without a loop iteration (see
    Loop.inline_turn); else the open goes through the ring. If the waiter gives up and
    the open completes anyway, the new fd is closed, never leaked.
    """
    return entry(
        abi.Op.OPENAT,
        fd=args.dir_fd(dir_fd),
        addr=_path(path),
        len=args.u32(args.c_int(mode)),
        op_flags=args.u32(args.c_int(flags) | os.O_CLOEXEC),
        filename=path,
    )


@declare(abi.Op.CLOSE, since="5.6", result=nothing, blocking=_close, must_run=True)
def close_fd(fd: int) -> Operation:
    """close(2), like os.close. Never dropped: cancelling its waiter still closes the fd."""
    fd = args.c_int(fd)
    forget_descriptor(fd)
    return entry(abi.Op.CLOSE, fd=fd)


@declare(abi.Op.FALLOCATE, since="5.6", result=nothing, blocking=_fallocate)
def fallocate(fd: int, offset: int, length: int, mode: int = 0) -> Operation:
    """fallocate(2): reserve (mode 0) or punch/zero ranges (FALLOC_FL_* modes)."""
    # The kernel reads the length from `addr` and the mode from `len`.
    return entry(
        abi.Op.FALLOCATE,
        fd=args.c_int(fd),
        off=args.u64(args.off_t(offset)),
        addr=args.u64(args.off_t(length)),
        len=args.u32(args.c_int(mode)),
    )


def _statx_entry(dirfd: int, name: bytes, flags: int, mask: int, filename: Any) -> Operation:
    buf = ctypes.create_string_buffer(abi.STATX_SIZE)
    return entry(abi.Op.STATX, fd=dirfd, addr=name, len=args.c_uint(mask),
                 op_flags=args.u32(flags), off=buf, data=buf, filename=filename)  # fmt: skip


@declare(abi.Op.STATX, since="5.6", result=statx_record, blocking=_statx)
def statx(
    path: StrOrBytesPath,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    mask: int = BASIC_STATX,
    flags: int = 0,
) -> Operation:
    """statx(2) on a path; `mask` is STATX_* bits (add StatxMask.DIOALIGN for O_DIRECT)."""
    flags = args.c_int(flags) | (0 if follow_symlinks else abi.AT_SYMLINK_NOFOLLOW)
    name = args.path(path) if flags & abi.AT_EMPTY_PATH else _path(path)
    return _statx_entry(args.dir_fd(dir_fd), name, flags, mask, path)


@declare(abi.Op.STATX, since="5.6", result=statx_record, blocking=_fstatx)
def fstatx(fd: int, *, mask: int = BASIC_STATX) -> Operation:
    """statx(2) of an open file descriptor."""
    fd, mask = args.c_int(fd), args.c_uint(mask)
    return _statx_entry(_no_negative_fd(fd, mask), b"\0", abi.AT_EMPTY_PATH, mask, None)


@declare(abi.Op.STATX, since="5.6", result=stat_record, blocking=_stat)
def stat(
    path: StrOrBytesPath, *, dir_fd: int | None = None, follow_symlinks: bool = True
) -> Operation:
    """Like os.stat(), through statx on the ring (an int `path` is a descriptor).

    The kernel runs every statx on a worker thread of its own: tens of microseconds
    where os.stat() of a cached inode takes one."""
    if not isinstance(path, (str, bytes)) and hasattr(type(path), "__index__"):
        # A descriptor (an int, or an object with __index__, even one with __fspath__: os.stat
        # asks __index__ first), as os.stat takes it, refusing what only a path takes, in
        # its order; its errors name `path` as given.
        fd = args.fd(path)
        if args.dir_fd(dir_fd) != args.AT_FDCWD:  # (converted first, as os's; -100 is None)
            raise ValueError("stat: can't specify dir_fd without matching path")
        if fd > 0 and not follow_symlinks:  # (0 is let through, as os.stat lets it)
            raise ValueError("stat: cannot use fd and follow_symlinks together")
        if fd < 0:  # os.stat takes -1 for no descriptor, and stats a NULL path: EFAULT
            code = errno.EFAULT if fd == -1 else errno.EBADF
            raise OSError(code, os.strerror(code), path)
        return _statx_entry(fd, b"\0", abi.AT_EMPTY_PATH, BASIC_STATX, path)
    flags = 0 if follow_symlinks else abi.AT_SYMLINK_NOFOLLOW
    return _statx_entry(args.dir_fd(dir_fd), _path(path), flags, BASIC_STATX, path)


@declare(abi.Op.STATX, since="5.6", result=stat_record, blocking=os.fstat)
def fstat(fd: int) -> Operation:
    """Like os.fstat(), through statx on the ring.

    The kernel runs every statx on a worker thread of its own: tens of microseconds where
    os.fstat(), which copies the open file's in-memory inode, takes under one."""
    fd = _no_negative_fd(args.c_int(fd))
    return _statx_entry(fd, b"\0", abi.AT_EMPTY_PATH, BASIC_STATX, None)


# === 5.11 =======================================================================================


@declare(abi.Op.RENAMEAT, since="5.11", result=nothing, blocking=_rename)
def rename(
    src: StrOrBytesPath,
    dst: StrOrBytesPath,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    flags: int = 0,
) -> Operation:
    """renameat2(2); flags are RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), ..."""
    # The new directory goes in `len`, the new path in `addr2` (off).
    return entry(
        abi.Op.RENAMEAT,
        fd=args.dir_fd(src_dir_fd),
        addr=_path(src),
        len=args.u32(args.dir_fd(dst_dir_fd)),
        off=_path(dst),
        op_flags=args.c_uint(flags),
        filename=src,
        filename2=dst,
    )


@declare(abi.Op.UNLINKAT, since="5.11", result=nothing, blocking=_unlink)
def unlink(path: StrOrBytesPath, *, dir_fd: int | None = None) -> Operation:
    """unlinkat(2), like os.unlink."""
    return entry(abi.Op.UNLINKAT, fd=args.dir_fd(dir_fd), addr=_path(path), filename=path)


@declare(abi.Op.UNLINKAT, since="5.11", result=nothing, blocking=_rmdir)
def rmdir(path: StrOrBytesPath, *, dir_fd: int | None = None) -> Operation:
    """unlinkat(2) with AT_REMOVEDIR, like os.rmdir."""
    return entry(abi.Op.UNLINKAT, fd=args.dir_fd(dir_fd), addr=_path(path),
                 op_flags=abi.AT_REMOVEDIR, filename=path)  # fmt: skip


# === 5.15 =======================================================================================


@declare(abi.Op.MKDIRAT, since="5.15", result=nothing, blocking=_mkdir)
def mkdir(path: StrOrBytesPath, mode: int = 0o777, *, dir_fd: int | None = None) -> Operation:
    """mkdirat(2), like os.mkdir."""
    return entry(abi.Op.MKDIRAT, fd=args.dir_fd(dir_fd), addr=_path(path),
                 len=args.u32(args.c_int(mode)), filename=path)  # fmt: skip


@declare(abi.Op.SYMLINKAT, since="5.15", result=nothing, blocking=_symlink)
def symlink(
    target: StrOrBytesPath, link: StrOrBytesPath, *, dir_fd: int | None = None
) -> Operation:
    """symlinkat(2): make `link` a symbolic link to `target`, like os.symlink."""
    # The link's path goes in `addr2` (off).
    return entry(abi.Op.SYMLINKAT, fd=args.dir_fd(dir_fd), addr=_path(target),
                 off=_path(link), filename=target, filename2=link)  # fmt: skip


@declare(abi.Op.LINKAT, since="5.15", result=nothing, blocking=_link)
def link(
    src: StrOrBytesPath,
    dst: StrOrBytesPath,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    follow_symlinks: bool = False,
) -> Operation:
    """linkat(2): a hard link `dst` to `src` (follow_symlinks: link the symlink's target)."""
    # The new directory goes in `len`, the new path in `addr2` (off).
    return entry(
        abi.Op.LINKAT,
        fd=args.dir_fd(src_dir_fd),
        addr=_path(src),
        len=args.u32(args.dir_fd(dst_dir_fd)),
        off=_path(dst),
        op_flags=_AT_SYMLINK_FOLLOW if args.boolean(follow_symlinks) else 0,
        filename=src,
        filename2=dst,
    )


# === 6.9 ========================================================================================


@declare(abi.Op.FTRUNCATE, since="6.9", result=nothing, blocking=os.ftruncate)
def ftruncate(fd: int, length: int) -> Operation:
    """ftruncate(2), like os.ftruncate."""
    fd = args.c_int(fd)
    length = args.off_t(length)
    if length < 0:  # before the descriptor is looked at, as ftruncate(2) does
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    return entry(abi.Op.FTRUNCATE, fd=fd, off=args.u64(length))


# -- batches ---------------------------------------------------------------------------------------


class ReadRequests(NamedTuple):
    """pread_many's requests, checked: three signed 64-bit arrays of values in range, and
    what a batch's page-cache copies ask of them."""

    fds: array[int]
    sizes: array[int]
    offsets: array[int]
    fd: int  # the one descriptor every request names, or -1
    largest: int  # the largest size (0 with no requests)
    lowest: int  # the lowest offset (-1: a read at the file position, or no requests)


def read_many_args(requests: Iterable[Any]) -> ReadRequests:
    """pread_many's requests checked (as pread checks one) and split into signed 64-bit
    arrays (fds, sizes, offsets).

    Ints in the common range (sizes of 1 byte to 1 MiB) are split and checked in one call
    (SPLIT_REQUESTS); anything else goes through read_args one request at a time, for its
    exact error.
    """
    reqs = requests if isinstance(requests, list | tuple) else list(requests)
    split = SPLIT_REQUESTS(reqs, _POOLED_MAX)
    if split is not None:
        fds, sizes, offsets, fd, largest, lowest, highest = split
        if highest >= 0:  # explicit offsets: ESPIPE on a pipe, as os.pread
            if fd >= 0:
                check_position(fd, highest)
            else:  # (each descriptor once, in request order: a thread without a loop
                # keeps no check from one to the next)
                for one in dict.fromkeys(
                    one for one, offset in zip(fds, offsets, strict=True) if offset >= 0
                ):
                    check_position(one, 0)
        return ReadRequests(fds, sizes, offsets, fd, largest, lowest)
    checked = [read_args(*_request(req)) for req in reqs]
    columns = list(zip(*checked, strict=True)) or [(), (), ()]
    fds, sizes, offsets = (array("q", column) for column in columns)
    if not fds:
        return ReadRequests(fds, sizes, offsets, -1, 0, -1)
    if 0 in sizes:
        _zero_size_reads(fds, sizes, offsets)
    low = min(fds)
    return ReadRequests(
        fds, sizes, offsets, low if low == max(fds) else -1, max(sizes), min(offsets)
    )


def _zero_size_reads(fds: array[int], sizes: array[int], offsets: array[int]) -> None:
    """The batch's reads of 0 bytes made as system calls, as pread makes one: read(2) of
    0 bytes reports what io_uring's would not (EISDIR on a directory, EBADF)."""
    for fd, size, offset in zip(fds, sizes, offsets, strict=True):
        if not size:
            os.read(fd, 0) if offset == -1 else os.pread(fd, 0, offset)


def _request(req: Any) -> tuple[Any, Any, Any]:
    try:
        fd, size, offset = req
    except (TypeError, ValueError):
        raise TypeError(f"each request must be a (fd, size, offset) tuple, not {req!r}") from None
    return fd, size, offset


# Every declaration, by public name.
OPERATIONS: dict[str, Spec[..., Any]] = {
    spec.name: spec
    for spec in (
        nop, preadv, pwritev, fsync, fdatasync, pread, pread_many, preadinto, pwrite, open_fd,
        close_fd, fallocate, statx, fstatx, stat, fstat, rename, unlink, rmdir, mkdir, symlink,
        link, ftruncate,
    )
}  # fmt: skip
