"""Python arguments to the C values the kernel takes, converted as the os module converts them.

Each function mirrors the argument conversion of the os function that performs the same
system call (CPython's Argument Clinic converters in Modules/posixmodule.c), so that a
ring operation accepts exactly what os accepts and refuses the rest with os's exception
class: TypeError for a value of the wrong type, OverflowError for an integer the C type
cannot hold, ValueError where os raises it (a negative descriptor for fsync, an embedded
NUL in a path). Values the C type can hold but the kernel refuses (a negative length, a
bad flag) are not checked here: the kernel answers them with the errno os would report.

The kernel's SQE fields are unsigned where the system call's C arguments are signed (a
mode is an `int` in os.mkdir, a u32 in the SQE's `len`): `u32()` and `u64()` are the C
conversions between the two, spelled out where a declaration uses them.
"""

from __future__ import annotations

import operator
import os
import sys
from typing import Any

from .._errors import type_name

INT_MIN = -(2**31)
INT_MAX = 2**31 - 1
UINT_MAX = 2**32 - 1
OFF_MIN = -(2**63)
OFF_MAX = 2**63 - 1
U32_MASK = 0xFFFFFFFF
U64_MASK = 0xFFFFFFFFFFFFFFFF
AT_FDCWD = -100


def _index(value: object) -> int:
    """operator.index with os's message for a non-integer. An object with __index__ is
    converted by it, and what that raises is raised as os raises it (a TypeError of its
    own, or "__index__ returned non-int")."""
    if not hasattr(type(value), "__index__"):
        raise TypeError(f"'{type_name(value)}' object cannot be interpreted as an integer")
    return operator.index(value)  # type: ignore[arg-type]


def c_int(value: object) -> int:
    """A C `int` (os's `int` converter): fds of pread/close, flags, modes."""
    if type(value) is int and INT_MIN <= value <= INT_MAX:  # the common case, first
        return value
    v = _index(value)
    if not INT_MIN <= v <= INT_MAX:
        raise OverflowError("Python int too large to convert to C int")
    return v


def c_uint(value: object) -> int:
    """A C `unsigned int` (statx's mask, renameat2's flags): negative values are refused."""
    v = _index(value)
    if v < 0:
        raise OverflowError("can't convert negative int to unsigned")
    if v > UINT_MAX:
        raise OverflowError("Python int too large to convert to C unsigned int")
    return v


def off_t(value: object) -> int:
    """A C `off_t` (os's Py_off_t converter): offsets and lengths in a file."""
    if type(value) is int and OFF_MIN <= value <= OFF_MAX:  # the common case, first
        return value
    v = _index(value)
    if not OFF_MIN <= v <= OFF_MAX:
        raise OverflowError("Python int too large to convert to C long")
    return v


def ssize_t(value: object) -> int:
    """A C `Py_ssize_t` (the size of os.pread)."""
    v = _index(value)
    if not OFF_MIN <= v <= OFF_MAX:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return v


def fildes(value: object) -> int:
    """os.fsync's descriptor: an int or an object with fileno(); negative is a ValueError."""
    if isinstance(value, int):
        fd = value
    elif hasattr(value, "fileno"):  # (not __index__, which os.fsync does not take)
        fd = value.fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    else:
        raise TypeError("argument must be an int, or have a fileno() method.")
    fd = c_int(fd)
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def dir_fd(value: object) -> int:
    """os's `dir_fd=` keyword: None is the current directory (AT_FDCWD)."""
    if value is None:
        return AT_FDCWD
    if not isinstance(value, int) and not hasattr(value, "__index__"):
        raise TypeError(f"argument should be integer or None, not {type(value).__name__}")
    return fd(value)


def fd(value: object) -> int:
    """A descriptor where os's path or `dir_fd=` parameter takes one (os.stat(fd)): out of
    a C int's range, refused in those parameters' words."""
    number = operator.index(value)  # type: ignore[arg-type]
    if number > INT_MAX:
        raise OverflowError("fd is greater than maximum")
    if number < INT_MIN:
        raise OverflowError("fd is less than minimum")
    return number


def fs_bytes(value: Any) -> bytes:
    """os.fsencode(value), as os's own functions convert a path: a str subclass's encode()
    is not called (the file system's encoding of its characters is the path), nor a bytes
    subclass's __bytes__ (its bytes are)."""
    value = os.fspath(value)
    if isinstance(value, str):
        return str.encode(value, _FS_ENCODING, _FS_ERRORS)
    return bytes.__getitem__(value, slice(None))  # (its bytes: not a subclass's __bytes__)


_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def path(value: Any) -> bytes:
    """A path for the kernel (str, bytes or os.PathLike), NUL-terminated."""
    try:
        raw = fs_bytes(value)
    except TypeError:
        raise TypeError(
            f"path should be string, bytes or os.PathLike, not {type(value).__name__}"
        ) from None
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return raw + b"\0"


def os_path(value: Any, allow_fd: bool = False) -> Any:
    """A path for os's own call (a blocking counterpart's), taken as `path` takes it: str,
    bytes or a path-like object, returned as it is (or with `allow_fd`, an object with
    __index__: a descriptor). Anything else is refused as `path` refuses it: a bytearray or
    memoryview too, which 3.10's and 3.11's os still take with a DeprecationWarning."""
    kind = type(value)
    if isinstance(value, (str, bytes)) or hasattr(kind, "__fspath__"):
        return value
    if allow_fd and hasattr(kind, "__index__"):
        return value
    raise TypeError(f"path should be string, bytes or os.PathLike, not {kind.__name__}")


def boolean(value: object) -> bool:
    """A flag argument (follow_symlinks=...), taken by truth value as os takes it."""
    return bool(value)


def u32(value: int) -> int:
    """C's conversion of a signed 32-bit value to the SQE's u32 field."""
    return value & U32_MASK


def u64(value: int) -> int:
    """C's conversion of a signed 64-bit value (an off_t) to the SQE's u64 field."""
    return value & U64_MASK
