"""Operations: one request to the kernel each, from its declaration to its delivered result.

An Operation holds a whole, checked SQE (built by its declaration in table.py before any
slot is reserved), the objects that SQE points into, and its waiter: anything with done(),
set_result() and set_exception() (an asyncio.Future, a concurrent.futures.Future, a batch
item). The driver copies the SQE into a slot, and calls `complete(res)` once with the CQE's
result; the fallback driver runs the declaration's blocking call instead and calls
`complete_blocking(value, error)`. Either way the outcome is captured once, as a value or
an error, and delivered once.

Operation is the shared behaviour; the kinds are Entry (one SQE built by its declaration),
Positioned (a read or write of caller-owned memory), Read (a read into a new buffer, its
hot half in hotpath.py or that module's compiled twin), ReadBatch, AsyncCancel and
Finished.

Invariant: an Operation releases what it points at (`release`) only in `complete`, i.e.
after its CQE was reaped, in `complete_blocking`, or in `drop`, which only an operation the
kernel never saw may call.
Invariant: a result nobody takes is undone (`discard`): an open that completes after its
waiter gave up has its descriptor closed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from stat import S_ISBLK, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from .._aligned import aligned_buffer
from .._buffers import PAGE, SCRATCH_HEAP_MAX, SLOT_SIZES, ScratchBuffer, SlotPool
from .._errors import os_error
from .._ring import abi
from .._stream_wait import never_waits_with
from . import args
from .hotpath import MAX_RW_COUNT as MAX_RW_COUNT  # the kernel's cap on one read or write
from .hotpath import POSITIONED_CORE, READ_CORE, PositionedCore, ReadCore
from .sqe import SQE, SQE_SIZE, USER_DATA_WORD
from .state import DONE as DONE
from .state import QUEUED as QUEUED
from .state import SUBMITTED as SUBMITTED
from .state import let_go

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .spec import Spec

_pack_sqe = SQE.pack
_pack_sqe_into = SQE.pack_into
_READ = int(abi.Op.READ)
_NOP = int(abi.Op.NOP)
_WRITE = int(abi.Op.WRITE)
_READV = int(abi.Op.READV)
_U64 = args.U64_MASK
_LITTLE_ENDIAN = sys.byteorder == "little"  # SQEs are built as native 64-bit words
_ARRAY_MIN = 8  # parts from which building SQEs as one array beats packing them one by one
# The largest region a batch's parts share (a larger part has a buffer of its own): a pool
# slot's largest size, or without a pool (a thread's own ring) the largest ScratchBuffer on
# the heap (a larger one is a mapping of its own, which costs page faults and a munmap).
_BATCH_REGION_MAX = SLOT_SIZES[-1]
_UNPOOLED_REGION_MAX = SCRATCH_HEAP_MAX
_FD_MAX = args.INT_MAX
_OFF_MAX = args.OFF_MAX
_POOLED_MAX = SLOT_SIZES[-1]


class Waiter(Protocol):
    def done(self) -> bool: ...
    def set_result(self, result: Any, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


def capture(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """Run a blocking call: (its value, None), or (None, what it raised)."""
    try:
        return call(*args, **kwargs), None
    except BaseException as exc:  # the outcome, delivered to the operation's waiter
        return None, exc


def deliver(waiter: Waiter, value: Any, failure: BaseException | None) -> None:
    """Hand an outcome to a waiter that still waits."""
    if failure is None:
        waiter.set_result(value)
    else:
        waiter.set_exception(failure)


# -- positions: os.pread's ESPIPE ----------------------------------------------------------

# Descriptors known to take an explicit offset in this loop iteration. The ring's READ
# and WRITE ignore an offset on a pipe or socket, and take one on an eventfd, an epoll,
# timerfd or inotify descriptor (which accept lseek), where pread(2) and pwrite(2) fail with
# ESPIPE; checking with a preadv(2) or pwritev(2) of no buffers keeps the two alike (the
# kernel asks whether the open file takes an offset, then whether it is open for that,
# and with nothing to move stops there: no file system is called), and this set makes it
# one call per descriptor per loop iteration rather than per operation. A write's check
# is kept under ~fd (-fd - 1), apart: a /proc or /sys file (a seq_file) takes an offset
# for reads and refuses one for writes. The loop empties it at its
# pre-select step (forget_positions), and uringloop's own open and close forget the
# numbers they hand out or free. A number closed and reused by code uringloop does not see
# (os.close, os.pipe) within one iteration is not checked again until the next one.
# Process-wide, as descriptor numbers are; dict operations are atomic under the GIL.
# Only threads running a uringloop loop (_keeping) fill it and trust it (the checks any
# of them made since a loop's last pre-select step; Loop.pread and its compiled twin read
# it directly, running only inside run_forever): any other thread's check holds for the
# call that makes it (a uringloop.threads batch waits as long as its slowest read; a
# number closed and reused meanwhile must be checked afresh).
# {fd: whether its reads may copy from the page cache directly (copies_cached), None: not
# looked at yet}
_seekable: dict[int, bool | None] = {}


class _Keeping(threading.local):
    """How many loops this thread runs now (keep_positions; a nested run counts): while
    any, it fills and trusts _seekable. Per thread, not a set of thread idents: a thread
    made after a fork may get the ident of one that ran a loop before it."""

    depth = 0


_keeping = _Keeping()
_NO_BUFFERS: tuple[bytearray, ...] = ()
_O_DIRECT = getattr(os, "O_DIRECT", 0o40000)


def check_position(fd: int, offset: int) -> None:
    """Raise ESPIPE, as os.pread does, for an explicit offset on a descriptor that takes
    none: a pipe, a socket, a tty, an eventfd (asked with a preadv(2) of no buffers)."""
    if offset >= 0 and (fd not in _seekable or not _keeping.depth):
        _ask_position(fd, os.preadv, fd)


def check_write_position(fd: int, offset: int) -> None:
    """check_position for a write, as os.pwrite does (asked with a pwritev(2) of no
    buffers, which a descriptor not open for reading answers too)."""
    if offset >= 0 and (~fd not in _seekable or not _keeping.depth):
        _ask_position(fd, os.pwritev, ~fd)


def _ask_position(
    fd: int, nothing_at: Callable[[int, Sequence[bytearray], int], int], key: int
) -> None:
    """nothing_at(fd) of no buffers at offset 0: ESPIPE raised, else `key` remembered for
    this iteration where it succeeded."""
    try:
        nothing_at(fd, _NO_BUFFERS, 0)
    except OSError as exc:
        if exc.errno == errno.ESPIPE:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE)) from None
        return  # EBADF and the like: the operation reports them as pread(2) would
    if _keeping.depth:
        _seekable[key] = None


def has_o_direct(fd: int) -> bool:
    """Whether `fd`'s open file has O_DIRECT, where even a non-blocking read waits for the
    device (fcntl's F_GETFL; its OSError, or ValueError for fd < 0, propagates)."""
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT)


