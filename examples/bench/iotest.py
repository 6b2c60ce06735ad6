"""Benchmark 1, iotest: the experiment of the QEMU lost-wakeup fix ("aio-posix: notify main
loop when SQEs are queued").

A foreign thread (the vCPU's role) reads the file with O_DIRECT in 128 KiB chunks, in
batches of 16: it sleeps 1 ms, queues the batch through the loop, then waits for each
completion in order and sleeps 1 ms after each (the "processing"). The loop (the main
loop's role) is otherwise idle except for a periodic 499 ms timer. Variants:

- uringloop: the foreign submission wakes the loop (the fix);
- uringloop Loop(foreign_wakeup=False): nobody wakes the loop, the batch waits for the
  next timer tick (the bug: ~0.5 s per batch);
- the same, while a task keeps the loop awake: it reads a pipe fed every 0.2 ms by a
  child process (the busy ssh socket of the QEMU report; a child, so the chatter holds no GIL here);
- the floor: the same thread calls os.preadv itself, on stock asyncio and on uvloop (the
  loop idles beside it);
- controls: the thread's sleeps alone, no I/O, beside an idle loop and beside the busy
  one (stock asyncio): how much the machine's timer wakeups cost, and how much of that a
  busy neighbour hides (an idle vCPU is slower to wake).

Times are seconds per 128 MiB (runs that read less are scaled, and say so).

    python -m examples.bench.iotest [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import mmap
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .common import (
    BenchError,
    Config,
    MiB,
    Report,
    Row,
    filesystem_of,
    interleaved,
    loop_factory,
    open_direct,
    target,
)
from .common import data_file as make_data_file

NAME = "iotest"
CHUNK = 128 * 1024
BATCH = 16
DELAY = 0.001  # seconds: before each batch submit and after each completion
TICK = 0.499  # seconds: the main loop's periodic timer
CHATTER_INTERVAL = 0.0002  # seconds between the busy peer's writes
SEED_MIB = 128

FIX = "uringloop (fix: wakeup)"
BUG = "uringloop, foreign_wakeup=False (bug)"
BUSY = "uringloop, foreign_wakeup=False, busy loop"
FLOOR_ASYNCIO = "floor: thread os.preadv, stock asyncio"
FLOOR_UVLOOP = "floor: thread os.preadv, uvloop"
SLEEPS = "control: the sleeps alone, idle loop"
SLEEPS_BUSY = "control: the sleeps alone, busy loop"
IMPLS = (FIX, BUG, BUSY, FLOOR_ASYNCIO, FLOOR_UVLOOP, SLEEPS, SLEEPS_BUSY)

_CHATTER = (
    "import os, sys, time\n"
    "while True:\n"
    "    try:\n"
    "        os.write(1, b'x')\n"
    "    except OSError:\n"
    "        sys.exit(0)\n"
    f"    time.sleep({CHATTER_INTERVAL})\n"
)


def _vcpu_ring(loop: Any, fd: int, views: list[memoryview], nchunks: int) -> None:
    """The vCPU thread on the ring: batches through loop.threadsafe.preadinto."""
    preadinto = loop.threadsafe.preadinto
    for first in range(0, nchunks, BATCH):
        time.sleep(DELAY)
        n = min(BATCH, nchunks - first)
        futures = [preadinto(fd, views[j], (first + j) * CHUNK) for j in range(n)]
        for f in futures:
            if f.result() != CHUNK:
                raise BenchError("short read")
            time.sleep(DELAY)


def _vcpu_sync(loop: Any, fd: int, views: list[memoryview], nchunks: int) -> None:
    """The floor: the vCPU thread reads itself, one chunk at a time."""
    del loop
    for first in range(0, nchunks, BATCH):
        time.sleep(DELAY)
        for j in range(min(BATCH, nchunks - first)):
            if os.preadv(fd, [views[j]], (first + j) * CHUNK) != CHUNK:
                raise BenchError("short read")
            time.sleep(DELAY)


def _vcpu_sleeps(loop: Any, fd: int, views: list[memoryview], nchunks: int) -> None:
    """Control: the same sleeps with no I/O (what the machine's timer wakeups cost)."""
    del loop, fd, views
    for first in range(0, nchunks, BATCH):
        time.sleep(DELAY)
        for _ in range(min(BATCH, nchunks - first)):
            time.sleep(DELAY)


async def _experiment(
    vcpu: Callable[[Any, int, list[memoryview], int], None],
    fd: int,
    nchunks: int,
    busy: bool,
) -> tuple[float, Any]:
    loop: Any = asyncio.get_running_loop()
    mem = mmap.mmap(-1, CHUNK * BATCH)
    views = [memoryview(mem)[j * CHUNK : (j + 1) * CHUNK] for j in range(BATCH)]
    timer: list[asyncio.TimerHandle] = []

    def tick() -> None:
        timer[:] = [loop.call_later(TICK, tick)]

    tick()
    chatter = None
    reader_task = None
    if busy:
        chatter = subprocess.Popen([sys.executable, "-c", _CHATTER], stdout=subprocess.PIPE)
        assert chatter.stdout is not None
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), chatter.stdout
        )

        async def keep_busy() -> None:
            while await reader.read(4096):
                pass

        reader_task = loop.create_task(keep_busy())
        await reader.read(1)  # the peer is up and writing
    done: asyncio.Future[float] = loop.create_future()
    failure: list[BaseException] = []

    def thread_main() -> None:
        t0 = time.perf_counter()
        try:
            vcpu(loop, fd, views, nchunks)
        except BaseException as exc:
            failure.append(exc)
        elapsed = time.perf_counter() - t0
        loop.call_soon_threadsafe(done.set_result, elapsed)

    thread = threading.Thread(target=thread_main, name="vcpu")
    stats_before = loop.uring_stats() if hasattr(loop, "uring_stats") else None
    thread.start()
    try:
        elapsed = await done
    finally:
        thread.join()
        timer[0].cancel()
        if chatter is not None:
            transport.close()
            chatter.kill()
            chatter.wait()
        if reader_task is not None:
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)
    if failure:
        raise failure[0]
    stats = loop.uring_stats() if stats_before is not None else None
    for v in views:
        v.release()
    mem.close()
    return elapsed, stats


