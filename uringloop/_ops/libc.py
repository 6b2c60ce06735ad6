"""The system calls os has no function for, through the C library: statx, renameat2,
fallocate, and linkat with AT_SYMLINK_FOLLOW (os.link calls link(2) for it), the blocking
counterparts of those ring operations (fallback, threads), taking the same C values the
SQE carries; openat2, for the kernel's non-blocking first attempt at an open; and send(2)
on a descriptor, for an empty write to a socket that cannot wait."""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from typing import Any

from .._ring import abi

_libc = ctypes.CDLL(None, use_errno=True)


def _function(name: str, argtypes: list[Any]) -> Any:
    func = getattr(_libc, name, None)
    if func is not None:
        func.argtypes = argtypes
        func.restype = ctypes.c_int
    return func


_statx = _function(
    "statx", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
)
_renameat2 = _function(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
)
_linkat = _function(
    "linkat", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
)
_fallocate = _function("fallocate", [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64])
_send = getattr(_libc, "send", None)
if _send is not None:
    _send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    _send.restype = ctypes.c_ssize_t
_syscall = getattr(_libc, "syscall", None)
if _syscall is not None:
    _syscall.restype = ctypes.c_long
# openat2's number: one for every architecture but a few (alpha, mips, ia64) since Linux 5.6.
_SYS_OPENAT2 = 437 if os.uname().machine in ("x86_64", "aarch64", "riscv64", "s390x",
                                            "ppc64le", "ppc64", "loongarch64") else -1  # fmt: skip


class _OpenHow(ctypes.Structure):
    """struct open_how, as Linux 5.6 defined it (linux/openat2.h)."""

    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def _check(
    func: Any, name: str, *call_args: Any, filename: Any = None, filename2: Any = None
) -> None:
    if func is None:
        raise OSError(errno.ENOSYS, f"{name} is not available in this C library")
    if func(*call_args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), *_filenames(filename, filename2))


def _filenames(filename: Any, filename2: Any) -> tuple[Any, ...]:
    if filename is None:
        return ()
    first = os.fspath(filename) if isinstance(filename, os.PathLike) else filename
    if filename2 is None:
        return (first,)
    second = os.fspath(filename2) if isinstance(filename2, os.PathLike) else filename2
    return (first, None, second)


def statx(dirfd: int, path: bytes, flags: int, mask: int, filename: Any = None) -> Any:
    """statx(2) into a new buffer, which it returns; `path` NUL-terminated (args.path),
    `flags` a C int, `mask` a C unsigned int."""
    buf = ctypes.create_string_buffer(abi.STATX_SIZE)
    _check(_statx, "statx", dirfd, path, flags, mask, ctypes.addressof(buf), filename=filename)
    return buf


def renameat2(
    old_dirfd: int, old: bytes, new_dirfd: int, new: bytes, flags: int, filenames: tuple[Any, Any]
) -> None:
    _check(_renameat2, "renameat2", old_dirfd, old, new_dirfd, new, flags,
           filename=filenames[0], filename2=filenames[1])  # fmt: skip


def linkat(
    old_dirfd: int, old: bytes, new_dirfd: int, new: bytes, flags: int, filenames: tuple[Any, Any]
) -> None:
    _check(_linkat, "linkat", old_dirfd, old, new_dirfd, new, flags,
           filename=filenames[0], filename2=filenames[1])  # fmt: skip


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    _check(_fallocate, "fallocate", fd, mode, offset, length)


def openat2(dirfd: int, path: bytes, flags: int, resolve: int) -> int:
    """openat2(2) with mode 0: the new descriptor, or -errno (-ENOSYS where this C library
    or architecture has no way to call it)."""
    if _syscall is None or _SYS_OPENAT2 < 0:
        return -errno.ENOSYS
    how = _OpenHow(flags & 0xFFFFFFFF, 0, resolve)
    fd: int = _syscall(_SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(path),
                       ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))  # fmt: skip
    return fd if fd >= 0 else -ctypes.get_errno()


def send_nothing(fd: int) -> int:
    """send(2) of no bytes with MSG_DONTWAIT, as write(2) of none on a socket (an empty
    datagram; EPIPE where the peer has gone) but never waiting: 0, or OSError."""
    if _send is None:
        raise OSError(errno.ENOSYS, "send is not available in this C library")
    if _send(fd, None, 0, socket.MSG_DONTWAIT) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0
