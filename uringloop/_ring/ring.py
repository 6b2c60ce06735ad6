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
* The accesses to the shared indexes are made by `Queues`, in one of two twins: the
  compiled one (_queues.c) uses C11 acquire loads and release stores and is right on any
  CPU. The pure-Python one (queues.py), used where no compiler built the other or when
  URINGLOOP_NO_EXTENSIONS=1 is set, makes plain accesses through memoryviews: on x86-64
  (TSO) plain loads are acquires and plain stores are releases, and CPython cannot reorder
  the accesses of separate bytecodes; on weakly ordered CPUs (aarch64, POWER, RISC-V)
  nothing makes them so.
* So with the pure-Python twin a ring is used only where plain accesses are enough: on
  x86-64, or with DEFER_TASKRUN. Elsewhere `Ring()` raises UnsafeMemoryOrdering (an
  OSError, ENOTSUP) and the loop runs file operations on its thread pool, saying why in
  its warning.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct
import sys

from .._twins import compiled
from . import abi, syscalls
from .queues import Queues

# The Queues every Ring uses unless told otherwise, and its name: "c" (compiled) or
# "python" (the pure-Python twin).
# Twins: the same methods, the same behaviour.
QUEUES: type[Queues] = compiled("uringloop._ring._queues", "Queues") or Queues
IMPLEMENTATION = "python" if QUEUES is Queues else "c"

DEFAULT_SQ_ENTRIES = 256
DEFAULT_CQ_ENTRIES = 1024  # in-flight operations are capped at this; see _driver.py
MAX_SQ_ENTRIES = 32768  # IORING_MAX_ENTRIES: larger is EINVAL (no IORING_SETUP_CLAMP)
MAX_CQ_ENTRIES = 65536  # IORING_MAX_CQ_ENTRIES

# Python 3.13's mmap can map without keeping a duplicate of the ring's descriptor: a ring
# then holds one descriptor instead of three (one per map besides its own). The maps'
# size() and resize(), which need the duplicate, are never called.
_MAP_OPTIONS: dict[str, bool] = {"trackfd": False} if sys.version_info >= (3, 13) else {}


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


_U32 = struct.Struct("=I")


