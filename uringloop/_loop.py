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
import collections.abc
import concurrent.futures
import contextlib
import contextvars
import errno
import inspect
import os
import selectors
import socket
import sys
import threading
import time
import warnings
import weakref
from asyncio import constants as _asyncio_constants
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from ._aligned import PAGE_SIZE
from ._buffers import PINS_IMPLEMENTATION, SLOT_SIZES, SlotPool, flat_view, release_views, write_all
from ._driver import Driver, RingDriver, finish_unsubmitted
from ._errors import LoopClosedError, StrandedError
from ._fallback import FallbackDriver
from ._foreign import ForeignQueue
from ._handle import IMPLEMENTATION as HANDLES_IMPLEMENTATION
from ._handle import READY_HANDLE as _ready_handle
from ._ops import (
    DONE,
    MAX_RW_COUNT,
    ON_RING,
    QUEUED,
    STREAM_ON_RING,
    Operation,
    Read,
    ReadBatch,
    Spec,
    StreamRead,
    StreamReadBatch,
    check_position,
    checked_positions,
    copies_cached,
    copies_refused,
    forget_positions,
    give_back_stream_waits,
    has_o_direct,
    keep_positions,
    made_at_position,
    note_stream_reads,
    note_stream_wait,
    read_args,
    table,
    take_stream_waits,
)
from ._ops.args import INT_MAX, OFF_MAX, off_t
from ._ops.hotpath import COPY_RING, COPY_RING_MIN, CopyRing
from ._ops.hotpath import IMPLEMENTATION as READS_IMPLEMENTATION
from ._ops.hotpath import NO_NOWAIT as _NO_NOWAIT
from ._ops.hotpath import READ_CACHED as read_cached
from ._ops.hotpath import READ_MANY_CACHED as read_many_cached
from ._outcomes import hand_over, has_result, let_kept_go, look_at
from ._ring import abi
from ._ring.ring import (
    DEFAULT_CQ_ENTRIES,
    DEFAULT_SQ_ENTRIES,
    MAX_CQ_ENTRIES,
    MAX_SQ_ENTRIES,
    Ring,
)
from ._ring.ring import IMPLEMENTATION as QUEUES_IMPLEMENTATION
from ._selector import PreSelectEpollSelector, PreSelectSelector, make_selector
from ._stream_watch import StreamWatch
from ._twins import compiled

# Loop.pread's coroutine, compiled (None: Loop._pread, its reference, runs instead).
_pread_call = compiled("uringloop._loop_c", "pread_call")
if _pread_call is not None:  # create_task(), gather() and iscoroutine() take it
    collections.abc.Coroutine.register(compiled("uringloop._loop_c", "PreadCall"))
    compiled("uringloop._loop_c", "use_namespace")(globals())  # Read, _Future, ... as here
PREAD_IMPLEMENTATION = "python" if _pread_call is None else "c"
# The declared operations' coroutine methods compiled (None: _coroutine's, their reference).
_operation_method = compiled("uringloop._loop_c", "OperationMethod")
if _operation_method is not None:
    collections.abc.Coroutine.register(compiled("uringloop._loop_c", "OperationCall"))

# "c" or "python" when the five twins agree, else which one runs where.
IMPLEMENTATION = (
    QUEUES_IMPLEMENTATION
    if QUEUES_IMPLEMENTATION
    == READS_IMPLEMENTATION
    == HANDLES_IMPLEMENTATION
    == PREAD_IMPLEMENTATION
    == PINS_IMPLEMENTATION
    else f"queues {QUEUES_IMPLEMENTATION}, reads {READS_IMPLEMENTATION}, "
    f"handles {HANDLES_IMPLEMENTATION}, pread {PREAD_IMPLEMENTATION}, "
    f"buffer pins {PINS_IMPLEMENTATION}"
)

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable

    from ._driver import DriverStats

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["Loop", "UringStats"]

DISABLE_ENV = "URINGLOOP_DISABLE"  # set to 1: every Loop uses the thread-pool fallback


def uring_disabled() -> bool:
    """Whether URINGLOOP_DISABLE asks for no io_uring (set, and not "0")."""
    return os.environ.get(DISABLE_ENV, "") not in ("", "0")


CLOSE_TIMEOUT = 2.0  # seconds close() waits for the CQEs of cancelled operations
# Eager turns between two pre-select steps (see _submit_early). An operation takes one
# turn plus one per whole EAGER_UNIT bytes it moves (1 + nbytes // EAGER_UNIT). One that
# overdraws the budget still runs, and the overdraft is paid from the next steps' budgets,
# so that inline operations move at most about 4 MiB per loop iteration on average (well
# under a millisecond of page-cache copying), however large each one is.
EAGER_PER_ITERATION = 64
EAGER_UNIT = 1 << 16
# Inline turns (see Loop.inline_turn) between two pre-select steps, for all tasks: a turn
# for each piece of direct work, plus one per whole EAGER_UNIT bytes it copies. Once they
# are spent, opens and reads go through the ring and wait for the next iteration. The
# budget is INLINE_PER_ITERATION, or INLINE_PER_READY for each callback in the ready queue
# when that is more: direct work lengthens an iteration by a few milliseconds at most (a
# 1 ms timer beside 64 tasks reading cached 4 KiB blocks through uringloop.open: 2.5 ms late
# at worst, where a budget of 64 turns for each task let one iteration run 4096 reads:
# 28.8 ms), or in proportion to the steps it runs anyway (a thousand tasks started at once
# each open and read their small file directly).
INLINE_PER_ITERATION = 256
INLINE_PER_READY = 2
# While callbacks are still to run, a backlog this long is handed to the kernel at once
# rather than at the pre-select step, when the last submission's operations did not
# complete inline (device reads): the device starts on them while the other callbacks run.
# Or longer, a quarter (1 / EARLY_SHARE) of the operations in flight if that is more: a
# device left with few reads is refilled two at a time, one still busy with many takes
# fewer, larger submissions. Such an enter submits only (RingDriver.submit): it reaps
# nothing, so it is short, and what is in flight, which this rule reads, is not lowered by
# completions reaped on the way (with them, a loop busy with its callbacks ended up
# entering for every two reads). O_DIRECT 4 KiB random reads against the rule it replaced
# (8, or half the callbacks still to run, each a flush): docs/performance.md. Page-cache
# reads complete inline and keep the one-enter-per-iteration batching.
EARLY_BATCH = 2
EARLY_SHARE = 4
_BUSY_POLL_MAX = 1.0  # seconds: a longer spin is a mistake, not a tuning
_RETRY_DELAY = 0.001  # seconds to sleep when the kernel asked us to enter again later
# io_uring_setup or register errors that mean "no usable ring here": run on the fallback.
_SETUP_ERRNOS_FALLBACK = (
    errno.ENOSYS, errno.EPERM, errno.EACCES, errno.ENOMEM, errno.EINVAL, errno.EOPNOTSUPP,
)  # fmt: skip


def _warn_unavailable(exc: OSError) -> None:
    """No ring could be made, for a reason in _SETUP_ERRNOS_FALLBACK: the thread pool takes
    over file operations."""
    warnings.warn(
        f"io_uring is unavailable ({exc.strerror or exc}); uringloop runs file "
        "operations on a thread pool",
        RuntimeWarning,
        stacklevel=_user_stacklevel(),
    )


# Operations (with their buffers) whose CQE never came before close(): the kernel may still
# write into their memory, so it is never freed. Should stay empty in practice.
_never_freed: list[Any] = []

# Every Loop of this process not yet closed, so a forked child can mark them unusable.
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
    """In a forked child, every Loop's ring and queues are the parent's: let go of them.
    The registry then starts empty: the parent's loops serve nothing here (a thread's
    default loop, uringloop.threads.default_loop, is one of the child's own)."""
    for loop in list(_loops):
        loop._forget_after_fork()
    _loops.clear()
    executor_loop.loop = None  # (the forking thread's job is the parent loop's)


os.register_at_fork(after_in_child=_after_fork_in_child)


def serves_this_process(loop: Loop) -> bool:
    """Whether `loop` runs here and can take operations: running, and not the parent's
    in a forked child (which still says it runs, on the thread that forked)."""
    return loop.is_running() and not loop._state.forked


_BASIC_STATX = int(abi.StatxMask.BASIC_STATS | abi.StatxMask.BTIME)
_POOLED_MAX = SLOT_SIZES[-1]
_FATAL = (KeyboardInterrupt, SystemExit)
_Future = asyncio.Future
# The descriptors looked at since the last pre-select step (one dict, cleared in place):
# True where copies_cached() allowed copies, None where only the position was checked.
_checked = checked_positions()
_monotonic = time.monotonic


class _KeptOutcome:
    """The waiter of an operation whose caller awaits `future` and takes the outcome once
    cancelled (_wait_kept): the outcome goes to `future` unless that was cancelled, else
    to `late`, made then, which the cancelled caller hands over. The caller's task awaits
    `future` itself (no shield, no extra step), and an outcome that comes between the
    task's cancellation and its next step is not lost. Invariant: exactly one of the two
    gets the outcome."""

    __slots__ = ("future", "late")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        self.late: asyncio.Future[Any] | None = None

    def take(self) -> asyncio.Future[Any]:
        """The future that has, or will get, the outcome."""
        future = self.future
        if not future.cancelled():
            return future
        late = self.late
        if late is None:
            late = self.late = _Future(loop=future.get_loop())
        return late

    def done(self) -> bool:
        # (no late future made for asking: one exists only where an outcome or a caller
        # came for it)
        if not self.future.cancelled():
            return self.future.done()
        return self.late is not None and self.late.done()

    def set_result(self, value: Any) -> None:
        self.take().set_result(value)

    def set_exception(self, failure: BaseException) -> None:
        self.take().set_exception(failure)


