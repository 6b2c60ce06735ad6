"""The hot path of operations: a read's core, the two loops that move operations in and
out of the ring, and the kernel's first attempts at an open and at a read, made by the
caller.

ReadCore is the hot half of a read into a new buffer: its fields, its SQE and its
completion. Read (operation.py) adds the cold half: what every operation shares.
PositionedCore is the same for a read or write of the caller's memory (Positioned).
write_entries() writes queued one-SQE operations into reserved SQ slots; deliver() hands
the results of peeked CQEs to the operations in flight, for a Reaper, which consumes the
CQEs afterwards. The driver owns the tables both work on.

This is the readable reference; uringloop/_ops/_hotpath.c is its compiled twin, with the
same classes (ReadCore, PositionedCore, CopyRing), functions, arguments, attributes and
behaviour, down to the order of the calls made on each operation. READ_CORE,
POSITIONED_CORE, WRITE_ENTRIES, DELIVER, FILE_FACTS, OPEN_CACHED, READ_CACHED,
READ_MANY_CACHED, COPY_RING and SPLIT_REQUESTS are the ones in use: the compiled twin's,
unless URINGLOOP_NO_EXTENSIONS is set or it was not built.

A read of at most the pool's largest slot takes a slot of the loop's SlotPool at
construction and gives it back at its completion; the result is a new `bytes` copied out
of the slot. Without a pool (foreign threads) or a free slot (large reads) it gets a
page-aligned ScratchBuffer instead, so O_DIRECT descriptors work either way. A read built
with `into_result` (its caller knows the descriptor is not O_DIRECT: any address will do)
is, in the compiled twin, read by the kernel straight into the bytes object it returns,
without a slot, a ScratchBuffer or a copy (with or without a pool); should the kernel
refuse that memory after all (EINVAL: the descriptor became O_DIRECT since), the read is
made again, blocking, into aligned memory, so that the outcome is the one a slot gives.
Here it reads into a slot (or a ScratchBuffer) all the same: Python has no bytes object
to lend the kernel.

Invariant: the slot (or the ScratchBuffer, in `refs`, or the compiled twin's result bytes)
is held from construction until complete() or release(): the memory the SQE points at
outlives the kernel's use of it.
Invariant: complete() gives the slot back exactly once, whatever the delivery raises.
Invariant: an operation is in the in-flight table from the moment its SQE is written
(write_entries) until deliver() ran its completion (or tried to: a second exception
inside the repair of a first is not repaired), and in the backlog before that.
"""

from __future__ import annotations

import errno
import fcntl
import operator
import os
from array import array
from typing import TYPE_CHECKING, Any

from .._aligned import PAGE_SIZE
from .._buffers import PIN, SLOT_SIZES, ScratchBuffer, SlotPool
from .._errors import os_error
from .._ring import abi
from .._twins import compiled
from . import libc
from .args import INT_MAX, OFF_MAX, U64_MASK, c_int
from .args import U32_MASK as _U32
from .sqe import SQE
from .state import DONE, NO_KWARGS, QUEUED, SUBMITTED, let_go

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Callable, Sequence

    from .operation import Operation, Waiter
    from .spec import Spec

READ = int(abi.Op.READ)
WRITE = int(abi.Op.WRITE)
SMALL = SLOT_SIZES[0]  # the pool's smallest slot size: its free list is used directly
MAX_RW_COUNT = 0x7FFFF000  # the most one read(2) returns (INT_MAX & PAGE_MASK)
CANCELED = -errno.ECANCELED  # the result of a cancelled request
_pack_sqe_into = SQE.pack_into