def ring_leaves_position(fd: int) -> bool:
    """Whether io_uring's read or write at `fd`'s file position (offset -1) would leave the
    position where it was: an O_DIRECT descriptor, whose reads and writes complete after
    io_uring_enter returns (on Linux 6.18 the position did not move, so the next read at it
    got the same bytes again). Such an operation is made as the system call, at once."""
    try:
        return has_o_direct(fd)
    except (OSError, ValueError, OverflowError):  # (not a descriptor: the call says how)
        return False


# How a read or write at a descriptor's file position (offset -1) is made: made_at_position.
ON_RING, STREAM_NOW, DIRECT_NOW, STREAM_ON_RING = 0, 1, 2, 3


def made_at_position(fd: int, writes: bool = False) -> int:
    """How a read (or, `writes`, a write) at `fd`'s file position (offset -1) is made, from
    one F_GETFL (and an fstat where it is not O_NONBLOCK): STREAM_NOW at an O_NONBLOCK
    stream's (never_waits: the system call at once, EAGAIN where io_uring's would wait),
    and at a stream's whose read(2) (write(2)) fails at once (an epoll descriptor or a
    pidfd has none: EINVAL, where io_uring's waits for it to be readable, maybe for ever),
    DIRECT_NOW at an O_DIRECT descriptor's (ring_leaves_position: the system call at once,
    which moves the position), STREAM_ON_RING at a stream's that may wait (a pipe, socket
    or terminal: on the ring, its builder calls note_stream_wait), else ON_RING (also where
    `fd` is no descriptor: the operation reports that)."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except (OSError, ValueError, OverflowError):
        return ON_RING
    if never_waits_with(fd, flags):
        return STREAM_NOW
    if flags & _O_DIRECT:
        return DIRECT_NOW
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return ON_RING
    if S_ISREG(mode) or S_ISBLK(mode) or S_ISDIR(mode):
        return ON_RING
    if not (S_ISFIFO(mode) or S_ISSOCK(mode)):  # (a pipe's or socket's are always there)
        try:  # (a readv(2) of no buffers: EINVAL only where the file has no read(2) at all)
            (os.writev if writes else os.readv)(fd, _NO_BUFFERS)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return STREAM_NOW
    global _stream_waits_made
    _stream_waits_made = True
    return STREAM_ON_RING


# Whether made_at_position() has said STREAM_ON_RING in this process: until it has, no
# operation in flight waits on a stream (Operation.waits_on_stream), and a driver whose
# in-flight cap is full does not look for one.
_stream_waits_made = False


def stream_waits_made() -> bool:
    """Whether an operation at the position of a stream that may wait may have been made."""
    return _stream_waits_made


# Operations at the position of a stream that may wait, noted by the thread that built them
# (note_stream_wait), for the loop that runs them (take_stream_waits). On a ring set up
# with IORING_SETUP_DEFER_TASKRUN the kernel signals the eventfd 13-20 ms after such an
# operation can go on (the stream became readable or writable; Linux 6.18), where it
# signals a regular file's completion at once: the loop watches the stream itself in its
# selector while the operation is in flight, and enters the ring when it wakes.
_stream_waits = threading.local()
# The native ids of the threads that noted some since they last took them: a loop looks
# for its own only when this is not empty.
STREAM_WAITS_NOTED: set[int] = set()
# Entries a thread keeps before it drops those of finished operations (doubled past what
# is left, so that noting many is not quadratic); a thread whose notes nobody takes keeps
# at most about this many finished ones.
_STREAM_WAITS_KEPT = 64

# (operation, descriptor, whether it writes, the stream's (st_dev, st_ino)).
StreamWaitNote = tuple["Operation", int, bool, tuple[int, int]]


def note_stream_wait(op: Operation, fd: int, writes: bool) -> None:
    """`op`, just built, reads (or `writes`) at the position of `fd`, a stream that may
    wait (made_at_position said STREAM_ON_RING)."""
    try:
        status = os.fstat(fd)
    except OSError:  # (closed meanwhile: the operation reports it)
        return
    if writes and not (S_ISFIFO(status.st_mode) or S_ISSOCK(status.st_mode)):
        # Writable to poll(2) is not room for this write everywhere (an eventfd near its
        # maximum): the watch would fire at every iteration. Pipes' and sockets' writes
        # take what fits.
        return
    waits = _noted_here()
    if len(waits) >= _stream_waits.kept:
        waits[:] = [entry for entry in waits if entry[0].state != DONE]
        _stream_waits.kept = max(_STREAM_WAITS_KEPT, 2 * len(waits))
    waits.append((op, fd, writes, (status.st_dev, status.st_ino)))
    STREAM_WAITS_NOTED.add(threading.get_native_id())


def _noted_here() -> list[StreamWaitNote]:
    """This thread's list of notes (made empty for its first)."""
    waits: list[StreamWaitNote] | None = getattr(_stream_waits, "ops", None)
    if waits is None:
        waits = _stream_waits.ops = []
        _stream_waits.kept = _STREAM_WAITS_KEPT
    return waits


