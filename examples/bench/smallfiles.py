"""Benchmark 7, smallfiles: many small files through uringloop.open, aiofiles and open().

aiofiles' most common use: open a small text file, read it whole, close it; or write a
hundred lines to one. Each pass goes over the same set of files (1000; 100 with --quick),
one after another or all at once (one coroutine per file, gathered), and reports the
wall time per file in microseconds. The synchronous loop is the built-in open() doing
the same, the comparison a user makes before adopting an async file library.

    python -m examples.bench.smallfiles [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from .common import (
    CREATED_TREES,
    BenchError,
    Config,
    Report,
    Row,
    ensure_directory,
    interleaved,
    run_on,
    target_at_most,
)

NAME = "smallfiles"
FILES = 1000
FILES_QUICK = 100
LINE = "x" * 54 + "\n"  # 55 bytes: 100 lines make the 5.5 KB file read back
LINES = 100
TEXT = LINE * LINES
TEXT_BYTES = TEXT.encode()

SYNC = "sync loop (built-in open)"
URING_OPEN = "uringloop.open"
URING_RAW = "uringloop open_fd + pread + close_fd"
URING_RAW_WRITE = "uringloop open_fd + pwrite + close_fd"
AIOFILES = "aiofiles"
# The all-at-once shape's own floor: the same gathered tasks, each making the built-in's
# blocking calls (no I/O of its own can make a coroutine per file cost less than this).
SYNC_TASKS = "built-in open() in one task per file"
# Not a backend but a bound: the same system calls as io_uring operations on a private ring,
# each step of the pass (open, read or write, close) one io_uring_enter that submits it for
# every file of the batch (one file, or all of them at once) and waits for all of them.
KERNEL = "io_uring submit-and-wait (private ring)"
READ_SEQ = "read a 5.5 KB text file, one after another"
READ_ALL = "read a 5.5 KB text file, all at once"
WRITE_SEQ = "write 100 lines to a file, one after another"
WRITE_ALL = "write 100 lines to a file, all at once"
CASES: dict[str, tuple[str, ...]] = {
    READ_SEQ: (SYNC, URING_OPEN, URING_RAW, AIOFILES, KERNEL),
    READ_ALL: (SYNC, SYNC_TASKS, URING_OPEN, URING_RAW, AIOFILES, KERNEL),
    WRITE_SEQ: (SYNC, URING_OPEN, URING_RAW_WRITE, AIOFILES, KERNEL),
    WRITE_ALL: (SYNC, SYNC_TASKS, URING_OPEN, URING_RAW_WRITE, AIOFILES, KERNEL),
}


def _make_files(cfg: Config, count: int) -> tuple[list[str], list[str]]:
    """(files to read, files to write) under cfg.directory; the readers hold TEXT."""
    ensure_directory(cfg)
    top = os.path.join(cfg.directory, f"smallfiles-{count}")
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(os.path.join(top, "read"))
    os.makedirs(os.path.join(top, "write"))
    CREATED_TREES.append(top)
    readers = [os.path.join(top, "read", f"{i}.txt") for i in range(count)]
    writers = [os.path.join(top, "write", f"{i}.txt") for i in range(count)]
    for path in readers:
        with open(path, "w") as f:
            f.write(TEXT)
    return readers, writers


# -- one pass each: seconds for all files ----------------------------------------------------


def _sync_read(paths: list[str]) -> float:
    t0 = perf_counter()
    for path in paths:
        with open(path) as f:
            if f.read() != TEXT:
                raise BenchError(f"{SYNC}: wrong text in {path}")
    return perf_counter() - t0


def _sync_write(paths: list[str]) -> float:
    t0 = perf_counter()
    for path in paths:
        with open(path, "w") as f:
            for _ in range(LINES):
                f.write(LINE)
    return perf_counter() - t0


class _PrivateRing:
    """A ring of the benchmark's own, not a loop's: each step() writes one SQE per file,
    submits them in one io_uring_enter that waits for all their completions, and returns
    the results in order.

    `results` holds the last step's results as they came (None: not yet), also when the
    step raised. `unfinished` says that the step could not wait for all of its operations
    (an io_uring_enter failed twice): the kernel may still write into their buffers, and
    the ring takes no more steps.
    """

    def __init__(self, entries: int) -> None:
        from uringloop._ring import abi
        from uringloop._ring.ring import Ring

        self._words = abi.SQE_SIZE // 8
        self._ring = Ring(entries, 2 * entries)
        self._ring.enable()
        self._sqes = memoryview(self._ring.sqes).cast("Q")
        self.results: list[int | None] = []
        self.unfinished = False

    def step(self, sqes: list[tuple[int, int, int, int]]) -> list[int]:
        """Each SQE as words 0-3 (opcode and fd, offset, address, length and op flags)."""
        self.results = []  # (a step that fails before submitting has no results)
        if self.unfinished:
            raise BenchError(f"{KERNEL}: the ring has operations of a failed step in flight")
        words, sq = self._words, self._sqes
        try:
            slots = self._ring.reserve(len(sqes))
            if len(slots) != len(sqes):
                raise BenchError(f"{KERNEL}: {len(slots)} free SQ slots for {len(sqes)} SQEs")
            for index, (slot, sqe) in enumerate(zip(slots, sqes, strict=True)):
                at = slot // 8
                sq[at : at + words] = _ZERO_SQE[:words]
                sq[at], sq[at + 1], sq[at + 2], sq[at + 3] = sqe
                sq[at + 4] = index  # user_data
        except BaseException:
            # Reserved, not submitted (every step submits all it reserves): taken back, or
            # the next step would submit them with its own.
            self._ring.unreserve(self._ring.pending())
            raise
        self.results = [None] * len(sqes)
        self.unfinished = True
        try:
            self._collect()
        except BaseException:
            # Whatever ended the wait, the operations run on: wait for them before anything
            # else uses the ring or the buffers (if that fails too, `unfinished` stays).
            with contextlib.suppress(OSError):
                self._collect()
            raise
        return self.results  # type: ignore[return-value]  # (all ints now)

    def _collect(self) -> None:
        """Wait for the step's completions still missing (again after a signal)."""
        results = self.results
        queues = self._ring.queues
        while None in results:
            try:
                self._ring.enter(results.count(None))  # (submits the step's SQEs at first)
            except InterruptedError:
                pass
            user_data, res, _flags, end = queues.peek_columns()
            for index, value in zip(user_data, res, strict=True):
                results[index] = value
            queues.consume_to(end)  # (only once recorded: a later peek finds them again)
        self.unfinished = False

    def close(self) -> None:
        self._sqes.release()
        self._ring.close()