@dataclass(frozen=True, slots=True)
class UringStats:
    """What Loop.uring_stats() reports; counters are totals since the loop was created."""

    uring_available: bool  # as Loop.uring_available: io_uring in use, not the thread pool
    submitted: int  # operations handed to the kernel (or the fallback pool)
    completed: int  # completions delivered
    cancelled: int  # cancellations requested
    enter_calls: int  # io_uring_enter system calls
    foreign_submissions: int  # operations queued by other threads
    wakeups_sent: int  # wakeups (eventfd or self-pipe writes) for foreign submissions
    wakeups_skipped: int  # foreign submissions that found the loop awake
    max_in_flight: int  # the most operations in the kernel (or the pool) at once
    in_flight: int  # in the kernel (or the pool) now
    backlog: int  # queued in user space, not yet in the kernel
    # Work the kernel does inline made directly instead of an operation (an open from the
    # dentry cache, a copy from the page cache); one that finds it cannot (a page not
    # cached) goes on as an operation, counted above too.
    direct_attempts: int  # shortcuts the inline budget allowed (opens, page-cache copies)
    # Which twins of the hot path run (the ring's queues, the read operation, the ready
    # handles, pread's coroutine and the buffer pins): "c" (the compiled extensions, built
    # on install where a C compiler and the Python headers are) or "python" (the
    # pure-Python references, also chosen by URINGLOOP_NO_EXTENSIONS=1); "queues c, reads
    # python, ..." where only some were built or used. Both behave the same.
    implementation: str  # "c", "python", or each twin's: "queues c, reads python, ..."


class _LoopState:
    """Loop's own attributes that no hot path reads on every iteration.

    They live here, not on the loop, because CPython 3.11 keeps an instance's attributes
    in a shared-keys dict only up to 29 of them: SelectorEventLoop already has 24, and
    past the limit every `self._ready`-style load in asyncio's _run_once gets slower (a
    call_later chain ran at 0.92-0.95x stock asyncio; docs/performance.md). Loop adds at
    most five attributes of its own.
    """

    __slots__ = ("blocking", "busy_poll", "copy_ring", "cq_entries", "direct_attempts",
                 "forked", "inline", "inline_spent", "kept", "retired", "ring_thread",
                 "sq_entries", "streams", "threadsafe", "unclaimed")  # fmt: skip

    def __init__(self, sq_entries: int, cq_entries: int) -> None:
        self.busy_poll = 0.0
        self.forked = False
        # The OS thread that issues the ring's work, by its kernel thread id: not its ident,
        # which a new thread reuses as soon as one ends, nor its Thread object, which a
        # thread's own teardown no longer finds (and a thread threading did not make shares
        # with a later one of the same ident).
        self.ring_thread: int | None = None
        self.sq_entries = sq_entries
        self.cq_entries = cq_entries
        self.threadsafe: ThreadsafeOperations | None = None
        # Runs what the ring's kernel lacks (an operation newer than it), made on first use.
        self.blocking: FallbackDriver | None = None
        # Loop.inline_turn's turns taken since the last pre-select step; the shortcuts it
        # allowed since the loop was made.
        self.inline_spent = 0
        self.direct_attempts = 0
        self.inline = True  # Loop(inline=False): no direct work at all
        # The counters of the drivers this loop replaced (a ring given up for the thread
        # pool, or one made anew for another thread): submitted, completed, cancelled,
        # enter calls, and the most in flight. uring_stats() adds the current driver's.
        self.retired = (0, 0, 0, 0, 0)
        # pread_many's copies go through it (read_many_cached), made for the first batch
        # long enough to use it and closed with the loop.
        self.copy_ring: CopyRing | None = None
        # Operations whose result is undone when nobody takes it (an open's descriptor),
        # awaited by a coroutine that has not taken it yet: close() undoes the results
        # that came for tasks that never run again.
        self.unclaimed: set[Operation] = set()
        # The outcomes of operations whose cancelled callers handed them over (_wait_kept)
        # while they were still on their way: shutdown_default_executor() waits for them.
        self.kept: set[asyncio.Future[Any]] = set()
        # The streams the selector watches for reads and writes at their position in flight
        # (_stream_watch.py); made once the selector is.
        self.streams: StreamWatch | None = None


# pwrite_kept's operation: table.pwrite's, built as the Loop's pwrite builds it.
_build_pwrite = table.pwrite.builder()
_build_ftruncate = table.ftruncate.builder()