def give_back_stream_waits(waits: Iterable[StreamWaitNote]) -> None:
    """Put notes take_stream_waits() took back in this thread's list: the operations of
    another loop run in the same thread, for their loop to take. Those of an operation no
    loop has (no waiter: built and never queued) are dropped."""
    kept = [entry for entry in waits if entry[0].state != DONE and entry[0].waiter is not None]
    if kept:
        _noted_here().extend(kept)
        STREAM_WAITS_NOTED.add(threading.get_native_id())


def take_stream_waits(op: Operation | None = None) -> list[StreamWaitNote]:
    """What note_stream_wait() noted in this thread and no one took yet, oldest first:
    all of it, or only the notes of `op` (a foreign thread's operation for one loop). The
    caller runs those operations."""
    waits: list[StreamWaitNote] | None = getattr(_stream_waits, "ops", None)
    if op is not None:
        if not waits:
            return []
        mine = [entry for entry in waits if entry[0] is op]
        if mine:
            waits[:] = [entry for entry in waits if entry[0] is not op]
        if not waits:
            STREAM_WAITS_NOTED.discard(threading.get_native_id())
        return mine
    STREAM_WAITS_NOTED.discard(threading.get_native_id())
    if not waits:
        return []
    _stream_waits.ops = []
    _stream_waits.kept = _STREAM_WAITS_KEPT
    return waits


def read_blocking(fd: int, size: int, offset: int) -> bytes:
    """read(2) (offset -1) or pread(2) of up to `size` bytes into new bytes, blocking, as the
    ring's read gives them: an O_DIRECT descriptor, which refuses the memory of a new bytes
    object (EINVAL), is read again into page-aligned memory, as a pool slot is."""
    try:
        return os.read(fd, size) if offset == -1 else os.pread(fd, size, offset)
    except OSError as exc:
        if exc.errno != errno.EINVAL or size <= 0 or not ring_leaves_position(fd):
            raise  # (not an O_DIRECT descriptor's refusal of the memory)
    with aligned_buffer(size) as memory:  # (nothing was read: O_DIRECT refuses it first)
        count = os.readv(fd, [memory]) if offset == -1 else os.preadv(fd, [memory], offset)
        return memory[:count]


def copies_cached(fd: int) -> bool:
    """Whether a read of `fd`, which takes offsets (read_args checked it, or its caller
    vouched), may first copy what the page cache holds directly (hotpath.read_cached): not
    on an O_DIRECT descriptor, where even a non-blocking read waits for the device. Looked
    at once per descriptor per loop iteration, as positions are."""
    keeps = _keeping.depth > 0
    allowed = _seekable.get(fd) if keeps else None
    if allowed is None:
        if fd < 0:  # (fcntl raises ValueError) the ring's read reports EBADF
            return False
        try:
            allowed = not has_o_direct(fd)
        except OSError:  # EBADF: the ring's read reports it
            return False
        if keeps:
            _seekable[fd] = allowed
    return allowed


def copies_refused(fd: int) -> None:
    """A copy from `fd` failed with EOPNOTSUPP (tmpfs, /proc: the file cannot say without
    waiting): copies_cached() says no for it until the next loop iteration (a number may be
    reused by code uringloop does not see: a longer memory could cost a file its copies)."""
    if fd in _seekable:
        _seekable[fd] = False


def forget_descriptor(fd: int) -> None:
    """`fd` was closed, or was just handed out by an open: what we knew of it is stale."""
    _seekable.pop(fd, None)
    _seekable.pop(~fd, None)


def checked_positions() -> dict[int, bool | None]:
    """The descriptors checked since the last forget_positions(): non-empty means the loop
    must reach its pre-select step, which forgets them (read, never written, by callers)."""
    return _seekable


def forget_positions() -> None:
    """A new loop iteration: check descriptors afresh from here on (see _seekable)."""
    if _seekable:
        _seekable.clear()


def keep_positions(running: bool) -> None:
    """The calling thread begins (True) or stops running a loop, which keeps the checks
    of its iteration (see _seekable; the loop's pre-select step forgets them)."""
    _keeping.depth += 1 if running else -1


def read_args(
    fd: Any, size: Any, offset: Any, known_seekable: bool = False
) -> tuple[int, int, int]:
    """Checked (fd, size, offset) of a pread, as os.pread checks them (offset -1: the file
    position). A negative size is EINVAL, as from os.pread; a size past what one read
    returns (MAX_RW_COUNT) is clamped, as the kernel does. With `known_seekable` the
    caller vouches that `fd` takes offsets, and the ESPIPE check is skipped."""
    if (
        type(fd) is int
        and type(size) is int
        and type(offset) is int
        and 0 <= fd <= _FD_MAX
        and 0 <= size <= _POOLED_MAX
        and -1 <= offset <= _OFF_MAX
    ):
        if offset >= 0 and not known_seekable and (fd not in _seekable or not _keeping.depth):
            check_position(fd, offset)
        return fd, size, offset
    fd = args.c_int(fd)
    size = args.ssize_t(size)
    offset = args.off_t(offset)
    if size < 0 or offset < -1:  # before the descriptor is looked at, as pread(2) does
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    if not known_seekable:
        check_position(fd, offset)
    return fd, min(size, MAX_RW_COUNT), offset


# -- the generic operation -------------------------------------------------------------------


