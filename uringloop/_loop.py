"""uringloop.Loop: an asyncio SelectorEventLoop that owns one io_uring.

Outbound: an operation method builds an Operation and a future and queues it on the driver
(a foreign thread's goes to the ForeignQueue, plus a wakeup); the pre-select step flushes
the queue to the ring with one io_uring_enter just before the loop may block.
Return: the eventfd turns readable (or the pre-select enter posts CQEs inline) ->
driver.flush/reap -> Operation.complete -> future. The ring never sees a future; the loop
never sees the bytes of an SQE.

Invariant: no queued operation waits in user space across a blocking select(), except
while the in-flight cap is reached, when a completion (which wakes select) frees a slot.
Invariant: the ring is only entered by the thread running the loop (SINGLE_ISSUER).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import errno
import os
import selectors
import threading
import time
import warnings
import weakref
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _ops
from ._buffers import SLOT_SIZES, SlotPool
from ._driver import RingDriver
from ._errors import LoopClosedError
from ._fallback import FallbackDriver
from ._foreign import ForeignQueue
from ._ops import (
    Close,
    Fallocate,
    Fsync,
    Ftruncate,
    LinkAt,
    MkdirAt,
    Nop,
    OpenAt,
    Operation,
    Read,
    ReadBatch,
    ReadInto,
    ReadV,
    RenameAt,
    StatxResult,
    SymlinkAt,
    UnlinkAt,
    Write,
    WriteV,
    check_fd,
    check_offset,
    check_size,
)
from ._ring import abi
from ._ring.ring import DEFAULT_CQ_ENTRIES, DEFAULT_SQ_ENTRIES, Ring
from ._selector import PreSelectEpollSelector, PreSelectSelector, make_selector

if TYPE_CHECKING:
    import collections
    from collections.abc import Callable, Iterable, Sequence

    from ._driver import DriverStats

__all__ = ["Loop", "UringStats"]

DISABLE_ENV = "URINGLOOP_DISABLE"  # set to 1: every Loop uses the thread-pool fallback
CLOSE_TIMEOUT = 2.0  # seconds close() waits for the CQEs of cancelled operations
# Operations submitted at once between two pre-select steps; see _submit_early.
EAGER_PER_ITERATION = 16
# While callbacks are still to run, a backlog this long is handed to the kernel at once
# rather than at the pre-select step, when the last submission's operations did not
# complete inline (device reads): the device starts on them while the other callbacks run
# (O_DIRECT 4 KiB random reads at QD 16: 1.36x; docs/performance.md). Page-cache reads
# complete inline and keep the one-enter-per-iteration batching.
EARLY_BATCH = 8
_BUSY_POLL_MAX = 1.0  # seconds: a longer spin is a mistake, not a tuning
_RETRY_DELAY = 0.001  # seconds to sleep when the kernel asked us to enter again later
_SETUP_ERRNOS_FALLBACK = (errno.ENOSYS, errno.EPERM, errno.EACCES, errno.ENOMEM, errno.EINVAL)

# Operations (with their buffers) whose CQE never came before close(): the kernel may still
# write into their memory, so it is never freed. Should stay empty in practice.
_never_freed: list[Any] = []

# Every live Loop, so a forked child can mark them unusable.
_loops: weakref.WeakSet[Loop] = weakref.WeakSet()

# The uringloop Loop whose task is running this code, if any (set while a Loop runs).
current_loop: contextvars.ContextVar[Loop | None] = contextvars.ContextVar(
    "uringloop_current_loop", default=None
)
# The uringloop Loop whose run_in_executor job this thread is running, if any.
executor_loop = threading.local()


class _ExecutorJob:
    """A run_in_executor callable that records, for its duration, which loop it serves."""

    __slots__ = ("_func", "_loop")

    def __init__(self, loop: Loop, func: Any) -> None:
        self._loop = weakref.ref(loop)
        self._func = func

    def __call__(self, *args: Any) -> Any:
        previous = getattr(executor_loop, "loop", None)
        executor_loop.loop = self._loop
        try:
            return self._func(*args)
        finally:
            executor_loop.loop = previous

    def __repr__(self) -> str:
        return repr(self._func)


def _after_fork_in_child() -> None:
    for loop in list(_loops):
        loop._state.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)

_BASIC_STATX = int(abi.StatxMask.BASIC_STATS | abi.StatxMask.BTIME)
_FD_MAX = 2**31 - 1
_OFFSET_LIMIT = 2**63
_POOLED_MAX = SLOT_SIZES[-1]
_Future = asyncio.Future
_monotonic = time.monotonic
_Handle = asyncio.Handle


@dataclass(frozen=True, slots=True)
class UringStats:
    """What Loop.uring_stats() reports; counters are totals since the loop was created."""

    uring_available: bool
    submitted: int  # operations handed to the kernel (or the fallback pool)
    completed: int  # completions delivered
    cancelled: int  # cancellations requested
    enter_calls: int  # io_uring_enter system calls
    foreign_submissions: int  # operations queued by other threads
    wakeups_sent: int  # wakeups (eventfd or self-pipe writes) for foreign submissions
    wakeups_skipped: int  # foreign submissions that found the loop awake
    max_in_flight: int
    in_flight: int
    backlog: int  # queued in user space, not yet in the kernel


class _LoopState:
    """Loop's own attributes that no hot path reads on every iteration.

    They live here, not on the loop, because CPython 3.11 keeps an instance's attributes
    in a shared-keys dict only up to 29 of them: SelectorEventLoop already has 24, and
    past the limit every `self._ready`-style load in asyncio's _run_once gets slower (a
    call_later chain ran at 0.92-0.95x stock asyncio; docs/performance.md). Loop adds at
    most five attributes of its own.
    """

    __slots__ = ("busy_poll", "cq_entries", "forked", "ring_thread", "sq_entries", "threadsafe")

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self.busy_poll = 0.0
        self.forked = False
        self.ring_thread: int | None = None
        self.sq_entries = sq_entries
        self.cq_entries = cq_entries
        self.threadsafe: ThreadsafeOperations | None = None


class Loop(asyncio.SelectorEventLoop):
    """An asyncio event loop that owns an io_uring for file operations.

    Everything SelectorEventLoop does keeps working. On top of it, file operations are
    coroutine methods (pread, pwrite, open_fd, statx, ...) served by the loop's ring, and
    `loop.threadsafe` offers the same operations to other threads.

    foreign_wakeup=False is a diagnostic: it reproduces QEMU's lost-wakeup bug, so work
    queued by other threads waits until the loop wakes for another reason.
    use_uring=False (or URINGLOOP_DISABLE=1) runs file operations on a thread pool.
    busy_poll=seconds (default 0: off): before sleeping with operations in flight, watch the
    ring for their completions for up to that long, burning CPU, as SO_BUSY_POLL does for
    sockets. It saves the sleep and wake-up around device I/O that completes within the
    window (O_DIRECT reads: ~50e-6). Timers, foreign threads' work and call_soon_threadsafe
    callbacks end the spin; sockets are not watched meanwhile, so they wait at most that long.
    """

    if TYPE_CHECKING:
        # BaseEventLoop/BaseSelectorEventLoop internals we build on (not in typeshed).
        _closed: bool
        _debug: bool
        _ready: collections.deque[asyncio.Handle]
        _selector: PreSelectEpollSelector | PreSelectSelector

        def _add_reader(self, fd: int, callback: Callable[..., object]) -> asyncio.Handle: ...
        def _remove_reader(self, fd: int) -> bool: ...
        def _check_closed(self) -> None: ...
        def _check_running(self) -> None: ...
        def _check_callback(self, callback: object, method: str) -> None: ...
        def _write_to_self(self) -> None: ...

    def __init__(
        self,
        selector: selectors.BaseSelector | None = None,
        *,
        foreign_wakeup: bool = True,
        use_uring: bool | None = None,
        sq_entries: int = DEFAULT_SQ_ENTRIES,
        cq_entries: int = DEFAULT_CQ_ENTRIES,
        busy_poll: float = 0.0,
    ) -> None:
        # Everything close() and __del__ touch is set before anything that can fail.
        # Five attributes of our own, no more (see _LoopState).
        self._state = _LoopState(sq_entries, cq_entries)
        self._driver: RingDriver | FallbackDriver | None = None
        self._foreign: ForeignQueue | None = None
        self._pool = SlotPool()
        self._eager_left = EAGER_PER_ITERATION
        wrapper = make_selector(selector)
        super().__init__(wrapper)
        self._foreign = ForeignQueue(self._wake_for_foreign, foreign_wakeup)
        if use_uring is None:
            use_uring = os.environ.get(DISABLE_ENV, "") in ("", "0")
        try:
            self._state.busy_poll = _check_busy_poll(busy_poll)
            self._driver = self._make_driver(use_uring)
        except BaseException:
            self.close()  # the self-pipe and selector are open already
            raise
        wrapper.bind(self._pre_select, self._post_select)
        self._watch_driver()
        self._state.threadsafe = ThreadsafeOperations(self)
        _loops.add(self)

    # -- ring ownership -----------------------------------------------------------------

    def _make_driver(self, use_uring: bool) -> RingDriver | FallbackDriver:
        if use_uring:
            try:
                ring = Ring(self._state.sq_entries, self._state.cq_entries)
                try:
                    driver = RingDriver(ring)
                except BaseException:
                    ring.close()
                    raise
            except OSError as exc:  # io_uring_setup or _register refused: no ring here
                if exc.errno not in _SETUP_ERRNOS_FALLBACK:
                    raise
                warnings.warn(
                    f"io_uring is unavailable ({exc.strerror or exc}); uringloop runs file "
                    "operations on a thread pool",
                    RuntimeWarning,
                    stacklevel=3,
                )
            else:
                self._add_reader(driver.efd, self._on_eventfd)
                return driver
        return FallbackDriver(self.call_soon_threadsafe)

    def _claim_ring(self) -> None:
        """Make the calling thread the ring's single issuer (called as the loop starts)."""
        if self._state.forked:
            raise RuntimeError(
                "this uringloop loop belongs to the parent process; create a new loop after fork()"
            )
        driver = self._driver
        if not isinstance(driver, RingDriver):
            return
        me = threading.get_ident()
        if self._state.ring_thread == me:
            return
        if self._state.ring_thread is None and driver._ring.disabled:
            driver._ring.enable()
            self._state.ring_thread = me
            return
        if not driver._ring.setup_flags & abi.SetupFlag.SINGLE_ISSUER:
            self._state.ring_thread = me  # any thread may enter a plain ring
            return
        if not driver.idle:
            raise RuntimeError(
                "this uringloop loop has file operations in flight on its io_uring, which "
                "belongs to the thread that last ran the loop; it cannot run in another "
                "thread until they complete"
            )
        # A new ring for the new thread; the old one has nothing in flight.
        self._remove_reader(driver.efd)
        driver.close()
        ring = Ring(self._state.sq_entries, self._state.cq_entries)
        try:
            new = RingDriver(ring)
        except BaseException:
            ring.close()
            raise
        ring.enable()
        self._driver = new
        self._watch_driver()
        self._add_reader(new.efd, self._on_eventfd)
        self._state.ring_thread = me

    def _watch_driver(self) -> None:
        driver = self._driver
        assert driver is not None and self._foreign is not None
        self._selector.watch(self._foreign._pending, driver._backlog, driver._inflight)

    def run_forever(self) -> None:
        # asyncio's own checks first: a closed or already running loop raises RuntimeError
        # before the ring (closed, or owned by the running thread) is touched.
        self._check_closed()
        self._check_running()
        self._claim_ring()
        token = current_loop.set(self)
        try:
            super().run_forever()
        finally:
            current_loop.reset(token)

    def call_soon(  # type: ignore[override]  # same contract, without TypeVarTuple
        self, callback: Any, *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """As asyncio's: the same checks, the same Handle, FIFO order. Outside debug mode it
        skips two helper calls, since every task wake-up (a completion included) comes here."""
        if self._closed or self._debug:
            handle = super().call_soon(callback, *args, context=context)
            if handle._source_traceback:  # type: ignore[attr-defined]
                del handle._source_traceback[-1]  # type: ignore[attr-defined]  # this frame
            return handle
        handle = _Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def run_in_executor(  # type: ignore[override]  # same contract, without TypeVarTuple
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        """As asyncio's, and the job knows its loop: uringloop.threads calls made from it
        (asyncio.to_thread code included) go to this loop without being told."""
        if executor is not None and not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            # Other executors (a ProcessPoolExecutor pickles the callable) get it untouched.
            return super().run_in_executor(executor, func, *args)
        if self.get_debug():
            self._check_callback(func, "run_in_executor")
        return super().run_in_executor(executor, _ExecutorJob(self, func), *args)

    @property
    def threadsafe(self) -> ThreadsafeOperations:
        """The file operations for other threads: each returns a concurrent.futures.Future."""
        return self._state.threadsafe  # type: ignore[return-value]

    @property
    def uring_available(self) -> bool:
        """True when file operations go through io_uring (False: thread-pool fallback)."""
        return isinstance(self._driver, RingDriver)

    def uring_stats(self) -> UringStats:
        """Counters of the loop's file operations since it was created (see UringStats)."""
        driver = self._driver
        foreign = self._foreign
        assert driver is not None and foreign is not None
        d: DriverStats = driver.stats()
        return UringStats(
            uring_available=self.uring_available,
            submitted=d.submitted,
            completed=d.completed,
            cancelled=d.cancelled,
            enter_calls=d.enter_calls,
            foreign_submissions=foreign.pushes,
            wakeups_sent=foreign.wakeups_sent,
            wakeups_skipped=foreign.wakeups_skipped,
            max_in_flight=d.max_in_flight,
            in_flight=d.in_flight,
            backlog=d.backlog,
        )

    # -- the pre-select step --------------------------------------------------------------

    def _pre_select(self, timeout: float | None) -> float | None:
        """Submit everything queued; never let select block while work waits in user space.

        Called by the selector with the timeout _run_once chose; returns the one to use.
        Contract: when it returns 0, nothing is armed (no sleeping flag, no eventfd), so
        the selector may skip _post_select.
        """
        self._eager_left = EAGER_PER_ITERATION
        driver = self._driver
        foreign = self._foreign
        if foreign._pending:  # type: ignore[union-attr]
            driver.queue_many(foreign.drain())  # type: ignore[union-attr]
        if driver._inflight or driver._backlog:  # type: ignore[union-attr]
            driver.flush()  # type: ignore[union-attr]
        if timeout == 0 or self._ready:
            # Busy, or completions just scheduled callbacks (the flush above, including
            # ones it delivered inside a full-SQ refill or for a failed enter).
            return 0
        if self._state.busy_poll and driver._inflight and self._spin(timeout):  # type: ignore[union-attr]
            return 0
        if foreign.prepare_to_sleep():  # type: ignore[union-attr]
            return 0  # L3': work arrived since the drain; the flag is withdrawn
        if driver._inflight and driver.prepare_block():  # type: ignore[union-attr]
            foreign.awake()  # type: ignore[union-attr]  # L4': will not block after all
            driver.after_block()  # type: ignore[union-attr]
            driver.flush()  # type: ignore[union-attr]
            return 0
        if driver.retry_later:  # type: ignore[union-attr]
            # The kernel said "later" (EAGAIN/EBUSY/ENOMEM): come back soon, do not sleep.
            return _RETRY_DELAY if timeout is None else min(timeout, _RETRY_DELAY)
        return timeout

    def _spin(self, timeout: float | None) -> bool:
        """busy_poll: watch the ring (and the foreign queue) instead of sleeping, for up to
        busy_poll seconds and never past `timeout`. True when there is work to run now.

        Nothing is armed meanwhile: foreign threads see the loop awake and skip the wakeup,
        so their queue is polled too, and so is the ready queue, where call_soon_threadsafe
        puts callbacks; the sleep protocol starts afresh afterwards. Sockets are not
        polled: they wait at most the window.
        """
        driver = self._driver
        if not isinstance(driver, RingDriver):
            return False
        ring = driver._ring
        pending = self._foreign._pending  # type: ignore[union-attr]
        ready = self._ready
        window = self._state.busy_poll if timeout is None else min(self._state.busy_poll, timeout)
        deadline = _monotonic() + window
        while True:
            if ring.needs_enter() or ring.cq_ready():
                driver.flush()
            if pending or ready:
                # Foreign work (drained by the next pre-select step, at once), or a
                # call_soon_threadsafe callback (it appends before writing the self-pipe).
                return True
            if not driver._inflight or _monotonic() >= deadline:
                return False

    def _post_select(self) -> None:
        """Back from a select that may have blocked (L5)."""
        foreign = self._foreign
        driver = self._driver
        foreign.awake()  # type: ignore[union-attr]
        if driver._eventfd_enabled:  # type: ignore[union-attr]
            driver.after_block()  # type: ignore[union-attr]
        if foreign._pending:  # type: ignore[union-attr]
            # L1': most likely a foreign thread woke us: submit its work now, before the
            # callbacks run, rather than one loop iteration later in the pre-select step.
            driver.queue_many(foreign.drain())  # type: ignore[union-attr]
            driver.flush()  # type: ignore[union-attr]

    def _wake_for_foreign(self) -> None:
        """F3: wake the loop from another thread: through the ring's eventfd (one write;
        its reader is watched anyway), else through asyncio's self-pipe."""
        driver = self._driver
        if isinstance(driver, RingDriver):
            driver.wake()
        else:
            self._write_to_self()

    def _on_eventfd(self) -> None:
        self._driver.on_eventfd()  # type: ignore[union-attr]

    # -- submitting -----------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._state.forked:
            raise RuntimeError(
                "this uringloop loop belongs to the parent process; create a new loop after fork()"
            )
        if self.is_closed():
            raise LoopClosedError("the uringloop loop is closed")

    async def _run(self, op: Operation) -> Any:
        """Queue `op` and wait for its completion, cancelling it if the wait is cancelled."""
        if self._closed or self._state.forked:
            self._check_usable()
        driver = self._driver
        driver.check(op)  # type: ignore[union-attr]
        future: asyncio.Future[Any] = _Future(loop=self)
        op.waiter = future
        driver.queue(op)  # type: ignore[union-attr]
        if self._submit_early():
            return future.result()
        try:
            return await future
        except asyncio.CancelledError:
            self._abandon(op, future)
            raise

    def _submit_early(self) -> bool:
        """Called right after a coroutine queued one operation: submit before the pre-select
        step where that loses no batching. True when the operation has completed.

        No callback is ready (the eager case, as asyncio's sock_recv tries its syscall at
        once): the loop would go to its pre-select step next and submit exactly this
        operation. Page-cache reads, stats, opens complete inline, and the coroutine goes
        on without a loop iteration. At most EAGER_PER_ITERATION times between two
        pre-select steps (the step refills the budget; once it is spent the operation is
        awaited as usual, a loop iteration), so a coroutine reading in a loop still yields
        to the loop's other work.

        Callbacks are still to run: when the last submission did not complete inline
        (device reads) and EARLY_BATCH operations wait, they go to the kernel now, so the
        device works while the other callbacks run. Returns False: they complete later.
        """
        driver = self._driver
        if self._ready:
            if driver.slow_completions and len(driver._backlog) >= EARLY_BATCH:  # type: ignore[union-attr]
                driver.flush()  # type: ignore[union-attr]
            return False
        if not isinstance(driver, RingDriver) or len(driver._backlog) != 1 or driver._inflight:
            return False
        if not self._eager_left:
            return False
        self._eager_left -= 1
        driver.flush()
        return not driver._inflight and not driver._backlog

    def _abandon(self, op: Operation, future: asyncio.Future[Any]) -> None:
        """The awaiting task was cancelled: cancel the operation, undo a result it lost."""
        if self._driver is not None:
            self._driver.cancel(op)
        if future.done() and not future.cancelled() and future.exception() is None:
            op.discard_value(future.result())

    def _submit_threadsafe(self, op: Operation) -> concurrent.futures.Future[Any]:
        """Queue `op` from any thread; the loop is woken if it may be asleep."""
        self._check_usable()
        self._driver.check(op)  # type: ignore[union-attr]
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()  # from here on it cannot be cancelled
        op.waiter = future
        try:
            self._foreign.push(op)  # type: ignore[union-attr]
        except RuntimeError:
            op.drop()
            raise LoopClosedError("the uringloop loop is closed") from None
        return future

    # -- file operations (coroutines) -----------------------------------------------------

    async def nop(self) -> None:
        """A no-op round trip through the ring."""
        await self._run(Nop())

    async def pread(self, fd: int, size: int, offset: int = -1) -> bytes:
        """Read up to `size` bytes at `offset` (-1: at the file position) into new bytes."""
        # The hot path: _run() inlined.
        fd, size, offset = _read_args(fd, size, offset)
        if self._closed or self._state.forked:
            self._check_usable()
        op = Read(fd, size, offset, self._pool)
        future: asyncio.Future[bytes] = _Future(loop=self)
        op.waiter = future
        driver = self._driver
        driver.queue(op)  # type: ignore[union-attr]
        if self._submit_early():
            return future.result()
        try:
            return await future
        except asyncio.CancelledError:
            self._abandon(op, future)
            raise

    async def pread_many(self, requests: Iterable[tuple[int, int, int]]) -> list[bytes]:
        """Many preads with one await: [(fd, size, offset), ...] -> [bytes, ...] in order.

        All reads are queued at once and reach the kernel with one io_uring_enter (per SQ
        of entries). The first failure, in request order, is raised after all completed.
        """
        reqs = requests if isinstance(requests, list | tuple) else list(requests)
        if len(reqs) <= 1:  # nothing to batch: the lone read's short path
            return [await self.pread(*_request(reqs[0]))] if reqs else []
        fds, sizes, offsets = _read_many_args(reqs)
        self._check_usable()  # before the batch takes its buffers
        op = ReadBatch(fds, sizes, offsets, self._pool)
        return await self._run(op)  # type: ignore[no-any-return]

    async def preadinto(self, fd: int, buffer: Any, offset: int = -1) -> int:
        """Read into a writable bytes-like `buffer` at `offset`; return the byte count."""
        return await self._run(ReadInto(check_fd(fd), buffer, check_offset(offset)))  # type: ignore[no-any-return]

    async def preadv(self, fd: int, buffers: Sequence[Any], offset: int = -1) -> int:
        """Scatter-read into writable buffers at `offset`; return the byte count."""
        return await self._run(ReadV(check_fd(fd), buffers, check_offset(offset)))  # type: ignore[no-any-return]

    async def pwrite(self, fd: int, data: Any, offset: int = -1) -> int:
        """Write a bytes-like object at `offset` (-1: at the file position); return the count.

        Like os.pwrite this may write less than len(data); see pwrite_all().
        """
        return await self._run(Write(check_fd(fd), data, check_offset(offset)))  # type: ignore[no-any-return]

    async def pwrite_all(self, fd: int, data: Any, offset: int) -> None:
        """Write all of `data` at `offset` >= 0, resubmitting after short writes."""
        view = memoryview(data).cast("B")
        offset = check_offset(offset)
        if offset < 0:
            raise ValueError("pwrite_all needs an explicit offset")
        done = 0
        while done < len(view):
            n = await self.pwrite(fd, view[done:], offset + done)
            if n == 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            done += n

    async def pwritev(self, fd: int, buffers: Sequence[Any], offset: int = -1) -> int:
        """Gather-write bytes-like objects at `offset`; return the byte count."""
        return await self._run(WriteV(check_fd(fd), buffers, check_offset(offset)))  # type: ignore[no-any-return]

    async def open_fd(
        self, path: Any, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        """openat(2), like os.open: return a new file descriptor (always O_CLOEXEC).

        If the awaiting task is cancelled and the open completes anyway, the new fd is
        closed, never leaked.
        """
        return await self._run(OpenAt(path, flags, mode, _dirfd(dir_fd)))  # type: ignore[no-any-return]

    async def close_fd(self, fd: int) -> None:
        """close(2) through the ring."""
        await self._run(Close(check_fd(fd)))

    async def fsync(self, fd: int) -> None:
        """fsync(2): flush the file's data and metadata to storage."""
        await self._run(Fsync(check_fd(fd), datasync=False))

    async def fdatasync(self, fd: int) -> None:
        """fdatasync(2): flush the file's data, and the metadata needed to read it back."""
        await self._run(Fsync(check_fd(fd), datasync=True))

    async def fallocate(self, fd: int, offset: int, length: int, mode: int = 0) -> None:
        """fallocate(2): reserve (mode 0) or punch/zero ranges (FALLOC_FL_* modes)."""
        await self._run(Fallocate(check_fd(fd), mode, offset, length))

    async def ftruncate(self, fd: int, length: int) -> None:
        """ftruncate(2); through the ring on Linux 6.9+, else through the thread pool."""
        op = Ftruncate(check_fd(fd), length)
        if not self._driver.supports(op.opcode):  # type: ignore[union-attr]
            await self.run_in_executor(None, op.run_blocking)
            return
        await self._run(op)

    async def statx(
        self,
        path: Any,
        *,
        dir_fd: int | None = None,
        follow_symlinks: bool = True,
        mask: int = _BASIC_STATX,
        flags: int = 0,
    ) -> StatxResult:
        """statx(2) on a path; `mask` is STATX_* bits (add StatxMask.DIOALIGN for O_DIRECT)."""
        if not follow_symlinks:
            flags |= abi.AT_SYMLINK_NOFOLLOW
        return await self._run(_ops.Statx(path, _dirfd(dir_fd), flags, mask))  # type: ignore[no-any-return]

    async def fstatx(self, fd: int, *, mask: int = _BASIC_STATX) -> StatxResult:
        """statx(2) of an open file descriptor."""
        return await self._run(_ops.Statx(b"", check_fd(fd), abi.AT_EMPTY_PATH, mask))  # type: ignore[no-any-return]

    async def stat(
        self, path: Any, *, dir_fd: int | None = None, follow_symlinks: bool = True
    ) -> os.stat_result:
        """Like os.stat(), through statx on the ring."""
        st = await self.statx(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        return st.to_stat_result()

    async def fstat(self, fd: int) -> os.stat_result:
        """Like os.fstat(), through statx on the ring."""
        return (await self.fstatx(fd)).to_stat_result()

    async def unlink(self, path: Any, *, dir_fd: int | None = None) -> None:
        """unlinkat(2), like os.unlink."""
        await self._run(UnlinkAt(path, _dirfd(dir_fd), 0))

    async def rmdir(self, path: Any, *, dir_fd: int | None = None) -> None:
        """unlinkat(2) with AT_REMOVEDIR, like os.rmdir."""
        await self._run(UnlinkAt(path, _dirfd(dir_fd), abi.AT_REMOVEDIR))

    async def rename(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        flags: int = 0,
    ) -> None:
        """renameat2(2); flags are RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), ..."""
        await self._run(RenameAt(src, dst, _dirfd(src_dir_fd), _dirfd(dst_dir_fd), flags))

    async def mkdir(self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        """mkdirat(2), like os.mkdir."""
        await self._run(MkdirAt(path, mode, _dirfd(dir_fd)))

    async def symlink(self, target: Any, link: Any, *, dir_fd: int | None = None) -> None:
        """symlinkat(2): make `link` a symbolic link to `target`, like os.symlink."""
        await self._run(SymlinkAt(target, link, _dirfd(dir_fd)))

    async def link(
        self,
        src: Any,
        dst: Any,
        *,
        src_dir_fd: int | None = None,
        dst_dir_fd: int | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        """linkat(2): a hard link `dst` to `src` (follow_symlinks: link the symlink's target)."""
        flags = 0x400 if follow_symlinks else 0  # AT_SYMLINK_FOLLOW
        await self._run(LinkAt(src, dst, _dirfd(src_dir_fd), _dirfd(dst_dir_fd), flags))

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel what is in flight, wait (bounded) for its CQEs, close ring and eventfd.

        Foreign threads' pending operations fail with LoopClosedError (a RuntimeError);
        later submissions fail at once.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        foreign = self._foreign
        if foreign is not None:
            for op in foreign.close():
                op.drop()
                if op.waiter is not None and not op.waiter.done():
                    op.waiter.set_exception(LoopClosedError("the uringloop loop was closed"))
        driver = self._driver
        try:
            if driver is not None:
                self._shutdown_driver(driver)
        finally:
            # The self-pipe and the selector are closed whatever the ring's teardown did.
            super().close()

    def _shutdown_driver(self, driver: RingDriver | FallbackDriver) -> None:
        can_enter = not self._state.forked and (
            self._state.ring_thread in (None, threading.get_ident())
            or not isinstance(driver, RingDriver)
            or not driver._ring.setup_flags & abi.SetupFlag.SINGLE_ISSUER
        )
        stranded = driver.shutdown(CLOSE_TIMEOUT, can_enter)
        if stranded:
            # The kernel may still write into these buffers: keep them forever.
            _never_freed.append((stranded, self._pool))
            for op in stranded:
                waiter = op.waiter
                if waiter is not None and not waiter.done():
                    waiter.set_exception(
                        LoopClosedError("the loop was closed with the operation in flight")
                    )
        if driver.efd >= 0 and not self._state.forked:
            self._remove_reader(driver.efd)
        driver.close()

    def __repr__(self) -> str:
        mode = "io_uring" if self.uring_available else "thread-pool"
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()} files={mode}>"
        )


def _read_args(fd: Any, size: Any, offset: Any) -> tuple[int, int, int]:
    """Checked (fd, size, offset) of a pread; the full checks run only for unusual values."""
    if (
        type(fd) is int
        and type(size) is int
        and type(offset) is int
        and 0 <= fd <= _FD_MAX
        and 0 <= size <= _POOLED_MAX
        and -1 <= offset < _OFFSET_LIMIT
    ):
        return fd, size, offset
    return check_fd(fd), check_size(size), check_offset(offset)


def _read_many_args(
    reqs: Sequence[tuple[int, int, int]],
) -> tuple[array[int], array[int], array[int]]:
    """pread_many's requests (two or more) checked and split into signed 64-bit arrays
    (fds, sizes, offsets).

    Plain ints in range are checked with a few C-level passes; anything else goes through
    _read_args one request at a time, for its exact error.
    """
    try:
        fds, sizes, offsets = (array("q", column) for column in zip(*reqs, strict=True))
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        if (
            min(fds) >= 0
            and max(fds) <= _FD_MAX
            and min(sizes) >= 0
            and max(sizes) <= _POOLED_MAX
            and min(offsets) >= -1
        ):
            return fds, sizes, offsets
    checked = [_read_args(*_request(req)) for req in reqs]
    fds, sizes, offsets = (array("q", column) for column in zip(*checked, strict=True))
    return fds, sizes, offsets


def _request(req: Any) -> tuple[Any, Any, Any]:
    try:
        fd, size, offset = req
    except (TypeError, ValueError):
        raise TypeError(f"each request must be a (fd, size, offset) tuple, not {req!r}") from None
    return fd, size, offset


def _check_busy_poll(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"busy_poll must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value < _BUSY_POLL_MAX:
        raise ValueError(f"busy_poll must be >= 0 and < {_BUSY_POLL_MAX} seconds, not {value}")
    return float(value)


def _dirfd(dir_fd: int | None) -> int:
    return abi.AT_FDCWD if dir_fd is None else check_fd(dir_fd, "dir_fd")


class ThreadsafeOperations:
    """The loop's file operations for other threads: each returns a concurrent Future.

    Any thread may call these. The operation is queued and the loop woken if it may be
    asleep; the future resolves on the loop thread when the completion arrives. Submitting
    to a closed loop raises LoopClosedError (a RuntimeError) at once.
    """

    def __init__(self, loop: Loop) -> None:
        self._loop: Loop = weakref.proxy(loop)

    def nop(self) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(Nop())

    def pread(self, fd: int, size: int, offset: int = -1) -> concurrent.futures.Future[bytes]:
        # The loop's slot pool is loop-thread-only: foreign reads get their own buffer.
        return self._loop._submit_threadsafe(Read(*_read_args(fd, size, offset), None))

    def preadinto(self, fd: int, buffer: Any, offset: int = -1) -> concurrent.futures.Future[int]:
        return self._loop._submit_threadsafe(ReadInto(check_fd(fd), buffer, check_offset(offset)))

    def preadv(
        self, fd: int, buffers: Sequence[Any], offset: int = -1
    ) -> concurrent.futures.Future[int]:
        return self._loop._submit_threadsafe(ReadV(check_fd(fd), buffers, check_offset(offset)))

    def pwrite(self, fd: int, data: Any, offset: int = -1) -> concurrent.futures.Future[int]:
        return self._loop._submit_threadsafe(Write(check_fd(fd), data, check_offset(offset)))

    def pwritev(
        self, fd: int, buffers: Sequence[Any], offset: int = -1
    ) -> concurrent.futures.Future[int]:
        return self._loop._submit_threadsafe(WriteV(check_fd(fd), buffers, check_offset(offset)))

    def open_fd(
        self, path: Any, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> concurrent.futures.Future[int]:
        return self._loop._submit_threadsafe(OpenAt(path, flags, mode, _dirfd(dir_fd)))

    def close_fd(self, fd: int) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(Close(check_fd(fd)))

    def fsync(self, fd: int) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(Fsync(check_fd(fd), datasync=False))

    def fdatasync(self, fd: int) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(Fsync(check_fd(fd), datasync=True))

    def statx(
        self,
        path: Any,
        *,
        dir_fd: int | None = None,
        follow_symlinks: bool = True,
        mask: int = _BASIC_STATX,
    ) -> concurrent.futures.Future[StatxResult]:
        flags = 0 if follow_symlinks else abi.AT_SYMLINK_NOFOLLOW
        return self._loop._submit_threadsafe(_ops.Statx(path, _dirfd(dir_fd), flags, mask))

    def fstatx(
        self, fd: int, *, mask: int = _BASIC_STATX
    ) -> concurrent.futures.Future[StatxResult]:
        return self._loop._submit_threadsafe(_ops.Statx(b"", check_fd(fd), abi.AT_EMPTY_PATH, mask))

    def unlink(self, path: Any, *, dir_fd: int | None = None) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(UnlinkAt(path, _dirfd(dir_fd), 0))

    def mkdir(
        self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(MkdirAt(path, mode, _dirfd(dir_fd)))

    def rename(self, src: Any, dst: Any) -> concurrent.futures.Future[None]:
        return self._loop._submit_threadsafe(RenameAt(src, dst, abi.AT_FDCWD, abi.AT_FDCWD, 0))