class ReadCore:
    """pread into a new buffer; the result is `bytes` (shorter at end of file)."""

    __slots__ = ("_address", "_fd", "_offset", "_pool", "_size", "_slot", "args", "data",
                 "filename", "filename2", "kwargs", "refs", "spec", "state", "user_data",
                 "waiter")  # fmt: skip

    def __init__(
        self, fd: int, size: int, offset: int, pool: SlotPool | None, into_result: bool = False
    ) -> None:
        # Arguments checked by read_args(): fd and size in range, offset >= -1. The size
        # is checked again: the SQE's length and the buffer must agree. `into_result`
        # (see above) changes nothing here.
        if not 0 <= size <= MAX_RW_COUNT:
            raise ValueError(f"read size {size} out of range [0, {MAX_RW_COUNT}]")
        self.waiter: Waiter | None = None
        self.user_data = 0
        self.state = QUEUED
        self.filename: Any = None
        self.filename2: Any = None
        self.data: Any = None
        self.spec: Spec[..., Any] = None  # type: ignore[assignment]  # set by table.pread
        self._pool = pool
        if pool is not None and size <= SMALL and pool.free_small:
            self._slot = slot = pool.free_small.pop()
            address = pool.address_of[slot]
            self.refs: tuple[Any, ...] = ()
        elif pool is not None and (slot := pool.alloc(size)) >= 0:
            self._slot = slot
            address = pool.address_of[slot]
            self.refs = ()
        else:
            self._slot = -1
            buffer = ScratchBuffer(size)
            address = buffer.address
            self.refs = (buffer,)
        self._fd = fd
        self._offset = offset & U64_MASK
        self._address = address
        self._size = size

    def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
        """Write the whole READ entry into the slot at byte `off` of `sqes`. Every field
        was checked when the read was built, so it cannot fail half-way."""
        _pack_sqe_into(sqes, off, READ, 0, 0, self._fd, self._offset, self._address,
                       self._size, 0, user_data, 0, 0, 0, 0, 0)  # fmt: skip

    def complete(self, res: int) -> None:
        """The CQE arrived: the bytes read (or the error) go to the waiter, once. A count
        is never taken past the size asked for (the kernel reports no more than that)."""
        self.state = DONE
        if res > self._size:
            res = self._size
        waiter = self.waiter
        slot = self._slot
        if slot >= 0:
            pool: SlotPool = self._pool  # type: ignore[assignment]
            self._slot = -1
            try:
                if waiter is not None and not waiter.done():
                    if res >= 0:
                        off = pool.offset_of[slot]
                        value = pool.arena_of[slot][off : off + res]
                    else:
                        value = None
                        failure = os_error(res)
                    # Cleared first: interrupted between the two, the slot stays with the
                    # pool unused, rather than being freed twice (by the finally).
                    freed, slot = slot, -1
                    pool.free_list_of[freed].append(freed)
                    if value is not None:
                        waiter.set_result(value)
                    else:
                        waiter.set_exception(failure)
            finally:
                if slot >= 0:
                    pool.free_list_of[slot].append(slot)
            return
        if waiter is None or waiter.done():
            self.release()
            return
        try:
            if res >= 0:
                value = self.refs[0].take(res)
            else:
                value = None
                failure = os_error(res)
        finally:
            self.release()
        if value is not None:
            waiter.set_result(value)
        else:
            waiter.set_exception(failure)

    def release(self) -> None:
        """Give back the slot, release the ScratchBuffer, let go of the arguments."""
        slot = self._slot
        if slot >= 0:
            self._slot = -1
            self._pool.free(slot)  # type: ignore[union-attr]
        let_go(self)


