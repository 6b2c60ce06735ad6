"""One small class per io_uring operation.

An Operation keeps its arguments and buffers alive, writes its SQE (`prep`), and turns the
CQE result into a value or an OSError (`complete`). `run_blocking` performs the same
operation with a plain system call, for the thread-pool fallback. Operations know nothing
of asyncio: their waiter is anything with done(), set_result() and set_exception()
(an asyncio.Future, a concurrent.futures.Future, or a batch item).

Invariant: an Operation releases its buffers (`release`) only from `complete`, i.e. after
its CQE was reaped, or before it was ever submitted (`drop`).
"""

from __future__ import annotations

import ctypes
import errno
import operator
import os
import stat as _stat
import sys
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ._buffers import SLOT_SIZES, Pin, ScratchBuffer, SlotPool, bytes_address
from ._errors import os_error
from ._ring import abi

if TYPE_CHECKING:
    from collections.abc import Sequence

_U64 = 0xFFFFFFFFFFFFFFFF
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
# The kernel caps one read or write at MAX_RW_COUNT = INT_MAX & PAGE_MASK bytes.
MAX_RW_COUNT = 0x7FFFF000
_pack_sqe = abi.SQE.pack_into
_READ = abi.Op.READ
_LITTLE_ENDIAN = sys.byteorder == "little"  # SQEs are built as native 64-bit words
_ARRAY_MIN = 8  # parts from which building SQEs as one array beats packing them one by one
# The largest pool slot a uniform batch reads into at once (bigger batches: a slot per part).
_BATCH_REGION_MAX = SLOT_SIZES[-1]
_AT_FDCWD = abi.AT_FDCWD


class Waiter(Protocol):
    def done(self) -> bool: ...
    def set_result(self, result: Any, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


# -- argument checks (raise before anything is queued) -----------------------------------


def check_fd(fd: object, what: str = "fd") -> int:
    try:
        value = operator.index(fd)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(fd).__name__}") from None
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise OverflowError(f"{what} {value} is out of range")
    return value


def check_size(size: object) -> int:
    try:
        value = operator.index(size)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"size must be an integer, not {type(size).__name__}") from None
    if value < 0:
        raise ValueError(f"size must be non-negative, not {value}")
    return min(value, MAX_RW_COUNT)


def check_offset(offset: object) -> int:
    """An explicit file offset (>= 0), or -1 for the file position."""
    try:
        value = operator.index(offset)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"offset must be an integer, not {type(offset).__name__}") from None
    if value < -1:
        raise ValueError(f"offset must be >= 0, or -1 for the file position, not {value}")
    if value >= 2**63:
        raise OverflowError(f"offset {value} is out of range")
    return value


def check_path(path: object) -> bytes:
    """A NUL-terminated path for the kernel, from str, bytes or os.PathLike."""
    raw = os.fsencode(path)  # type: ignore[arg-type]
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return raw + b"\0"


# -- the base class -------------------------------------------------------------------------


