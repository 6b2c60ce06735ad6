"""The submission and completion queues of one mapped io_uring, in pure Python.

`Queues` reserves SQ slots, publishes them with io_uring_enter(2), and reaps CQEs. It is
the readable reference of the compiled `_queues.Queues` (uringloop/_ring/_queues.c): both
take the same arguments, have the same methods and behave alike; `uringloop._ring.ring`
picks one (see IMPLEMENTATION there).

Memory ordering (see ring.py's docstring for the whole story): a load or store through a
memoryview is a plain access. That is enough on x86-64 (total store order), and with
DEFER_TASKRUN on any CPU, and only there: `ORDERED` says whether this class's accesses are
acquires and releases on this machine. The compiled twin uses C11 atomics and is always
ORDERED.

Invariant: an SQE is published (the SQ tail store) only after it was fully written, and
the CQ head moves past a CQE only after the CQE was copied out.
"""

from __future__ import annotations

import mmap
import platform
from operator import index

from . import abi, syscalls

_U32 = 0xFFFFFFFF
_unpack_cqe = abi.CQE.unpack_from
_GETEVENTS = int(abi.EnterFlag.GETEVENTS)
_NOP_SQE = bytes(abi.SQE_SIZE)  # a NOP with user_data 0 (see Queues's invariant)
_NEEDS_ENTER = int(abi.SqFlag.CQ_OVERFLOW | abi.SqFlag.TASKRUN)
_CQ_OVERFLOW = int(abi.SqFlag.CQ_OVERFLOW)
_EVENTFD_DISABLED = int(abi.CqFlag.EVENTFD_DISABLED)
# CPUs whose plain loads and stores are acquires and releases (total store order).
TSO_MACHINES = ("x86_64", "AMD64", "i386", "i686")


def plain_access_is_ordered() -> bool:
    """True on CPUs where plain loads and stores order as acquire and release."""
    return platform.machine() in TSO_MACHINES


def _columns(mem: memoryview, start: int, count: int) -> tuple[list[int], list[int], list[int]]:
    """The fields of `count` CQEs from byte `start`: a CQE is u64 user_data, s32 res, u32 flags."""
    block = mem[start : start + count * abi.CQE_SIZE]
    return (
        block.cast("Q")[0::2].tolist(),
        block.cast("i")[2::4].tolist(),
        block.cast("I")[3::4].tolist(),
    )