class PositionedCore:
    """A read or write of caller-owned memory at an offset (READ, WRITE, READV, WRITEV): the
    result is the byte count. Its fields were checked when it was built (table.py) and are
    packed straight into its slot; `refs` holds the pinned memory (the pins, PIN's), which
    complete() releases."""

    __slots__ = ("_address", "_fd", "_length", "_offset", "_opcode", "args", "data",
                 "filename", "filename2", "kwargs", "refs", "spec", "state", "user_data",
                 "waiter")  # fmt: skip

    def __init__(
        self, opcode: int, fd: int, offset: int, address: int, length: int, refs: tuple[Any, ...]
    ) -> None:
        # Operation.__init__ inlined: every read and write into a caller's buffer comes here.
        self.refs = refs
        self.data: Any = None
        self.filename: Any = None
        self.filename2: Any = None
        self.waiter: Waiter | None = None
        self.user_data = 0
        self.state = QUEUED
        self.spec: Spec[..., Any] = None  # type: ignore[assignment]  # set by Spec.build
        self._opcode = opcode
        self._fd = fd
        self._offset = offset  # as the u64 the SQE holds
        self._address = address
        self._length = length

    @property
    def nbytes(self) -> int:
        """The bytes it moves: its length (READ, WRITE), or its pins' (READV, WRITEV)."""
        if self._opcode == READ or self._opcode == WRITE:
            return self._length
        return sum(ref.nbytes for ref in self.refs if type(ref) is PIN)

    def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
        """Write the whole entry into the slot at byte `off` of `sqes`. Every field was
        checked when the operation was built: this pack cannot fail."""
        _pack_sqe_into(sqes, off, self._opcode, 0, 0, self._fd, self._offset, self._address,
                       self._length, 0, user_data, 0, 0, 0, 0, 0)  # fmt: skip

    def complete(self, res: int) -> None:
        """The CQE arrived: the pins are released, then the count (or the error) goes to the
        waiter. (Operation.complete() specialised: the result is the count, as table.py
        declares for these, and only the pins need releasing.)"""
        self.state = DONE
        for ref in self.refs:
            if type(ref) is PIN:
                ref.release()
        self.refs = ()
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = NO_KWARGS
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if res >= 0:
            waiter.set_result(res)
        else:
            waiter.set_exception(os_error(res))


def pinned_at(
    cls: Callable[..., Operation],
    check: Callable[[int, int], None],
    opcode: int,
    fd: Any,
    offset: Any,
    buffer: Any,
    writable: bool,
) -> Operation | None:
    """The common case of a read into, or a write from, the caller's memory at an offset
    (preadinto's, pwrite's), made whole: `fd` and `offset` exact ints, 0 <= fd <= INT_MAX
    and 0 <= offset <= OFF_MAX. `buffer` is pinned (PIN, writable for a read), then
    `check(fd, offset)` runs (the pin released if it raises), and the operation is
    cls(opcode, fd, offset, address, length, (pin,)), its length at most MAX_RW_COUNT.
    None, with nothing done, in every other case: the caller converts and checks."""
    if not (
        type(fd) is int and type(offset) is int and 0 <= fd <= INT_MAX and 0 <= offset <= OFF_MAX
    ):
        return None
    pin = PIN(buffer, writable)
    try:
        check(fd, offset)
    except BaseException:
        pin.release()
        raise
    return cls(opcode, fd, offset, pin.address, min(pin.nbytes, MAX_RW_COUNT), (pin,))


def write_entries(
    backlog: deque[Operation],
    inflight: dict[int, Operation],
    sqes: Any,
    words: Any,
    offsets: Sequence[int],
    used: int,
    user_data: int,
    abandoned: Callable[[Operation], bool],
) -> tuple[int, int]:
    """Write one-SQE operations from the head of `backlog` into the SQ slots at byte
    offsets `offsets[used:]`, giving them user_data `user_data`, `user_data + 1`, ...

    Each is written, enters `inflight` under its user_data, is marked SUBMITTED and then
    leaves the backlog. One no longer QUEUED, or whose waiter is done and `abandoned(op)`
    says so, leaves the backlog unwritten. Stops at a multi-part operation (left at the
    head for the caller), or when the slots or the backlog run out. Returns (slots used,
    next user_data).

    When prep() or abandoned() raises (a signal handler's KeyboardInterrupt inside a
    Python prep), the exception propagates with that operation still at the head of the
    backlog and every slot written so far having its entry in `inflight`: the caller
    counts those to give back the rest (RingDriver._fill).
    """
    n_offsets = len(offsets)
    while used < n_offsets and backlog:
        op = backlog[0]
        if op.multi:
            break
        waiter = op.waiter
        if op.state != QUEUED or (waiter is not None and waiter.done() and abandoned(op)):
            backlog.popleft()
            continue  # cancelled while queued
        # Invariant: an operation leaves the backlog only once written and in `inflight`.
        op.prep(sqes, words, offsets[used], user_data)
        inflight[user_data] = op
        op.user_data = user_data
        op.state = SUBMITTED
        backlog.popleft()
        user_data += 1
        used += 1
    return used, user_data