def _coroutine(spec: Spec[_P, _R]) -> Callable[Concatenate[Loop, _P], Coroutine[Any, Any, _R]]:
    """The Loop's coroutine method for a declared operation: build it (arguments checked
    in the caller), queue it, await its completion."""
    build = spec.builder()
    inline = spec.inline
    must_run = spec.must_run
    if inline is None:

        async def method(self: Loop, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not must_run and (self._closed or self._state.forked):
                self._check_usable()  # (before the build, which may make it: RunNow)
            return await self._run(build(*args, **kwargs))  # type: ignore[no-any-return]

    else:

        async def method(self: Loop, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not must_run and (self._closed or self._state.forked):
                self._check_usable()  # (before the build, which may make it: RunNow)
            # The kernel's inline attempt, made here (see Loop.inline_turn): the value
            # without building the operation or a loop iteration, when it succeeds.
            if self.inline_turn():
                try:
                    value = inline(*args, **kwargs)
                except TypeError:  # arguments the operation refuses: build() says how
                    value = None
                if value is not None:
                    return value
            return await self._run(build(*args, **kwargs))  # type: ignore[no-any-return]

    method = _named(method, spec, "Loop", "", coroutine=True)
    if inline is None and _operation_method is not None:
        method = _compiled_method(method, build, must_run)
    return method


# What a compiled coroutine method takes from its reference: its names, doc and signature,
# and what inspect.iscoroutinefunction() looks at (a function's code and defaults).
_REFERENCE_ATTRIBUTES = ("__name__", "__qualname__", "__module__", "__doc__", "__signature__",
                         "__code__", "__defaults__", "__kwdefaults__",
                         "__annotations__")  # fmt: skip


def _compiled_method(reference: Any, build: Any, must_run: bool) -> Any:
    """The compiled twin of the coroutine method `reference` (_loop_c.OperationMethod): the
    same coroutine, built and awaited without the reference's frames, presented as it is.
    `must_run`: its declaration's (a closed loop makes the operation rather than refuse it)."""
    method = _operation_method(build, reference.__name__, reference.__qualname__, must_run)
    for name in _REFERENCE_ATTRIBUTES:
        setattr(method, name, getattr(reference, name))
    return method


def _named(
    func: Any, spec: Spec[Any, Any], owner: str, returns: str, coroutine: bool = False
) -> Any:
    """`func` presented as `owner.<spec's name>`: the declaration's docstring and signature."""
    func.__name__ = spec.name
    func.__qualname__ = f"{owner}.{spec.name}"
    func.__doc__ = spec.doc
    func.__module__ = __name__
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    result = spec.returns if coroutine else returns.format(spec.returns)
    func.__signature__ = spec.signature(first=this, returns=result)
    return func


def _sendfile_source(
    file: object, offset: int
) -> contextlib.AbstractAsyncContextManager[Any] | None:
    """What Loop.sendfile and sock_sendfile hand asyncio in `file`'s place: None for a file
    asyncio reads itself (a built-in one); else file.sendfile_source(offset), an async
    context manager that gives a blocking binary file for the time of the send (uringloop's
    file objects have one: their reads and writes are coroutines, which asyncio cannot call)."""
    lend = getattr(file, "sendfile_source", None)
    if lend is None:
        return None
    return cast("contextlib.AbstractAsyncContextManager[Any]", lend(offset))


class Loop(asyncio.SelectorEventLoop):
    """An asyncio event loop that owns an io_uring for file operations.

    Everything SelectorEventLoop does keeps working. On top of it, file operations are
    coroutine methods (pread, pwrite, open_fd, statx, ...) served by the loop's ring, and
    `loop.threadsafe` offers the same operations to other threads.

    foreign_wakeup=False is a diagnostic: it reproduces QEMU's lost-wakeup bug, so work
    queued by other threads waits until the loop wakes for another reason.
    use_uring=False (or URINGLOOP_DISABLE=1) runs file operations on a thread pool.
    sq_entries, cq_entries: the ring's sizes (the kernel takes up to 32768 and 65536 and
    rounds up to a power of two; a cq_entries below sq_entries is taken as sq_entries,
    the least CQ the kernel takes); a size it cannot take is a ValueError. At most
    cq_entries operations are in the kernel at once, the others wait in the loop's queue;
    reads and writes at the position of a pipe, socket or terminal, which may wait for it
    for as long as nobody writes (reads), are not counted (nor, on the thread pool, do they
    take its workers: each has a thread of its own).
    busy_poll=seconds (default 0: off; under 1, else ValueError): before sleeping with
    operations in flight, watch the ring for their completions for up to that long,
    burning CPU, as SO_BUSY_POLL does for sockets. It saves the sleep and wake-up around
    device I/O that completes within the window (O_DIRECT reads: ~50e-6). Timers, foreign
    threads' work and call_soon_threadsafe callbacks end the spin; sockets, and signals
    for add_signal_handler() (which asyncio learns of through its self-pipe), are not
    watched meanwhile, so they wait at most that long.
    inline=False: no open, read or close is made directly in place of an operation
    (inline_turn() always says no): each goes through the ring, as an operation; for
    tracing the ring, or measuring it. (What does no I/O, fstat and lseek of a file object,
    is still called directly.)
    """

    if TYPE_CHECKING:
        # BaseEventLoop/BaseSelectorEventLoop internals we build on (not in typeshed).
        _closed: bool
        _debug: bool
        _ready: collections.deque[asyncio.Handle]
        _selector: PreSelectEpollSelector | PreSelectSelector

        def _add_reader(self, fd: int, callback: Callable[..., object]) -> asyncio.Handle: ...
        def _remove_reader(self, fd: int) -> bool: ...
        def _add_writer(self, fd: int, callback: Callable[..., object]) -> asyncio.Handle: ...
        def _remove_writer(self, fd: int) -> bool: ...
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
        inline: bool = True,
    ) -> None:
        # Everything close() and __del__ touch is set before anything that can fail.
        # Five attributes of our own, no more (see _LoopState).
        self._state = _LoopState(DEFAULT_SQ_ENTRIES, DEFAULT_CQ_ENTRIES)
        self._driver: Driver = None  # type: ignore[assignment]
        self._foreign: ForeignQueue = None  # type: ignore[assignment]
        self._pool = SlotPool()
        self._eager_left = EAGER_PER_ITERATION
        try:
            wrapper = make_selector(selector)
        except BaseException:  # (EMFILE: no epoll instance) nothing to close, nothing to warn of
            self._closed = True
            raise
        try:
            super().__init__(wrapper)
        except BaseException:  # (EMFILE: no self-pipe) the selector is ours to close
            self._closed = True
            wrapper.close()
            raise
        self._state.streams = StreamWatch(self._watch_stream, self._unwatch_stream, self._owns)
        self._foreign = ForeignQueue(self._wake_for_foreign, foreign_wakeup)
        if use_uring is None:
            use_uring = not uring_disabled()
        try:
            self._state.sq_entries = _ring_size("sq_entries", sq_entries, MAX_SQ_ENTRIES)
            self._state.cq_entries = _ring_size("cq_entries", cq_entries, MAX_CQ_ENTRIES)
            self._state.busy_poll = _check_busy_poll(busy_poll)
            if not isinstance(inline, bool):
                raise TypeError(f"inline must be a bool, not {type(inline).__name__}")
            self._state.inline = inline
            self._driver = self._make_driver(use_uring)
        except BaseException:
            self.close()  # the self-pipe and selector are open already
            raise
        wrapper.bind(self._pre_select, self._post_select)
        self._watch_driver()
        self._state.threadsafe = ThreadsafeOperations(self)
        _loops.add(self)

    # -- ring ownership -----------------------------------------------------------------

    def _make_driver(self, use_uring: bool) -> Driver:
        if use_uring:
            try:
                driver = self._new_ring_driver()
            except OSError as exc:  # io_uring_setup or _register refused: no ring here
                if exc.errno not in _SETUP_ERRNOS_FALLBACK:
                    raise
                _warn_unavailable(exc)
            else:
                self._watch_eventfd(driver.efd)
                return driver
        return FallbackDriver(self.call_soon_threadsafe)

    def _new_ring_driver(self) -> RingDriver:
        ring = Ring(self._state.sq_entries, self._state.cq_entries)
        try:
            return RingDriver(ring, self._report_delivery, self._run_blocking, self._ring_broke)
        except BaseException:
            ring.close()
            raise

    def _claim_ring(self) -> None:
        """Make the calling thread the ring's single issuer (called as the loop starts)."""
        driver = self._driver
        if not isinstance(driver, RingDriver):
            return
        me = threading.get_native_id()
        if self._state.ring_thread == me:
            return
        if self._state.ring_thread is None and driver.unclaimed:
            driver.claim()
            self._state.ring_thread = me
            return
        if not driver.single_issuer:
            self._state.ring_thread = me  # any thread may enter a plain ring
            return
        if not driver.idle:
            raise RuntimeError(
                "this uringloop loop has file operations in flight on its io_uring, which "
                "belongs to the thread that last ran the loop; it cannot run in another "
                "thread until they complete"
            )
        # A new ring for the new thread; the old one has nothing in flight. The new one is
        # made first: where it cannot be (EMFILE), the loop keeps the old one, and works as
        # before in its thread; where io_uring is refused, the loop moves to the thread
        # pool, as Loop() would have.
        fresh: Driver
        try:
            fresh = self._new_ring_driver()
        except OSError as exc:
            if exc.errno not in _SETUP_ERRNOS_FALLBACK:
                raise
            _warn_unavailable(exc)
            fresh = FallbackDriver(self.call_soon_threadsafe)
        else:
            try:
                fresh.claim()
            except BaseException:
                fresh.close()
                raise
        self._retire(driver)
        self._unwatch_eventfd(driver.efd)
        driver.close()
        self._driver = fresh
        self._watch_driver()
        if isinstance(fresh, RingDriver):
            self._watch_eventfd(fresh.efd)
        self._state.ring_thread = me

    def _retire(self, driver: Driver) -> None:
        """Keep the counters of a driver being replaced: uring_stats() reports totals since
        the loop was created, not since its current driver was."""
        d = driver.stats()
        submitted, completed, cancelled, enter_calls, most = self._state.retired
        self._state.retired = (
            submitted + d.submitted,
            completed + d.completed,
            cancelled + d.cancelled,
            enter_calls + d.enter_calls,
            max(most, d.max_in_flight),
        )

    def _watch_eventfd(self, efd: int) -> None:
        """Have select() return when the ring's eventfd fires. With the loop's own epoll
        selector it is watched quietly, edge-triggered (_selector.py): the post-select step
        reaps and drains, with no read of the eventfd and no callback. Around a selector
        the user passed, it is an asyncio reader that reads it and reaps."""
        selector = self._selector
        if isinstance(selector, PreSelectEpollSelector):
            selector.watch_quietly(efd)
        else:
            self._add_reader(efd, self._on_eventfd)

    def _unwatch_eventfd(self, efd: int) -> None:
        selector = self._selector
        if isinstance(selector, PreSelectEpollSelector):
            selector.unwatch_quietly(efd)
        else:
            self._remove_reader(efd)

    def _watch_stream(self, fd: int, writes: bool, fired: Callable[[], None]) -> None:
        """Call `fired` when `fd` (a duplicate StreamWatch owns) is writable, or readable."""
        if writes:
            self._add_writer(fd, fired)
        else:
            self._add_reader(fd, fired)

    def _unwatch_stream(self, fd: int, writes: bool) -> None:
        if writes:
            self._remove_writer(fd)
        else:
            self._remove_reader(fd)

    def _owns(self, op: Operation) -> bool:
        """Whether `op`, built in the loop's thread, is this loop's: its waiter is a future
        of this loop's (a foreign thread's operations are handed over as they are queued)."""
        waiter = op.waiter
        if isinstance(waiter, _KeptOutcome):
            waiter = waiter.future
        return isinstance(waiter, asyncio.Future) and waiter.get_loop() is self

    def _watch_driver(self) -> None:
        driver = self._driver
        self._selector.watch(
            self._foreign.pending, driver.backlog, driver.inflight, checked_positions()
        )

    def _forget_after_fork(self) -> None:
        """In a forked child: the ring, its eventfd and everything queued are the parent's.

        The child's copies of the descriptors are closed (the parent's ring lives on), queued
        work is dropped unrun (it is the parent's to do), and file operations raise
        RuntimeError from here on; the loop itself still runs, as stock asyncio's does.
        The loop's own selector polls an epoll instance of the child's own from here on:
        the inherited one is the parent's too, whose eventfd's edges a poll here would
        take from it (a selector the user passed is left as it is: it watches the eventfd
        level-triggered).
        """
        state = self._state
        if state.forked:
            return
        state.forked = True
        foreign = self._foreign
        if foreign is not None:
            foreign.pending.clear()
        if state.streams is not None:
            state.streams.forget_after_fork()
        driver = self._driver
        if isinstance(driver, RingDriver):
            driver.forget_after_fork()
        if driver is not None:
            self._driver = FallbackDriver(self.call_soon_threadsafe)
            self._watch_driver()
        selector = self._selector
        if isinstance(selector, PreSelectEpollSelector):
            selector.forget_after_fork()

    def run_forever(self) -> None:
        # asyncio's own checks first: a closed or already running loop raises RuntimeError
        # before the ring (closed, or owned by the running thread) is touched.
        self._check_closed()
        self._check_running()
        self._claim_ring()
        token = current_loop.set(self)
        keep_positions(True)
        try:
            super().run_forever()
        finally:
            keep_positions(False)
            current_loop.reset(token)

    def create_task(  # type: ignore[override]  # (typeshed's coro and name are wider)
        self,
        coro: collections.abc.Coroutine[Any, Any, _R],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Task[_R]:
        """As asyncio's; the task's context also names this loop for uringloop.threads: a
        thread that runs in a copy of it (anyio's to_thread workers) sends its calls here.
        (In `current_loop`, which run_forever() sets too; but the root task of asyncio.run
        or asyncio.Runner is made from a context copied before the loop runs.) Other
        keyword arguments go to asyncio's as they are (3.14's eager_start=, a task
        factory's own), refused as it refuses them. In debug mode the task records where
        create_task was called, as asyncio's does, not this method."""
        if context is None:
            if current_loop.get() is self:  # (a task of this loop made it)
                task = super().create_task(coro, name=name, **kwargs)
            else:
                # The task copies the context it is made in; a task factory that takes no
                # context (asyncio's older form) is called as asyncio calls it.
                made = contextvars.copy_context()
                made.run(current_loop.set, self)
                task = made.run(super().create_task, coro, name=name, **kwargs)  # type: ignore[arg-type]  # (3.14's **kwargs)
        else:
            if context.get(current_loop) is not self:
                # (Not where it is entered, as the context of the callback making the task:
                # run() refuses it there. asyncio.Runner's is not, when its task is made.)
                with contextlib.suppress(RuntimeError):
                    context.run(current_loop.set, self)
            task = super().create_task(coro, name=name, context=context, **kwargs)
        if self._task_factory is None and task._source_traceback:  # type: ignore[attr-defined]
            # (asyncio's create_task dropped its own frame; a factory's tasks are left as
            # asyncio leaves them)
            del task._source_traceback[-1]  # type: ignore[attr-defined]  # this frame
        return task

    def call_soon(  # type: ignore[override]  # same contract, without TypeVarTuple
        self, callback: Any, *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        """As asyncio's: the same checks, the same Handle, FIFO order. Every task wake-up (a
        completion included) comes here, so outside debug mode it skips two helper calls,
        and the compiled extension (where built) fills the Handle's fields in place instead
        of running its Python constructor."""
        if self._closed or self._debug:
            handle = super().call_soon(callback, *args, context=context)
            if handle._source_traceback:  # type: ignore[attr-defined]
                del handle._source_traceback[-1]  # type: ignore[attr-defined]  # this frame
            return handle
        handle = _ready_handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    async def shutdown_default_executor(self, *args: Any, **kwargs: Any) -> None:
        """As asyncio's, once the operations that cancelled callers handed over while they
        were on their way (a kept write that goes on: Loop.pwrite_kept, a file's write)
        have ended, so that what follows them (a file's count of what such a write wrote,
        the file's lock it held) runs while the loop still runs. asyncio.run and
        uringloop.run call it before closing the loop. (Such an operation was cancelled
        in the kernel as it was handed over: what is left of it is work the kernel had
        begun and cannot stop, a write to a regular file.) They are waited for as long as
        asyncio waits for the executor's threads: `timeout` where given (3.12+), else
        asyncio's THREAD_JOIN_TIMEOUT (300 s), with a RuntimeWarning past it."""
        kept = [outcome for outcome in self._state.kept if not outcome.done()]
        # Arguments asyncio's refuses (a timeout before 3.12) are refused before the wait.
        shutdown = super().shutdown_default_executor(*args, **kwargs)
        try:
            if kept:
                timeout = kwargs.get("timeout", args[0] if args else None)
                if timeout is None:
                    timeout = getattr(_asyncio_constants, "THREAD_JOIN_TIMEOUT", 300)
                _, pending = await asyncio.wait(kept, timeout=timeout)
                if pending:
                    warnings.warn(
                        f"{len(pending)} operation(s) that cancelled callers left on their "
                        f"way did not end within {timeout} seconds; the loop goes on closing",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        except BaseException:
            shutdown.close()  # (never begun)
            raise
        await shutdown

    async def sendfile(
        self,
        transport: asyncio.WriteTransport,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool = True,
    ) -> int:
        """As asyncio's, and `file` may be a binary file of uringloop.open too (not only a
        built-in one): its buffered writes are written first, the bytes are sent from
        `offset` (with or without os.sendfile), and it is left positioned just past them
        (offset + the count returned), its read-ahead dropped. Its other calls wait until
        then. A text file is refused with ValueError, as asyncio refuses a built-in one.
        (Any `file` with a sendfile_source(offset) method is taken so: what that async
        context manager gives is sent in its place.)"""
        if transport.is_closing():  # (asyncio's first check: before the file is touched)
            raise RuntimeError("Transport is closing")
        source = _sendfile_source(file, offset)
        if source is None:
            return await super().sendfile(transport, file, offset, count, fallback=fallback)
        async with source as blocking:
            return await super().sendfile(transport, blocking, offset, count, fallback=fallback)

    async def sock_sendfile(
        self,
        sock: socket.socket,
        file: Any,
        offset: int = 0,
        count: int | None = None,
        *,
        fallback: bool | None = True,
    ) -> int:
        """As asyncio's, and `file` may be a binary file of uringloop.open too, as for
        sendfile()."""
        source = _sendfile_source(file, offset)
        if source is None:
            return await super().sock_sendfile(sock, file, offset, count, fallback=fallback)
        async with source as blocking:
            return await super().sock_sendfile(sock, blocking, offset, count, fallback=fallback)

    def run_in_executor(  # type: ignore[override]  # same contract, without TypeVarTuple
        self, executor: Any, func: Any, *args: Any
    ) -> asyncio.Future[Any]:
        """As asyncio's, and the job knows its loop: uringloop.threads calls made from it
        (asyncio.to_thread code included) go to this loop without being told."""
        if executor is not None and not isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            # Other executors (a ProcessPoolExecutor pickles the callable) get it untouched.
            return super().run_in_executor(executor, func, *args)
        self._check_closed()  # (first, as asyncio's: a closed loop's RuntimeError)
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

    @property
    def inline(self) -> bool:
        """Whether work the kernel does inline may be made directly instead of an operation
        (Loop(inline=...), default True; see inline_turn)."""
        return self._state.inline

    def queued_operations(self) -> int:
        """File operations queued on this loop (by its coroutines or other threads) and not
        yet handed to the kernel, or to the thread pool with io_uring off: they go at the
        next pre-select step, or sooner. A descriptor one of them names is not closed with
        close(2) meanwhile by uringloop.open's files: its number could be reused before
        the operation reaches the kernel. They close through the loop then, behind them."""
        return len(self._driver.backlog) + len(self._foreign.pending)

    def inline_turn(self, nbytes: int = 0) -> bool:
        """Whether work the kernel would do inline within io_uring_enter, on this thread
        anyway (an open resolved from the dentry cache, a copy from the page cache), may
        be done now directly, without an operation and its loop iteration.

        True spends a turn (one more for each EAGER_UNIT bytes moved) of the budget all
        tasks share between two pre-select steps: INLINE_PER_ITERATION turns, or
        INLINE_PER_READY for each callback in the ready queue when that is more. So
        coroutines doing such work, in a loop or many at once, still yield to the loop's
        other work within a few milliseconds (or as long as the ready callbacks take
        anyway): once it is spent, they use the operation, which then waits for the next
        iteration rather than complete eagerly. False then, and when the loop's
        operations do not go through its ring (io_uring off or given up, closed, forked).

        Loop.open_fd, Loop.pread with an offset and uringloop.open's reads ask before
        each such shortcut (close(2) of a local file takes no turn: it pairs with an open
        that did), and Loop.pread_many spends the same budget, a turn for each copy it
        tries; uring_stats().direct_attempts counts them all."""
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, not {nbytes}")
        if not self._driver.uses_ring or self._closed:
            return False
        state = self._state
        if state.forked or not state.inline:
            return False
        spent = state.inline_spent
        if spent >= INLINE_PER_ITERATION and spent >= len(self._ready) * INLINE_PER_READY:
            # The operation used instead must yield too, not complete eagerly.
            self._eager_left = min(self._eager_left, 0)
            return False
        state.inline_spent = spent + 1 + nbytes // EAGER_UNIT
        state.direct_attempts += 1
        return True

    def _inline_room(self) -> int | None:
        """The turns inline_turn() may still give before the next pre-select step, spending
        none: None where the loop makes no direct work at all; <= 0 when they are spent
        (then, as inline_turn, the eager turns are zeroed)."""
        state = self._state
        if not self._driver.uses_ring or self._closed or state.forked or not state.inline:
            return None
        room = max(INLINE_PER_ITERATION, len(self._ready) * INLINE_PER_READY)
        room -= state.inline_spent
        if room <= 0:
            self._eager_left = min(self._eager_left, 0)
        return room

    def uring_stats(self) -> UringStats:
        """Counters of the loop's file operations since it was created (see UringStats)."""
        driver = self._driver
        foreign = self._foreign
        d: DriverStats = driver.stats()
        submitted, completed, cancelled, enter_calls, most = self._state.retired
        return UringStats(
            uring_available=self.uring_available,
            submitted=submitted + d.submitted,
            completed=completed + d.completed,
            cancelled=cancelled + d.cancelled,
            enter_calls=enter_calls + d.enter_calls,
            foreign_submissions=foreign.pushes,
            wakeups_sent=foreign.wakeups_sent,
            wakeups_skipped=foreign.wakeups_skipped,
            max_in_flight=max(most, d.max_in_flight),
            in_flight=d.in_flight,
            backlog=d.backlog,
            direct_attempts=self._state.direct_attempts,
            implementation=IMPLEMENTATION,
        )

    # -- the pre-select step --------------------------------------------------------------

    def _pre_select(self, timeout: float | None) -> float | None:
        """Submit everything queued; never let select block while work waits in user space.

        Called by the selector with the timeout _run_once chose; returns the one to use.
        Contract: when it returns 0, nothing is armed (no sleeping flag, no eventfd), so
        the selector may skip _post_select.
        """
        self._eager_left = min(EAGER_PER_ITERATION, self._eager_left + EAGER_PER_ITERATION)
        self._state.inline_spent = 0
        forget_positions()
        driver = self._driver
        foreign = self._foreign
        if foreign.pending:
            driver.queue_many(_taken(foreign.drain()))
        if driver.inflight or driver.backlog:
            driver.flush()
        streams = self._state.streams
        if streams is not None and streams.watching:
            streams.after_reap()
        if timeout == 0 or self._ready:
            # Busy, or completions just scheduled callbacks (the flush above, including
            # ones it delivered inside a full-SQ refill or for a failed enter).
            return 0
        if self._state.busy_poll and driver.inflight and self._spin(timeout):
            return 0
        if foreign.prepare_to_sleep():
            return 0  # L3': work arrived since the drain; the flag is withdrawn
        if (driver.inflight or driver.idle_watch) and driver.prepare_block():
            foreign.awake()  # L4': will not block after all
            driver.after_block()
            self._driver.flush()  # the driver may have been replaced (a broken ring)
            return 0
        if streams is not None:
            streams.before_block(driver.uses_ring)  # (reads, writes at a stream's position)
        if driver.retry_later:
            # The kernel said "later" (EAGAIN/EBUSY/ENOMEM): come back soon, do not sleep.
            return _RETRY_DELAY if timeout is None else min(timeout, _RETRY_DELAY)
        return timeout

    def _spin(self, timeout: float | None) -> bool:
        """busy_poll: watch the ring (and the foreign queue) instead of sleeping, for up to
        busy_poll seconds and never past `timeout`. True when there is work to run now.

        Nothing is armed meanwhile: foreign threads see the loop awake and skip the wakeup,
        so their queue is polled too, and so is the ready queue, where call_soon_threadsafe
        puts callbacks; the sleep protocol starts afresh afterwards. Sockets and the
        self-pipe (signals for add_signal_handler()) are not polled: they wait at most the
        window.
        """
        driver = self._driver
        if not driver.uses_ring:
            return False
        pending = self._foreign.pending
        ready = self._ready
        window = self._state.busy_poll if timeout is None else min(self._state.busy_poll, timeout)
        deadline = _monotonic() + window
        while True:
            if driver.completions_ready():
                driver.flush()
            if pending or ready:
                # Foreign work (drained by the next pre-select step, at once), or a
                # call_soon_threadsafe callback (it appends before writing the self-pipe).
                return True
            if not driver.inflight or _monotonic() >= deadline:
                return False

    def _post_select(self) -> None:
        """Back from a select that may have blocked (L5): one io_uring_enter submits what
        foreign threads queued meanwhile and reaps what completed, before the callbacks."""
        foreign = self._foreign
        driver = self._driver
        foreign.awake()
        armed = driver.armed
        if armed:
            driver.after_block()
        if foreign.pending:
            # L1': most likely a foreign thread woke us: submit its work now, before the
            # callbacks run, rather than one loop iteration later in the pre-select step.
            driver.queue_many(_taken(foreign.drain()))
            driver.flush()
        elif armed:
            # The eventfd may have fired for completions: reap them now (the flush enters
            # only if the ring says something is there to take).
            driver.flush()
        streams = self._state.streams
        if streams is not None and streams.watching:
            streams.after_reap()

    def _wake_for_foreign(self) -> None:
        """F3: wake the loop from another thread: through the ring's eventfd (one write;
        its reader is watched anyway), else through asyncio's self-pipe."""
        driver = self._driver
        if isinstance(driver, RingDriver):
            driver.wake()
        else:
            self._write_to_self()

    def _on_eventfd(self) -> None:
        self._driver.on_eventfd()

    # -- what the driver hands back ---------------------------------------------------------

    def _report_delivery(self, exc: BaseException, op: Operation) -> None:
        """Delivering `op`'s completion raised `exc` (a done-callback of a concurrent future,
        a late open's close): report it; the other completions are delivered regardless."""
        self.call_exception_handler(
            {
                "message": f"Exception while delivering the completion of {op!r}",
                "exception": exc,
                "operation": op,
            }
        )

    def _run_blocking(self, op: Operation) -> None:
        """An operation the ring's kernel lacks, or refused to run: run it as a blocking
        call on a pool (once: one the pool has already is left to it)."""
        state = self._state
        if state.blocking is None:
            state.blocking = FallbackDriver(self.call_soon_threadsafe)
        if op not in state.blocking.inflight:
            state.blocking.start(op)

    def _ring_broke(self, exc: OSError, unsent: list[Operation], stranded: list[Operation]) -> None:
        """io_uring_enter failed for good (seccomp, say): file operations move to the thread
        pool. What never reached the kernel is resubmitted there; what was in the kernel
        has failed (the driver said so to its waiters) and its memory is kept forever."""
        old = self._driver
        if stranded:
            _never_freed.append((stranded, self._pool))
        warnings.warn(
            f"io_uring_enter failed ({exc.strerror or exc}); uringloop runs file operations "
            "on a thread pool from now on",
            RuntimeWarning,
            stacklevel=_user_stacklevel(),
        )
        new = FallbackDriver(self.call_soon_threadsafe)
        new.queue_many(unsent)
        self._retire(old)
        self._driver = new
        self._watch_driver()
        if old.efd >= 0:
            self._unwatch_eventfd(old.efd)
        # The old driver is still on the stack (its flush called us): close it afterwards.
        self.call_soon(old.close)

    # -- submitting -----------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._state.forked:
            raise RuntimeError(
                "this uringloop loop belongs to the parent process; create a new loop after fork()"
            )
        if self.is_closed():
            raise LoopClosedError("the uringloop loop is closed")

    async def _run(
        self, op: Operation, kept: Callable[[asyncio.Future[Any]], object] | None = None
    ) -> Any:
        """Queue `op` and wait for its completion, cancelling it if the wait is cancelled;
        with `kept`, the wait is _wait_kept()'s, which hands `kept` the outcome."""
        if op.state == DONE:  # answered when it was built (RunNow)
            return op.outcome()  # type: ignore[attr-defined]
        future: asyncio.Future[Any] = _Future(loop=self)
        if self._closed or self._state.forked:
            if not op.must_run:
                op.drop()
                self._check_usable()
            # A close is never dropped: the loop cannot make it, so it is made here, as the
            # blocking call (a task's `finally` that closes its fd once the loop is closed).
            op.waiter = future
            op.complete_blocking(*op.run_captured())
            return future.result()
        waiter = None if kept is None else _KeptOutcome(future)
        op.waiter = future if waiter is None else waiter
        if not self._ready and self._eager_left > 0 and self._run_lone(op, op.nbytes):
            if future.done():
                return future.result()
        else:
            driver = self._driver
            driver.queue(op)
            # With callbacks ready, _submit_early does something only for slow completions:
            # not called otherwise.
            if not self._ready or driver.slow_completions:
                self._submit_early(op.nbytes)
        spec = op.spec  # (None for a batch of reads: nothing to undo)
        unclaimed = self._state.unclaimed if spec is not None and spec.discard else None
        if unclaimed is not None:
            unclaimed.add(op)
        try:
            if waiter is not None:
                return await self._wait_kept(op, waiter, kept)  # type: ignore[arg-type]
            return await future
        except (asyncio.CancelledError, GeneratorExit):
            # (GeneratorExit: the coroutine closed at its await, a task destroyed pending)
            if kept is None:
                self._abandon(op, future)
            raise
        finally:
            if unclaimed is not None:
                unclaimed.discard(op)

    def _run_lone(self, op: Operation, nbytes: int) -> bool:
        """The eager case (see _submit_early), for an operation not yet queued, its waiter
        set, moving `nbytes`: the driver takes it alone to the kernel now when its ring is
        idle. True when it took it, spending this iteration's eager turns for `nbytes`: its
        waiter has its outcome if it completed inline (or failed, or went to the thread
        pool), else the operation is in flight. False: nothing was done, the caller queues
        it."""
        try:
            taken = self._driver.run_lone(op)
        except _FATAL as exc:  # re-raised from a callback, as asyncio does for a callback's
            if op.state == QUEUED:  # interrupted before it was in flight: queued as usual
                self._driver.queue(op)
            self.call_soon(_reraise, exc)
            taken = True  # `op` is queued, in flight or done
        if taken:
            self._eager_left -= 1 + nbytes // EAGER_UNIT
        return taken

    def _submit_early(self, nbytes: int) -> bool:
        """Called right after a coroutine queued one operation, moving `nbytes`: submit
        before the pre-select step where that loses no batching. True when nothing is left
        queued or in flight: the operation completed, or went to the thread pool with a
        ring given up (the caller looks at its future).

        No callback is ready (the eager case, as asyncio's sock_recv tries its syscall at
        once): the loop would go to its pre-select step next and submit exactly this
        operation. Page-cache reads, opens and closes complete inline, and the coroutine
        goes on without a loop iteration. At most EAGER_PER_ITERATION turns between two
        pre-select steps, an operation moving more than EAGER_UNIT bytes taking more than
        one (the step refills the budget; once it is spent the operation is awaited as
        usual, a loop iteration), so a coroutine reading in a loop still yields to the
        loop's other work. An operation not yet queued takes this case through
        _run_lone() instead, without the queue; it comes here when the ring was not idle.

        Callbacks are still to run: when the last submission did not complete inline
        (device reads) and EARLY_BATCH operations wait, or a quarter (1 / EARLY_SHARE) of
        those in flight if that is more, they go to the kernel now (submitted only, no
        reaping: driver.submit()), so the device works while the other callbacks run.
        Returns False: they complete later.

        The flush (or the submission's SQ refills) may complete other operations too. A
        KeyboardInterrupt or SystemExit raised while delivering them is not this
        coroutine's: it is re-raised from a callback of its own, as asyncio raises it from
        the callback that raised it.
        """
        driver = self._driver
        ready = self._ready
        if ready:
            if driver.slow_completions and len(driver.backlog) >= max(
                EARLY_BATCH, len(driver.inflight) // EARLY_SHARE
            ):
                try:
                    driver.submit()
                except _FATAL as exc:
                    self.call_soon(_reraise, exc)
            return False
        if not driver.uses_ring or len(driver.backlog) != 1 or driver.inflight:
            return False
        if self._eager_left <= 0:
            return False
        self._eager_left -= 1 + nbytes // EAGER_UNIT
        try:
            driver.flush()
        except _FATAL as exc:
            self.call_soon(_reraise, exc)
        return not driver.inflight and not driver.backlog

    def _abandon(self, op: Operation, future: asyncio.Future[Any]) -> None:
        """The awaiting task was cancelled (or its coroutine closed): cancel the operation,
        undo a result it lost."""
        if not future.done() and not self._closed:
            future.cancel()  # (nobody takes its outcome: a closed coroutine's is not logged)
        self._driver_cancel(op)
        # (An operation whose result is undone, an open, is in `unclaimed` while its caller
        # waits; close() takes it out when it undoes the result itself: not undone twice.)
        if has_result(future) and op in self._state.unclaimed:
            op.discard(future.result())

    def _submit_threadsafe(self, op: Operation) -> concurrent.futures.Future[Any]:
        """Queue `op` from any thread, its waiter a new concurrent future, and return it.

        The future is running from the start: it cannot be cancelled.
        """
        future: concurrent.futures.Future[Any] = _ForeignFuture()
        op.waiter = future
        self._submit_foreign(op)
        return future

    def _submit_foreign(self, op: Operation) -> None:
        """Queue `op` (its waiter set) from any thread; the loop is woken if it may be
        asleep. Raises LoopClosedError (or RuntimeError after fork) and frees `op` if the
        loop cannot take it, but for an operation that must run (a close): the calling
        thread makes it then, as the blocking call, and its waiter has the outcome."""
        if op.state == DONE:  # answered when it was built (RunNow)
            op.deliver()  # type: ignore[attr-defined]
            return
        streams = self._state.streams
        if streams is not None:
            # Before the push (the loop may take it at once), and before the checks, so
            # that the calling thread keeps no note of an operation refused.
            streams.noted_by_foreign(op)
        try:
            self._check_usable()
            self._foreign.push(op)
        except RuntimeError as exc:
            if op.must_run:  # (never dropped: made by the calling thread, as _run does)
                op.complete_blocking(*op.run_captured())
                return
            op.drop()
            if isinstance(exc, LoopClosedError) or self._state.forked:
                raise
            raise LoopClosedError("the uringloop loop is closed") from None

    def _cancel_threadsafe(self, op: Operation) -> None:
        """From any thread: cancel `op` (queued by _submit_threadsafe) as a cancelled task
        would. Its waiter then resolves with ECANCELED, or with the result if it completed
        first. An operation that must run (a close) is left to run. On a closed loop it
        does nothing: close() ended every operation it had (its waiter has the outcome,
        LoopClosedError, or StrandedError), so a caller whose timeout expired as the loop
        closed gets that outcome, not the closed loop's RuntimeError."""
        if op.must_run:
            return
        try:
            self.call_soon_threadsafe(self._driver_cancel, op)
        except RuntimeError:
            if not self.is_closed():
                raise

    def _driver_cancel(self, op: Operation) -> None:
        """Cancel `op` with the driver that has it: the ring's, or the pool that runs what
        the ring lacks or the kernel refused (see _run_blocking)."""
        blocking = self._state.blocking
        if blocking is not None and op in blocking.inflight:
            blocking.cancel(op)
        else:
            self._driver.cancel(op)

    # -- file operations (coroutines), derived from the declarations in _ops/table.py -----

    def pread(
        self,
        fd: int,
        size: int,
        offset: int = -1,
        *,
        known_seekable: bool = False,
        cached_copy: bool = True,
        unclaimed: Callable[[asyncio.Future[bytes]], object] | None = None,
        direct: bool | None = None,
    ) -> Coroutine[Any, Any, bytes]:
        """Read up to `size` bytes at `offset` (-1: at the file position) into new bytes.

        An explicit offset on a descriptor that takes none (a pipe, a socket, an eventfd)
        raises ESPIPE, as os.pread does (the ring's read would ignore it, or read at it): a
        preadv(2) of no buffers per descriptor per loop iteration finds them.
        `known_seekable=True` says `fd` is one the caller opened and knows takes offsets (a
        regular file) and skips that call; uringloop.open's files pass it.

        With an offset and a size up to the largest pool slot (1 MiB), what the page cache
        holds is copied directly while the loop's inline budget lasts (inline_turn): the
        non-blocking read the kernel would make inside io_uring_enter, without the
        operation (not on an O_DIRECT descriptor, nor where the file refuses such reads).
        The rest, from the first page not cached, is read on the ring. `cached_copy=False`
        reads on the ring at once (for a caller that has just tried that copy itself, or
        knows the data is not cached).

        A read on the ring of a descriptor that is not O_DIRECT is read by the kernel
        straight into the bytes returned, so that a read holds its size once (with the
        compiled hot path; else into a pool slot or, past 1 MiB, a buffer of its own, then
        copied: twice the size at its peak). `direct=None` looks at the
        descriptor's flags for that (once per descriptor per loop iteration, as the copy
        does); `direct=False` says it is not O_DIRECT, and the read does not look (what the
        copy found this iteration still wins); `direct=True` says it is (an aligned
        buffer). Any other value raises TypeError. Wrong, or out of date (the descriptor
        made O_DIRECT since), it costs a read made again, not a wrong result: the kernel
        refuses the unaligned buffer (EINVAL), and the read is made again into aligned
        memory, blocking the loop's thread for as long as it takes.

        A cancelled read is cancelled in the kernel (on the fallback's thread pool, one
        whose thread has begun runs to its end). It may have read all the same: its
        completion may be on its way, or delivered before the task resumed, and the call
        raises CancelledError regardless. A read at a pipe's position cannot be undone:
        for one at the file position (offset -1), `unclaimed`, when given, is called as
        the task is cancelled with the read's own future, which nothing else cancels. It
        is done, or resolves later, with the bytes read, or with the error the read ended
        with (OSError ECANCELED: cancelled before it read anything). uringloop.open's files
        keep such a read for the next one, which waits for it first. An exception raised
        by `unclaimed` replaces the CancelledError.

        It returns a coroutine, which does nothing until awaited (or made a task): the
        arguments are looked at then.
        """
        if _pread_call is not None:
            return _pread_call(  # type: ignore[no-any-return]
                self, fd, size, offset, known_seekable, cached_copy, unclaimed, direct
            )
        return self._pread(fd, size, offset, known_seekable, cached_copy, unclaimed, direct)

    async def _pread(
        self,
        fd: int,
        size: int,
        offset: int,
        known_seekable: bool,
        cached_copy: bool,
        unclaimed: Callable[[asyncio.Future[bytes]], object] | None,
        direct: bool | None,
    ) -> bytes:
        """pread's coroutine: the reference of its compiled twin (_loop_c.pread_call, which
        makes the common case itself, the page-cache copy and then the ring, and hands every
        other to this)."""
        # The hot path: table.pread built with the loop's buffer pool, _run() inlined.
        if (
            type(fd) is int
            and type(size) is int
            and type(offset) is int
            and 0 <= fd <= INT_MAX
            and 0 <= size <= _POOLED_MAX
            and -1 <= offset <= OFF_MAX
        ):  # read_args' common case, inlined: no call, no tuple
            if offset >= 0 and not known_seekable and fd not in _checked:
                check_position(fd, offset)
        else:
            fd, size, offset = read_args(fd, size, offset, known_seekable)
        if direct is not None and direct is not True and direct is not False:
            raise TypeError(f"direct must be None or a bool, not {type(direct).__name__}")
        state = self._state
        if self._closed or state.forked:
            self._check_usable()
        if not size:  # as table.pread: read(2) of 0 bytes reports what io_uring's would not
            return os.read(fd, 0) if offset == -1 else os.pread(fd, 0, offset)
        made = ON_RING
        if offset == -1:  # as table.pread: an O_NONBLOCK stream's EAGAIN, not io_uring's
            # wait; an O_DIRECT descriptor's blocking call, which moves the position
            made = made_at_position(fd)
            at_once = table.AT_ONCE.get(made)
            if at_once is not None:
                return at_once(fd, size)
        head = b""
        if (
            offset >= 0
            and cached_copy
            and size <= _POOLED_MAX
            and state.inline  # (Loop(inline=False): no copy, no turn spent)
            and (_checked.get(fd) or copies_cached(fd))  # (True: looked at this iteration)
            and self.inline_turn(size)
        ):
            copy = read_cached(fd, size, offset)
            if type(copy) is bytes:
                copied = len(copy)
                # Stopped short inside a page, or at once: EOF; at a page's end: maybe the
                # first page not cached, read on the ring.
                if copied == size or not copied or (offset + copied) % PAGE_SIZE:
                    return copy
                head = copy
                size -= copied
                offset += copied
            elif copy == _NO_NOWAIT:
                copies_refused(fd)
        # Into the bytes it returns where the descriptor is known not to be O_DIRECT (an
        # fcntl per descriptor per loop iteration, as for the copies, unless the caller
        # says), whatever its size: a read past the pool's slots would otherwise hold its
        # size twice, a buffer of its own and the bytes copied out of it.
        into_result = (
            _checked.get(fd) is not False
            if direct is False
            else direct is None and (_checked.get(fd) or copies_cached(fd))
        )
        if not into_result and size > _POOLED_MAX and direct is not True:
            # (False there also says a copy was refused, on tmpfs or /proc, this iteration:
            # a read this large asks the descriptor's flags themselves)
            try:
                into_result = not has_o_direct(fd)
            except (OSError, ValueError):  # (the ring's read reports EBADF)
                pass
        op = (StreamRead if made == STREAM_ON_RING else Read)(
            fd, size, offset, self._pool, into_result
        )
        if made == STREAM_ON_RING:
            note_stream_wait(op, fd, False)
        future: asyncio.Future[bytes] = _Future(loop=self)
        waiter = None if unclaimed is None or offset != -1 else _KeptOutcome(future)
        op.waiter = future if waiter is None else waiter
        ready = self._ready
        if not ready and self._eager_left > 0 and self._run_lone(op, size):
            if future.done():
                return head + future.result() if head else future.result()
        else:
            driver = self._driver
            driver.queue_read(op)  # type: ignore[attr-defined]
            # Done when it says so, unless the ring was given up meanwhile (the read went
            # to the thread pool with the rest). With callbacks ready, _submit_early does
            # something only for slow completions: not called otherwise.
            if (
                (not ready or driver.slow_completions)
                and self._submit_early(size)
                and future.done()
            ):
                return head + future.result() if head else future.result()
        if waiter is not None:
            return await self._wait_kept(op, waiter, unclaimed)  # type: ignore[arg-type]
        try:
            data = await future
        except (asyncio.CancelledError, GeneratorExit):
            self._abandon(op, future)
            raise
        return head + data if head else data

    async def _wait_kept(
        self,
        op: Operation,
        waiter: _KeptOutcome,
        unclaimed: Callable[[asyncio.Future[_R]], object],
    ) -> _R:
        """The wait for an operation whose caller takes its outcome once cancelled (pread's
        and pwrite_kept's), `waiter` its waiter (which close() may wrap since): cancelled,
        the task hands over the future that has or will get the outcome."""
        try:
            return await waiter.future  # type: ignore[no-any-return]
        except (asyncio.CancelledError, GeneratorExit):
            outcome = waiter.take()
            if not outcome.done():
                self._driver_cancel(op)  # (queued: dropped now, its future ECANCELED)
                kept = self._state.kept
                kept.add(outcome)
                outcome.add_done_callback(kept.discard)
            hand_over(outcome, unclaimed)
            raise

    async def pread_many(self, requests: Iterable[tuple[int, int, int]]) -> list[bytes]:
        """Many preads with one await: [(fd, size, offset), ...] -> [bytes, ...] in order.

        All reads are queued at once and reach the kernel with one io_uring_enter (per SQ
        of entries). The first failure, in request order, is raised after all completed.
        As pread's, reads with an offset first copy what the page cache holds, in request
        order, while the loop's inline budget lasts (a turn for each); from the first that
        is not whole, the rest go to the ring. Not for a batch with a read at the file
        position (-1), a read over 1 MiB or an O_DIRECT descriptor anywhere in it: such a
        batch goes to the ring whole, but for its reads at the position of an O_NONBLOCK
        stream, made as pread makes one (EAGAIN where io_uring's read would wait) once the
        others have completed: a batch cancelled before then has read nothing there.
        Several reads at the position of one pipe or socket that wait for data are made
        in the order the kernel wakes them, not in request order (Linux 6.18: the last
        first), as reads of one pipe by several threads are: each gets whole bytes in the
        stream's order, but which read gets which is not set.

        The exception of a batch whose reads were made has `partial`, in request order: the
        bytes each read that completed returned, None for the others. A read at a pipe's
        position took its bytes from the pipe; they are there. (A cancelled task's batch
        raises CancelledError, and what such reads took is lost.)
        """
        reqs = requests if isinstance(requests, list | tuple) else list(requests)
        if len(reqs) <= 1:  # nothing to batch: the lone read's short path
            if not reqs:
                self._check_usable()  # (a closed loop refuses it, as any batch)
                return []
            try:
                return [await self.pread(*table._request(reqs[0]))]
            except OSError as exc:
                exc.partial = [None]  # type: ignore[attr-defined]  # (as a batch's)
                raise
        batch = table.read_many_args(reqs)
        self._check_usable()  # before the batch takes its buffers
        head = self._read_many_cached(batch)
        if head is None:  # the budget is spent: after one loop iteration it is again
            await asyncio.sleep(0)
            self._check_usable()
            head = self._read_many_cached(batch) or []
        fds, sizes, offsets = batch.fds, batch.sizes, batch.offsets
        if head:
            if len(head) == len(fds):
                return head
            done = len(head)
            fds, sizes, offsets = fds[done:], sizes[done:], offsets[done:]
        streams: list[int] = []
        at_once = table.reads_at_once(batch, streams)  # (none with copies: those need offsets)
        if at_once and len(at_once) == len(fds):
            return table.read_many_now(at_once)
        op = (StreamReadBatch if streams else ReadBatch)(fds, sizes, offsets, self._pool, at_once)
        note_stream_reads(op, streams)
        try:
            rest: list[bytes] = await self._run(op)
        except OSError as exc:
            if head and hasattr(exc, "partial"):  # (in request order: the copies first)
                exc.partial = head + exc.partial
            raise
        return head + rest if head else rest

    def _read_many_cached(self, batch: table.ReadRequests) -> list[bytes] | None:
        """pread_many's page-cache copies, as pread's (read_many_cached): the answers of the
        first requests, in order, for as long as the copies are whole and the inline budget
        lasts; each request takes the turns pread's would (the batch's largest size). None
        when copies could be made but the budget is spent."""
        largest = batch.largest
        if batch.lowest < 0 or largest > _POOLED_MAX or not self._state.inline:
            return []  # (as pread's: up to 1 MiB; none on a Loop(inline=False))
        fd = batch.fd
        if fd >= 0:
            if not (_checked.get(fd) or copies_cached(fd)):
                return []
        elif not all(copies_cached(one) for one in set(batch.fds)):
            return []
        room = self._inline_room()
        if room is None:
            return []
        if room <= 0:
            return None
        fds = batch.fds
        state = self._state
        cost = 1 + largest // EAGER_UNIT
        allowed = min(len(fds), -(-room // cost))  # (the last may overrun, as inline_turn's)
        ring = state.copy_ring
        if ring is None and allowed >= COPY_RING_MIN:
            ring = state.copy_ring = COPY_RING()
        head, stopped = read_many_cached(fds, batch.sizes, batch.offsets, allowed, ring)
        if stopped == _NO_NOWAIT:  # the file cannot say without waiting: not asked again
            copies_refused(fds[len(head)])
        attempts = min(len(head) + 1, allowed)
        state.inline_spent += attempts * cost
        state.direct_attempts += attempts
        return head

    nop = _coroutine(table.nop)
    preadv = _coroutine(table.preadv)
    pwritev = _coroutine(table.pwritev)
    fsync = _coroutine(table.fsync)
    fdatasync = _coroutine(table.fdatasync)
    preadinto = _coroutine(table.preadinto)
    pwrite = _coroutine(table.pwrite)
    open_fd = _coroutine(table.open_fd)
    close_fd = _coroutine(table.close_fd)
    fallocate = _coroutine(table.fallocate)
    statx = _coroutine(table.statx)
    fstatx = _coroutine(table.fstatx)
    stat = _coroutine(table.stat)
    fstat = _coroutine(table.fstat)
    rename = _coroutine(table.rename)
    unlink = _coroutine(table.unlink)
    rmdir = _coroutine(table.rmdir)
    mkdir = _coroutine(table.mkdir)
    symlink = _coroutine(table.symlink)
    link = _coroutine(table.link)
    ftruncate = _coroutine(table.ftruncate)

    async def pwrite_kept(
        self,
        fd: int,
        data: Any,
        unclaimed: Callable[[asyncio.Future[int]], object],
        offset: int = -1,
    ) -> int:
        """pwrite(fd, data, offset) whose caller takes what it wrote once cancelled: a
        write at the file position (-1, the default: a stream's, an O_APPEND file's)
        cannot be made again without writing its bytes twice, and one at an offset that
        ends after its caller was cancelled has changed the file all the same. If the
        awaiting task is cancelled, the write is cancelled in the kernel (a write that has
        begun may end all the same) and `unclaimed` is called with the write's own future,
        which nothing else cancels: it is done, or resolves later, with the count written,
        or with the error the write ended with (OSError ECANCELED: cancelled before it
        wrote anything). uringloop.open's files count such a write's bytes as written
        before their next call. An exception raised by `unclaimed` replaces the
        CancelledError. A task that never resumes because the loop was closed hands it
        over too, as its coroutine is closed (collected): a LoopClosedError then says
        the write was dropped unmade, a StrandedError that it was still under way when
        close() stopped waiting for it (what it wrote is unknown)."""
        self._check_usable()  # (before the build, which may make it: RunNow)
        return await self._run(_build_pwrite(fd, data, offset), unclaimed)  # type: ignore[no-any-return]

    async def ftruncate_kept(
        self, fd: int, length: int, unclaimed: Callable[[asyncio.Future[None]], object]
    ) -> None:
        """ftruncate(fd, length) whose caller takes its outcome once cancelled: a truncate
        that ends after its caller was cancelled has changed the file all the same. If
        the awaiting task is cancelled, the truncate is cancelled in the kernel (one a
        kernel worker has begun ends all the same) and `unclaimed` is called with the
        truncate's own future, which nothing else cancels: it is done, or resolves later,
        with None (truncated) or with the error the truncate ended with (OSError
        ECANCELED: cancelled before it began). uringloop.open's files make their next
        call wait for it. An exception raised by `unclaimed` replaces the CancelledError;
        a task that never resumes because the loop was closed hands it over as
        pwrite_kept's does."""
        self._check_usable()
        return await self._run(_build_ftruncate(fd, length), unclaimed)  # type: ignore[no-any-return]

    async def pwrite_all(self, fd: int, data: Any, offset: int) -> None:
        """Write all of `data` at `offset` >= 0, resubmitting after short writes."""
        view = flat_view(data)
        try:
            offset = off_t(offset)
            if offset < 0:
                raise ValueError("pwrite_all needs an explicit offset")
            if not view.nbytes:  # as os.pwrite of nothing: the descriptor is checked
                await self.pwrite(fd, view, offset)
            await write_all(lambda part, at: self.pwrite(fd, part, at), view, offset, MAX_RW_COUNT)
        finally:
            release_views(view)

    # -- teardown -------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel what is in flight, wait (bounded) for its CQEs, close ring and eventfd.

        Foreign threads' pending operations fail with LoopClosedError (a RuntimeError), but
        for closes, which run; later submissions fail at once.

        Close the loop on the thread that ran it. Only that thread may take the kernel's
        completions (the ring is single-issuer, its completions deferred to it), so a
        close from another thread cannot wait for the operations still in flight: they
        fail with LoopClosedError, and an open among them that the kernel completed
        anyway leaves its descriptor open.
        """
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self.is_closed():
            return
        foreign = self._foreign
        fatal: BaseException | None = None
        if foreign is not None:
            for op in foreign.close():
                try:
                    finish_unsubmitted(op)
                except _FATAL as exc:
                    fatal = fatal or exc
        unreaped = 0
        try:
            drivers: list[Driver | None] = [self._driver, self._state.blocking]
            for driver in drivers:
                if driver is None:
                    continue
                try:
                    unreaped += self._shutdown_driver(driver)
                except BaseException as exc:
                    # An interrupt (a signal handler's KeyboardInterrupt) before the
                    # driver was down: it is shut down all the same (each step of
                    # _shutdown_driver can be made again), and the interrupt raised after.
                    fatal = fatal or exc
                    unreaped += self._shutdown_driver(driver)
                # (What interrupted the driver's own wait for its CQEs, which went on.)
                fatal = fatal or driver.shutdown_fatal
            self._undo_unclaimed()
        finally:
            let_kept_go(self)
            # The notes of this thread's stream waits that no loop took (this loop's last
            # iteration's): those of finished operations are dropped, not kept (with the
            # operations, their futures and this loop) until the next loop takes them.
            give_back_stream_waits(take_stream_waits())
            if self._state.copy_ring is not None:
                self._state.copy_ring.close()
            if self._state.streams is not None:
                self._state.streams.close()
            # The self-pipe and the selector are closed whatever the ring's teardown did.
            super().close()
            _loops.discard(self)  # nothing of it is left for a fork to let go of
        if fatal is not None:
            raise fatal
        if unreaped:  # (last: warnings made errors must not stop the close half-way)
            warnings.warn(
                f"{self!r} closed from a thread other than its own with {unreaped} "
                "operation(s) in flight, whose completions only the loop's thread can "
                "take: what they open stays open. Close the loop on its own thread.",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )

    def _undo_unclaimed(self) -> None:
        """Results that came before the loop closed for tasks that never run again (their
        wake-up was still in the ready queue) are nobody's: undone as a cancelled
        operation's are (an open's descriptor closed)."""
        unclaimed = self._state.unclaimed
        while unclaimed:
            op = unclaimed.pop()
            future = op.waiter
            if (
                isinstance(future, asyncio.Future)
                and future.done()
                and not future.cancelled()
                and future.exception() is None
            ):
                op.discard(future.result())

    def _shutdown_driver(self, driver: Driver) -> int:
        """Shut `driver` down; how many operations it left in flight that another
        thread's close could not reap (0 on the loop's own thread)."""
        can_enter = not self._state.forked and (
            self._state.ring_thread in (None, threading.get_native_id())
            or not isinstance(driver, RingDriver)
            or not driver.single_issuer
        )
        kept: list[_KeptOutcome] = []
        for op in driver.unfinished_operations():
            waiter = op.waiter
            if isinstance(waiter, _KeptOutcome):
                # Its task never runs another step, but its coroutine, closed at its
                # await when the task goes, still hands the outcome over (_wait_kept): a
                # write's file counts what it wrote, and does not write it again. So the
                # outcome goes to the late future (made for it), not thrown away.
                kept.append(waiter)
                waiter = waiter.future
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                # Its task never runs again: a result that comes during the shutdown is
                # nobody's, and is undone as a cancelled operation's is (an open's
                # descriptor closed) rather than left in a future no one reads; one still
                # queued is dropped (a close made) without an error that nobody retrieves.
                waiter.cancel()
        stranded = driver.shutdown(CLOSE_TIMEOUT, can_enter)
        if stranded:
            # The kernel may still write into these buffers: keep them forever.
            _never_freed.append((stranded, self._pool))
            for op in stranded:
                waiter = op.waiter
                if waiter is not None and not waiter.done():
                    waiter.set_exception(
                        StrandedError("the loop was closed with the operation in flight")
                    )
                # No loop has it now (its stream's note, if any, is dropped rather than
                # handed from loop to loop for ever: give_back_stream_waits).
                op.waiter = None
        for outcome in kept:
            if outcome.late is not None and outcome.late.done():
                look_at(outcome.late)  # (not logged if its coroutine is never closed)
        if driver.efd >= 0 and not self._state.forked:
            self._unwatch_eventfd(driver.efd)
        driver.close()
        return len(stranded) if not can_enter and not self._state.forked else 0

    def __repr__(self) -> str:
        mode = "io_uring" if self.uring_available else "thread-pool"
        return (
            f"<{type(self).__name__} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()} files={mode}>"
        )


# Loop.pread's argument binding compiled too: a method of Loop, which binds the common
# calls' arguments itself and passes every other call to the method above, its reference
# (None: that method runs every call).
_install_pread = compiled("uringloop._loop_c", "install_pread")
if _install_pread is not None:
    Loop.pread = _install_pread(Loop, Loop.pread)  # type: ignore[method-assign]


def _reraise(exc: BaseException) -> None:
    raise exc


# The packages whose frames a warning about the loop does not name (see _user_stacklevel).
_INTERNAL_DIRS = (
    os.path.dirname(asyncio.__file__ or "") + os.sep,
    os.path.dirname(__file__) + os.sep,
)


def _user_stacklevel() -> int:
    """The `stacklevel` of a warnings.warn() made by this function's caller that names the
    first frame outside uringloop and asyncio: the user's code that made the loop or ran
    it (uringloop.run, asyncio.Runner and a loop_factory in between), so that a filter on
    the user's module matches the warning. The outermost frame, when every one is inside."""
    frame = sys._getframe(2)  # (the warning's caller: stacklevel 2)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_INTERNAL_DIRS):
        frame = frame.f_back
        level += 1
    return level


_FINISHED = concurrent.futures._base.FINISHED
_RUNNING = concurrent.futures._base.RUNNING
_allocate_lock = threading.Lock


class _ForeignFuture(concurrent.futures.Future[Any]):
    """The future loop.threadsafe returns: a concurrent.futures.Future, running from the
    start (it cannot be cancelled), that ends only in FINISHED.

    Two shortcuts for the round trip, with the same semantics: done() reads the state
    without the condition lock (the loop asks it for every operation it fills and
    completes; the state is one attribute, written under the lock), and result() waits on
    a latch released once the outcome is set, instead of Condition.wait. Everything else
    (wait(), as_completed(), callbacks) goes through the base class unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self._state = _RUNNING  # nobody else has it yet: no lock needed
        self._latch = _allocate_lock()
        self._latch.acquire()

    def claim(self) -> bool:
        """The loop takes the operation (see _taken): always, these cannot be cancelled."""
        return True

    def done(self) -> bool:
        return bool(self._state == _FINISHED)

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        self._latch.release()

    def set_exception(self, exception: BaseException | None) -> None:
        super().set_exception(exception)
        self._latch.release()

    def result(self, timeout: float | None = None) -> Any:
        if self._state != _FINISHED:
            # As the base class's wait: a timeout of 0 or less only looks (no ValueError,
            # and -1 is not "for ever").
            if timeout is None:
                got = self._latch.acquire()
            elif timeout > 0:
                got = self._latch.acquire(True, timeout)
            else:
                got = self._latch.acquire(False)
            if got:
                self._latch.release()  # for the next caller of result()
            elif self._state != _FINISHED:  # (else another caller held the latch a moment)
                raise concurrent.futures.TimeoutError()
        return super().result(0)


def _taken(ops: list[Operation]) -> list[Operation]:
    """Foreign operations the loop takes from its pending queue. Each one's waiter (a
    _ForeignFuture, or uringloop.threads' own) learns through claim() that the loop took
    it, so its caller can no longer drop it; one whose caller gave up while it waited is
    dropped here, never submitted, but for an operation that must run (a close), which runs
    regardless."""
    taken = []
    for op in ops:
        if op.waiter.claim() or op.must_run:  # type: ignore[union-attr]
            taken.append(op)
        else:
            op.drop()
    return taken


def _ring_size(name: str, value: object, maximum: int) -> int:
    """A ring size the kernel can take: an int from 1 to `maximum` (it rounds up to a power
    of two). Anything else would make io_uring_setup fail with EINVAL."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be from 1 to {maximum} (the kernel's limit), not {value}")
    return value


def _check_busy_poll(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"busy_poll must be a number of seconds, not {type(value).__name__}")
    if not 0 <= value < _BUSY_POLL_MAX:
        raise ValueError(f"busy_poll must be >= 0 and < {_BUSY_POLL_MAX} seconds, not {value}")
    return float(value)


def _threadsafe(
    spec: Spec[_P, _R],
) -> Callable[Concatenate[ThreadsafeOperations, _P], concurrent.futures.Future[_R]]:
    """ThreadsafeOperations' method for a declared operation: the arguments are checked in
    the calling thread (a bad one raises there, the loop never sees it), then the
    operation is queued for the loop."""
    build = spec.builder()
    must_run = spec.must_run

    def method(
        self: ThreadsafeOperations, /, *args: _P.args, **kwargs: _P.kwargs
    ) -> concurrent.futures.Future[_R]:
        if not must_run:
            self.check_usable()  # (before the build, which may make it: RunNow)
        return self._loop._submit_threadsafe(build(*args, **kwargs))

    return _named(method, spec, "ThreadsafeOperations", "concurrent.futures.Future[{}]")  # type: ignore[no-any-return]


class ThreadsafeOperations:
    """The loop's file operations for other threads: each returns a concurrent Future.

    Any thread may call these. The operation is queued and the loop woken if it may be
    asleep; the future resolves on the loop thread when the completion arrives. Submitting
    to a closed loop raises LoopClosedError (a RuntimeError) at once.
    """

    def __init__(self, loop: Loop) -> None:
        self._loop: Loop = weakref.proxy(loop)

    def check_usable(self) -> None:
        """Raise LoopClosedError if the loop is closed (RuntimeError if it belongs to the
        parent of a fork): for a caller about to build an operation other than a close,
        which the loop would refuse, since building one may already make it (RunNow)."""
        self._loop._check_usable()

    def submit(self, op: Operation) -> None:
        """Queue an operation built by a declaration (Spec.build), its waiter already set;
        for uringloop.threads, whose waiter is its own."""
        self._loop._submit_foreign(op)

    def cancel(self, op: Operation) -> None:
        """Cancel an operation submit() queued; its future resolves with ECANCELED, or with
        its result if it completed first. A close is left to run."""
        self._loop._cancel_threadsafe(op)

    nop = _threadsafe(table.nop)
    pread = _threadsafe(table.pread)
    pread_many = _threadsafe(table.pread_many)
    preadinto = _threadsafe(table.preadinto)
    preadv = _threadsafe(table.preadv)
    pwrite = _threadsafe(table.pwrite)
    pwritev = _threadsafe(table.pwritev)
    open_fd = _threadsafe(table.open_fd)
    close_fd = _threadsafe(table.close_fd)
    fsync = _threadsafe(table.fsync)
    fdatasync = _threadsafe(table.fdatasync)
    fallocate = _threadsafe(table.fallocate)
    ftruncate = _threadsafe(table.ftruncate)
    statx = _threadsafe(table.statx)
    fstatx = _threadsafe(table.fstatx)
    stat = _threadsafe(table.stat)
    fstat = _threadsafe(table.fstat)
    rename = _threadsafe(table.rename)
    unlink = _threadsafe(table.unlink)
    rmdir = _threadsafe(table.rmdir)
    mkdir = _threadsafe(table.mkdir)
    symlink = _threadsafe(table.symlink)
    link = _threadsafe(table.link)