class Queues:
    """The SQ and CQ of one ring. Not thread-safe: one thread at a time drives it.

    `sq_off` holds the byte offsets (head, tail, ring_mask, flags, array) of the SQ ring
    in `sq_map`; `cq_off` holds (head, tail, ring_mask, cqes, flags) of
    the CQ ring in `cq_map` (the same map with IORING_FEAT_SINGLE_MMAP). Expected
    conditions are values: next_sqe() returns -1 when the SQ is full, reap_columns()
    returns empty lists when nothing completed.
    """

    __slots__ = ("_cq32", "_cq_bytes", "_cq_flags", "_cq_head", "_cq_mask", "_cq_tail",
                 "_cqes_off", "_sq32", "_sq_flags", "_sq_head", "_sq_mask", "_sq_tail",
                 "_sqes", "_tail", "closed", "cq_entries", "fd", "sq_entries")  # fmt: skip

    @staticmethod
    def ordered() -> bool:
        """Whether this implementation's accesses order as acquire/release on this CPU."""
        return plain_access_is_ordered()

    def __init__(
        self,
        fd: int,
        sq_entries: int,
        cq_entries: int,
        sq_map: mmap.mmap,
        cq_map: mmap.mmap,
        sq_off: tuple[int, int, int, int, int],
        cq_off: tuple[int, int, int, int, int],
        sqes: mmap.mmap | None = None,
    ) -> None:
        self.fd = fd
        self.sq_entries = sq_entries
        self.cq_entries = cq_entries
        self.closed = False
        sq_head, sq_tail, sq_mask, sq_flags, sq_array = sq_off
        cq_head, cq_tail, cq_mask, cqes, cq_flags = cq_off
        # u32 views of the ring headers; indexes are byte offsets // 4.
        sq32: memoryview[int] = memoryview(sq_map).cast("I")
        cq32: memoryview[int] = sq32 if cq_map is sq_map else memoryview(cq_map).cast("I")
        self._sq32 = sq32
        self._cq32 = cq32
        self._sq_head = sq_head // 4
        self._sq_tail = sq_tail // 4
        self._sq_flags = sq_flags // 4
        self._sq_mask: int = sq32[sq_mask // 4]
        self._cq_head = cq_head // 4
        self._cq_tail = cq_tail // 4
        self._cq_flags = cq_flags // 4
        self._cq_mask: int = cq32[cq_mask // 4]
        self._cqes_off = cqes
        self._cq_bytes = memoryview(cq_map)
        # Identity SQ index array: slot i always names SQE i, so an SQE's slot is tail & mask.
        base = sq_array // 4
        for i in range(sq_entries):
            sq32[base + i] = i
        # The local SQ tail: slots [published tail, _tail) are filled but not yet published.
        self._tail: int = sq32[self._sq_tail]
        # Invariant: a slot handed out (next_sqe, reserve) holds a NOP with user_data 0 (all
        # zeroes) until its caller writes it, so that a slot its caller could not write (an
        # exception from a signal handler before the driver gave it back) makes the kernel
        # complete a NOP nobody waits for, never run the stale entry it held (whose memory
        # may be gone). The reaper skips a user_data it does not know.
        self._sqes: memoryview | None = None
        if sqes is not None:
            if len(sqes) < sq_entries * abi.SQE_SIZE:
                raise ValueError("the SQE array is shorter than the SQ")
            self._sqes = memoryview(sqes)

    # -- submission ---------------------------------------------------------------------

    def next_sqe(self) -> int:
        """Reserve the next SQE and return its byte offset in the SQE array, or -1 if the
        SQ is full. The caller must write all 64 bytes before the next enter()."""
        tail = self._tail
        if ((tail - self._sq32[self._sq_head]) & _U32) >= self.sq_entries:
            return -1
        offset = (tail & self._sq_mask) * abi.SQE_SIZE
        if self._sqes is not None:
            self._sqes[offset : offset + abi.SQE_SIZE] = _NOP_SQE
        self._tail = (tail + 1) & _U32
        return offset

    def reserve(self, count: int, /) -> list[int]:
        """Reserve up to `count` SQEs; return their byte offsets (maybe fewer, maybe none
        when the SQ is full). Each must be written before the next enter()."""
        count = index(count)  # (as the compiled twin's: its __index__ before the ring)
        tail = self._tail
        free = self.sq_entries - ((tail - self._sq32[self._sq_head]) & _U32)
        if count > free:
            count = free
        if count <= 0:
            return []
        mask = self._sq_mask
        offsets = [((tail + i) & mask) * abi.SQE_SIZE for i in range(count)]
        sqes = self._sqes
        if sqes is not None:
            for offset in offsets:
                sqes[offset : offset + abi.SQE_SIZE] = _NOP_SQE
        self._tail = (tail + count) & _U32
        return offsets

    def pending(self) -> int:
        """SQEs reserved but not yet consumed by the kernel (0 once closed)."""
        if self.closed:
            return 0
        return (self._tail - self._sq32[self._sq_head]) & _U32

    def unreserve(self, count: int, /) -> None:
        """Take back the last `count` SQEs the kernel has not consumed (after a failed enter)."""
        count = max(0, min(index(count), self.pending()))
        self._tail = (self._tail - count) & _U32
        self._sq32[self._sq_tail] = self._tail

    def enter(self, min_complete: int = 0, flags: int = 0, /) -> int:
        """Publish the reserved SQEs and call io_uring_enter(2) once.

        Returns the number of SQEs the kernel consumed. Raises OSError as the system call
        does (EINTR, EAGAIN, EBUSY included). An enter that waits (min_complete > 0)
        releases the GIL; one that does not keeps it (see syscalls.py).
        """
        if not (0 <= min_complete <= _U32 and 0 <= flags <= _U32):
            raise OverflowError("enter() arguments must fit a u32")
        to_submit = (self._tail - self._sq32[self._sq_head]) & _U32
        self._sq32[self._sq_tail] = self._tail
        if min_complete:
            flags |= _GETEVENTS
        return syscalls.enter(self.fd, to_submit, min_complete, flags)

    def needs_enter(self) -> bool:
        """True when the kernel wants an enter: overflowed CQEs to flush or task work to run."""
        return bool(self._sq32[self._sq_flags] & _NEEDS_ENTER)

    def cq_overflowed(self) -> bool:
        return bool(self._sq32[self._sq_flags] & _CQ_OVERFLOW)

    # -- completion ---------------------------------------------------------------------

    def cq_ready(self) -> int:
        """CQEs posted and not yet reaped."""
        return (self._cq32[self._cq_tail] - self._cq32[self._cq_head]) & _U32

    def reap_columns(self, limit: int = 0, /) -> tuple[list[int], list[int], list[int]]:
        """Consume posted CQEs (all, or at most `limit`): three lists, (user_data values,
        results, flags), in CQ order. The CQ head is advanced once, after every returned
        CQE was copied out."""
        user_data, res, flags, end = self.peek_columns(limit)
        if user_data:
            self._cq32[self._cq_head] = end
        return user_data, res, flags

    def peek_columns(self, limit: int = 0, /) -> tuple[list[int], list[int], list[int], int]:
        """reap_columns() without consuming: the three lists and the CQ head past them,
        for consume_to() once the caller is done with those CQEs (until then a later peek
        finds them again)."""
        cq32 = self._cq32
        head = cq32[self._cq_head]
        count = (cq32[self._cq_tail] - head) & _U32
        if not count:
            return [], [], [], head
        if limit > 0 and count > limit:
            count = limit
        first = head & self._cq_mask
        if count == 1:  # the common case of a lone operation: skip the column casts
            user_data, res, flags = _unpack_cqe(
                self._cq_bytes, self._cqes_off + first * abi.CQE_SIZE
            )
            return [user_data], [res], [flags], (head + 1) & _U32
        split = min(count, self.cq_entries - first)  # CQEs before the ring wraps
        base = self._cqes_off
        user_data, res, flags = _columns(self._cq_bytes, base + first * abi.CQE_SIZE, split)
        if split < count:
            more = _columns(self._cq_bytes, base, count - split)
            user_data += more[0]
            res += more[1]
            flags += more[2]
        return user_data, res, flags, (head + count) & _U32

    def consume_to(self, end: int, /) -> int:
        """Advance the CQ head to `end`, a peek_columns() end, unless it is there or past
        it already (a reap made meanwhile went further); never past the CQEs posted.
        Returns how many CQEs that consumed."""
        if not 0 <= end <= _U32:
            raise OverflowError("consume_to() takes a u32")
        cq32 = self._cq32
        head = cq32[self._cq_head]
        ahead = (end - head) & _U32
        if not 0 < ahead <= (cq32[self._cq_tail] - head) & _U32:
            return 0
        cq32[self._cq_head] = end
        return ahead

    def set_eventfd_enabled(self, enabled: bool, /) -> None:
        """Toggle IORING_CQ_EVENTFD_DISABLED (the eventfd stays registered)."""
        flags = self._cq32[self._cq_flags]
        if enabled:
            flags &= ~_EVENTFD_DISABLED
        else:
            flags |= _EVENTFD_DISABLED
        self._cq32[self._cq_flags] = flags

    def close(self) -> None:
        """Let go of the mapped memory (before it is unmapped). Idempotent; afterwards
        pending() is 0 and the other methods raise ValueError."""
        if self.closed:
            return
        self.closed = True
        for view in (self._sq32, self._cq32, self._cq_bytes):
            view.release()
        if self._sqes is not None:
            self._sqes.release()
            self._sqes = None