def deliver(
    inflight: dict[int, Operation],
    user_datas: list[int],
    results: list[int],
    isolate: Callable[[Operation, BaseException, BaseException | None], BaseException | None],
    refused: Callable[[Operation, int], bool] | None = None,
) -> BaseException | None:
    """Complete the operations of peeked CQEs: the one in flight for `user_datas[i]` is
    finished with `results[i]`, then leaves the in-flight table (a user_data not in it: a
    CQE delivered before, or for an unknown request, is skipped).

    `refused(op, user_data)`, where given, is asked first about each single operation
    (not a batch's part) whose result is ECANCELED: when it returns True, it has taken
    the operation (one the kernel never ran), which leaves the table without completing.

    Each is completed on its own, in CQE order: a delivery that raises goes to
    `isolate(op, exc, fatal)`, whose return is the fatal exception kept so far, after the
    completion is run once more in case it had not begun (interrupted at its first line:
    what the operation holds is then freed, a late descriptor closed). Returns the fatal
    exception (None: nothing to raise once the batch is delivered). When every CQE is a
    part of one batch, its parts complete together (complete_parts).

    Completing is done once: a single operation's completion is skipped once it is DONE,
    a batch ignores a part it has. So an operation may leave the table only after its
    completion, and the caller consumes the CQEs only after this returns: an exception
    that escapes (a signal handler's, between two statements) leaves them in the CQ for
    the next peek, which delivers what was not.
    """
    if type(inflight) is not dict or type(user_datas) is not list or type(results) is not list:
        raise TypeError("deliver() takes the in-flight dict and two lists")
    if len(user_datas) != len(results):
        raise ValueError("deliver() needs one result per user_data")
    fatal: BaseException | None = None
    first = inflight.get(user_datas[0]) if user_datas else None
    if (
        len(user_datas) > 1
        and first is not None
        and first.multi
        and list(map(inflight.get, user_datas)).count(first) == len(user_datas)
    ):
        try:
            first.complete_parts(user_datas, results)  # a batch's parts, nothing else
        except BaseException as exc:
            try:
                first.complete_parts(user_datas, results)  # the parts not yet in
            except BaseException as again:
                fatal = isolate(first, again, fatal)
                fatal = isolate(first, exc, fatal)
            else:
                fatal = _interrupted(first, exc, fatal, isolate)
        for user_data in user_datas:
            inflight.pop(user_data, None)  # (a delivery may have reaped them already)
        return fatal
    for user_data, res in zip(user_datas, results, strict=True):
        op = inflight.get(user_data)
        if op is None:
            continue
        try:
            if not (
                refused is not None and res == CANCELED and not op.multi and refused(op, user_data)
            ):
                _complete_one(op, user_data, res)
        except BaseException as exc:
            try:
                _complete_one(op, user_data, res)  # a no-op unless it had not begun
            except BaseException as again:
                fatal = isolate(op, again, fatal)
                fatal = isolate(op, exc, fatal)
            else:
                fatal = _interrupted(op, exc, fatal, isolate)
        inflight.pop(user_data, None)
    return fatal


def _interrupted(
    op: Operation,
    exc: BaseException,
    fatal: BaseException | None,
    isolate: Callable[[Operation, BaseException, BaseException | None], BaseException | None],
) -> BaseException | None:
    """`exc` interrupted a completion of `op` that then ran again without raising: a
    batch with parts still in flight keeps its waiter for them (its part is in: the
    outcome comes with the last), a KeyboardInterrupt or SystemExit kept to raise once
    the CQEs are delivered; anything else is isolate's."""
    if op.multi and op.state != DONE and isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return fatal or exc
    return isolate(op, exc, fatal)