_ZERO_SQE = memoryview(bytes(128)).cast("Q")
# Every signal but those a fault raises in this very thread (and SIGKILL/SIGSTOP, which no
# mask holds).
_ASYNC_SIGNALS = signal.valid_signals() - {
    signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL
}  # fmt: skip
_AT_FDCWD = -100
# The buffers and names of a pass whose ring failed with operations in flight: never freed.
_KEPT: list[object] = []


def _close_all(ring: _PrivateRing, fds: list[int], close_word: int) -> list[int]:
    """Close `fds` in one step on the ring (its results), or with os.close where the ring
    takes no more steps or the step failed before it was submitted."""
    if not fds:
        return []
    if not ring.unfinished:
        try:
            return ring.step([(close_word | (fd << 32), 0, 0, 0) for fd in fds])
        except BaseException:
            if not ring.results:  # (not submitted: nothing closed them)
                for fd in fds:
                    os.close(fd)
            raise
    for fd in fds:
        os.close(fd)
    return [0] * len(fds)


def _kernel_pass(paths: list[str], at_once: bool, writing: bool) -> float:
    """Seconds for one pass through a private ring: open, then write TEXT or read it back,
    then close, as io_uring operations in batches of one file or of all of them."""
    from uringloop._ring import abi

    def fd_word(op: abi.Op, fd: int) -> int:
        return int(op) | ((fd & 0xFFFFFFFF) << 32)

    if writing:
        flags, mode = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666
    else:
        flags, mode = os.O_RDONLY | os.O_CLOEXEC, 0
    data = ctypes.create_string_buffer(TEXT_BYTES, len(TEXT))  # what a write writes
    batch = len(paths) if at_once else 1
    names = [ctypes.create_string_buffer(os.fsencode(p)) for p in paths]
    buffers = [ctypes.create_string_buffer(len(TEXT) + 1) for _ in range(batch)]
    ring = _PrivateRing(max(8, batch))
    # Signals wait until the pass is over (a KeyboardInterrupt then finds every descriptor
    # closed and no operation in flight); none cuts a wait short meanwhile.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
    try:
        t0 = perf_counter()
        for first in range(0, len(paths), batch):
            some = names[first : first + batch]
            at = fd_word(abi.Op.OPENAT, _AT_FDCWD)
            fds: list[int] = []
            try:
                try:
                    ring.step([(at, 0, ctypes.addressof(n), mode | flags << 32) for n in some])
                finally:  # (every descriptor opened is closed, whatever happens next)
                    fds = [fd for fd in ring.results if fd is not None and fd >= 0]
                if len(fds) < len(some):
                    error = -min(fd for fd in ring.results if fd is not None)
                    raise OSError(error, os.strerror(error))
                if writing:
                    steps = [(fd, data) for fd in fds]
                else:
                    steps = list(zip(fds, buffers[: len(fds)], strict=True))
                op, size = (abi.Op.WRITE, len(TEXT)) if writing else (abi.Op.READ, len(TEXT) + 1)
                done = ring.step(
                    [(fd_word(op, fd), 0, ctypes.addressof(buf), size) for fd, buf in steps]
                )
            finally:
                closed = _close_all(ring, fds, fd_word(abi.Op.CLOSE, 0))
            if any(n != len(TEXT) for n in done) or any(closed):
                raise BenchError(f"{KERNEL}: results {sorted(set(done + closed))}")
            if not writing and any(buf.raw[: len(TEXT)] != TEXT_BYTES for buf in buffers):
                raise BenchError(f"{KERNEL}: wrong text read")
        return perf_counter() - t0
    finally:
        try:
            if ring.unfinished:
                _KEPT.append((names, buffers, data))
            ring.close()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


