"""Benchmark 2, randread: 4 KiB random reads over one file, page cache and O_DIRECT.

Queue depth QD = the number of coroutines each keeping one read in flight (for the
batched form: the size of each pread_many batch; for the synchronous loop: always 1).
Every implementation is written the way its users would write it, with the same worker
skeleton (offset table, deadline check, one read in 64 and each worker's first read kept),
and the kept reads are compared with os.pread afterwards.

    python -m examples.bench.randread [--quick] [--json PATH] [--plot PATH]

Page-cache reads also run at QD 1024 and 4096, where the peers that need a descriptor
or a file object per coroutine are left out. Two rows are bounds, not backends: the
kernel's own cost per read (FLOOR) and asyncio's task and future machinery on the same
loop (MACHINERY); what a uringloop ring read costs beyond both (the URING_RING row: a Loop
with inline=False, whose reads all go through the ring rather than copy what the page
cache holds) is reported as "uringloop's own work per read". The O_DIRECT cases have two
more bounds where a C compiler is there: a C program (refill.c) that waits as the loop
waits and refills its reads a batch per wake (C_BATCH), or with an io_uring_enter per read
as fio does (C_EACH).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import itertools
import mmap
import os
import random
import statistics
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from .common import (
    BLOCK,
    OFFSET_TABLE,
    BenchError,
    Config,
    MiB,
    Report,
    Row,
    aligned_buffer,
    build_c_program,
    fio_available,
    interleaved,
    open_direct,
    run_fio,
    run_on,
    run_refill,
    target,
    target_at_most,
    verify,
    warm_cache,
)
from .common import data_file as make_data_file

NAME = "randread"
QDS = (1, 16, 64)
DEEP_QDS = (1024, 4096)  # page cache only
WARMUP = 0.05  # seconds of untimed work before each timed run
TICK = 0.001  # seconds: the period of the stall-detecting task beside each timed run

SYNC = "sync loop (os.pread/preadv)"
ASYNCIO = "asyncio + executor"
UVLOOP = "uvloop + executor"
AIOFILES = "aiofiles"
CAIO_SQPOLL = "aiofile + caio uring SQPOLL"
CAIO_URING = "aiofile + caio uring"
CAIO_AIO = "caio linux_aio"
PYURING = "pyuring UringAsync"
FIO = "fio io_uring (C)"
URING = "uringloop"
BATCHED = "uringloop pread_many"
URING_OPEN = "uringloop.open (seek + read)"
URING_POLL = "uringloop, busy_poll=50 us"
URING_RING = "uringloop, ring only (Loop(inline=False))"
BUSY_POLL = 50e-6  # seconds: Loop(busy_poll=...) for URING_POLL
FLOOR = "io_uring kernel floor (enter only)"
COPY_FLOOR = "pread_many copy floor (read_many_cached only)"
WAIT_LOOP = "io_uring submit-and-wait loop (one thread)"
MACHINERY = "asyncio machinery floor (fake driver)"
C_BATCH = "C, the loop's waits: a batch per wake"
C_EACH = "C, the loop's waits: an enter per read"
C_MODES = {C_BATCH: "batch", C_EACH: "each"}  # refill.c's MODE argument
STALL = "loop stall ms"
ASYNC_COMPETITORS = (ASYNCIO, UVLOOP, AIOFILES, CAIO_SQPOLL, CAIO_URING, CAIO_AIO, PYURING)
IMPLS = (
    SYNC,
    ASYNCIO,
    UVLOOP,
    AIOFILES,
    CAIO_SQPOLL,
    CAIO_URING,
    CAIO_AIO,
    PYURING,
    URING,
    URING_RING,
    URING_POLL,
    BATCHED,
    URING_OPEN,
    FLOOR,
    COPY_FLOOR,
    WAIT_LOOP,
    MACHINERY,
)
# At QD 1024 and 4096: the rows that do not need a descriptor or file object per coroutine.
DEEP_IMPLS = (SYNC, UVLOOP, CAIO_SQPOLL, CAIO_URING, CAIO_AIO, URING, URING_RING, BATCHED, FLOOR,
              MACHINERY)  # fmt: skip

Worker = Callable[[float], Awaitable[int]]

# Read buffers the kernel may still write into (a failed enter); never unmapped.
_ABANDONED: list[mmap.mmap] = []


@dataclass
class Env:
    """What one timed run needs; `keep` collects (offset, bytes) for verification."""

    path: str
    fd: int
    direct: bool
    qd: int
    duration: float
    offsets: list[int]
    bs: int = BLOCK
    keep: list[tuple[int, bytes]] = field(default_factory=list)
    counter: Any = None
    refill: str = ""  # refill.c's program, built (C_MODES' rows)
    seed: int = 0  # refill.c's offsets
    stall: float = float("nan")  # seconds: the worst lateness of a 1 ms timer in the run

    @property
    def mask(self) -> int:
        return len(self.offsets) - 1


async def _timed(env: Env, workers: list[Worker], ops_per_count: int = 1) -> float:
    """Warm up, clear the kept samples, run the workers until the deadline: ops/s.

    Every worker makes at least one read (`while not n or ...`), even one that starts
    after the deadline: a backend whose awaits never yield runs the first worker to the
    deadline before the others start, and a slow start must still leave reads to verify.

    Beside the timed run a task sleeps 1 ms at a time and records how late it wakes: a
    backend whose awaits complete without yielding starves the rest of the loop.
    """
    await asyncio.gather(*(w(perf_counter() + WARMUP) for w in workers))
    env.keep.clear()
    running = True
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while running:
            t = perf_counter()
            await asyncio.sleep(TICK)
            worst = max(worst, perf_counter() - t - TICK)

    tick = asyncio.get_running_loop().create_task(ticker())
    t0 = perf_counter()
    counts = await asyncio.gather(*(w(t0 + env.duration) for w in workers))
    elapsed = perf_counter() - t0
    running = False
    await tick
    env.stall = worst
    return sum(counts) * ops_per_count / elapsed


# -- the implementations ------------------------------------------------------------------


def _rate(env: Env, work: Callable[[float], int]) -> float:
    """A plain loop's ops/s: `work(deadline)` warmed up, the kept samples cleared, then
    timed until the deadline (it returns the reads it made)."""
    work(perf_counter() + WARMUP)
    env.keep.clear()
    t0 = perf_counter()
    n = work(t0 + env.duration)
    return n / (perf_counter() - t0)


def _sync(env: Env) -> float:
    fd, offs, mask, keep = env.fd, env.offsets, env.mask, env.keep
    counter = itertools.count()
    buf = aligned_buffer(env.bs)
    pread, preadv = os.pread, os.preadv

    def work(deadline: float) -> int:
        n = 0
        while not n or perf_counter() < deadline:
            i = next(counter)
            off = offs[i & mask]
            if env.direct:
                preadv(fd, [buf], off)
                if not (i & 63 and n):
                    keep.append((off, buf[: env.bs]))
            else:
                data = pread(fd, env.bs, off)
                if not (i & 63 and n):
                    keep.append((off, data))
            n += 1
        return n

    return _rate(env, work)


async def _executor(env: Env) -> float:
    loop = asyncio.get_running_loop()
    fd, offs, mask, keep = env.fd, env.offsets, env.mask, env.keep
    counter = itertools.count()
    run = loop.run_in_executor

    def make() -> Worker:
        buf = aligned_buffer(env.bs)

        async def worker(deadline: float) -> int:
            n = 0
            while not n or perf_counter() < deadline:
                i = next(counter)
                off = offs[i & mask]
                if env.direct:
                    await run(None, os.preadv, fd, [buf], off)
                    if not (i & 63 and n):
                        keep.append((off, buf[: env.bs]))
                else:
                    data = await run(None, os.pread, fd, env.bs, off)
                    if not (i & 63 and n):
                        keep.append((off, data))
                n += 1
            return n

        return worker

    return await _timed(env, [make() for _ in range(env.qd)])


async def _aiofiles(env: Env) -> float:
    import aiofiles  # type: ignore[import-untyped]

    flags = os.O_DIRECT if env.direct else 0

    def opener(path: str, f: int) -> int:
        return os.open(path, f | flags)

    # One file object per coroutine: aiofiles has no pread, so each read is seek + read,
    # which needs its own file position.
    files = [await aiofiles.open(env.path, "rb", buffering=0, opener=opener) for _ in range(env.qd)]
    return await _seek_and_read(env, files)


async def _seek_and_read(env: Env, files: list[Any]) -> float:
    """Time one aiofiles-style file object per coroutine: seek, then read (O_DIRECT:
    readinto an aligned buffer). Closes the files."""
    offs, mask, keep = env.offsets, env.mask, env.keep
    counter = itertools.count()

    def make(k: int) -> Worker:
        f = files[k]
        buf = aligned_buffer(env.bs)

        async def worker(deadline: float) -> int:
            n = 0
            while not n or perf_counter() < deadline:
                i = next(counter)
                off = offs[i & mask]
                await f.seek(off)
                if env.direct:
                    await f.readinto(buf)
                    if not (i & 63 and n):
                        keep.append((off, buf[: env.bs]))
                else:
                    data = await f.read(env.bs)
                    if not (i & 63 and n):
                        keep.append((off, data))
                n += 1
            return n

        return worker

    try:
        return await _timed(env, [make(k) for k in range(env.qd)])
    finally:
        for f in files:
            await f.close()


async def _aiofile_uring(env: Env, sqpoll: bool) -> float:
    import caio.linux_uring_asyncio as cu
    from aiofile import AIOFile

    loop = asyncio.get_running_loop()
    offs, mask, keep = env.offsets, env.mask, env.keep
    counter = itertools.count()
    context_class: Any = cu.AsyncioContext
    ctx = context_class(loop=loop, sqpoll=sqpoll)
    if sqpoll and not ctx.context.sqpoll:
        ctx.close()
        raise BenchError("caio could not set up SQPOLL here")
    fp = os.fdopen(os.dup(env.fd), "rb", buffering=0)
    afp = AIOFile.from_fp(fp, context=ctx)

    async def worker(deadline: float) -> int:
        n = 0
        while not n or perf_counter() < deadline:
            i = next(counter)
            off = offs[i & mask]
            data = await afp.read_bytes(env.bs, off)
            if not (i & 63 and n):
                keep.append((off, data))
            n += 1
        return n

    try:
        return await _timed(env, [worker] * env.qd)
    finally:
        await afp.close()
        fp.close()
        ctx.close()


async def _caio_aio(env: Env) -> float:
    import caio.linux_aio_asyncio as ca

    loop = asyncio.get_running_loop()
    fd, offs, mask, keep = env.fd, env.offsets, env.mask, env.keep
    counter = itertools.count()
    context_class: Any = ca.AsyncioContext
    ctx = context_class(loop=loop)
    read = ctx.read

    async def worker(deadline: float) -> int:
        n = 0
        while not n or perf_counter() < deadline:
            i = next(counter)
            off = offs[i & mask]
            data = await read(env.bs, fd, off)
            if not (i & 63 and n):
                keep.append((off, data))
            n += 1
        return n

    try:
        return await _timed(env, [worker] * env.qd)
    finally:
        ctx.close()


async def _pyuring(env: Env) -> float:
    import pyuring
    from pyuring.native.uring_ctx import UringCtx

    loop = asyncio.get_running_loop()
    fd, offs, mask, keep = env.fd, env.offsets, env.mask, env.keep
    counter = itertools.count()
    ctx = UringCtx(entries=max(64, 2 * env.qd))
    ua = pyuring.UringAsync(ctx)
    # UringAsync hands out completions, not per-request results: route them by user_data.
    # One waiter per coroutine lets one readable event deliver a whole burst of CQEs.
    waiters: dict[int, asyncio.Future[int]] = {}
    user_data = itertools.count(1)

    async def pump() -> None:
        while True:
            ud, res = await ua.wait_completion()
            waiters.pop(ud).set_result(res)

    pumps = [loop.create_task(pump()) for _ in range(env.qd)]

    def make() -> Worker:
        mem = aligned_buffer(env.bs)
        cbuf = (ctypes.c_char * env.bs).from_buffer(mem)
        addr = ctypes.c_void_p(ctypes.addressof(cbuf))
        buf = bytearray(env.bs)

        async def worker(deadline: float) -> int:
            n = 0
            while not n or perf_counter() < deadline:
                i = next(counter)
                off = offs[i & mask]
                ud = next(user_data)
                fut = loop.create_future()
                waiters[ud] = fut
                if env.direct:
                    ctx.read_async_ptr(fd, addr, env.bs, off, ud)
                    res = await fut
                    if not (i & 63 and n):
                        keep.append((off, mem[:res]))
                else:
                    ctx.read_async(fd, buf, off, ud)
                    res = await fut
                    data = bytes(buf) if res == env.bs else bytes(buf[: max(res, 0)])
                    if not (i & 63 and n):
                        keep.append((off, data))
                if res < 0:
                    raise OSError(-res, os.strerror(-res))
                n += 1
            return n

        worker.keepalive = (mem, cbuf)  # type: ignore[attr-defined]
        return worker

    try:
        return await _timed(env, [make() for _ in range(env.qd)])
    finally:
        for p in pumps:
            p.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        ua.close()
        ctx.close()


def _kernel_floor(env: Env, wall: bool = False) -> float:
    """Not a backend but a bound: reads per second of time spent inside io_uring_enter.

    With `wall`, the same loop timed whole (WAIT_LOOP): reads per second of a thread that
    does nothing but submit QD reads and wait for them in one io_uring_enter, then check
    them, in a loop; at QD 1 with O_DIRECT, the floor of io_uring for one read at a time.

    A private ring (not the loop's) gets QD READ SQEs, one per 4 KiB slot of a private
    mmap arena, then one io_uring_enter submits them and waits for all QD completions.
    Only that call (Ring.enter: a tail store, one ctypes syscall) is timed; filling SQEs
    and reaping CQEs run untimed, so this is what any io_uring user pays per read at this
    batch size before doing anything in Python.
    """
    from uringloop._ring import abi
    from uringloop._ring.ring import Ring

    fd, qd, bs = env.fd, env.qd, env.bs
    offs, mask, keep = env.offsets, env.mask, env.keep
    words = abi.SQE_SIZE // 8
    arena = mmap.mmap(-1, qd * bs)  # page-aligned slots: O_DIRECT accepts them
    cbuf = (ctypes.c_char * (qd * bs)).from_buffer(arena)
    base_addr = ctypes.addressof(cbuf)
    # The SQEs of one batch as u64 words; only the offsets change between batches.
    # Word 0: opcode | flags 0 | ioprio 0 | fd << 32; 1: off; 2: addr; 3: len | rw_flags 0
    # << 32; 4: user_data = the slot index; the rest zero.
    sq = array("Q", bytes(abi.SQE_SIZE * qd))
    sq[0::words] = array("Q", [int(abi.Op.READ) | (fd << 32)] * qd)
    sq[2::words] = array("Q", range(base_addr, base_addr + qd * bs, bs))
    sq[3::words] = array("Q", [bs] * qd)
    sq[4::words] = array("Q", range(qd))
    ring = Ring(max(qd, 8), 2 * max(qd, 8))
    queues = ring.queues  # as the loop's driver calls them, without Ring's forwarding
    sqe_map = memoryview(ring.sqes)
    sqe_q = sqe_map.cast("Q")
    batches = itertools.count()
    every_slot = list(range(qd))
    in_flight = 0  # reads submitted (or maybe submitted) whose CQEs were not reaped

    def work(deadline: float) -> tuple[int, float]:
        nonlocal in_flight
        n, inside = 0, 0.0
        while perf_counter() < deadline:
            first = next(batches) * qd
            batch = [offs[(first + j) & mask] for j in range(qd)]
            sq[1::words] = array("Q", batch)
            slots = queues.reserve(qd)
            if len(slots) != qd:
                raise BenchError(f"{FLOOR}: the SQ has {len(slots)} free slots, not {qd}")
            # Every batch is fully consumed, so the slots are contiguous save one wrap.
            k = min(qd, ring.sq_entries - slots[0] // abi.SQE_SIZE)
            start = slots[0] // 8
            sqe_q[start : start + k * words] = sq[: k * words]
            sqe_q[: (qd - k) * words] = sq[k * words :]
            in_flight = qd
            t0 = perf_counter()
            queues.enter(qd)
            inside += perf_counter() - t0
            cqes = ring.reap()
            in_flight = 0
            if len(cqes) != qd:
                raise BenchError(f"{FLOOR}: {len(cqes)} completions for {qd} reads")
            for _slot, res, _flags in cqes:
                if res < 0:
                    raise OSError(-res, os.strerror(-res))
                if res != bs:
                    raise BenchError(f"{FLOOR}: short read of {res} bytes")
            if sorted(c[0] for c in cqes) != every_slot:
                raise BenchError(f"{FLOOR}: completions do not match the slots submitted")
            for j in range(qd):
                if not ((first + j) & 63 and n + j):
                    keep.append((batch[j], arena[j * bs : (j + 1) * bs]))
            n += qd
        return n, inside

    try:
        ring.enable()
        work(perf_counter() + WARMUP)
        keep.clear()
        started = perf_counter()
        n, inside = work(started + env.duration)
        elapsed = perf_counter() - started
    finally:
        if in_flight:
            # enter() failed: the kernel may still write into the arena, so wait for those
            # completions, and if that fails too, keep the arena mapped for good.
            try:
                ring.enter(in_flight)
                in_flight = 0
            except OSError:
                pass
        # Ring.close() unmaps the SQEs: no view of them may be left.
        sqe_q.release()
        sqe_map.release()
        ring.close()
        del cbuf
        if in_flight:
            _ABANDONED.append(arena)
        else:
            arena.close()
    if not inside:
        raise BenchError(f"{FLOOR}: no batch ran")
    return n / elapsed if wall else n / inside


async def _uring(env: Env) -> float:
    loop: Any = asyncio.get_running_loop()
    fd, offs, mask, keep = env.fd, env.offsets, env.mask, env.keep
    counter = itertools.count()

    def make() -> Worker:
        buf = aligned_buffer(env.bs)

        async def worker(deadline: float) -> int:
            n = 0
            while not n or perf_counter() < deadline:
                i = next(counter)
                off = offs[i & mask]
                if env.direct:
                    await loop.preadinto(fd, buf, off)
                    if not (i & 63 and n):
                        keep.append((off, buf[: env.bs]))
                else:
                    data = await loop.pread(fd, env.bs, off)
                    if not (i & 63 and n):
                        keep.append((off, data))
                n += 1
            return n

        return worker

    return await _timed(env, [make() for _ in range(env.qd)])


def _copy_floor(env: Env) -> float:
    """Not a backend but a bound: pread_many's page-cache copies alone. The same batches of
    QD reads (their columns built beforehand) copied by the hot path's read_many_cached,
    the twin in use, through a CopyRing as a loop's pread_many copies, in a plain loop: no
    event loop, no await, no requests list."""
    from uringloop._ops.hotpath import COPY_RING, READ_MANY_CACHED

    qd, offs, mask, keep, pread = env.qd, env.offsets, env.mask, env.keep, os.pread
    fds, sizes = array("q", [env.fd]) * qd, array("q", [env.bs]) * qd
    batches = [array("q", [offs[(b * qd + j) & mask] for j in range(qd)]) for b in range(256)]

    ring = COPY_RING()

    def work(deadline: float) -> int:
        n = i = 0
        while not n or perf_counter() < deadline:
            column = batches[i & 255]
            answers, stopped = READ_MANY_CACHED(fds, sizes, column, qd, ring)
            if len(answers) != qd:
                if stopped not in (0, -errno.EAGAIN):
                    raise BenchError(f"{COPY_FLOOR}: {len(answers)} of {qd} copied ({stopped})")
                # A page RWF_NOWAIT will not copy (EAGAIN, or a copy short of it): not
                # cached, or marked for readahead (the warm-up's sequential read leaves such
                # marks; a read that may wait clears them). The rest of the batch is read
                # as the synchronous loop reads, as pread_many would send it to the ring.
                answers += [pread(env.fd, env.bs, off) for off in column[len(answers) :]]
            if not (i & 63 and n):
                keep.append((column[0], answers[0]))
            n += qd
            i += 1
        return n

    try:
        return _rate(env, work)
    finally:
        ring.close()


async def _uring_batched(env: Env) -> float:
    loop: Any = asyncio.get_running_loop()
    fd, offs, mask, keep, qd = env.fd, env.offsets, env.mask, env.keep, env.qd
    counter = itertools.count()
    every = max(1, 64 // qd)

    async def worker(deadline: float) -> int:
        # pread_many reads into the loop's page-aligned pool slots, so it also serves
        # O_DIRECT for 4 KiB blocks.
        n = 0
        while not n or perf_counter() < deadline:
            i = next(counter)
            base = i * qd
            reqs = [(fd, env.bs, offs[(base + j) & mask]) for j in range(qd)]
            datas = await loop.pread_many(reqs)
            if not (i % every and n):
                keep.append((reqs[0][2], datas[0]))
            n += 1
        return n

    return await _timed(env, [worker], ops_per_count=qd)


async def _uring_open(env: Env) -> float:
    """uringloop's file objects, used like aiofiles': one per coroutine, seek + read."""
    import uringloop

    files = [
        await uringloop.open(env.path, "rb", buffering=0, direct=env.direct) for _ in range(env.qd)
    ]
    return await _seek_and_read(env, files)


async def _machinery_floor(env: Env) -> float:
    """Not a backend but a bound: asyncio's task and future machinery on uringloop's Loop.

    The workers are uringloop's, but each read is a fake: a plain future, resolved with a
    ready bytes object by one callback per loop iteration that resolves every future queued
    since the last one (a driver completing a batch). What it costs per await is the task
    step, the future, the wake-up and the loop iteration shared by the batch: the part of
    a uringloop read that belongs to asyncio. (A real batch is resolved in the pre-select
    step, this one by a callback: one extra iteration per batch.) Its bytes are not read
    from the file, so its kept samples are not verified.
    """
    loop = asyncio.get_running_loop()
    offs, mask = env.offsets, env.mask
    counter = itertools.count()
    block = bytes(env.bs)
    queued: list[asyncio.Future[bytes]] = []

    def resolve() -> None:
        batch = queued[:]
        queued.clear()
        for fut in batch:
            fut.set_result(block)

    def fake_pread(fd: int, size: int, offset: int) -> asyncio.Future[bytes]:
        fut = loop.create_future()
        if not queued:
            loop.call_soon(resolve)
        queued.append(fut)
        return fut

    def make() -> Worker:
        async def worker(deadline: float) -> int:
            n = 0
            while not n or perf_counter() < deadline:
                i = next(counter)
                off = offs[i & mask]
                data = await fake_pread(env.fd, env.bs, off)
                if not (i & 63 and n):
                    env.keep.append((off, data))
                n += 1
            return n

        return worker

    return await _timed(env, [make() for _ in range(env.qd)])


RUNNERS: dict[str, tuple[str, Callable[[Env], Any]]] = {
    ASYNCIO: ("asyncio", _executor),
    UVLOOP: ("uvloop", _executor),
    AIOFILES: ("asyncio", _aiofiles),
    CAIO_SQPOLL: ("asyncio", lambda env: _aiofile_uring(env, True)),
    CAIO_URING: ("asyncio", lambda env: _aiofile_uring(env, False)),
    CAIO_AIO: ("asyncio", _caio_aio),
    PYURING: ("asyncio", _pyuring),
    URING: ("uringloop", _uring),
    BATCHED: ("uringloop", _uring_batched),
    URING_OPEN: ("uringloop", _uring_open),
    URING_POLL: ("uringloop", _uring),
    URING_RING: ("uringloop", _uring),
    MACHINERY: ("uringloop", _machinery_floor),
}
# Loop arguments of the rows that need them.
LOOP_KWARGS: dict[str, dict[str, Any]] = {
    URING_POLL: {"busy_poll": BUSY_POLL},
    URING_RING: {"inline": False},
}


def measure(impl: str, env: Env) -> float:
    """One timed run of `impl`: ops/s, after verifying the kept reads."""
    if impl == SYNC:
        rate = _sync(env)
    elif impl == FLOOR:
        rate = _kernel_floor(env)
    elif impl == WAIT_LOOP:
        rate = _kernel_floor(env, wall=True)
    elif impl == COPY_FLOOR:
        rate = _copy_floor(env)
    elif impl in C_MODES:
        # The program checks one read in 64 against a buffered pread itself, after timing.
        mode = C_MODES[impl]
        return run_refill(env.refill, env.path, env.qd, env.duration, WARMUP, env.seed, mode)[0]
    else:
        loop_name, fn = RUNNERS[impl]
        rate = run_on(loop_name, fn(env), **LOOP_KWARGS.get(impl, {}))
    if not env.keep:
        raise BenchError(f"{impl}: no reads were kept for verification")
    if impl != MACHINERY:  # its bytes are a stand-in, not read from the file
        verify(env.path, env.keep, impl)
    env.keep.clear()
    return rate


def run(cfg: Config) -> Report:
    mib = cfg.file_mib
    report = Report(NAME, f"randread: 4 KiB random reads over a {mib} MiB file (ops/s)")
    path = make_data_file(cfg, mib)
    warm_cache(path)
    rng = random.Random(cfg.seed)
    nblocks = mib * MiB // BLOCK
    offsets = [rng.randrange(nblocks) * BLOCK for _ in range(OFFSET_TABLE)]
    fd_buffered = os.open(path, os.O_RDONLY)
    fd_direct, direct_ok = open_direct(path)
    try:
        refill, refill_error = build_c_program("refill"), ""
    except BenchError as exc:
        refill, refill_error = "", str(exc)
    if not direct_ok:
        report.notes.append(
            "The filesystem refused O_DIRECT: the 'O_DIRECT' cases below ran buffered."
        )
    report.notes.append(
        f"File {path} ({mib} MiB). Page-cache cases read a file already in the page cache; "
        "QD = coroutines with one read in flight each (pread_many: reads per batch; the "
        "sync loop is always one read at a time). One read in 64 is checked against os.pread."
    )
    report.notes.append(
        f"'{FLOOR}' is a bound, not a backend: a private io_uring (not the loop's) is given "
        "QD READ SQEs at a time, filled by a few vectorised array stores, and one "
        "io_uring_enter submits them and waits for all of them; its ops/s divide the reads by "
        "the time spent inside that call alone. For page-cache reads it is the kernel's own "
        "cost per read through io_uring at that batch size, which any Python io_uring user "
        "(pread_many included) pays before doing any Python work; for O_DIRECT it includes "
        "waiting for the device. It is measured interleaved with the other rows and is left "
        "out of every 'best other async backend' comparison."
    )
    try:
        for mode, fd, direct in (("page cache", fd_buffered, False), ("O_DIRECT", fd_direct, True)):
            for qd in QDS + (() if direct else DEEP_QDS):
                impls: tuple[str, ...] = IMPLS if qd in QDS else DEEP_IMPLS
                if direct:  # (nothing is copied from the page cache there: the same reads)
                    impls = tuple(impl for impl in impls if impl not in (URING_RING, COPY_FLOOR))
                    if direct_ok:
                        impls += tuple(C_MODES)
                _run_case(
                    cfg,
                    report,
                    f"{mode}, QD {qd}",
                    path,
                    fd,
                    direct,
                    qd,
                    offsets,
                    impls,
                    refill,
                    refill_error,
                    cfg.seed,
                )
    finally:
        os.close(fd_buffered)
        os.close(fd_direct)
    report.notes.append(
        f"'{MACHINERY}' is a bound, not a backend: the uringloop rows' workers on a "
        "uringloop Loop, each read a plain future that one callback per loop iteration "
        "resolves with a ready bytes object, for all the futures queued since the last one. "
        "It is what asyncio's tasks, futures and wake-ups cost per await; uringloop's own "
        f"work per read is the cost per read of '{URING_RING}' minus this row's and minus the "
        "kernel floor's. The default Loop copies what the page cache holds directly, within a "
        "budget per loop iteration, and takes the ring for the rest: its reads have no such "
        "split."
    )
    _targets(report)
    _floor_note(report)
    _own_work_note(report)
    _direct_note(report)
    return report


def cost_split_us(report: Report, case: str) -> tuple[float, float, float] | None:
    """(whole cost of a ring read, kernel floor, asyncio machinery floor) per read in
    `case`, in microseconds (None: a row is missing)."""
    rates = [report.median(case, impl) for impl in (URING_RING, FLOOR, MACHINERY)]
    if not all(rates):
        return None
    uring, floor, machinery = (1e6 / r for r in rates if r)
    return uring, floor, machinery


def own_work_us(report: Report, case: str) -> float | None:
    """uringloop's own work per ring read in `case`, in microseconds: its whole cost per
    read minus the kernel floor's and minus asyncio's machinery's (None: a row is missing).
    Of the ring-only row: a read that copies from the page cache has no ring work to split."""
    split = cost_split_us(report, case)
    return None if split is None else split[0] - split[1] - split[2]


def _own_work_note(report: Report) -> None:
    parts = []
    for case in report.cases():
        split = cost_split_us(report, case)
        if split is None or not case.startswith("page cache"):
            continue
        uring, floor, machinery = split
        parts.append(
            f"{case}: {uring:.2f} us per read = kernel {floor:.2f} + asyncio {machinery:.2f} "
            f"+ uringloop's own {uring - floor - machinery:.2f}"
        )
    if parts:
        report.notes.append(
            "uringloop's own work per read: "
            + "; ".join(parts)
            + ". At QD 1 the split means little: the fake driver's batch is one read and costs "
            "a loop iteration of its own, where uringloop's lone read completes inline."
        )


def _floor_note(report: Report) -> None:
    """Put the page cache QD 64 kernel floor in microseconds beside the sync loop's cost:
    what is left of the sync loop's time per read is all pread_many may spend in Python
    to beat it."""
    case = "page cache, QD 64"
    floor, sync, batched = (report.median(case, impl) for impl in (FLOOR, SYNC, BATCHED))
    if not floor or not sync:
        return
    floor_us, sync_us = 1e6 / floor, 1e6 / sync
    text = (
        f"{case}: io_uring_enter alone costs {floor_us:.2f} us per read in batches of 64, the "
        f"whole sync os.pread loop {sync_us:.2f} us per read ({floor_us / sync_us:.0%}), so "
        f"pread_many beats the sync loop only if all its Python work per read (filling SQEs, "
        f"reaping CQEs, copying out, the await) costs under {sync_us - floor_us:.2f} us"
    )
    if batched:
        text += f"; here it took {1e6 / batched:.2f} us per read in all"
    copies = report.median(case, COPY_FLOOR)
    if copies:
        text += (
            f". Cached data, pread_many copies (non-blocking reads, through a small ring of "
            f"their own in the compiled twin) instead: those copies alone, without the loop, "
            f"cost {1e6 / copies:.2f} us per read"
            f" ({copies / sync:.2f}x the sync loop's speed)"
        )
    report.notes.append(text + ".")


def _direct_note(report: Report) -> None:
    """For each O_DIRECT case: uringloop against the C program that waits as the loop does,
    and both C programs against fio: how much of the distance to fio is the way of
    refilling rather than Python."""
    parts = []
    for qd in QDS:
        case = f"O_DIRECT, QD {qd}"
        uring, batch, each, fio = (report.median(case, i) for i in (URING, C_BATCH, C_EACH, FIO))
        if not uring or not batch or not each:
            continue
        text = f"{case}: uringloop {uring / batch:.2f}x '{C_BATCH}', {uring / each:.2f}x '{C_EACH}'"
        if fio:
            text += f"; against fio: those two {batch / fio:.2f}x and {each / fio:.2f}x"
        parts.append(text)
    if parts:
        report.notes.append("O_DIRECT bounds (median ops/s ratios): " + "; ".join(parts) + ".")


def _run_case(
    cfg: Config,
    report: Report,
    case: str,
    path: str,
    fd: int,
    direct: bool,
    qd: int,
    offsets: list[int],
    impls: tuple[str, ...] = IMPLS,
    refill: str = "",
    refill_error: str = "",
    seed: int = 0,
) -> None:
    """Time `impls` in `case`, interleaved, then fio. `refill`: refill.c's program, or ""
    with `refill_error` saying why it was not built (its rows are then skipped with that
    reason); `seed` + the repetition: its offsets."""
    rows = {impl: Row(case, impl, "ops/s", True, reference=impl == URING) for impl in impls}
    # Long enough for every coroutine to start and finish a read (QD 4096: 0.1 s at least).
    duration = max(cfg.duration, qd * 25e-6)
    report.rows.extend(rows.values())
    failed: set[str] = set()
    stalls: dict[str, list[float]] = {impl: [] for impl in impls}

    def one(impl: str, rep: int) -> None:
        if impl in failed:
            return
        env = Env(path, fd, direct, qd, duration, offsets, refill=refill, seed=seed + rep)
        try:
            if impl in C_MODES and not refill:
                raise BenchError(refill_error)
            rows[impl].samples.append(measure(impl, env))
            if env.stall == env.stall:
                stalls[impl].append(env.stall * 1000)
        except (OSError, SystemError, BenchError) as exc:
            if isinstance(exc, BenchError) and "wrong bytes" in str(exc):
                raise
            failed.add(impl)
            if direct and impl in (CAIO_SQPOLL, CAIO_URING, CAIO_AIO):
                # caio reads into bytes objects it allocates: never aligned, so the kernel
                # refuses O_DIRECT (EINVAL), which caio raises as a SystemError.
                rows[impl].skipped = f"failed: caio cannot read O_DIRECT (unaligned buffers): {exc}"
            elif impl in C_MODES and str(exc).startswith("not built: "):
                rows[impl].skipped = str(exc)
            else:
                rows[impl].skipped = f"failed: {exc!r}"
            rows[impl].skipped = rows[impl].skipped[:160]

    interleaved(cfg.reps, list(impls), one, rows)
    for impl, values in stalls.items():
        if values:
            rows[impl].extra[STALL] = statistics.median(values)
    notes = {
        SYNC: "one thread, blocking: always QD 1",
        URING_POLL: f"opt-in: Loop(busy_poll={BUSY_POLL:g}) spins on the ring up to that long "
        "before sleeping",
        URING_RING: "opt-in: every read an io_uring READ, none copied from the page cache "
        "directly; the row the own-work split uses",
        FLOOR: "not a backend: QD READs per io_uring_enter on a private ring, ops/s of time "
        "inside that call only" + (" (includes waiting for the device)" if direct else ""),
        COPY_FLOOR: "not a backend: the same batches copied by the hot path's read_many_cached "
        "(RWF_NOWAIT reads: from 12 a batch, one io_uring_enter of a CopyRing for up to 64 of "
        "them in the compiled twin; preadv2 each otherwise) in a plain loop"
        + ("; pread_many of one request makes pread's copy instead" if qd == 1 else ""),
        WAIT_LOOP: "not a backend: the same private ring, timed whole: a thread that only "
        "submits QD reads and waits for them in one io_uring_enter",
        MACHINERY: "not a backend: asyncio's tasks and futures on uringloop's Loop, each "
        "read a future resolved in batches by a fake driver",
        C_BATCH: "not a backend: examples/bench/refill.c, no Python: the loop's ring setup, "
        "sleeps in epoll on its eventfd, then an enter reaps (up to 20 completions since Linux "
        "6.13, as the loop's) and one submits a new read for each, as the loop's pre-select "
        "step does",
        C_EACH: "not a backend: the same C program submitting each new read with an "
        "io_uring_enter of its own as soon as its completion is seen, as fio does",
    }
    for impl, note in notes.items():
        if impl in rows:
            rows[impl].note = note
    if cfg.fio and fio_available():
        fio_row = Row(case, FIO, "ops/s", True, note="same file, same depth")
        report.rows.append(fio_row)
        for _ in range(cfg.reps):
            try:
                iops, _mibs = run_fio(
                    path,
                    "randread",
                    BLOCK,
                    qd,
                    direct,
                    cfg.duration + WARMUP,
                    os.path.getsize(path),
                )
            except BenchError as exc:
                fio_row.skipped = str(exc)[:160]
                break
            fio_row.samples.append(iops)
    elif cfg.fio:
        report.rows.append(Row(case, FIO, "ops/s", True, skipped="fio is not installed"))


def _targets(report: Report) -> None:
    def best_other(case: str) -> float | None:
        vals = [report.median(case, impl) for impl in ASYNC_COMPETITORS]
        present = [v for v in vals if v is not None]
        return max(present) if present else None

    def rel(case: str, a: str, b: str | None, bval: float | None = None) -> float | None:
        av = report.median(case, a)
        bv = bval if b is None else report.median(case, b)
        if av is None or bv is None or bv == 0:
            return None
        return av / bv

    pc64, pc1 = "page cache, QD 64", "page cache, QD 1"
    for qd in (64, *DEEP_QDS):
        report.targets.append(
            target_at_most(
                f"page cache QD {qd}: uringloop's own work per read <= 0.5 us",
                own_work_us(report, f"page cache, QD {qd}"),
                0.5,
            )
        )
    for qd in DEEP_QDS:
        case = f"page cache, QD {qd}"
        report.targets.append(
            target(
                f"page cache QD {qd}: uringloop >= 1.2x best other async backend",
                rel(case, URING, None, best_other(case)),
                1.2,
            )
        )
    report.targets += [
        target(
            "page cache QD 64: uringloop.open (seek + read) >= 0.8x loop.pread",
            rel(pc64, URING_OPEN, URING),
            0.8,
        ),
        target(
            "page cache QD 64: uringloop >= 1.5x best other async backend",
            rel(pc64, URING, None, best_other(pc64)),
            1.5,
        ),
        target("page cache QD 64: uringloop >= 10x aiofiles", rel(pc64, URING, AIOFILES), 10),
        target("page cache QD 64: uringloop >= 8x uvloop + executor", rel(pc64, URING, UVLOOP), 8),
        target(
            "page cache QD 1: uringloop >= best other async backend",
            rel(pc1, URING, None, best_other(pc1)),
            1.0,
        ),
        target("page cache QD 64: pread_many > sync os.pread loop", rel(pc64, BATCHED, SYNC), 1.0),
        target(
            "O_DIRECT QD 16: uringloop >= 0.9x fio io_uring",
            rel("O_DIRECT, QD 16", URING, FIO),
            0.9,
        ),
        target(
            "O_DIRECT QD 64: uringloop >= 0.9x fio io_uring",
            rel("O_DIRECT, QD 64", URING, FIO),
            0.9,
        ),
        target(
            "O_DIRECT QD 1: uringloop >= 0.9x sync os.preadv loop",
            rel("O_DIRECT, QD 1", URING, SYNC),
            0.9,
        ),
        target(
            "O_DIRECT QD 1, opt-in busy_poll=50 us: uringloop >= 0.9x sync os.preadv loop",
            rel("O_DIRECT, QD 1", URING_POLL, SYNC),
            0.9,
        ),
        target(
            "O_DIRECT QD 1: uringloop >= 0.9x the io_uring submit-and-wait loop",
            rel("O_DIRECT, QD 1", URING, WAIT_LOOP),
            0.9,
        ),
    ]


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