class Operation:
    """One request to the kernel. Subclasses set `opcode` and implement prep and result."""

    __slots__ = ("state", "user_data", "waiter")
    opcode: ClassVar[int]
    name: ClassVar[str]
    # A multi-part operation fills several SQEs (prep_parts) and gets one CQE per part
    # (complete_part); see ReadBatch.
    multi: ClassVar[bool] = False

    QUEUED: ClassVar[int] = 0
    SUBMITTED: ClassVar[int] = 1
    DONE: ClassVar[int] = 2

    def __init__(self) -> None:
        self.waiter: Waiter | None = None
        self.user_data = 0
        self.state = Operation.QUEUED

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        """Write this operation's 64-byte SQE at byte offset `off` of `sqes`."""
        raise NotImplementedError

    def result(self, res: int) -> Any:
        """The value for a successful (res >= 0) completion."""
        return res

    def error(self, res: int) -> OSError:
        return os_error(res)

    def release(self) -> None:
        """Drop buffers and pins. Called once, after the CQE (or instead of submission)."""

    def discard(self, res: int) -> None:
        """Undo a successful result nobody waits for any more (a cancelled open's fd)."""

    def run_blocking(self) -> Any:
        """Perform the operation with a blocking system call (thread-pool fallback)."""
        raise NotImplementedError

    def complete(self, res: int, flags: int) -> None:
        """Deliver the CQE result to the waiter; runs on the thread that reaps the ring."""
        self.state = Operation.DONE
        waiter = self.waiter
        if waiter is None or waiter.done():
            if res >= 0:
                self.discard(res)
            self.release()
        elif res < 0:
            exc = self.error(res)
            self.release()
            waiter.set_exception(exc)
        else:
            value = self.result(res)
            self.release()
            waiter.set_result(value)

    def complete_blocking(self, value: Any, exc: BaseException | None) -> None:
        """Deliver the outcome of run_blocking() (fallback path)."""
        self.state = Operation.DONE
        waiter = self.waiter
        if waiter is None or waiter.done():
            if exc is None:
                self.discard_value(value)
            self.release()
        elif exc is not None:
            self.release()
            waiter.set_exception(exc)
        else:
            self.release()
            waiter.set_result(value)

    def discard_value(self, value: Any) -> None:
        """Like discard(), for a run_blocking() result."""

    # -- multi-part operations only --

    def parts_left(self) -> int:
        """Parts whose SQE is not yet written."""
        raise NotImplementedError

    def prep_parts(self, sqes: Any, words: Any, offsets: list[int], start: int) -> tuple[int, int]:
        """Write the next parts' SQEs at byte offsets[start:] of `sqes` (`words`: the same
        memory as 64-bit words); return (first part, count)."""
        raise NotImplementedError

    def complete_part(self, user_data: int, res: int) -> None:
        raise NotImplementedError

    def complete_parts(self, user_datas: list[int], results: list[int]) -> None:
        """complete_part() for many CQEs of this operation at once."""
        for user_data, res in zip(user_datas, results, strict=True):
            self.complete_part(user_data, res)

    def drop_unwritten(self) -> int:
        """Cancel: drop the parts not yet written; return how many were written."""
        raise NotImplementedError

    def drop(self) -> None:
        """Never submitted and never will be: free what it holds."""
        self.state = Operation.DONE
        self.release()

    def __repr__(self) -> str:
        states = {0: "queued", 1: "submitted", 2: "done"}
        return f"<{type(self).__name__} {states.get(self.state, self.state)} ud={self.user_data}>"


# -- operations -----------------------------------------------------------------------------


class Nop(Operation):
    __slots__ = ()
    opcode = abi.Op.NOP
    name = "nop"

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(sqes, off, abi.Op.NOP, 0, 0, -1, 0, 0, 0, 0, user_data, 0, 0, 0, 0, 0)

    def result(self, res: int) -> None:
        return None

    def run_blocking(self) -> None:
        return None


class Read(Operation):
    """pread into a new buffer; the result is `bytes` (shorter at end of file).

    Small reads use a slot of the loop's SlotPool, taken at construction and returned in
    complete()/drop(); larger ones (or foreign threads', pool=None) get a ctypes buffer.
    """

    __slots__ = ("_buffer", "_pool", "_slot", "address", "fd", "offset", "size")
    opcode = abi.Op.READ
    name = "read"

    def __init__(self, fd: int, size: int, offset: int, pool: SlotPool | None) -> None:
        self.waiter: Waiter | None = None
        self.user_data = 0
        self.state = 0  # Operation.QUEUED
        self.fd = fd
        self.size = size
        self.offset = offset
        self._pool = pool
        self._buffer: ScratchBuffer | None = None
        if pool is not None and size <= 4096 and pool.free_small:
            self._slot = slot = pool.free_small.pop()
            self.address = pool.address_of[slot]
        elif pool is not None and (slot := pool.alloc(size)) >= 0:
            self._slot = slot
            self.address = pool.address_of[slot]
        else:
            self._slot = -1
            self._buffer = ScratchBuffer(size)
            self.address = self._buffer.address

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.READ,
            0,
            0,
            self.fd,
            self.offset & _U64,
            self.address,
            self.size,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def complete(self, res: int, flags: int) -> None:
        # The hot path: Operation.complete() specialised, same contract.
        self.state = 2  # Operation.DONE
        waiter = self.waiter
        slot = self._slot
        if slot >= 0:
            pool = self._pool
            if waiter is not None and not waiter.done():
                if res >= 0:
                    off = pool.offset_of[slot]  # type: ignore[union-attr]
                    waiter.set_result(pool.arena_of[slot][off : off + res])  # type: ignore[union-attr]
                else:
                    waiter.set_exception(os_error(res))
            pool.free_list_of[slot].append(slot)  # type: ignore[union-attr]
            self._slot = -1
            self.address = 0
            return
        if waiter is not None and not waiter.done():
            if res >= 0:
                waiter.set_result(self._buffer.take(res))  # type: ignore[union-attr]
            else:
                waiter.set_exception(os_error(res))
        self.release()

    def result(self, res: int) -> bytes:
        if self._slot >= 0:
            return self._pool.take(self._slot, res)  # type: ignore[union-attr]
        return self._buffer.take(res)  # type: ignore[union-attr]

    def release(self) -> None:
        if self._slot >= 0:
            self._pool.free(self._slot)  # type: ignore[union-attr]
            self._slot = -1
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None
        self.address = 0

    def run_blocking(self) -> bytes:
        if self.offset < 0:
            return os.read(self.fd, self.size)
        return os.pread(self.fd, self.size, self.offset)