async def _builtin_read_one(path: str) -> str:
    with open(path) as f:
        return f.read()


async def _builtin_write_one(path: str) -> None:
    with open(path, "w") as f:
        for _ in range(LINES):
            f.write(LINE)


async def _uring_read_one(path: str) -> str:
    import uringloop

    async with uringloop.open(path) as f:
        return await f.read()  # type: ignore[no-any-return]


async def _uring_raw_read_one(path: str) -> str:
    loop: Any = asyncio.get_running_loop()
    fd = await loop.open_fd(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = await loop.pread(fd, len(TEXT) + 1, 0)  # one read, meeting EOF, as open() does
    finally:
        await loop.close_fd(fd)
    return data.decode()  # type: ignore[no-any-return]


async def _aiofiles_read_one(path: str) -> str:
    import aiofiles  # type: ignore[import-untyped]

    async with aiofiles.open(path) as f:
        return await f.read()  # type: ignore[no-any-return]


async def _uring_write_one(path: str) -> None:
    import uringloop

    async with uringloop.open(path, "w") as f:
        for _ in range(LINES):
            await f.write(LINE)


async def _uring_raw_write_one(path: str) -> None:
    loop: Any = asyncio.get_running_loop()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    fd = await loop.open_fd(path, flags, 0o666)
    try:
        await loop.pwrite_all(fd, TEXT.encode(), 0)
    finally:
        await loop.close_fd(fd)


async def _aiofiles_write_one(path: str) -> None:
    import aiofiles

    async with aiofiles.open(path, "w") as f:
        for _ in range(LINES):
            await f.write(LINE)


async def _pass(
    one: Callable[[str], Coroutine[Any, Any, Any]], paths: list[str], at_once: bool, what: str
) -> float:
    t0 = perf_counter()
    if at_once:
        results = await asyncio.gather(*(one(p) for p in paths))
    else:
        results = [await one(p) for p in paths]
    elapsed = perf_counter() - t0
    if any(r is not None and r != TEXT for r in results):
        raise BenchError(f"{what}: wrong text read back")
    return elapsed


READERS: dict[str, tuple[str, Callable[[str], Coroutine[Any, Any, Any]]]] = {
    SYNC_TASKS: ("uringloop", _builtin_read_one),
    URING_OPEN: ("uringloop", _uring_read_one),
    URING_RAW: ("uringloop", _uring_raw_read_one),
    AIOFILES: ("asyncio", _aiofiles_read_one),
}
WRITERS: dict[str, tuple[str, Callable[[str], Coroutine[Any, Any, Any]]]] = {
    SYNC_TASKS: ("uringloop", _builtin_write_one),
    URING_OPEN: ("uringloop", _uring_write_one),
    URING_RAW_WRITE: ("uringloop", _uring_raw_write_one),
    AIOFILES: ("asyncio", _aiofiles_write_one),
}


def measure(case: str, impl: str, readers: list[str], writers: list[str]) -> float:
    """Microseconds per file of one pass of `impl` in `case` (written files checked)."""
    writing = case in (WRITE_SEQ, WRITE_ALL)
    paths = writers if writing else readers
    if impl == SYNC:
        elapsed = _sync_write(paths) if writing else _sync_read(paths)
    elif impl == KERNEL:
        elapsed = _kernel_pass(paths, case in (READ_ALL, WRITE_ALL), writing)
    else:
        loop_name, one = (WRITERS if writing else READERS)[impl]
        elapsed = run_on(loop_name, _pass(one, paths, case in (READ_ALL, WRITE_ALL), impl))
    if writing:
        for path in paths[::64]:
            with open(path) as f:
                if f.read() != TEXT:
                    raise BenchError(f"{impl}: wrong text written to {path}")
    return elapsed / len(paths) * 1e6


def run(cfg: Config) -> Report:
    count = FILES_QUICK if cfg.quick else FILES
    report = Report(NAME, f"smallfiles: {count} small text files, microseconds per file")
    readers, writers = _make_files(cfg, count)
    report.notes.append(
        f"{count} files of {len(TEXT)} bytes ({LINES} lines) in {cfg.directory}, in the page "
        "cache. Reading: open in text mode, read() whole, close. Writing: open 'w' (truncate), "
        f"{LINES} write() calls of one line, close. 'All at once' gathers one coroutine per "
        "file (the sync loop still goes one after another). Lower is better."
    )
    report.notes.append(
        f"'{SYNC_TASKS}' (all at once only) gathers the same coroutines on uringloop's Loop, "
        "each making the built-in's blocking calls: the cost of the shape itself, a task per "
        "file and the gather, with I/O that never yields. uringloop.open, which does the same "
        "I/O in the same shape, cannot cost less; the goal still compares it with the sync "
        "loop."
    )
    report.notes.append(
        "The rows of uringloop's raw operations do the same work with open_fd, pread (or "
        "pwrite_all) and close_fd: the close on the ring, the open and the read too but "
        "for the direct attempts below. The kernel completes an open for reading, a page-cache "
        "read and a close inside the submitting io_uring_enter, but hands an open with "
        "O_CREAT or O_TRUNC, and "
        "a buffered write the filesystem cannot make without waiting (on ext4, every one), "
        "to a worker thread of its own: writing one file after another, "
        f"that floor ('{KERNEL}') is above the sync loop's cost whatever uringloop does. "
        "uringloop.open "
        "and Loop.open_fd and Loop.pread do the work the kernel would do inline directly "
        "where they can: the open from the dentry cache (openat2 with RESOLVE_CACHED), a "
        "copy of cached bytes with a non-blocking read, and uringloop.open close(2) of a "
        "file on a local filesystem; so reading "
        "a cached file takes no ring operation, within the loop iteration's budget for such "
        "steps (256, or 2 for each ready callback: past it, files go through the ring, so "
        "that the loop stays responsive)."
    )
    report.notes.append(
        f"'{KERNEL}' is not a backend but a bound: the pass's system calls as io_uring "
        "operations on a ring of its own, without an event loop, each step (open, then read "
        "or write, then close) one io_uring_enter that submits it for the batch (one file, "
        "or all of them at once) and waits for all of it. One after another, it is what "
        "each file costs a program that waits on io_uring for every step; all at once, "
        "what the kernel's side of the gathered pass costs. Its own Python (the SQEs "
        "written, the results checked) is in it, about 3 microseconds a step. "
        "uringloop.open does more work "
        "than this (its own Python and the loop's), but its direct attempts can make it "
        "cost less where the kernel would answer inside io_uring_enter."
    )
    for case, impls in CASES.items():
        _run_case(cfg, report, case, impls, readers, writers)
    return report


def _run_case(
    cfg: Config,
    report: Report,
    case: str,
    impls: tuple[str, ...],
    readers: list[str],
    writers: list[str],
) -> None:
    rows = {i: Row(case, i, "us/file", False, reference=i == URING_OPEN) for i in impls}
    report.rows.extend(rows.values())
    failed: set[str] = set()

    def one(impl: str, rep: int) -> None:
        if impl in failed:
            return
        try:
            rows[impl].samples.append(measure(case, impl, readers, writers))
        except OSError as exc:
            failed.add(impl)
            rows[impl].skipped = f"failed: {exc!r}"[:160]

    interleaved(cfg.reps, list(impls), one, rows)
    sync, uring = rows[SYNC], rows[URING_OPEN]
    report.targets.append(
        target_at_most(
            f"{case}: uringloop.open costs <= 2x the sync loop",
            uring.median / sync.median if uring.samples and sync.samples else None,
            2.0,
            fmt="{:.2f}x",
        )
    )


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