class Operation:
    """One request to the kernel: the interface the drivers use, and the behaviour every
    operation shares. See the module docstring.

    It has no instance layout of its own (no slots at run time), so that a class may
    take it beside a base that has one: Read's core, which may be compiled. Entry is the
    operation of one whole SQE built by its declaration, and the base of the others.
    """

    if not TYPE_CHECKING:  # at run time: no layout; for the type checker: the fields below
        __slots__ = ()
    sqe: bytes  # the whole SQE, user_data 0 (see sqe.py)
    refs: tuple[Any, ...]  # what the SQE points into: kept until the completion
    data: Any  # what the result is read from (a statx buffer)
    filename: Any
    filename2: Any
    waiter: Waiter | None
    user_data: int
    state: int
    # Set by Spec.build: the declaration, and the public arguments (for the blocking
    # call); only operations Spec.build made read `args` and `kwargs`.
    spec: Spec[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    # A multi-part operation writes several SQEs (prep_parts) and gets one CQE per part
    # (complete_part); see ReadBatch.
    multi: ClassVar[bool] = False
    # The bytes the operation moves between memory and a file (0: it moves none).
    nbytes: ClassVar[int] = 0
    # Made at the position of a stream that may wait (made_at_position said STREAM_ON_RING:
    # a pipe, socket or terminal): it may stay in flight for as long as nothing is written
    # there (read from there). The driver does not count it against its in-flight cap.
    waits_on_stream: ClassVar[bool] = False

    @property
    def opcode(self) -> int:
        return self.sqe[0]

    def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
        """Put this operation's entry into the SQ slot at byte `off` of `sqes` (`words`: the
        same memory as 64-bit words), with `user_data`. The entry was built and checked
        whole when the operation was (see sqe.py): this is a copy that cannot fail."""
        sqes[off : off + SQE_SIZE] = self.sqe
        words[(off >> 3) + USER_DATA_WORD] = user_data

    @property
    def must_run(self) -> bool:
        """A cancellation may not drop it (a close): it runs, or runs blocking at shutdown."""
        return self.spec is not None and self.spec.must_run

    def release(self) -> None:
        """Free what the SQE points into, and let go of the public arguments. Once the
        kernel is done with it (or never saw it)."""
        let_go(self)

    def error(self, res: int) -> BaseException:
        """The exception for a failed completion (res = -errno)."""
        return os_error(res, self.filename, self.filename2)

    def run_blocking(self) -> Any:
        """The same operation as a blocking system call (fallback, threads)."""
        return self.spec.blocking(*self.args, **self.kwargs)

    def discard(self, value: Any) -> None:
        """Undo a successful result nobody takes (a late open's descriptor)."""
        discard = self.spec.discard if self.spec is not None else None
        if discard is not None:
            discard(value)

    def complete(self, res: int) -> None:
        """The CQE arrived with result `res`: capture the outcome, free, deliver. Once.

        Runs on the thread that reaps the ring. An exception from the delivery itself (a
        concurrent future's done-callback) propagates to the driver, which isolates it.
        """
        self.state = DONE
        waiter = self.waiter
        if waiter is None or waiter.done():
            try:
                if res >= 0:
                    self.discard(res)
            finally:
                self.release()
            return
        value: Any = None
        failure: BaseException | None = None
        converted = False
        try:
            if res < 0:
                failure = self.error(res)
            else:
                value = self.spec.result(self, res)
            converted = True
        except Exception as exc:  # a result that cannot be converted is this op's error
            failure = exc
            converted = True
        finally:
            try:
                self.release()
            finally:  # (a signal handler's exception inside release(): delivered first)
                if converted:
                    deliver(waiter, value, failure)

    def complete_blocking(self, value: Any, failure: BaseException | None) -> None:
        """The outcome of run_blocking(): deliver it, as complete() does a CQE's."""
        self.state = DONE
        waiter = self.waiter
        try:
            if waiter is None or waiter.done():
                if failure is None:
                    self.discard(value)
                return
        finally:
            try:
                self.release()
            finally:  # (a signal handler's exception inside release(): delivered first)
                if waiter is not None and not waiter.done():
                    deliver(waiter, value, failure)

    def run_captured(self) -> tuple[Any, BaseException | None]:
        """run_blocking()'s outcome: (value, None) or (None, what it raised)."""
        return capture(self.run_blocking)

    def position_read_fd(self) -> int | None:
        """The descriptor this operation reads at its file position, else None: on a
        stream such a read cannot be undone, so a thread that runs it blockingly waits
        for something to read first, in a way that can be withdrawn."""
        return None

    def waits_at_position(self, fd: int) -> bool:
        """Whether this operation reads or writes in flight at the position of `fd`, which
        it was noted for (note_stream_wait): a single one while it is in flight; a batch
        (ReadBatch), while a part there is written and not completed (the batch is still
        queued while parts past the loop's in-flight cap wait to be written)."""
        return self.state == SUBMITTED

    def part_waits_on_stream(self, user_data: int) -> bool:
        """Of a multi-part operation that waits_on_stream: whether its part `user_data` is
        one that may wait (a read at a stream's position, not a file's read)."""
        return self.waits_on_stream

    def drop(self, failure: BaseException | None = None) -> None:
        """Never submitted and never will be: free what it holds; tell a waiting waiter."""
        self.state = DONE
        self.release()
        waiter = self.waiter
        if failure is not None and waiter is not None and not waiter.done():
            waiter.set_exception(failure)

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

    def parts_written(self, count: int) -> None:
        """The `count` parts prep_parts() wrote last are in flight: the next call writes the
        parts after them. (Until then a write that was interrupted is written again.)"""
        raise NotImplementedError

    def count_parts_in_flight(self, inflight: Mapping[int, Operation]) -> None:
        """parts_written() for the parts found in `inflight` past those counted (a write
        interrupted between the two)."""
        raise NotImplementedError

    def complete_parts(self, user_datas: list[int], results: list[int]) -> None:
        """complete_part() for many CQEs of this operation at once."""
        for user_data, res in zip(user_datas, results, strict=True):
            self.complete_part(user_data, res)

    def drop_unwritten(self) -> int:
        """Cancel: drop the parts not yet written; return how many were written."""
        raise NotImplementedError

    def __repr__(self) -> str:
        states = {0: "queued", 1: "submitted", 2: "done"}
        name = self.spec.name if self.spec is not None else type(self).__name__
        return f"<{name} {states.get(self.state, self.state)} ud={self.user_data}>"


class Entry(Operation):
    """An operation of one whole SQE, built and checked by its declaration (table.entry)."""

    __slots__ = ("args", "data", "filename", "filename2", "kwargs", "refs", "spec", "sqe",
                 "state", "user_data", "waiter")  # fmt: skip

    def __init__(
        self,
        sqe: bytes,
        refs: tuple[Any, ...] = (),
        data: Any = None,
        filename: Any = None,
        filename2: Any = None,
    ) -> None:
        self.sqe = sqe
        self.refs = refs
        self.data = data
        self.filename = filename
        self.filename2 = filename2
        self.waiter = None
        self.user_data = 0
        self.state = QUEUED
        self.spec = None  # type: ignore[assignment]  # set by Spec.build


class RunNow(Exception):
    """Raised by a declaration's stub: this call is answered at once, with no ring, by its
    blocking counterpart (where io_uring would report another error than the system call
    does, for a call that cannot have an effect: an empty path, a read of 0 bytes), or by
    `call`, which takes the same arguments (where io_uring would wait and the system call
    does not: at an O_NONBLOCK stream's position)."""

    def __init__(self, call: Any = None) -> None:
        super().__init__()
        self.call = call


class Finished(Entry):
    """An operation answered when it was built (RunNow): never queued, its outcome known."""

    __slots__ = ("failure", "value")

    def __init__(self, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__(b"")
        self.state = DONE
        self.value, self.failure = capture(call, *args, **kwargs)
        if self.failure is not None and not isinstance(self.failure, OSError):
            raise self.failure  # an argument os refused: raised to the caller at once

    def outcome(self) -> Any:
        """The value, or raise the error."""
        if self.failure is not None:
            raise self.failure
        return self.value

    def deliver(self) -> None:
        """Hand the outcome to the waiter at once."""
        waiter = self.waiter
        if waiter is None or waiter.done():
            if self.failure is None:
                self.discard(self.value)
        else:
            deliver(waiter, self.value, self.failure)


class AsyncCancel(Entry):
    """IORING_OP_ASYNC_CANCEL for another operation's user_data; nobody awaits it."""

    __slots__ = ()

    def __init__(self, target: int) -> None:
        super().__init__(
            _pack_sqe(abi.Op.ASYNC_CANCEL, 0, 0, -1, 0, target, 0, 0, 0, 0, 0, 0, 0, 0)
        )

    def complete(self, res: int) -> None:
        self.state = DONE


if TYPE_CHECKING:
    _PositionedCore = PositionedCore
else:
    _PositionedCore = POSITIONED_CORE


class Positioned(_PositionedCore, Operation):  # type: ignore[override]  # (nbytes: the core's property)
    """A read or write of caller-owned memory at an offset (READ, WRITE, READV, WRITEV): the
    result is the byte count.

    Its fields, SQE and completion are PositionedCore's (hotpath.py, or its compiled twin);
    the rest is what every operation shares.
    """

    __slots__ = ()

    @property
    def opcode(self) -> int:
        return self._opcode

    @property
    def sqe(self) -> bytes:  # type: ignore[override]
        """The entry prep() writes (for tests)."""
        return _pack_sqe(self._opcode, 0, 0, self._fd, self._offset, self._address,
                         self._length, 0, 0, 0, 0, 0, 0, 0)  # fmt: skip

    def position_read_fd(self) -> int | None:
        if self._offset == _U64 and (self._opcode == _READ or self._opcode == _READV):
            return self._fd
        return None


if TYPE_CHECKING:
    _ReadCore = ReadCore
else:
    _ReadCore = READ_CORE


class Read(_ReadCore, Operation):
    """pread into a new buffer; the result is `bytes` (shorter at end of file).

    Its fields, SQE and completion are ReadCore's (hotpath.py, or its compiled twin);
    the rest is what every operation shares.
    """

    __slots__ = ()

    @property
    def opcode(self) -> int:
        return _READ

    @property
    def nbytes(self) -> int:  # type: ignore[override]
        return self._size

    @property
    def sqe(self) -> bytes:  # type: ignore[override]
        """The entry prep() writes (for the blocking path and for tests)."""
        return _pack_sqe(_READ, 0, 0, self._fd, self._offset, self._address, self._size,
                         0, 0, 0, 0, 0, 0, 0)  # fmt: skip

    def run_blocking(self) -> bytes:
        # Through the loop's fallback the read was built by Loop.pread, not by Spec.build.
        offset = self._offset - (1 << 64) if self._offset >= 1 << 63 else self._offset
        return read_blocking(self._fd, self._size, offset)

    def position_read_fd(self) -> int | None:
        return self._fd if self._offset in (-1, _U64) else None  # (-1, as the SQE's u64)


class StreamPositioned(Positioned):
    """A Positioned read or write at the position of a stream that may wait."""

    __slots__ = ()
    waits_on_stream = True


class StreamRead(Read):
    """A Read at the position of a stream that may wait."""

    __slots__ = ()
    waits_on_stream = True


def make_calls(
    calls: Sequence[tuple[int, Callable[[], bytes]]],
    answers: list[bytes],
    failures: dict[int, BaseException],
) -> None:
    """A batch's calls made at once (ReadBatch's `at_once`), each (request index, call):
    every one made, its answer put in `answers` at its index, or its failure in
    `failures` (the batch raises the one with the lowest index)."""
    for i, call in calls:
        try:
            answers[i] = call()
        except Exception as exc:
            failures[i] = exc


def reads_in_turn(requests: Iterable[tuple[int, int, int]]) -> list[bytes]:
    """A batch's reads (fd, size, offset) made one after another as system calls, every
    one of them, as the ring makes them all; the first failure in request order is raised
    with `partial`: the bytes of each read that returned, None for the others."""
    done: list[bytes | None] = []
    first: Exception | None = None
    for fd, size, offset in requests:
        try:
            done.append(read_blocking(fd, size, offset if offset >= 0 else -1))
        except Exception as exc:
            done.append(None)
            first = first or exc
    if first is not None:
        first.partial = done  # type: ignore[attr-defined]
        raise first
    return done  # type: ignore[return-value]  # (no None without a failure)


class ReadBatch(Entry):
    """Many preads completing as one: the result is a list of `bytes`, in request order.

    Part i has user_data `self.user_data + i`. The parts read into shared regions of at
    most a pool slot's largest size (without a pool, of the largest heap ScratchBuffer),
    in request order. When every part has the same size, at most a region's, a region
    holds as many as fit, one after another (their SQEs are written as one array copy);
    otherwise each part starts on a boundary of the largest power of two that divides its
    size, at most a page (so an O_DIRECT read, whose size is a multiple of the block size,
    stays aligned, as in a uniform region), and a part larger than a region is a region of
    its own. A region is a pool slot, or a ScratchBuffer where
    the pool has none, made when its first part is written. A CQE only records its part's
    result: the `bytes` are copied out and the buffers released once every written part
    has completed.
    If any part fails, the error of the first failed part (in request order) is raised.
    The parts' fields were all checked at construction (signed 64-bit arrays of values in
    range), so writing them cannot fail half-way.
    """

    __slots__ = ("_at_once", "_buffers", "_error", "_error_index", "_failures", "_left",
                 "_next", "_per", "_place", "_pool", "_region_bytes", "_region_failures",
                 "_region_of", "_res", "_ring_order", "_slots", "_stride", "fds", "offsets",
                 "sizes")  # fmt: skip
    multi = True

    def __init__(
        self,
        fds: array[int],
        sizes: array[int],
        offsets: array[int],
        pool: SlotPool | None,
        at_once: Sequence[tuple[int, Callable[[], bytes]]] = (),
    ) -> None:
        # Signed 64-bit arrays of checked values (fds >= 0, sizes >= 0, offsets >= -1).
        # `at_once`: (request index, call) for requests answered by a call made at once
        # (a read at an O_NONBLOCK stream's position, where io_uring's would wait), once
        # every part on the ring has completed; the parts are the other requests. Their
        # indices below (_res, _error_index...) are the parts', _ring_order the requests'.
        super().__init__(b"")
        self._at_once = at_once
        self._ring_order: list[int] = []
        if at_once:
            answered = {i for i, _ in at_once}
            order = self._ring_order = [i for i in range(len(fds)) if i not in answered]
            fds = array("q", [fds[i] for i in order])
            sizes = array("q", [sizes[i] for i in order])
            offsets = array("q", [offsets[i] for i in order])
        self.fds = fds
        self.sizes = sizes
        self.offsets = offsets
        n = len(fds)
        self._pool = pool
        self._res: list[int | None] = [None] * n  # None: the part's CQE has not come
        # The regions' layout: uniform sizes of at most a region, `_per` parts a region,
        # part i at byte (i % _per) * _stride of region i // _per; otherwise (_per 0) part i
        # at byte _place[i] of region _region_of[i], of _region_bytes[region] bytes.
        self._per = 0
        self._stride = 0
        self._region_of = array("q")
        self._place = array("q")
        self._region_bytes: list[int] = []
        # Regions are made in order, as their first parts are written.
        self._slots: list[int] = []  # per-region pool slots (-1: a ScratchBuffer), in order
        self._buffers: dict[int, ScratchBuffer] = {}  # {region: its ScratchBuffer}
        # Parts whose buffer could not be made (MemoryError): written as a NOP, each fails
        # with its exception once every written part has completed.
        self._failures: dict[int, Exception] = {}
        self._region_failures: dict[int, Exception] = {}  # {region: why it has no memory}
        self._left = n  # parts whose CQE has not arrived (or that were dropped)
        self._next = 0  # parts written and in flight so far (see parts_written)
        self._error: BaseException | None = None
        self._error_index = n
        if n:
            size = sizes[0]
            most = _BATCH_REGION_MAX if pool is not None else _UNPOOLED_REGION_MAX
            if 0 < size <= most and sizes.count(size) == n:
                self._per = most // size
                self._stride = size
            else:
                self._lay_out(sizes, most)

    def _lay_out(self, sizes: array[int], most: int) -> None:
        """Place the parts in shared regions of at most `most` bytes (see the class's
        docstring)."""
        region_of, place, region_bytes = self._region_of, self._place, self._region_bytes
        end = 0  # of the last part placed, in the last region
        for size in sizes:
            align = min(size & -size, PAGE) or 1  # (the largest power of two dividing size)
            start = (end + align - 1) & -align
            if not region_bytes or start + size > most:
                region_bytes.append(0)
                start = 0
            region_of.append(len(region_bytes) - 1)
            place.append(start)
            end = region_bytes[-1] = start + size

    def _region_address(self, region: int) -> int:
        """The address of `region`, made if it is not yet (the regions before it are); -1
        where there is no memory for it (_region_failures says why)."""
        slots = self._slots
        pool = self._pool
        if self._per:
            size = min(self._per, len(self.sizes) - region * self._per) * self._stride
        else:
            size = self._region_bytes[region]
        if region < len(slots):  # made by an earlier part, or an interrupted write
            slot = slots[region]
        else:
            # An interruption between the two steps leaves the slot taken in the pool and
            # unknown here: memory the pool keeps, never a buffer in use.
            slot = pool.alloc(size) if pool is not None else -1
            slots.append(slot)
        if slot >= 0:
            return pool.address_of[slot]  # type: ignore[union-attr]
        buf = self._buffers.get(region)
        if buf is None and region not in self._region_failures:
            try:
                buf = self._buffers[region] = ScratchBuffer(size)
            except Exception as exc:  # (out of memory: its parts' failure)
                self._region_failures[region] = exc.with_traceback(None)  # (no frame kept)
        return -1 if buf is None else buf.address

    def _uniform_addresses(self, first: int, end: int) -> array[int] | None:
        """The addresses of uniform parts first..end-1, their regions made; None where one
        of those regions has no memory."""
        per, stride = self._per, self._stride
        out = array("q")
        i = first
        while i < end:
            region = i // per
            addr = self._region_address(region)
            if addr < 0:
                return None
            stop = min(end, (region + 1) * per)
            at = addr + (i - region * per) * stride
            out += array("q", range(at, at + (stop - i) * stride, stride))
            i = stop
        return out

    @property
    def opcode(self) -> int:
        return _READ

    @property
    def nbytes(self) -> int:  # type: ignore[override]
        return sum(self.sizes)

    def parts_left(self) -> int:
        return len(self.fds) - self._next

    def waits_at_position(self, fd: int) -> bool:
        res, fds, offsets = self._res, self.fds, self.offsets
        return any(res[i] is None and fds[i] == fd and offsets[i] == -1 for i in range(self._next))

    def prep_parts(self, sqes: Any, words: Any, offsets: list[int], start: int) -> tuple[int, int]:
        first = self._next
        count = min(len(offsets) - start, len(self.fds) - first)
        end = first + count
        base = self.user_data
        pos = offsets[start]
        per = self._per
        if (
            per
            and count >= _ARRAY_MIN
            and _LITTLE_ENDIAN
            and offsets[start + count - 1] - pos == (count - 1) * SQE_SIZE
            and (addresses := self._uniform_addresses(first, end)) is not None
        ):
            # Contiguous SQEs: build all 8-word SQEs in one array, copy it in once.
            # Fields: word 0 opcode | fd << 32, 1 offset, 2 address, 3 length, 4 user_data.
            fds = self.fds
            sqe = array("q", bytes(count * SQE_SIZE))
            if fds.count(fds[0]) == len(fds):
                sqe[0::8] = array("q", (_READ | fds[0] << 32,)) * count
            else:
                sqe[0::8] = array("q", [_READ | fd << 32 for fd in fds[first:end]])
            sqe[1::8] = self.offsets[first:end]
            sqe[2::8] = addresses
            sqe[3::8] = array("q", (self._stride,)) * count
            sqe[4::8] = array("q", range(base + first, base + end))
            words[pos // 8 : pos // 8 + count * 8] = sqe
            return first, count
        # One by one: a short run, one that wraps around the end of the SQ, parts of mixed
        # sizes, or a region without memory (its parts are written as NOPs).
        stride = self._stride
        region_of, places, sizes = self._region_of, self._place, self.sizes
        last = addr = -1
        for j in range(count):
            i = first + j
            if per:
                region, place = divmod(i, per)
                place *= stride
            else:
                region, place = region_of[i], places[i]
            if region != last:
                last, addr = region, self._region_address(region)
            if addr < 0:
                self._failures[i] = self._region_failures[region]
                _pack_sqe_into(sqes, offsets[start + j], _NOP, 0, 0, -1, 0, 0, 0, 0, base + i,
                               0, 0, 0, 0, 0)  # fmt: skip
                continue
            _pack_sqe_into(sqes, offsets[start + j], _READ, 0, 0, self.fds[i],
                           self.offsets[i] & _U64, addr + place, sizes[i], 0, base + i, 0, 0,
                           0, 0, 0)  # fmt: skip
        return first, count

    def parts_written(self, count: int) -> None:
        self._next += count

    def count_parts_in_flight(self, inflight: Mapping[int, Operation]) -> None:
        base = self.user_data
        while inflight.get(base + self._next) is self:
            self._next += 1

    # A part whose result is recorded already ignores its CQE: the CQE of a reap that an
    # exception interrupted is delivered again (see hotpath.deliver). Unless that
    # exception came after the last part was counted and before _finish began (a signal
    # handler's, at its first line): _finish runs then, or the waiter would never get the
    # bytes and the buffers would never go back.

    def complete_part(self, user_data: int, res: int) -> None:
        index = user_data - self.user_data
        if self._res[index] is not None:
            if not self._left and self.state != DONE:
                self._finish()
            return
        self._res[index] = res
        self._left -= 1
        if not self._left:
            self._finish()

    def complete_parts(self, user_datas: list[int], results: list[int]) -> None:
        first = user_datas[0]
        count = len(user_datas)
        start = first - self.user_data
        res = self._res
        if (
            user_datas == list(range(first, first + count))  # in submission order
            and res[start : start + count].count(None) == count  # none of them delivered
        ):
            res[start : start + count] = results
            self._left -= count
            if not self._left:
                self._finish()
        else:
            for user_data, value in zip(user_datas, results, strict=True):
                self.complete_part(user_data, value)

    def _finish(self) -> None:
        """Every written part has completed: copy the results out, release the buffers."""
        self.state = DONE
        waiter = self.waiter
        written = self._next
        # Every written part has its result.
        res: list[int] = self._res[:written]  # type: ignore[assignment]
        results: list[bytes] | None = None
        failures = self._failures
        try:
            for i in failures:
                if i < written:  # (one whose write was undone is not the batch's)
                    res[i] = -errno.ENOMEM  # (its NOP's 0: the exception below is its outcome)
            if written and min(res) < 0:
                for i in range(min(written, self._error_index)):
                    if res[i] < 0:
                        failure = failures.get(i)
                        self._error = failure if failure is not None else os_error(res[i])
                        self._error_index = i
                        break
            if waiter is not None and not waiter.done():
                if self._error is None:
                    results = self._results(res)
                else:
                    self._error.partial = self._partial(res)  # type: ignore[attr-defined]
        finally:
            self.release()
        if waiter is None or waiter.done():
            return  # (and the calls made at once are not made: nothing read is lost)
        if self._at_once:
            self._answer_with_calls(waiter, results)
        elif self._error is not None:
            waiter.set_exception(self._error)
        else:
            waiter.set_result(results)

    def _answer_with_calls(self, waiter: Any, results: list[bytes] | None) -> None:
        """The calls made at once (every part has completed), their answers and the parts'
        in request order; the first failure in request order is the batch's."""
        error = self._error
        if isinstance(error, OSError) and error.errno == errno.ECANCELED:
            # Cancelled (a thread's timeout cancels the operation, not its waiter): the
            # calls are not made, so nothing is taken from the streams.
            waiter.set_exception(error)
            return
        order = self._ring_order
        answers: list[bytes] = [b""] * (len(order) + len(self._at_once))
        failures: dict[int, BaseException] = {}
        got: list[bytes | None] = getattr(error, "partial", None) or [None] * len(answers)
        if error is not None:
            failures[order[self._error_index]] = error
        elif results is not None:
            for i, data in zip(order, results, strict=True):
                answers[i] = got[i] = data
        make_calls(self._at_once, answers, failures)
        if failures:
            for i, _ in self._at_once:
                got[i] = None if i in failures else answers[i]
            first = failures[min(failures)]
            first.partial = got  # type: ignore[attr-defined]
            waiter.set_exception(first)
        else:
            waiter.set_result(answers)

    def _partial(self, res: list[int]) -> list[bytes | None]:
        """A failed batch's `partial`, in request order: the bytes of each part that
        completed, None for the others (failed, or not written) and for the calls made at
        once, whose answers _answer_with_calls fills in when it makes them. Bytes read at a
        pipe's position are gone from the pipe: the caller finds them here."""
        copied = self._results([max(n, 0) for n in res])
        parts: list[bytes | None] = [
            b if n >= 0 else None for b, n in zip(copied, res, strict=True)
        ]
        return self._in_request_order(parts)

    def _in_request_order(self, parts: Sequence[bytes | None]) -> list[bytes | None]:
        """The parts' outcomes (the first parts', in part order; None for the others,
        never written) in request order, None for the calls made at once."""
        every = [*parts] + [None] * (len(self._res) - len(parts))  # (_res: one per part)
        if not self._at_once:
            return every
        out: list[bytes | None] = [None] * (len(self._ring_order) + len(self._at_once))
        for i, data in zip(self._ring_order, every, strict=True):
            out[i] = data
        return out

    def _results(self, res: list[int]) -> list[bytes]:
        # (Every written part's region is made: _slots has it.)
        pool = self._pool
        slots, buffers = self._slots, self._buffers
        out: list[bytes] = []
        per = self._per
        if per:
            stride = self._stride
            for region, lo in enumerate(range(0, len(res), per)):
                counts = res[lo : lo + per]
                slot = slots[region]
                if slot >= 0:
                    arena = pool.arena_of[slot]  # type: ignore[union-attr]
                    at = pool.offset_of[slot]  # type: ignore[union-attr]
                    starts = range(at, at + len(counts) * stride, stride)
                    out += [arena[p : p + n] for p, n in zip(starts, counts, strict=True)]
                elif (buf := buffers.get(region)) is not None:
                    out += [buf.take(n, k * stride) for k, n in enumerate(counts)]
                else:  # (a region that failed to get memory: its parts failed)
                    out += [b""] * len(counts)
            return out
        region_of, place = self._region_of, self._place
        for i, n in enumerate(res):
            region = region_of[i]
            slot = slots[region]
            if slot >= 0:
                out.append(pool.take(slot, n, place[i]))  # type: ignore[union-attr]
            else:
                buf = buffers.get(region)  # (none for a region that failed to get one)
                out.append(buf.take(n, place[i]) if buf is not None else b"")
        return out

    def release(self) -> None:
        """Return the batch's buffers. Only once no written part is in flight."""
        pool = self._pool
        for slot in self._slots:
            if slot >= 0:
                pool.free(slot)  # type: ignore[union-attr]
        self._slots = []
        for buf in self._buffers.values():
            buf.release()
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
        self.state = SUBMITTED if written else DONE
        if not self._left:
            self._finish()
        return written

    def drop(self, failure: BaseException | None = None) -> None:
        if failure is not None and self._next < len(self.fds):
            self._error, self._error_index = failure, self._next
        self.drop_unwritten()

    def run_blocking(self) -> list[Any]:
        if not self._at_once:
            return reads_in_turn(zip(self.fds, self.sizes, self.offsets, strict=True))
        # Every part's outcome, (bytes, None) or (None, failure): complete_blocking then
        # makes the calls at once, as the ring's route does once every part completed.
        return [
            capture(read_blocking, fd, size, offset if offset >= 0 else -1)
            for fd, size, offset in zip(self.fds, self.sizes, self.offsets, strict=True)
        ]

    def complete_blocking(self, value: Any, failure: BaseException | None) -> None:
        if not self._at_once:
            super().complete_blocking(value, failure)
            return
        self.state = DONE
        waiter = self.waiter
        self.release()
        if waiter is None or waiter.done():
            return  # (and the calls made at once are not made: nothing read is lost)
        results: list[bytes] | None = None
        if failure is not None:
            self._error, self._error_index = failure, 0
        else:
            results = []
            for i, (data, exc) in enumerate(value):
                if exc is not None and self._error is None:
                    self._error, self._error_index = exc, i
                results.append(data)
            if self._error is not None:
                self._error.partial = self._in_request_order(results)  # type: ignore[attr-defined]
        self._answer_with_calls(waiter, None if self._error is not None else results)


class StreamReadBatch(ReadBatch):
    """A ReadBatch with reads at the position of a stream that may wait."""

    __slots__ = ()
    waits_on_stream = True

    def part_waits_on_stream(self, user_data: int) -> bool:
        return self.offsets[user_data - self.user_data] == -1  # (at a position)