class ReadBatch(Operation):
    """Many preads completing as one: the result is a list of `bytes`, in request order.

    Part i has user_data `self.user_data + i`. When every part has the same size and the
    batch fits a pool slot, the parts read into one slot, part i at `i * size` (one
    allocation; its SQEs are written as one array copy); otherwise each part gets its own
    slot (or a ctypes buffer for large sizes). A CQE only records its part's result: the
    `bytes` are copied out and the buffers released once every written part has completed.
    If any part fails, the error of the first failed part (in request order) is raised.
    """

    __slots__ = ("_buffers", "_error", "_error_index", "_left", "_next", "_pool", "_region",
                 "_res", "_slots", "_stride", "fds", "offsets", "sizes")  # fmt: skip
    opcode = abi.Op.READ
    name = "read"
    multi = True

    def __init__(
        self, fds: array[int], sizes: array[int], offsets: array[int], pool: SlotPool | None
    ) -> None:
        # Signed 64-bit arrays of checked values (fds >= 0, sizes >= 0, offsets >= -1).
        super().__init__()
        self.fds = fds
        self.sizes = sizes
        self.offsets = offsets
        n = len(fds)
        self._pool = pool
        self._res = [0] * n
        self._slots: list[int] = []  # per-part pool slots (-1: a ScratchBuffer), in order
        self._buffers: dict[int, ScratchBuffer] = {}
        self._left = n  # parts whose CQE has not arrived (or that were dropped)
        self._next = 0  # parts written so far
        self._error: BaseException | None = None
        self._error_index = n
        # One slot for the whole batch when the sizes are uniform: part i at i * stride.
        self._region = -1
        self._stride = 0
        if pool is not None and n:
            size = sizes[0]
            if size and size * n <= _BATCH_REGION_MAX and sizes.count(size) == n:
                self._region = pool.alloc(size * n)
                self._stride = size

    def parts_left(self) -> int:
        return len(self.fds) - self._next

    def prep_parts(self, sqes: Any, words: Any, offsets: list[int], start: int) -> tuple[int, int]:
        first = self._next
        count = min(len(offsets) - start, len(self.fds) - first)
        end = first + count
        base = self.user_data
        pos = offsets[start]
        if self._region >= 0:
            pool: SlotPool = self._pool  # type: ignore[assignment]
            stride = self._stride
            addr0 = pool.address_of[self._region]
            if (
                count >= _ARRAY_MIN
                and _LITTLE_ENDIAN
                and offsets[start + count - 1] - pos == (count - 1) * abi.SQE_SIZE
            ):
                # Contiguous SQEs: build all 8-word SQEs in one array, copy it in once.
                # Fields: word 0 opcode | fd << 32, 1 offset, 2 address, 3 length, 4 user_data.
                fds = self.fds
                sqe = array("q", bytes(count * abi.SQE_SIZE))
                if fds.count(fds[0]) == len(fds):
                    sqe[0::8] = array("q", (_READ | fds[0] << 32,)) * count
                else:
                    sqe[0::8] = array("q", [_READ | fd << 32 for fd in fds[first:end]])
                sqe[1::8] = self.offsets[first:end]
                sqe[2::8] = array("q", range(addr0 + first * stride, addr0 + end * stride, stride))
                sqe[3::8] = array("q", (stride,)) * count
                sqe[4::8] = array("q", range(base + first, base + end))
                words[pos // 8 : pos // 8 + count * 8] = sqe
            else:  # a short run, or one that wraps around the end of the SQ
                for j in range(count):
                    i = first + j
                    _pack_sqe(sqes, offsets[start + j], _READ, 0, 0, self.fds[i],
                              self.offsets[i] & _U64, addr0 + i * stride, stride, 0,
                              base + i, 0, 0, 0, 0, 0)  # fmt: skip
        else:
            pool = self._pool  # type: ignore[assignment]
            slots = self._slots
            for j in range(count):
                i = first + j
                size = self.sizes[i]
                slot = pool.alloc(size) if pool is not None else -1
                slots.append(slot)
                if slot >= 0:
                    addr = pool.address_of[slot]
                else:
                    buf = self._buffers[i] = ScratchBuffer(size)
                    addr = buf.address
                offset = self.offsets[i] & _U64
                _pack_sqe(sqes, offsets[start + j], _READ, 0, 0, self.fds[i], offset, addr,
                          size, 0, base + i, 0, 0, 0, 0, 0)  # fmt: skip
        self._next = end
        return first, count

    def complete_part(self, user_data: int, res: int) -> None:
        self._res[user_data - self.user_data] = res
        self._left -= 1
        if not self._left:
            self._finish()

    def complete_parts(self, user_datas: list[int], results: list[int]) -> None:
        first = user_datas[0]
        count = len(user_datas)
        start = first - self.user_data
        if user_datas == list(range(first, first + count)):  # in submission order
            self._res[start : start + count] = results
        else:
            res = self._res
            base = self.user_data
            for user_data, value in zip(user_datas, results, strict=True):
                res[user_data - base] = value
        self._left -= count
        if not self._left:
            self._finish()

    def _finish(self) -> None:
        """Every written part has completed: copy the results out, release the buffers."""
        self.state = Operation.DONE
        waiter = self.waiter
        written = self._next
        res = self._res
        if written and min(res[:written]) < 0:
            for i in range(min(written, self._error_index)):
                if res[i] < 0:
                    self._error, self._error_index = os_error(res[i]), i
                    break
        results: list[bytes] | None = None
        if self._error is None and waiter is not None and not waiter.done():
            results = self._results(written)
        self.release()
        if waiter is None or waiter.done():
            return
        if self._error is not None:
            waiter.set_exception(self._error)
        else:
            waiter.set_result(results)

    def _results(self, written: int) -> list[bytes]:
        res = self._res
        pool = self._pool
        if self._region >= 0:
            arena = pool.arena_of[self._region]  # type: ignore[union-attr]
            off = pool.offset_of[self._region]  # type: ignore[union-attr]
            stride = self._stride
            starts = range(off, off + written * stride, stride)
            return [arena[p : p + n] for p, n in zip(starts, res, strict=False)]
        out = []
        for i, slot in enumerate(self._slots):
            if slot >= 0:
                out.append(pool.take(slot, res[i]))  # type: ignore[union-attr]
            else:
                out.append(self._buffers[i].take(res[i]))
        return out

    def release(self) -> None:
        """Return the batch's buffers. Only once no written part is in flight."""
        pool = self._pool
        if self._region >= 0:
            pool.free(self._region)  # type: ignore[union-attr]
            self._region = -1
        for slot in self._slots:
            if slot >= 0:
                pool.free(slot)  # type: ignore[union-attr]
        self._slots = []
        for buf in self._buffers.values():
            buf.close()
        self._buffers.clear()

    def drop_unwritten(self) -> int:
        written = self._next
        dropped = len(self.fds) - written
        self.fds = self.fds[:written]
        self._left -= dropped
        if dropped and written < self._error_index:
            # Parts never submitted have no result: the batch as a whole fails.
            self._error = os_error(-errno.ECANCELED)
            self._error_index = written
        self.state = Operation.SUBMITTED if written else Operation.DONE
        if not self._left:
            self._finish()
        return written

    def drop(self) -> None:
        self.drop_unwritten()

    def run_blocking(self) -> list[bytes]:
        return [
            os.pread(fd, size, offset) if offset >= 0 else os.read(fd, size)
            for fd, size, offset in zip(self.fds, self.sizes, self.offsets, strict=True)
        ]


class ReadInto(Operation):
    """pread into the caller's writable buffer; the result is the byte count."""

    __slots__ = ("_buffer", "_pin", "fd", "offset", "size")
    opcode = abi.Op.READ
    name = "readinto"

    def __init__(self, fd: int, buffer: Any, offset: int) -> None:
        super().__init__()
        self.fd = fd
        self.offset = offset
        self._pin: Pin | None = Pin(buffer, writable=True)
        self._buffer = buffer
        self.size = min(self._pin.nbytes, MAX_RW_COUNT)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.READ,
            0,
            0,
            self.fd,
            self.offset & _U64,
            self._pin.address,  # type: ignore[union-attr]
            self.size,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def release(self) -> None:
        if self._pin is not None:
            self._pin.release()
            self._pin = None
        self._buffer = None

    def run_blocking(self) -> int:
        view = memoryview(self._buffer).cast("B")
        if self.offset < 0:
            return os.readv(self.fd, [view])
        return os.preadv(self.fd, [view], self.offset)


class Write(Operation):
    """pwrite from any bytes-like object; the result is the byte count."""

    __slots__ = ("_data", "_pin", "address", "fd", "offset", "size")
    opcode = abi.Op.WRITE
    name = "write"

    def __init__(self, fd: int, data: Any, offset: int) -> None:
        super().__init__()
        self.fd = fd
        self.offset = offset
        self._data = data
        if type(data) is bytes:
            self._pin: Pin | None = None
            self.address = bytes_address(data)
            self.size = min(len(data), MAX_RW_COUNT)
        else:
            self._pin = Pin(data, writable=False)
            self.address = self._pin.address
            self.size = min(self._pin.nbytes, MAX_RW_COUNT)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.WRITE,
            0,
            0,
            self.fd,
            self.offset & _U64,
            self.address,
            self.size,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def release(self) -> None:
        if self._pin is not None:
            self._pin.release()
            self._pin = None
        self._data = None

    def run_blocking(self) -> int:
        view = memoryview(self._data).cast("B")[: self.size]
        if self.offset < 0:
            return os.write(self.fd, view)
        return os.pwrite(self.fd, view, self.offset)


class _Vectored(Operation):
    __slots__ = ("_buffers", "_iov", "_pins", "fd", "offset")
    _writable: ClassVar[bool]

    def __init__(self, fd: int, buffers: Sequence[Any], offset: int) -> None:
        super().__init__()
        self.fd = fd
        self.offset = offset
        buffers = list(buffers)
        if len(buffers) > 1024:  # IOV_MAX
            raise ValueError(f"at most 1024 buffers, not {len(buffers)}")
        pins: list[Pin] = []
        try:
            for buf in buffers:
                pins.append(Pin(buf, writable=self._writable))
        except BaseException:
            for pin in pins:
                pin.release()
            raise
        self._pins: list[Pin] | None = pins
        self._buffers: list[Any] | None = buffers
        iov = ctypes.create_string_buffer(max(len(pins), 1) * abi.IOVEC.size)
        for i, pin in enumerate(pins):
            abi.IOVEC.pack_into(iov, i * abi.IOVEC.size, pin.address, pin.nbytes)
        self._iov: ctypes.Array[ctypes.c_char] | None = iov

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            self.opcode,
            0,
            0,
            self.fd,
            self.offset & _U64,
            ctypes.addressof(self._iov),  # type: ignore[arg-type]
            len(self._pins),  # type: ignore[arg-type]
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def release(self) -> None:
        if self._pins is not None:
            for pin in self._pins:
                pin.release()
            self._pins = None
        self._iov = None
        self._buffers = None


class ReadV(_Vectored):
    """preadv into the caller's writable buffers; the result is the byte count."""

    __slots__ = ()
    opcode = abi.Op.READV
    name = "readv"
    _writable = True

    def run_blocking(self) -> int:
        views = [memoryview(b).cast("B") for b in self._buffers or ()]
        if self.offset < 0:
            return os.readv(self.fd, views)
        return os.preadv(self.fd, views, self.offset)


class WriteV(_Vectored):
    """pwritev from bytes-like objects; the result is the byte count."""

    __slots__ = ()
    opcode = abi.Op.WRITEV
    name = "writev"
    _writable = False

    def run_blocking(self) -> int:
        views = [memoryview(b).cast("B") for b in self._buffers or ()]
        if self.offset < 0:
            return os.writev(self.fd, views)
        return os.pwritev(self.fd, views, self.offset)


class OpenAt(Operation):
    """openat(2); the result is the new fd (O_CLOEXEC is always added, as os.open does)."""

    __slots__ = ("_path", "dirfd", "flags", "mode", "path")
    opcode = abi.Op.OPENAT
    name = "openat"

    def __init__(self, path: Any, flags: int, mode: int, dirfd: int) -> None:
        super().__init__()
        self.path = path
        self._path = check_path(path)
        self.flags = operator.index(flags) | os.O_CLOEXEC
        self.mode = operator.index(mode)
        self.dirfd = dirfd

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.OPENAT,
            0,
            0,
            self.dirfd,
            0,
            bytes_address(self._path),
            self.mode,
            self.flags & 0xFFFFFFFF,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def error(self, res: int) -> OSError:
        return os_error(res, self.path)

    def discard(self, res: int) -> None:
        os.close(res)

    def discard_value(self, value: Any) -> None:
        os.close(value)

    def run_blocking(self) -> int:
        dir_fd = None if self.dirfd == _AT_FDCWD else self.dirfd
        return os.open(self.path, self.flags, self.mode, dir_fd=dir_fd)


class Close(Operation):
    __slots__ = ("fd",)
    opcode = abi.Op.CLOSE
    name = "close"

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(sqes, off, abi.Op.CLOSE, 0, 0, self.fd, 0, 0, 0, 0, user_data, 0, 0, 0, 0, 0)

    def result(self, res: int) -> None:
        return None

    def run_blocking(self) -> None:
        os.close(self.fd)


class Fsync(Operation):
    __slots__ = ("datasync", "fd")
    opcode = abi.Op.FSYNC
    name = "fsync"

    def __init__(self, fd: int, datasync: bool) -> None:
        super().__init__()
        self.fd = fd
        self.datasync = datasync

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        flags = abi.FSYNC_DATASYNC if self.datasync else 0
        _pack_sqe(sqes, off, abi.Op.FSYNC, 0, 0, self.fd, 0, 0, 0, flags, user_data, 0, 0, 0, 0, 0)

    def result(self, res: int) -> None:
        return None

    def run_blocking(self) -> None:
        (os.fdatasync if self.datasync else os.fsync)(self.fd)


class Fallocate(Operation):
    __slots__ = ("fd", "length", "mode", "offset")
    opcode = abi.Op.FALLOCATE
    name = "fallocate"

    def __init__(self, fd: int, mode: int, offset: int, length: int) -> None:
        super().__init__()
        self.fd = fd
        self.mode = operator.index(mode)
        self.offset = operator.index(offset)
        self.length = operator.index(length)
        if self.offset < 0 or self.length <= 0:
            raise ValueError("fallocate needs offset >= 0 and length > 0")

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        # fallocate keeps the length in `addr` and the mode in `len`.
        _pack_sqe(
            sqes,
            off,
            abi.Op.FALLOCATE,
            0,
            0,
            self.fd,
            self.offset,
            self.length,
            self.mode,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def run_blocking(self) -> None:
        _libc_call("fallocate", self.fd, self.mode, self.offset, self.length)


class Statx(Operation):
    """statx(2); the result is a StatxResult."""

    __slots__ = ("_buf", "_path", "dirfd", "flags", "mask", "path")
    opcode = abi.Op.STATX
    name = "statx"

    def __init__(self, path: Any, dirfd: int, flags: int, mask: int) -> None:
        super().__init__()
        self.path = path
        self._path = check_path(path)
        self.dirfd = dirfd
        self.flags = operator.index(flags)
        self.mask = operator.index(mask)
        self._buf: ctypes.Array[ctypes.c_char] | None = ctypes.create_string_buffer(abi.STATX_SIZE)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.STATX,
            0,
            0,
            self.dirfd,
            ctypes.addressof(self._buf),  # type: ignore[arg-type]
            bytes_address(self._path),
            self.mask,
            self.flags,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> StatxResult:
        return StatxResult.from_buffer(self._buf)

    def error(self, res: int) -> OSError:
        return os_error(res, self.path if self.path != b"" else None)

    def release(self) -> None:
        self._buf = None

    def run_blocking(self) -> StatxResult:
        follow = not self.flags & abi.AT_SYMLINK_NOFOLLOW
        raw = self._path[:-1]
        if raw == b"" and self.flags & abi.AT_EMPTY_PATH:
            st = os.fstat(self.dirfd)
        else:
            dir_fd = None if self.dirfd == _AT_FDCWD else self.dirfd
            st = os.stat(self.path, dir_fd=dir_fd, follow_symlinks=follow)
        return StatxResult.from_stat(st)


class UnlinkAt(Operation):
    __slots__ = ("_path", "dirfd", "flags", "path")
    opcode = abi.Op.UNLINKAT
    name = "unlinkat"

    def __init__(self, path: Any, dirfd: int, flags: int) -> None:
        super().__init__()
        self.path = path
        self._path = check_path(path)
        self.dirfd = dirfd
        self.flags = operator.index(flags)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.UNLINKAT,
            0,
            0,
            self.dirfd,
            0,
            bytes_address(self._path),
            0,
            self.flags,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def error(self, res: int) -> OSError:
        return os_error(res, self.path)

    def run_blocking(self) -> None:
        dir_fd = None if self.dirfd == _AT_FDCWD else self.dirfd
        if self.flags & abi.AT_REMOVEDIR:
            os.rmdir(self.path, dir_fd=dir_fd)
        else:
            os.unlink(self.path, dir_fd=dir_fd)


class RenameAt(Operation):
    __slots__ = ("_new", "_old", "flags", "new", "new_dirfd", "old", "old_dirfd")
    opcode = abi.Op.RENAMEAT
    name = "renameat"

    def __init__(self, old: Any, new: Any, old_dirfd: int, new_dirfd: int, flags: int) -> None:
        super().__init__()
        self.old, self.new = old, new
        self._old = check_path(old)
        self._new = check_path(new)
        self.old_dirfd = old_dirfd
        self.new_dirfd = new_dirfd
        self.flags = operator.index(flags)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.RENAMEAT,
            0,
            0,
            self.old_dirfd,
            bytes_address(self._new),
            bytes_address(self._old),
            self.new_dirfd & 0xFFFFFFFF,
            self.flags,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def error(self, res: int) -> OSError:
        return os_error(res, self.old, self.new)

    def run_blocking(self) -> None:
        if self.flags:
            _libc_call(
                "renameat2", self.old_dirfd, self._old, self.new_dirfd, self._new, self.flags
            )
            return
        src = None if self.old_dirfd == _AT_FDCWD else self.old_dirfd
        dst = None if self.new_dirfd == _AT_FDCWD else self.new_dirfd
        os.rename(self.old, self.new, src_dir_fd=src, dst_dir_fd=dst)


class MkdirAt(Operation):
    __slots__ = ("_path", "dirfd", "mode", "path")
    opcode = abi.Op.MKDIRAT
    name = "mkdirat"

    def __init__(self, path: Any, mode: int, dirfd: int) -> None:
        super().__init__()
        self.path = path
        self._path = check_path(path)
        self.mode = operator.index(mode)
        self.dirfd = dirfd

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.MKDIRAT,
            0,
            0,
            self.dirfd,
            0,
            bytes_address(self._path),
            self.mode,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def error(self, res: int) -> OSError:
        return os_error(res, self.path)

    def run_blocking(self) -> None:
        dir_fd = None if self.dirfd == _AT_FDCWD else self.dirfd
        os.mkdir(self.path, self.mode, dir_fd=dir_fd)


class SymlinkAt(Operation):
    __slots__ = ("_link", "_target", "dirfd", "link", "target")
    opcode = abi.Op.SYMLINKAT
    name = "symlinkat"

    def __init__(self, target: Any, link: Any, dirfd: int) -> None:
        super().__init__()
        self.target, self.link = target, link
        self._target = check_path(target)
        self._link = check_path(link)
        self.dirfd = dirfd

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.SYMLINKAT,
            0,
            0,
            self.dirfd,
            bytes_address(self._link),
            bytes_address(self._target),
            0,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def error(self, res: int) -> OSError:
        return os_error(res, self.target, self.link)

    def run_blocking(self) -> None:
        dir_fd = None if self.dirfd == _AT_FDCWD else self.dirfd
        os.symlink(self.target, self.link, dir_fd=dir_fd)


class LinkAt(Operation):
    __slots__ = ("_new", "_old", "flags", "new", "new_dirfd", "old", "old_dirfd")
    opcode = abi.Op.LINKAT
    name = "linkat"

    def __init__(self, old: Any, new: Any, old_dirfd: int, new_dirfd: int, flags: int) -> None:
        super().__init__()
        self.old, self.new = old, new
        self._old = check_path(old)
        self._new = check_path(new)
        self.old_dirfd = old_dirfd
        self.new_dirfd = new_dirfd
        self.flags = operator.index(flags)

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.LINKAT,
            0,
            0,
            self.old_dirfd,
            bytes_address(self._new),
            bytes_address(self._old),
            self.new_dirfd & 0xFFFFFFFF,
            self.flags,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def error(self, res: int) -> OSError:
        return os_error(res, self.old, self.new)

    def run_blocking(self) -> None:
        src = None if self.old_dirfd == _AT_FDCWD else self.old_dirfd
        dst = None if self.new_dirfd == _AT_FDCWD else self.new_dirfd
        os.link(
            self.old,
            self.new,
            src_dir_fd=src,
            dst_dir_fd=dst,
            follow_symlinks=bool(self.flags & 0x400),  # AT_SYMLINK_FOLLOW
        )


class Ftruncate(Operation):
    __slots__ = ("fd", "length")
    opcode = abi.Op.FTRUNCATE
    name = "ftruncate"

    def __init__(self, fd: int, length: int) -> None:
        super().__init__()
        self.fd = fd
        self.length = operator.index(length)
        if self.length < 0:
            raise ValueError(f"length must be non-negative, not {self.length}")

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes,
            off,
            abi.Op.FTRUNCATE,
            0,
            0,
            self.fd,
            self.length,
            0,
            0,
            0,
            user_data,
            0,
            0,
            0,
            0,
            0,
        )

    def result(self, res: int) -> None:
        return None

    def run_blocking(self) -> None:
        os.ftruncate(self.fd, self.length)


class AsyncCancel(Operation):
    """IORING_OP_ASYNC_CANCEL for another operation's user_data; nobody awaits it."""

    __slots__ = ("target",)
    opcode = abi.Op.ASYNC_CANCEL
    name = "async_cancel"

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target

    def prep(self, sqes: Any, off: int, user_data: int) -> None:
        _pack_sqe(
            sqes, off, abi.Op.ASYNC_CANCEL, 0, 0, -1, 0, self.target, 0, 0, user_data, 0, 0, 0, 0, 0
        )


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatxTimestamp:
    """A statx timestamp: whole seconds and nanoseconds since the epoch."""

    sec: int
    nsec: int

    @property
    def ns(self) -> int:
        """The timestamp in nanoseconds, like os.stat_result.st_mtime_ns."""
        return self.sec * 1_000_000_000 + self.nsec


@dataclass(frozen=True, slots=True)
class StatxResult:
    """struct statx. `mask` says which fields the filesystem filled in."""

    mask: int
    blksize: int
    attributes: int
    nlink: int
    uid: int
    gid: int
    mode: int
    ino: int
    size: int
    blocks: int
    attributes_mask: int
    atime: StatxTimestamp
    btime: StatxTimestamp
    ctime: StatxTimestamp
    mtime: StatxTimestamp
    rdev_major: int
    rdev_minor: int
    dev_major: int
    dev_minor: int
    dio_mem_align: int  # 0 when the filesystem does not report it (STATX_DIOALIGN)
    dio_offset_align: int

    @classmethod
    def from_buffer(cls, buf: Any) -> StatxResult:
        """Parse a struct statx the kernel filled in."""
        head = abi.STATX_HEAD.unpack_from(buf, 0)
        atime, btime, ctime, mtime = (
            StatxTimestamp(*abi.STATX_TIMESTAMP.unpack_from(buf, off)[:2])
            for off in (
                abi.STATX_ATIME_OFF,
                abi.STATX_BTIME_OFF,
                abi.STATX_CTIME_OFF,
                abi.STATX_MTIME_OFF,
            )
        )
        devs = abi.STATX_DEVS.unpack_from(buf, abi.STATX_DEVS_OFF)
        dio = abi.STATX_DIO.unpack_from(buf, abi.STATX_DIO_OFF)
        mask, blksize, attributes, nlink, uid, gid, mode, _spare, ino, size, blocks, amask = head
        if not mask & abi.StatxMask.DIOALIGN:
            dio = (0, 0)
        return cls(
            mask, blksize, attributes, nlink, uid, gid, mode, ino, size, blocks, amask,
            atime, btime, ctime, mtime, *devs, *dio,
        )  # fmt: skip

    @classmethod
    def from_stat(cls, st: os.stat_result) -> StatxResult:
        """The same fields from an os.stat_result (no birth time, no DIO alignment)."""

        def ts(ns: int) -> StatxTimestamp:
            return StatxTimestamp(*divmod(ns, 1_000_000_000))

        return cls(
            int(abi.StatxMask.BASIC_STATS), st.st_blksize, 0, st.st_nlink, st.st_uid, st.st_gid,
            st.st_mode, st.st_ino, st.st_size, st.st_blocks, 0,
            ts(st.st_atime_ns), StatxTimestamp(0, 0), ts(st.st_ctime_ns), ts(st.st_mtime_ns),
            os.major(st.st_rdev), os.minor(st.st_rdev), os.major(st.st_dev), os.minor(st.st_dev),
            0, 0,
        )  # fmt: skip

    def to_stat_result(self) -> os.stat_result:
        """The same information as an os.stat_result, as os.stat() returns it."""
        a, m, c = self.atime, self.mtime, self.ctime
        return os.stat_result(
            (
                self.mode, self.ino, os.makedev(self.dev_major, self.dev_minor), self.nlink,
                self.uid, self.gid, self.size, a.sec, m.sec, c.sec,
            ),
            {
                "st_atime": a.sec + a.nsec / 1e9,
                "st_mtime": m.sec + m.nsec / 1e9,
                "st_ctime": c.sec + c.nsec / 1e9,
                "st_atime_ns": a.ns,
                "st_mtime_ns": m.ns,
                "st_ctime_ns": c.ns,
                "st_blksize": self.blksize,
                "st_blocks": self.blocks,
                "st_rdev": os.makedev(self.rdev_major, self.rdev_minor),
            },
        )  # fmt: skip

    def is_dir(self) -> bool:
        """True for a directory (S_ISDIR of `mode`)."""
        return _stat.S_ISDIR(self.mode)

    def is_file(self) -> bool:
        """True for a regular file (S_ISREG of `mode`)."""
        return _stat.S_ISREG(self.mode)


# -- libc for the few calls os lacks --------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _libc_call(name: str, *args: Any) -> None:
    func = getattr(_libc, name, None)
    if func is None:
        raise OSError(errno.ENOSYS, f"{name} is not available in this C library")
    fixed = [ctypes.c_int64(a) if isinstance(a, int) else a for a in args]
    if func(*fixed) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