def run(cfg: Config) -> Report:
    mib = min(SEED_MIB, cfg.file_mib)
    if cfg.quick:
        mib = min(mib, 8)
    bug_mib = min(mib, 8) if cfg.quick else mib
    report = Report(
        NAME, "iotest: the QEMU lost-wakeup experiment (s per 128 MiB, lower is better)"
    )
    path = make_data_file(cfg, cfg.file_mib)
    mnt, fstype = filesystem_of(path)
    fd, direct = open_direct(path)
    report.notes.append(
        f"{mib} MiB read from {path} ({fstype} on {mnt}"
        + (", not tmpfs" if fstype != "tmpfs" else ", tmpfs!")
        + ("" if direct else "; O_DIRECT refused, buffered reads")
        + f") in {CHUNK // 1024} KiB chunks, batches of {BATCH}, 1 ms before each batch and "
        "after each completion; 499 ms periodic timer on the loop. The requested sleeps add "
        f"up to {(mib * MiB // CHUNK) * (1 + 1 / BATCH):.0f} ms per {mib} MiB"
        + (f"; times are scaled to {SEED_MIB} MiB" if mib != SEED_MIB else "")
        + ". The QEMU report (real disk): bug 25.76 s, fix 1.30 s, busy 1.23 s."
    )
    if bug_mib != mib:
        report.notes.append(
            f"The bug variant reads only {bug_mib} MiB per run here (it costs ~0.5 s per "
            "batch); its time is scaled to 128 MiB like the others."
        )
    rows = {
        impl: Row("O_DIRECT 128 KiB x 16, foreign thread", impl, "s", False, reference=impl == FIX)
        for impl in IMPLS
    }
    report.rows.extend(rows.values())
    wake_stats: dict[str, list[float]] = {FIX: [], BUSY: []}
    bug_reps = max(1, min(cfg.reps, 2)) if not cfg.quick else 1
    try:

        def one(impl: str, rep: int) -> None:
            if impl == BUG and rep >= bug_reps:
                return
            size = bug_mib if impl == BUG else mib
            nchunks = size * MiB // CHUNK
            if impl in (FIX, BUG, BUSY):
                coro = _experiment(_vcpu_ring, fd, nchunks, busy=impl == BUSY)
                factory = loop_factory("uringloop", foreign_wakeup=impl == FIX)
            elif impl in (SLEEPS, SLEEPS_BUSY):
                coro = _experiment(_vcpu_sleeps, fd, nchunks, busy=impl == SLEEPS_BUSY)
                factory = loop_factory("asyncio")
            else:
                coro = _experiment(_vcpu_sync, fd, nchunks, busy=False)
                factory = loop_factory("asyncio" if impl == FLOOR_ASYNCIO else "uvloop")
            with asyncio.Runner(loop_factory=factory) as runner:
                elapsed, stats = runner.run(coro)
            rows[impl].samples.append(elapsed * SEED_MIB / size)
            if stats is not None and impl in wake_stats and stats.foreign_submissions:
                wake_stats[impl].append(100 * stats.wakeups_sent / stats.foreign_submissions)

        interleaved(cfg.reps, list(IMPLS), one, rows)
    finally:
        os.close(fd)
    for impl, values in wake_stats.items():
        if values:
            rows[impl].note = f"{sorted(values)[len(values) // 2]:.0f} wakeups / 100 submissions"
    floor = rows[FLOOR_ASYNCIO]
    for r in rows.values():
        if r.samples and floor.samples:
            r.extra["x floor"] = r.median / floor.median
    if rows[BUG].samples and len(rows[BUG].samples) < cfg.reps:
        rows[BUG].note = f"{len(rows[BUG].samples)} repetition(s): ~0.5 s per batch"
    fix, busy, bug = rows[FIX], rows[BUSY], rows[BUG]
    report.targets += [
        target(
            "fix within 3% of the busy-loop variant (busy / fix >= 0.97)",
            busy.median / fix.median if fix.samples and busy.samples else None,
            0.97,
        ),
        target(
            "fix within 5% of the floor (floor / fix >= 0.95)",
            floor.median / fix.median if fix.samples and floor.samples else None,
            0.95,
        ),
        target(
            "bug at least 10x slower than the fix",
            bug.median / fix.median if fix.samples and bug.samples else None,
            10,
        ),
    ]
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
