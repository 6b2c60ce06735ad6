"""Kernel error codes to Python exceptions, in one place.

`OSError(errno, strerror, filename)` already picks the subclass (FileNotFoundError,
PermissionError, IsADirectoryError, ...), so every failed operation goes through here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import sysconfig

# How an operation that was cancelled may end: ECANCELED, or the interrupted system call's
# own errno when the cancellation stopped it in a kernel worker thread (ERESTARTSYS, 512,
# kernel-internal: an open waiting for a FIFO's writer), or EINTR.
CANCELLED_ERRNOS = frozenset({errno.ECANCELED, 512, errno.EINTR})


def os_error(res: int, filename: object = None, filename2: object = None) -> OSError:
    """The OSError subclass for a negative CQE result `res` (-errno).

    Path-like filenames are reported as os.fspath() gives them, as os.open() and friends do.
    """
    err = -res
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    if isinstance(filename2, os.PathLike):
        filename2 = os.fspath(filename2)
    if filename2 is not None:
        return OSError(err, os.strerror(err), filename, None, filename2)
    if filename is not None:
        return OSError(err, os.strerror(err), filename)
    return OSError(err, os.strerror(err))


# A type object's tp_name pointer follows PyObject_VAR_HEAD (reference count, type, size)
# in CPython's default build; the free-threaded build's header is larger.
_TP_NAME_OFFSET = 3 * ctypes.sizeof(ctypes.c_void_p)


def _tp_name(cls: type) -> str | None:
    raw = ctypes.c_char_p.from_address(id(cls) + _TP_NAME_OFFSET).value
    return raw.decode("utf-8", "replace") if raw is not None else None


_READS_TP_NAME = (
    sys.implementation.name == "cpython"
    and not sysconfig.get_config_var("Py_GIL_DISABLED")
    and _tp_name(int) == "int"
    and _tp_name(type(sys.flags)) == "sys.flags"  # a dotted name, as tp_name has it
)


def type_name(obj: object, limit: int = 200) -> str:
    """The name CPython's own error messages give `obj`'s type (its tp_name: 'int',
    'decimal.Decimal', a class's __name__), cut as their "%.<limit>s" cuts it: at `limit`
    bytes of its UTF-8 (200 in most messages, 100 in "a bytes-like object is required")."""
    cls = type(obj)
    name = (_tp_name(cls) if _READS_TP_NAME else None) or cls.__name__
    raw = name.encode("utf-8", "surrogatepass")
    return raw[:limit].decode("utf-8", "replace") if len(raw) > limit else name


def not_bytes_like(obj: object) -> TypeError:
    """The TypeError os and the built-in files raise for data that is not bytes-like."""
    return TypeError(f"a bytes-like object is required, not '{type_name(obj, 100)}'")


class LoopClosedError(RuntimeError):
    """An operation was submitted to, or was still queued on, a closed uringloop loop."""


class StrandedError(LoopClosedError):
    """The loop was closed with the operation still under way (in the kernel, or on a
    thread of the fallback) after close() had waited for it: whether it happened, and how
    much of it, is unknown. A LoopClosedError, whose other cases did nothing (an operation
    dropped while queued, or cancelled before it began)."""
