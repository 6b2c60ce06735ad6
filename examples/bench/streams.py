"""Benchmark 9, streams: reads and writes at a pipe's position that wait for the pipe.

Latency: the loop is idle with one read of an empty pipe pending; a thread writes one byte
and the time from the write to the read's return is taken (microseconds). uringloop's
`loop.pread(fd, 1)` (on the ring), beside the selector's way on uringloop, stock asyncio
and uvloop (`add_reader`, then `os.read`).

Throughput: 8 MiB written into a pipe in 1 MiB writes that a thread drains in 64 KiB
reads, so that most writes wait for room (MB/s). uringloop's `loop.pwrite(fd, data)` at
the position (each short write's rest written again), beside the same blocking
`os.write` loop on the loop's thread (the pipe's reader is another thread).

    python -m examples.bench.streams [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

from .common import BenchError, Config, Report, Row, interleaved, percentile, run_on

NAME = "streams"
GAP = 0.002  # seconds the writer thread waits before each byte: the loop is asleep by then
TOTAL = 8 << 20
CHUNK = 1 << 20

LATENCY = "1-byte pipe read, idle loop: write to return"
THROUGHPUT = "8 MiB into a pipe a thread drains"

U_RING = "uringloop loop.pread(fd, 1)"
U_SEL = "uringloop add_reader + os.read"
A_SEL = "asyncio add_reader + os.read"
V_SEL = "uvloop add_reader + os.read"
U_WRITE = "uringloop loop.pwrite(fd, data)"
A_WRITE = "asyncio, os.write on the loop's thread"

LATENCY_CASES = {U_RING: "uringloop", U_SEL: "uringloop", A_SEL: "asyncio", V_SEL: "uvloop"}
WRITE_CASES = {U_WRITE: "uringloop", A_WRITE: "asyncio"}


async def _read_ring(fd: int) -> bytes:
    return await asyncio.get_running_loop().pread(fd, 1)  # type: ignore[attr-defined, no-any-return]


async def _read_selector(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 1)


async def _latency(ring: bool, n: int) -> list[float]:
    """`n` round trips: the loop waits in a read of an empty pipe; a thread writes a byte."""
    r, w = os.pipe()
    written: list[int] = []

    def writer() -> None:
        for _ in range(n + 5):
            time.sleep(GAP)
            written.append(time.perf_counter_ns())
            os.write(w, b"x")

    read = _read_ring if ring else _read_selector
    thread = threading.Thread(target=writer)
    thread.start()
    lat: list[float] = []
    try:
        for i in range(n + 5):
            data = await read(r)
            now = time.perf_counter_ns()
            if data != b"x":
                raise BenchError(f"the read returned {data!r}")
            if i >= 5:  # (warm-up)
                lat.append((now - written[i]) / 1000)
    finally:
        thread.join()
        os.close(r)
        os.close(w)
    return lat


async def _through(ring: bool) -> float:
    """Seconds to write TOTAL bytes into a pipe another thread drains."""
    r, w = os.pipe()
    data = memoryview(os.urandom(CHUNK))
    drained = [0]

    def drain() -> None:
        while drained[0] < TOTAL:
            drained[0] += len(os.read(r, 1 << 16))

    thread = threading.Thread(target=drain)
    loop: Any = asyncio.get_running_loop()
    start = time.perf_counter()
    thread.start()
    try:
        for _ in range(TOTAL // CHUNK):
            done = 0
            while done < CHUNK:
                if ring:
                    done += await loop.pwrite(w, data[done:])
                else:
                    done += os.write(w, data[done:])
        thread.join()
    finally:
        os.close(r)
        os.close(w)
    if drained[0] != TOTAL:
        raise BenchError(f"the reader drained {drained[0]} bytes of {TOTAL}")
    return time.perf_counter() - start


def run(cfg: Config) -> Report:
    n = 50 if cfg.quick else 300
    report = Report(NAME, "streams: reads and writes at a pipe's position that wait")
    report.notes.append(
        f"Latency: {n} round trips per repetition, a byte every {GAP * 1e3:.0f} ms; p50 per "
        "repetition, p90/max pooled. Throughput: 8 MiB in 1 MiB writes, drained in 64 KiB reads."
    )
    lat_rows = {
        impl: Row(LATENCY, impl, "us", False, reference=impl == U_RING) for impl in LATENCY_CASES
    }
    write_rows = {
        impl: Row(THROUGHPUT, impl, "MB/s", True, reference=impl == U_WRITE) for impl in WRITE_CASES
    }
    report.rows.extend([*lat_rows.values(), *write_rows.values()])
    pooled: dict[str, list[float]] = {impl: [] for impl in LATENCY_CASES}

    def one(impl: str, rep: int) -> None:
        if impl in LATENCY_CASES:
            lat = run_on(LATENCY_CASES[impl], _latency(impl == U_RING, n))
            lat.sort()
            lat_rows[impl].samples.append(percentile(lat, 50))
            pooled[impl].extend(lat)
        else:
            seconds = run_on(WRITE_CASES[impl], _through(impl == U_WRITE))
            write_rows[impl].samples.append(TOTAL / seconds / 1e6)

    interleaved(cfg.reps, [*LATENCY_CASES, *WRITE_CASES], one, {**lat_rows, **write_rows})
    for impl, values in pooled.items():
        values.sort()
        lat_rows[impl].extra = {
            "p90 (all)": percentile(values, 90),
            "max (all)": values[-1] if values else float("nan"),
        }
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
