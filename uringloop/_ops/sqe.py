"""The submission queue entry: its fields with their kernel types, built whole and checked.

struct io_uring_sqe, as <linux/io_uring.h> lays it out (64 bytes):

    offset  field                                    kernel type
    0       opcode                                   u8
    1       flags (IOSQE_*)                          u8
    2       ioprio                                   u16
    4       fd                                       s32
    8       off | addr2                              u64
    16      addr                                     u64
    24      len                                      u32
    28      op_flags (rw_flags, open_flags, ...)     u32
    32      user_data                                u64
    40      buf_index                                u16
    42      personality                              u16
    44      file_index | splice_fd_in                s32
    48      addr3                                    u64
    56      pad                                      u64

`build()` takes one value per field, checks each against its kernel type and returns the
64 bytes with user_data 0 (the driver stores the user_data when it copies the entry into a
slot). A field that holds an address (addr, and off as addr2) may be given the object
whose memory the kernel reads or writes: its address goes into the field and the object is
returned among the entry's references, which the operation keeps until its completion.

Invariant: nothing reaches a slot of the SQ but a whole entry that passed these checks, so
a bad argument raises before a slot is reserved and leaves the ring as it was.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from .._buffers import PIN, ScratchBuffer, bytes_address

SQE = struct.Struct("<BBHiQQIIQHHiQQ")
_pack = SQE.pack
SQE_SIZE = 64
USER_DATA_WORD = 4  # user_data is the fifth 64-bit word of an SQE

# (field, kernel type, minimum, maximum) in struct order, user_data and pad excluded.
_U8, _U16, _U32, _U64, _S32 = (
    (0, 2**8 - 1),
    (0, 2**16 - 1),
    (0, 2**32 - 1),
    (0, 2**64 - 1),
    (
        -(2**31),
        2**31 - 1,
    ),
)
FIELDS: tuple[tuple[str, str, tuple[int, int]], ...] = (
    ("opcode", "u8", _U8),
    ("flags", "u8", _U8),
    ("ioprio", "u16", _U16),
    ("fd", "s32", _S32),
    ("off", "u64", _U64),
    ("addr", "u64", _U64),
    ("len", "u32", _U32),
    ("op_flags", "u32", _U32),
    ("buf_index", "u16", _U16),
    ("personality", "u16", _U16),
    ("file_index", "s32", _S32),
    ("addr3", "u64", _U64),
)

Refs = tuple[Any, ...]


def address(obj: object) -> int:
    """The address of the memory `obj` holds: bytes, a Pin, a ScratchBuffer, a ctypes array."""
    if type(obj) is bytes:
        return bytes_address(obj)
    if isinstance(obj, (PIN, ScratchBuffer)):
        return obj.address
    if isinstance(obj, ctypes.Array):
        return ctypes.addressof(obj)
    raise TypeError(f"no address for a {type(obj).__name__}")


def build(
    opcode: int,
    fd: int = 0,
    off: Any = 0,
    addr: Any = 0,
    len: int = 0,
    op_flags: int = 0,
    refs: Refs = (),
) -> tuple[bytes, Refs]:
    """One whole, checked SQE (user_data 0), and `refs` plus the objects its address fields
    point into. The fields uringloop's operations set; the others (flags, ioprio,
    buf_index, personality, file_index, addr3) are 0.

    Raises TypeError for a value that is not an integer (or, in an address field, an object
    with an address) and OverflowError for one outside its field's kernel type, naming the
    field; nothing is written anywhere.
    """
    if type(addr) is not int:
        refs += (addr,)
        addr = address(addr)
    if type(off) is not int:
        refs += (off,)
        off = address(off)
    try:
        return _pack(opcode, 0, 0, fd, off, addr, len, op_flags, 0, 0, 0, 0, 0, 0), refs
    except struct.error:
        raise _field_error((opcode, 0, 0, fd, off, addr, len, op_flags, 0, 0, 0, 0)) from None


def _field_error(fields: tuple[Any, ...]) -> Exception:
    """The exception for the first field struct refused, naming it and its kernel type."""
    for (name, ctype, (low, high)), value in zip(FIELDS, fields, strict=True):
        if not isinstance(value, int):
            return TypeError(f"SQE field {name} ({ctype}) needs an integer, not {value!r}")
        if not low <= value <= high:
            return OverflowError(f"{value} does not fit the SQE's {ctype} field {name}")
    return OverflowError("SQE fields out of range")  # pragma: no cover - struct agreed


def field_value(entry: bytes, name: str) -> int:
    """The value of one field of a built entry (for tests and error messages)."""
    index = [f[0] for f in FIELDS].index(name)
    values = SQE.unpack(entry)
    return values[index if index < 8 else index + 1]  # type: ignore[no-any-return]