def _complete_one(op: Operation, user_data: int, res: int) -> None:
    """Complete `op` with the CQE (`user_data`, `res`), unless it was: a batch ignores a
    part it has, a single operation is skipped once DONE."""
    if op.multi:
        op.complete_part(user_data, res)
    elif op.state != DONE:
        op.complete(res)


class Reaper:
    """Delivers the completions in a ring's CQ to the operations of an in-flight table,
    then consumes them: the loop's driver and each thread's ring have one.

    A reap that starts while another is under way on the same table (a delivery, or a
    signal handler, that reaps again) delivers only the CQEs past the other's and
    consumes nothing: the unfinished reap consumes up to its own end, and CQEs the nested
    one delivered are skipped when met again.
    """

    __slots__ = ("_inflight", "_isolate", "_reaping_to", "_refused")

    def __init__(
        self,
        inflight: dict[int, Operation],
        isolate: Callable[[Operation, BaseException, BaseException | None], BaseException | None],
        refused: Callable[[Operation, int], bool] | None = None,
    ) -> None:
        self._inflight = inflight
        self._isolate = isolate
        self._refused = refused  # (see deliver)
        self._reaping_to = -1  # the CQ position an unfinished reap peeked to

    def reap(self, queues: Any) -> int:
        """Deliver the posted completions, then consume them; how many were consumed.

        The fatal exception a delivery raised (see deliver) is raised at the end."""
        user_datas, results, _flags, end = queues.peek_columns()
        count = len(user_datas)
        if not count:
            return 0
        outer = self._reaping_to
        if outer >= 0:  # nested: the first `seen` CQEs are the unfinished reap's
            seen = (outer - end + count) & _U32
            if seen >= count:
                return 0
            fatal = DELIVER(
                self._inflight, user_datas[seen:], results[seen:], self._isolate, self._refused
            )
            if fatal is not None:
                raise fatal
            return 0
        self._reaping_to = end
        try:
            fatal = DELIVER(self._inflight, user_datas, results, self._isolate, self._refused)
        finally:
            self._reaping_to = -1
        consumed = 0 if queues.closed else queues.consume_to(end)  # (closed: after a fork)
        if fatal is not None:
            raise fatal
        return consumed


def file_facts(fd: int) -> tuple[int, int, int, int]:
    """(st_mode, st_size, st_blksize, st_dev) of fstat(2) of `fd`, as os.fstat gives them
    (its errors too): what uringloop.open asks of a descriptor, without making the
    stat_result of every field."""
    st = os.fstat(fd)
    return st.st_mode, st.st_size, st.st_blksize, st.st_dev


RESOLVE_CACHED = 0x20  # linux/openat2.h (Linux 5.12): resolve from the dentry cache, or EAGAIN


def open_cached(dirfd: int, path: bytes, flags: int) -> int:
    """The kernel's own first attempt at a ring OPENAT, made on the calling thread: the new
    descriptor, or -errno.

    io_uring makes this attempt inside io_uring_enter before it hands an open to a worker
    thread: openat2 with RESOLVE_CACHED (the path is resolved from the dentry cache alone,
    else EAGAIN: no lookup that would read the disk) and O_NONBLOCK (an open that would
    wait, a FIFO's or a lease's, fails at once instead), which is then taken off the open
    file again unless `flags` has it (where that fcntl fails, the file is closed and the
    answer is -EAGAIN: the ring's open then does it). `path`: bytes without a NUL (else
    ValueError). Opens that create or truncate are not for this (the kernel never tries
    them inline).
    """
    dirfd, flags = c_int(dirfd), c_int(flags)
    if not isinstance(path, bytes):
        raise TypeError("open_cached: path must be bytes")
    if b"\0" in path:
        raise ValueError("embedded null byte")
    fd = libc.openat2(dirfd, path, flags | os.O_NONBLOCK, RESOLVE_CACHED)
    if fd >= 0 and not flags & os.O_NONBLOCK:
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        except BaseException as exc:  # an interrupt too: the descriptor is not lost
            os.close(fd)
            if not isinstance(exc, OSError):
                raise
            return -errno.EAGAIN
    return fd


RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 8)  # linux/fs.h (Linux 4.14)
NO_NOWAIT = -errno.EOPNOTSUPP  # read_cached's answer where the file cannot say without waiting


def read_cached(fd: int, size: int, offset: int) -> bytes | int:
    """The kernel's own first attempt at a ring READ, made on the calling thread: what
    preadv2(RWF_NOWAIT) copies at once of `size` bytes at `offset` (>= 0) of `fd`, or
    -errno when it copies nothing but EOF's b"": -EAGAIN, the first page is not in the
    page cache; -EOPNOTSUPP, the file cannot say without waiting (tmpfs, /proc); any other
    error is left for the ring's read to report. The copy stops short at EOF, or at the
    first page not cached.

    io_uring makes this same non-blocking read inside io_uring_enter before it waits for
    the page or hands the read to a worker, so made here it blocks the thread no longer
    than the ring's would, without the operation's round trip. Not for O_DIRECT: there
    a non-blocking read still waits for the device. `size`: 1..MAX_RW_COUNT (else
    ValueError), the buffer allocated before the read."""
    fd, size = c_int(fd), operator.index(size)
    if not 0 < size <= MAX_RW_COUNT:
        raise ValueError(f"read size {size} out of range [1, {MAX_RW_COUNT}]")
    offset = operator.index(offset)
    if not 0 <= offset <= OFF_MAX:
        raise ValueError(f"read offset {offset} out of range [0, {OFF_MAX}]")
    buf = bytearray(size)
    try:
        n = os.preadv(fd, (buf,), offset, RWF_NOWAIT)
    except OSError as exc:
        return -(exc.errno or errno.EIO)
    return bytes(buf) if n == size else bytes(memoryview(buf)[:n])


def read_many_cached(
    fds: Sequence[int],
    sizes: Sequence[int],
    offsets: Sequence[int],
    limit: int,
    ring: CopyRing | None = None,
    /,
) -> tuple[list[bytes], int]:
    """read_cached() of the first requests (fds[i], sizes[i], offsets[i]), at most `limit`
    of them, in order, for as long as each copy is the read's whole answer: all of it, or
    up to EOF (a copy stopping inside a page, or at once with b""): (the list of those
    answers, 0), or (the answers before the first copy that was not whole, -errno where it
    failed, else 0), which the caller reads again, whole, another way. A copy is not whole
    when nothing was cached, it stopped at a page's end short of its size, or it failed.
    Sizes of 0 answer b"" without a read. Checked values (as read_many_args gives them):
    fds >= 0 that take offsets (not a pipe's or a socket's) and are not O_DIRECT, sizes in
    [0, MAX_RW_COUNT], offsets >= 0.

    Here each copy is one preadv2. The compiled twin, given a CopyRing (`ring`) that has
    a ring, makes the copies of a run of at least COPY_RING_MIN requests (up to
    COPY_RING_ENTRIES at a time) of regular files or block devices (an fstat tells, for
    each of the first 8 descriptors a call names; other descriptors' requests are preadv2
    calls) through it: the same non-blocking reads, written as READ SQEs with RWF_NOWAIT
    and submitted together, so that one io_uring_enter makes them all (the kernel
    completes each inside that call: it copies, or fails at once with EAGAIN). The answers
    are the same; what differs is that the reads after the first that is not
    whole were made too (their buffers allocated, and for a page not cached, its readahead
    started). A CopyRing is used by one call at a time: another thread's call meanwhile
    makes preadv2 calls, and a close() meanwhile takes effect when the call ends. Where the
    ring fails, it is closed and the copies are preadv2 calls.
    """
    limit = operator.index(limit)
    count = min(len(fds), limit)
    if len(sizes) != len(fds) or len(offsets) != len(fds):
        raise ValueError("read_many_cached: fds, sizes and offsets differ in length")
    answers: list[bytes] = []
    for i in range(count):
        size = operator.index(sizes[i])
        if size == 0:
            answers.append(b"")
            continue
        data = read_cached(fds[i], size, offsets[i])
        if not isinstance(data, bytes):  # -errno
            return answers, data
        offset, copied = operator.index(offsets[i]), len(data)
        if copied != size and copied and (offset + copied) % PAGE_SIZE == 0:
            break  # a page not cached, maybe: the whole read goes the other way
        answers.append(data)
    return answers, 0


