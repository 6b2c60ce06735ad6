"""The ring: one io_uring instance, its mapped SQ/CQ rings and SQE array.

It knows nothing of asyncio, futures or threads. Callers reserve SQE slots, fill them
through `sqes` (a writable mmap), publish them with `enter()`, and collect completions
with `reap()`. Expected conditions are values: `next_sqe()` returns -1 when the SQ is
full, `reap()` returns an empty list when nothing completed.

Setup asks for the flags that suit an event loop (SINGLE_ISSUER, DEFER_TASKRUN,
COOP_TASKRUN, R_DISABLED so the running thread can claim the ring later); on EINVAL it
drops them one at a time down to a plain ring, since older kernels reject unknown flags.

Some facts about the shared rings, and memory ordering
------------------------------------------------------
* Two rings are shared with the kernel, each a head and a tail index (u32) plus entries.
  The SQ: we write entries and advance the tail; the kernel consumes entries and advances
  the head. The CQ: the kernel writes entries and advances the tail; we consume entries
  and advance the head.
* Each hand-over needs ordering: the writer's entry stores must be visible before its
  tail store (a release), and the reader's entry loads must not see older data than its
  tail load (an acquire); likewise for heads, so a slot is not reused before it was read.
  liburing spells these io_uring_smp_store_release / io_uring_smp_load_acquire.
* The SQ side needs no atomics here: we never use SQPOLL, so the kernel reads the SQ only
  inside our own io_uring_enter, and a system call orders everything before it.
* The CQ side depends on who posts CQEs. With IORING_SETUP_DEFER_TASKRUN the kernel posts
  them only in the submitting thread's own io_uring_enter(GETEVENTS), so our loads after
  it need no ordering beyond the syscall's. Without it, completions are posted by other
  CPUs concurrently with our reads of the CQ tail.
* This module is pure Python: a load or store through a memoryview is a plain access.
  On x86-64 (TSO) plain loads are acquires and plain stores are releases, and CPython
  cannot reorder the accesses of separate bytecodes. On weakly ordered CPUs (aarch64,
  POWER, RISC-V) nothing makes them so.
* So a ring is used only where plain accesses are enough: on x86-64, or with
  DEFER_TASKRUN. Elsewhere `Ring()` raises UnsafeMemoryOrdering (an OSError, ENOTSUP) and
  the loop runs file operations on its thread pool, saying why in its warning.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform

from . import abi, syscalls

DEFAULT_SQ_ENTRIES = 256
DEFAULT_CQ_ENTRIES = 1024  # in-flight operations are capped at this; see _driver.py
MAX_SQ_ENTRIES = 32768  # IORING_MAX_ENTRIES: larger is EINVAL (no IORING_SETUP_CLAMP)
MAX_CQ_ENTRIES = 65536  # IORING_MAX_CQ_ENTRIES
# CPUs whose plain loads and stores are acquires and releases (total store order).
TSO_MACHINES = ("x86_64", "AMD64", "i386", "i686")


class UnsafeMemoryOrdering(OSError):
    """This ring would need acquire/release accesses pure Python cannot make (see above)."""


WANTED_FLAGS = (
    abi.SetupFlag.SINGLE_ISSUER
    | abi.SetupFlag.DEFER_TASKRUN
    | abi.SetupFlag.COOP_TASKRUN
    | abi.SetupFlag.TASKRUN_FLAG
    | abi.SetupFlag.R_DISABLED
    | abi.SetupFlag.SUBMIT_ALL
)
# Dropped in this order when the kernel refuses a combination with EINVAL.
# DEFER_TASKRUN needs SINGLE_ISSUER (6.1), SINGLE_ISSUER needs 6.0, COOP_TASKRUN 5.19,
# SUBMIT_ALL 5.18, R_DISABLED 5.10.
FALLBACK_ORDER = (
    abi.SetupFlag.DEFER_TASKRUN,
    abi.SetupFlag.SINGLE_ISSUER | abi.SetupFlag.R_DISABLED,
    abi.SetupFlag.COOP_TASKRUN | abi.SetupFlag.TASKRUN_FLAG,
    abi.SetupFlag.SUBMIT_ALL,
    abi.SetupFlag.CQSIZE,
)

_U32 = 0xFFFFFFFF
_unpack_cqe = abi.CQE.unpack_from


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


class Ring:
    """One io_uring. Not thread-safe: one thread at a time drives it."""

    # Slots: attribute loads on the hot paths stay fast however many fields the ring has
    # (CPython 3.11 stops sharing an instance dict's keys past 29 attributes).
    __slots__ = (
        "_cq32",
        "_cq_bytes",
        "_cq_flags",
        "_cq_head",
        "_cq_map",
        "_cq_map_obj",
        "_cq_mask",
        "_cq_overflow",
        "_cq_tail",
        "_cqes_off",
        "_enabled",
        "_ring_map",
        "_sq32",
        "_sq_dropped",
        "_sq_flags",
        "_sq_head",
        "_sq_mask",
        "_sq_tail",
        "_sqe_map",
        "_tail",
        "_views",
        "closed",
        "cq_entries",
        "fd",
        "features",
        "setup_flags",
        "sq_entries",
        "sqe_words",
        "sqes",
    )

    def __init__(
        self,
        sq_entries: int = DEFAULT_SQ_ENTRIES,
        cq_entries: int = DEFAULT_CQ_ENTRIES,
        flags: int = WANTED_FLAGS,
    ) -> None:
        # Everything close() touches is set first, so a failed __init__ closes cleanly.
        self.fd = -1
        self._ring_map: mmap.mmap | None = None
        self._cq_map: mmap.mmap | None = None
        self._sqe_map: mmap.mmap | None = None
        self._views: list[memoryview] = []
        self.closed = False
        self._enabled = False
        if sq_entries < 1 or cq_entries < 1:
            raise ValueError("ring sizes must be positive")
        try:
            self._setup(sq_entries, cq_entries, flags)
        except BaseException:
            self.close()
            raise

    def _setup(self, sq_entries: int, cq_entries: int, flags: int) -> None:
        flags = int(flags) | (abi.SetupFlag.CQSIZE if cq_entries else 0)
        drops = list(FALLBACK_ORDER)
        while True:
            params = ctypes.create_string_buffer(abi.PARAMS_SIZE)
            fields = [0] * 28
            fields[abi.P_CQ_ENTRIES] = max(cq_entries, sq_entries)
            fields[abi.P_FLAGS] = flags
            abi.PARAMS.pack_into(params, 0, *fields)
            try:
                self.fd = syscalls.setup(sq_entries, params)
                break
            except OSError as exc:
                if exc.errno != errno.EINVAL or not drops:
                    raise
                while drops and not flags & drops[0]:
                    drops.pop(0)
                if not drops:
                    raise
                flags &= ~drops.pop(0)
        p: tuple[int, ...] = abi.PARAMS.unpack_from(params, 0)
        self.setup_flags = abi.SetupFlag(p[abi.P_FLAGS])
        if not self.setup_flags & abi.SetupFlag.DEFER_TASKRUN and not plain_access_is_ordered():
            raise UnsafeMemoryOrdering(
                errno.ENOTSUP,
                f"the kernel refused IORING_SETUP_DEFER_TASKRUN, and on {platform.machine()} "
                "completions posted by other CPUs need acquire loads that pure Python cannot "
                "make",
            )
        self.features = abi.Feature(p[abi.P_FEATURES])
        self.sq_entries: int = p[abi.P_SQ_ENTRIES]
        self.cq_entries: int = p[abi.P_CQ_ENTRIES]
        (sq_head, sq_tail, sq_mask, _, sq_flags, sq_dropped, sq_array, _, _) = p[
            abi.SQ_OFF : abi.SQ_OFF + 9
        ]
        (cq_head, cq_tail, cq_mask, _, cq_overflow, cqes, cq_flags, _, _) = p[
            abi.CQ_OFF : abi.CQ_OFF + 9
        ]
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        mflags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        sq_size = sq_array + self.sq_entries * 4
        cq_size = cqes + self.cq_entries * abi.CQE_SIZE
        if self.features & abi.Feature.SINGLE_MMAP:
            size = max(sq_size, cq_size)
            self._ring_map = mmap.mmap(self.fd, size, mflags, prot, offset=abi.IORING_OFF_SQ_RING)
            cq_map = self._ring_map
        else:
            self._ring_map = mmap.mmap(
                self.fd, sq_size, mflags, prot, offset=abi.IORING_OFF_SQ_RING
            )
            self._cq_map = mmap.mmap(self.fd, cq_size, mflags, prot, offset=abi.IORING_OFF_CQ_RING)
            cq_map = self._cq_map
        self._sqe_map = mmap.mmap(
            self.fd, self.sq_entries * abi.SQE_SIZE, mflags, prot, offset=abi.IORING_OFF_SQES
        )
        # u32 views of the ring headers; indexes are byte offsets // 4.
        sq32: memoryview[int] = memoryview(self._ring_map).cast("I")
        cq32: memoryview[int] = sq32 if cq_map is self._ring_map else memoryview(cq_map).cast("I")
        self._views = [sq32] if cq32 is sq32 else [sq32, cq32]
        self._sq32: memoryview[int] = sq32
        self._cq32: memoryview[int] = cq32
        self._sq_head = sq_head // 4
        self._sq_tail = sq_tail // 4
        self._sq_flags = sq_flags // 4
        self._sq_dropped = sq_dropped // 4
        self._sq_mask: int = sq32[sq_mask // 4]
        self._cq_head = cq_head // 4
        self._cq_tail = cq_tail // 4
        self._cq_overflow = cq_overflow // 4
        self._cq_flags = cq_flags // 4
        self._cq_mask = cq32[cq_mask // 4]
        self._cqes_off = cqes
        self._cq_map_obj = cq_map
        # Identity SQ index array: slot i always names SQE i, so an SQE's slot is tail & mask.
        base = sq_array // 4
        for i in range(self.sq_entries):
            sq32[base + i] = i
        # The local SQ tail: slots [published tail, _tail) are filled but not yet published.
        self._tail: int = sq32[self._sq_tail]
        self.sqes = self._sqe_map
        # The SQE array as signed native 64-bit words (8 per SQE), for writing many SQEs
        # at once (signed, so an offset of -1 is stored as the kernel's (u64)-1).
        self.sqe_words: memoryview[int] = memoryview(self._sqe_map).cast("q")
        # The CQ ring's bytes, for unpacking a run of CQEs in one call.
        self._cq_bytes = memoryview(cq_map)
        self._views += [self.sqe_words, self._cq_bytes]

    # -- submission ---------------------------------------------------------------------

    def next_sqe(self) -> int:
        """Reserve the next SQE and return its byte offset in `sqes`, or -1 if the SQ is full.

        The caller must fill all 64 bytes (SQE.pack_into) before the next enter().
        """
        tail = self._tail
        if ((tail - self._sq32[self._sq_head]) & _U32) >= self.sq_entries:
            return -1
        self._tail = (tail + 1) & _U32
        return (tail & self._sq_mask) * abi.SQE_SIZE

    def reserve(self, count: int) -> list[int]:
        """Reserve up to `count` SQEs; return their byte offsets in `sqes` (maybe fewer,
        maybe none when the SQ is full). Each must be filled before the next enter()."""
        tail = self._tail
        free = self.sq_entries - ((tail - self._sq32[self._sq_head]) & _U32)
        if count > free:
            count = free
        if count <= 0:
            return []
        self._tail = (tail + count) & _U32
        mask = self._sq_mask
        return [((tail + i) & mask) * abi.SQE_SIZE for i in range(count)]

    def pending(self) -> int:
        """SQEs reserved but not yet consumed by the kernel."""
        if self.closed:
            return 0
        return (self._tail - self._sq32[self._sq_head]) & _U32

    def unreserve(self, count: int) -> None:
        """Take back the last `count` SQEs the kernel has not consumed (after a failed enter)."""
        count = min(count, self.pending())
        self._tail = (self._tail - count) & _U32
        self._sq32[self._sq_tail] = self._tail

    def enter(self, min_complete: int = 0, flags: int = 0) -> int:
        """Publish the reserved SQEs and call io_uring_enter(2) once.

        Returns the number of SQEs the kernel consumed. Raises OSError as the syscall does
        (EINTR, EAGAIN, EBUSY included): the caller decides whether to reap and retry.
        Invariant: SQEs are published (tail store) only after they were fully written.
        """
        to_submit = (self._tail - self._sq32[self._sq_head]) & _U32
        self._sq32[self._sq_tail] = self._tail
        if min_complete:
            flags |= abi.EnterFlag.GETEVENTS
        return syscalls.enter(self.fd, to_submit, min_complete, flags)

    def needs_enter(self) -> bool:
        """True when the kernel wants an enter: overflowed CQEs to flush or task work to run."""
        return bool(self._sq32[self._sq_flags] & (abi.SqFlag.CQ_OVERFLOW | abi.SqFlag.TASKRUN))

    def cq_overflowed(self) -> bool:
        return bool(self._sq32[self._sq_flags] & abi.SqFlag.CQ_OVERFLOW)

    # -- completion ---------------------------------------------------------------------

    def cq_ready(self) -> int:
        """CQEs posted and not yet reaped."""
        return (self._cq32[self._cq_tail] - self._cq32[self._cq_head]) & _U32

    def reap(self, limit: int = 0) -> list[tuple[int, int, int]]:
        """Consume posted CQEs (all, or at most `limit`); return (user_data, res, flags) tuples.

        The CQ head is advanced once, after every returned CQE was copied out.
        """
        return list(zip(*self.reap_columns(limit), strict=True))

    def reap_columns(self, limit: int = 0) -> tuple[list[int], list[int], list[int]]:
        """reap() as three lists, (user_data values, results, flags), in CQ order."""
        cq32 = self._cq32
        head = cq32[self._cq_head]
        count = (cq32[self._cq_tail] - head) & _U32
        if not count:
            return [], [], []
        if limit and count > limit:
            count = limit
        first = head & self._cq_mask
        if count == 1:  # the common case of a lone operation: skip the column casts
            user_data, res, flags = _unpack_cqe(
                self._cq_bytes, self._cqes_off + first * abi.CQE_SIZE
            )
            cq32[self._cq_head] = (head + 1) & _U32
            return [user_data], [res], [flags]
        split = min(count, self.cq_entries - first)  # CQEs before the ring wraps
        base = self._cqes_off
        user_data, res, flags = _columns(self._cq_bytes, base + first * abi.CQE_SIZE, split)
        if split < count:
            more = _columns(self._cq_bytes, base, count - split)
            user_data += more[0]
            res += more[1]
            flags += more[2]
        cq32[self._cq_head] = (head + count) & _U32
        return user_data, res, flags

    # -- eventfd, probe, enable ---------------------------------------------------------

    def register_eventfd(self, efd: int) -> None:
        arg = ctypes.c_int32(efd)
        syscalls.register(self.fd, abi.Register.REGISTER_EVENTFD, ctypes.addressof(arg), 1)

    def set_eventfd_enabled(self, enabled: bool) -> None:
        """Toggle IORING_CQ_EVENTFD_DISABLED (the eventfd stays registered)."""
        flags = self._cq32[self._cq_flags]
        if enabled:
            flags &= ~abi.CqFlag.EVENTFD_DISABLED
        else:
            flags |= abi.CqFlag.EVENTFD_DISABLED
        self._cq32[self._cq_flags] = flags

    def probe(self) -> frozenset[int]:
        """The opcodes this kernel supports (IORING_REGISTER_PROBE, 5.6+)."""
        size = abi.PROBE_HEADER.size + abi.PROBE_OPS * abi.PROBE_OP.size
        buf = ctypes.create_string_buffer(size)
        syscalls.register(
            self.fd, abi.Register.REGISTER_PROBE, ctypes.addressof(buf), abi.PROBE_OPS
        )
        _last, ops_len, *_ = abi.PROBE_HEADER.unpack_from(buf, 0)
        supported = set()
        for i in range(ops_len):
            op, _, flags, _ = abi.PROBE_OP.unpack_from(buf, abi.PROBE_HEADER.size + i * 8)
            if flags & abi.IO_URING_OP_SUPPORTED:
                supported.add(op)
        return frozenset(supported)

    @property
    def disabled(self) -> bool:
        return bool(self.setup_flags & abi.SetupFlag.R_DISABLED) and not self._enabled

    def enable(self) -> None:
        """IORING_REGISTER_ENABLE_RINGS: the calling thread becomes the single issuer."""
        if self.setup_flags & abi.SetupFlag.R_DISABLED and not self._enabled:
            syscalls.register(self.fd, abi.Register.REGISTER_ENABLE_RINGS, 0, 0)
        self._enabled = True

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Unmap, then close the ring fd. Idempotent. The kernel cancels what is in flight;
        the caller must have waited for the completions of operations whose buffers it owns.
        """
        if self.closed:
            return
        self.closed = True
        for view in self._views:
            view.release()
        self._views = []
        self._sq32 = self._cq32 = None  # type: ignore[assignment]
        self._cq_map_obj = None  # type: ignore[assignment]
        self.sqe_words = self._cq_bytes = None  # type: ignore[assignment]
        self.sqes = None  # type: ignore[assignment]
        for m in (self._sqe_map, self._cq_map, self._ring_map):
            if m is not None:
                m.close()
        self._sqe_map = self._cq_map = self._ring_map = None
        # Closing the fd is last: it is the step that can raise.
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self.close()