class Ring:
    """One io_uring. Not thread-safe: one thread at a time drives it.

    `queues` (a Queues) does the submission and completion work; the methods of the same
    names here forward to it, and hot paths call it directly.
    """

    __slots__ = ("_cq_map", "_enabled", "_ring_map", "_sq_head_offset", "_sqe_map", "closed",
                 "cq_entries", "fd", "features", "queues", "setup_flags", "sq_entries",
                 "sqe_words", "sqes")  # fmt: skip
    queues: Queues
    sqe_words: memoryview[int]

    def __init__(
        self,
        sq_entries: int = DEFAULT_SQ_ENTRIES,
        cq_entries: int = DEFAULT_CQ_ENTRIES,
        flags: int = WANTED_FLAGS,
        queues_type: type[Queues] | None = None,
    ) -> None:
        # Everything close() touches is set first, so a failed __init__ closes cleanly.
        self.fd = -1
        self._ring_map: mmap.mmap | None = None
        self._cq_map: mmap.mmap | None = None
        self._sqe_map: mmap.mmap | None = None
        self.queues = None  # type: ignore[assignment]  # set by _setup
        self.sqe_words = None  # type: ignore[assignment]
        self.closed = False
        self._enabled = False
        if sq_entries < 1 or cq_entries < 1:
            raise ValueError("ring sizes must be positive")
        try:
            self._setup(sq_entries, cq_entries, flags, queues_type or QUEUES)
        except BaseException:
            self.close()
            raise

    def _setup(
        self, sq_entries: int, cq_entries: int, flags: int, queues_type: type[Queues]
    ) -> None:
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
        if not self.setup_flags & abi.SetupFlag.DEFER_TASKRUN and not queues_type.ordered():
            raise UnsafeMemoryOrdering(
                errno.ENOTSUP,
                f"the kernel refused IORING_SETUP_DEFER_TASKRUN, and on {platform.machine()} "
                "completions posted by other CPUs need acquire loads that pure Python cannot "
                "make (the compiled extension can: it was not built, or "
                "URINGLOOP_NO_EXTENSIONS is set)",
            )
        self.features = abi.Feature(p[abi.P_FEATURES])
        self.sq_entries: int = p[abi.P_SQ_ENTRIES]
        self.cq_entries: int = p[abi.P_CQ_ENTRIES]
        (sq_head, sq_tail, sq_mask, _, sq_flags, _, sq_array, _, _) = p[abi.SQ_OFF : abi.SQ_OFF + 9]
        (cq_head, cq_tail, cq_mask, _, _, cqes, cq_flags, _, _) = p[abi.CQ_OFF : abi.CQ_OFF + 9]
        sq_size = sq_array + self.sq_entries * 4
        cq_size = cqes + self.cq_entries * abi.CQE_SIZE
        if self.features & abi.Feature.SINGLE_MMAP:
            size = max(sq_size, cq_size)
            self._ring_map = self._map(size, abi.IORING_OFF_SQ_RING)
            cq_map = self._ring_map
        else:
            self._ring_map = self._map(sq_size, abi.IORING_OFF_SQ_RING)
            self._cq_map = self._map(cq_size, abi.IORING_OFF_CQ_RING)
            cq_map = self._cq_map
        self._sqe_map = self._map(self.sq_entries * abi.SQE_SIZE, abi.IORING_OFF_SQES)
        self.queues = queues_type(
            self.fd,
            self.sq_entries,
            self.cq_entries,
            self._ring_map,
            cq_map,
            (sq_head, sq_tail, sq_mask, sq_flags, sq_array),
            (cq_head, cq_tail, cq_mask, cqes, cq_flags),
            self._sqe_map,
        )
        self.sqes = self._sqe_map
        self._sq_head_offset = sq_head  # (pending_slots() reads the kernel's SQ head there)
        # The SQE array as signed native 64-bit words (8 per SQE), for writing many SQEs
        # at once (signed, so an offset of -1 is stored as the kernel's (u64)-1).
        self.sqe_words = memoryview(self._sqe_map).cast("q")

    def _map(self, size: int, offset: int) -> mmap.mmap:
        """One of the ring's regions, mapped shared, readable and writable."""
        return mmap.mmap(
            self.fd,
            size,
            mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
            mmap.PROT_READ | mmap.PROT_WRITE,
            offset=offset,
            **_MAP_OPTIONS,
        )

    # -- submission and completion: see Queues ------------------------------------------

    def next_sqe(self) -> int:
        return self.queues.next_sqe()

    def reserve(self, count: int) -> list[int]:
        return self.queues.reserve(count)

    def pending(self) -> int:
        return 0 if self.closed else self.queues.pending()

    def unreserve(self, count: int) -> None:
        self.queues.unreserve(count)

    def pending_slots(self) -> list[int]:
        """The byte offsets, oldest first, of the SQ slots reserved and not yet consumed
        by the kernel (pending() of them): for a ring given up, which entries never
        reached it (a slot handed out and never written holds a NOP with user_data 0)."""
        count = self.pending()
        if not count:
            return []
        (head,) = _U32.unpack_from(self._ring_map, self._sq_head_offset)  # type: ignore[arg-type]
        mask = self.sq_entries - 1  # (the kernel's SQ size is a power of two)
        return [((head + i) & mask) * abi.SQE_SIZE for i in range(count)]

    def enter(self, min_complete: int = 0, flags: int = 0) -> int:
        return self.queues.enter(min_complete, flags)

    def reap(self, limit: int = 0) -> list[tuple[int, int, int]]:
        """Consume posted CQEs (all, or at most `limit`); return (user_data, res, flags) tuples."""
        return list(zip(*self.queues.reap_columns(limit), strict=True))

    def reap_columns(self, limit: int = 0) -> tuple[list[int], list[int], list[int]]:
        return self.queues.reap_columns(limit)

    def set_eventfd_enabled(self, enabled: bool) -> None:
        self.queues.set_eventfd_enabled(enabled)

    # -- eventfd, probe, enable ---------------------------------------------------------

    def register_eventfd(self, efd: int) -> None:
        arg = ctypes.c_int32(efd)
        syscalls.register(self.fd, abi.Register.REGISTER_EVENTFD, ctypes.addressof(arg), 1)

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
        """IORING_REGISTER_ENABLE_RINGS: the calling thread becomes the single issuer.

        EBADFD (the rings are enabled already) counts as done: an earlier call enabled
        them and was interrupted (a signal handler's exception) before it could say so."""
        if self.setup_flags & abi.SetupFlag.R_DISABLED and not self._enabled:
            try:
                syscalls.register(self.fd, abi.Register.REGISTER_ENABLE_RINGS, 0, 0)
            except OSError as exc:
                if exc.errno != errno.EBADFD:
                    raise
        self._enabled = True

    # -- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Unmap, then close the ring fd. Idempotent. The kernel cancels what is in flight;
        the caller must have waited for the completions of operations whose buffers it owns.
        """
        if self.closed:
            return
        self.closed = True
        if self.queues is not None:
            self.queues.close()
        if self.sqe_words is not None:
            self.sqe_words.release()
        self.sqe_words = None  # type: ignore[assignment]
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