COPY_RING_MIN = 12  # (the compiled twin's) a shorter run: a preadv2 each, cheaper
COPY_RING_ENTRIES = 64  # (the compiled twin's) the most copies one io_uring_enter makes


class CopyRing:
    """The small io_uring that read_many_cached(), given it, makes a batch's copies
    through, in the compiled twin: here none, the copies being preadv2 calls. (The compiled
    twin's makes one at construction; where io_uring_setup fails, or the ring does later,
    or in a forked child, it has none either.) Its owner closes it."""

    __slots__ = ()

    def fileno(self) -> int:
        """The ring's descriptor, or -1 where it has none."""
        return -1

    def close(self) -> None:
        """Close the ring: the copies are preadv2 calls from then on."""


Split = tuple["array[int]", "array[int]", "array[int]", int, int, int, int]


def split_requests(requests: Any, size_max: int) -> Split | None:
    """pread_many's requests, (fd, size, offset) each, split into three signed 64-bit
    arrays in one go, when every request is three ints in the common range: fd in [0,
    INT_MAX], size in [1, `size_max`], offset in [-1, OFF_MAX]. Answers (fds, sizes,
    offsets, the descriptor they all name or -1, the largest size, the lowest offset, the
    highest offset), or None: no requests, one that is not three values, a value that is
    not an int (or an object with __index__) or out of that range; a TypeError, ValueError
    or OverflowError raised while reading them also answers None (the caller checks the
    requests one by one then, for the exact error). Other exceptions propagate."""
    size_max = operator.index(size_max)
    try:
        fds, sizes, offsets = (array("q", column) for column in zip(*requests, strict=True))
    except (TypeError, ValueError, OverflowError):
        return None
    low_fd, high_fd = min(fds), max(fds)
    largest, lowest, highest = max(sizes), min(offsets), max(offsets)
    if low_fd < 0 or high_fd > INT_MAX or min(sizes) < 1 or largest > size_max or lowest < -1:
        return None
    return fds, sizes, offsets, (low_fd if low_fd == high_fd else -1), largest, lowest, highest


READ_CORE: type[ReadCore] = compiled("uringloop._ops._hotpath", "ReadCore") or ReadCore
POSITIONED_CORE: type[PositionedCore] = (
    compiled("uringloop._ops._hotpath", "PositionedCore") or PositionedCore
)
PINNED_AT: Callable[..., Operation | None] = (
    compiled("uringloop._ops._hotpath", "pinned_at") or pinned_at
)
WRITE_ENTRIES: Callable[..., tuple[int, int]] = (
    compiled("uringloop._ops._hotpath", "write_entries") or write_entries
)
DELIVER: Callable[..., BaseException | None] = (
    compiled("uringloop._ops._hotpath", "deliver") or deliver
)
FILE_FACTS: Callable[[int], tuple[int, int, int, int]] = (
    compiled("uringloop._ops._hotpath", "file_facts") or file_facts
)
OPEN_CACHED: Callable[[int, bytes, int], int] = (
    compiled("uringloop._ops._hotpath", "open_cached") or open_cached
)
READ_CACHED: Callable[[int, int, int], bytes | int] = (
    compiled("uringloop._ops._hotpath", "read_cached") or read_cached
)
COPY_RING: type[CopyRing] = compiled("uringloop._ops._hotpath", "CopyRing") or CopyRing
READ_MANY_CACHED: Callable[
    [Sequence[int], Sequence[int], Sequence[int], int, CopyRing | None], tuple[list[bytes], int]
] = compiled("uringloop._ops._hotpath", "read_many_cached") or read_many_cached
SPLIT_REQUESTS: Callable[[Any, int], Split | None] = (
    compiled("uringloop._ops._hotpath", "split_requests") or split_requests
)
IMPLEMENTATION = "python" if READ_CORE is ReadCore else "c"
