"""Benchmark 6, threadio: blocking file I/O from one plain thread, each route side by side.

One thread makes 4 KiB random reads, one at a time (QD 1) or as a batch of 16:

- `uringloop.threads` as it routes by default: a single call is the plain system call
  in the thread, a batch (`pread_many`) one io_uring_enter on the thread's own ring;
- the same functions with `loop=`: through a uringloop loop running in another thread,
  QEMU's pattern (queue, wake the loop, wait for the completion);
- the thread's own system calls (`os.pread`, `os.preadv`), one per read.

In reads per second of the thread; page cache (the file read once first) and O_DIRECT.

    python -m examples.bench.threadio [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

from .common import (
    BLOCK,
    OFFSET_TABLE,
    Config,
    MiB,
    Report,
    Row,
    aligned_buffer,
    interleaved,
    open_direct,
    target,
    warm_cache,
)
from .common import data_file as make_data_file

NAME = "threadio"
BATCH = 16
WARMUP = 0.05  # seconds of each run not counted

THREADS = "uringloop.threads (default route)"
VIA_LOOP = "uringloop.threads(loop=...) (through a loop)"
OWN = "the thread's own os.pread / os.preadv"

PC_QD1 = "page cache, QD 1 (one read per call)"
DIRECT_QD1 = "O_DIRECT, QD 1 (one read per call)"
DIRECT_BATCH = f"O_DIRECT, a batch of {BATCH} reads per call"
CASES = (PC_QD1, DIRECT_QD1, DIRECT_BATCH)
IMPLS = (THREADS, VIA_LOOP, OWN)


def _timed(duration: float, step: Callable[[int], int]) -> float:
    """Reads per second: `step(i)` does some reads and returns how many."""
    end_warm = perf_counter() + WARMUP
    i = 0
    while perf_counter() < end_warm:
        i += 1
        step(i)
    n = 0
    start = perf_counter()
    deadline = start + duration
    while True:
        i += 1
        n += step(i)
        now = perf_counter()
        if now >= deadline:
            return n / (now - start)


def _steps(case: str, impl: str, fd: int, offsets: list[int], loop: object) -> Callable[[int], int]:
    import uringloop.threads as threads

    mask = len(offsets) - 1
    via: dict[str, Any] = {"loop": loop} if impl == VIA_LOOP else {}
    if case == PC_QD1:
        if impl == OWN:
            return lambda i: len(os.pread(fd, BLOCK, offsets[i & mask])) // BLOCK
        return lambda i: len(threads.pread(fd, BLOCK, offsets[i & mask], **via)) // BLOCK
    buf = aligned_buffer(BLOCK)
    if case == DIRECT_QD1:
        if impl == OWN:
            return lambda i: os.preadv(fd, [buf], offsets[i & mask]) // BLOCK
        return lambda i: threads.preadinto(fd, buf, offsets[i & mask], **via) // BLOCK
    bufs = [aligned_buffer(BLOCK) for _ in range(BATCH)]
    if impl == OWN:

        def loop_of_preadv(i: int) -> int:
            base = i * BATCH
            for j, b in enumerate(bufs):
                os.preadv(fd, [b], offsets[(base + j) & mask])
            return BATCH

        return loop_of_preadv

    def batch(i: int) -> int:
        base = i * BATCH
        got = threads.pread_many(
            [(fd, BLOCK, offsets[(base + j) & mask]) for j in range(BATCH)], **via
        )
        return len(got)

    return batch


def run(cfg: Config) -> Report:
    import uringloop

    report = Report(NAME, "threadio: one plain thread's blocking 4 KiB reads (reads/s)")
    path = make_data_file(cfg, cfg.file_mib)
    warm_cache(path)
    rng = random.Random(cfg.seed)
    nblocks = cfg.file_mib * MiB // BLOCK
    offsets = [rng.randrange(nblocks) * BLOCK for _ in range(OFFSET_TABLE)]
    buffered = os.open(path, os.O_RDONLY)
    direct_fd, direct = open_direct(path)
    report.notes.append(
        f"4 KiB reads at random offsets of a {cfg.file_mib} MiB file, by one thread; "
        f"{cfg.duration:g} s per run. `loop=` rows go through a uringloop loop running in "
        "another thread (idle otherwise)."
        + ("" if direct else " O_DIRECT was refused here: those cases read buffered.")
    )
    rows = {
        (case, impl): Row(case, impl, "reads/s", True, reference=impl == THREADS)
        for case in CASES
        for impl in IMPLS
    }
    report.rows.extend(rows.values())
    loop = uringloop.Loop()
    started = threading.Event()
    loop.call_soon(started.set)
    runner = threading.Thread(target=loop.run_forever, name="bench-loop")
    runner.start()
    started.wait(10)

    def one(key: str, rep: int) -> None:
        case, impl = key.split("|")
        fd = buffered if case == PC_QD1 else direct_fd
        step = _steps(case, impl, fd, offsets, loop)
        box: list[float] = []
        worker = threading.Thread(target=lambda: box.append(_timed(cfg.duration, step)))
        worker.start()
        worker.join()
        rows[case, impl].samples.append(box[0])

    try:
        keys = [f"{case}|{impl}" for case in CASES for impl in IMPLS]
        interleaved(cfg.reps, keys, one)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
        os.close(buffered)
        os.close(direct_fd)

    def rel(case: str, impl: str) -> float | None:
        a, b = rows[case, THREADS], rows[case, impl]
        return a.median / b.median if a.samples and b.samples else None

    report.targets += [
        target(
            "threads QD 1, page cache: >= 0.8x the thread's own os.pread", rel(PC_QD1, OWN), 0.8
        ),
        target(
            "threads QD 1, O_DIRECT: >= 0.8x the thread's own os.preadv",
            rel(DIRECT_QD1, OWN),
            0.8,
        ),
        target(
            f"threads batch of {BATCH} O_DIRECT reads: >= 2x a loop of {BATCH} os.preadv",
            rel(DIRECT_BATCH, OWN),
            2.0,
        ),
    ]
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
