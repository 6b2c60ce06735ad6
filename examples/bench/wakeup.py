"""Benchmark 4, wakeup: a foreign thread's operation while the loop is idle.

A thread queues one operation on a loop that is asleep (nothing to do but a 499 ms
timer) and waits for the result; it sleeps 0.3 ms between round trips so the loop is back
asleep each time. Beside uringloop's loop.threadsafe.nop()/pread(), the same round trip
through call_soon_threadsafe on stock asyncio and uvloop (for the read: the callback
calls os.pread on the loop thread). Latencies in microseconds; the p50 column is the
median over repetitions of each repetition's p50, the p90/p99/max (all) columns pool all runs.

With the loop busy (a task spinning on asyncio.sleep(0)), count wakeup writes (the eventfd;
the issue says "self-pipe", the notifier of the first design) per
foreign submission from loop.uring_stats(): a loop that is awake needs no wakeup.

    python -m examples.bench.wakeup [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .common import (
    BLOCK,
    BenchError,
    Config,
    Report,
    Row,
    Target,
    interleaved,
    percentile,
    run_on,
    target,
)
from .common import data_file as make_data_file

NAME = "wakeup"
GAP = 0.0003  # seconds the thread sleeps between round trips
TICK = 0.499

NOP = "NOP round trip, idle loop"
READ = "4 KiB read round trip, idle loop"
WRITES = "wakeup writes per 100 foreign submissions"

U_NOP = "uringloop threadsafe.nop()"
U_CST = "uringloop call_soon_threadsafe"
A_CST = "asyncio call_soon_threadsafe"
V_CST = "uvloop call_soon_threadsafe"
A_RCT = "asyncio run_coroutine_threadsafe"
U_READ = "uringloop threadsafe.pread()"
A_READ = "asyncio call_soon_threadsafe + os.pread"
V_READ = "uvloop call_soon_threadsafe + os.pread"
IDLE = "uringloop, idle loop"
BUSY = "uringloop, busy loop (sleep(0) task)"

RoundTrip = Callable[[Any, int], object]


def _rt_nop(loop: Any, fd: int) -> object:
    return loop.threadsafe.nop().result()


def _rt_read(loop: Any, fd: int) -> object:
    return loop.threadsafe.pread(fd, BLOCK, 0).result()


def _rt_cst(loop: Any, fd: int) -> object:
    f: concurrent.futures.Future[None] = concurrent.futures.Future()
    loop.call_soon_threadsafe(f.set_result, None)
    return f.result()


async def _nothing() -> None:
    return None


def _rt_rct(loop: Any, fd: int) -> object:
    return asyncio.run_coroutine_threadsafe(_nothing(), loop).result()


def _read_and_set(f: concurrent.futures.Future[bytes], fd: int) -> None:
    f.set_result(os.pread(fd, BLOCK, 0))


def _rt_cst_read(loop: Any, fd: int) -> object:
    f: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    loop.call_soon_threadsafe(_read_and_set, f, fd)
    return f.result()


CASES: dict[str, tuple[str, str, RoundTrip]] = {
    # impl: (case, loop, round trip)
    U_NOP: (NOP, "uringloop", _rt_nop),
    U_CST: (NOP, "uringloop", _rt_cst),
    A_CST: (NOP, "asyncio", _rt_cst),
    V_CST: (NOP, "uvloop", _rt_cst),
    A_RCT: (NOP, "asyncio", _rt_rct),
    U_READ: (READ, "uringloop", _rt_read),
    A_READ: (READ, "asyncio", _rt_cst_read),
    V_READ: (READ, "uvloop", _rt_cst_read),
}


async def _session(
    rt: RoundTrip, fd: int, n: int, busy: bool, expect: bytes
) -> tuple[list[float], Any]:
    """Run `n` round trips from a new thread; return latencies (us) and stats delta."""
    loop: Any = asyncio.get_running_loop()
    timer = [loop.call_later(TICK, lambda: None)]

    def tick() -> None:
        timer[0] = loop.call_later(TICK, tick)

    timer[0].cancel()
    tick()
    stop = False

    async def spin() -> None:
        while not stop:
            await asyncio.sleep(0)

    spinner = loop.create_task(spin()) if busy else None
    await asyncio.sleep(0.01)
    done: asyncio.Future[None] = loop.create_future()
    lat: list[float] = []
    failure: list[BaseException] = []

    def thread_main() -> None:
        try:
            first = rt(loop, fd)
            if expect and first != expect:
                raise BenchError("the read returned wrong bytes")
            for _ in range(10):  # warm-up
                time.sleep(GAP)
                rt(loop, fd)
            clock = time.perf_counter_ns
            for _ in range(n):
                time.sleep(GAP)
                t = clock()
                rt(loop, fd)
                lat.append((clock() - t) / 1000)
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.call_soon_threadsafe(done.set_result, None)

    before = loop.uring_stats() if hasattr(loop, "uring_stats") else None
    thread = threading.Thread(target=thread_main)
    thread.start()
    await done
    thread.join()
    after = loop.uring_stats() if before is not None else None
    stop = True
    if spinner is not None:
        await spinner
    timer[0].cancel()
    if failure:
        raise failure[0]
    delta = None
    if before is not None and after is not None:
        delta = (
            after.foreign_submissions - before.foreign_submissions,
            after.wakeups_sent - before.wakeups_sent,
        )
    return lat, delta


def run(cfg: Config) -> Report:
    n = 100 if cfg.quick else 1000
    n_busy = 50 if cfg.quick else 200
    report = Report(NAME, "wakeup: a foreign thread's round trip through a sleeping loop (us)")
    path = make_data_file(cfg, cfg.file_mib)
    fd = os.open(path, os.O_RDONLY)
    expect = os.pread(fd, BLOCK, 0)
    report.notes.append(
        f"{n} round trips per repetition, {GAP * 1e3:.1f} ms apart; the loop has only a 499 ms "
        f"timer. The busy case: {n_busy} NOP round trips while a task spins on sleep(0) "
        "(each round trip then also waits for the GIL: CPython's 5 ms switch interval)."
    )
    rows = {
        impl: Row(case, impl, "us", False, reference=impl in (U_NOP, U_READ))
        for impl, (case, _, _) in CASES.items()
    }
    report.rows.extend(rows.values())
    pooled: dict[str, list[float]] = {impl: [] for impl in CASES}
    writes = {
        IDLE: Row(WRITES, IDLE, "per 100", False),
        BUSY: Row(WRITES, BUSY, "per 100", False),
    }
    busy_lat: list[float] = []

    def one(impl: str, rep: int) -> None:
        if impl in writes:
            busy = impl == BUSY
            lat, delta = run_on(
                "uringloop", _session(_rt_nop, fd, n if not busy else n_busy, busy, b"")
            )
            if busy:
                busy_lat.extend(lat)
            assert delta is not None
            subs, sent = delta
            writes[impl].samples.append(100 * sent / subs if subs else float("nan"))
            return
        _case, loop_name, rt = CASES[impl]
        lat, _ = run_on(
            loop_name,
            _session(rt, fd, n, False, expect if CASES[impl][0] == READ else b""),
        )
        lat.sort()
        rows[impl].samples.append(percentile(lat, 50))
        pooled[impl].extend(lat)

    try:
        interleaved(cfg.reps, [*CASES, IDLE, BUSY], one, {**rows, **writes})
    finally:
        os.close(fd)
    for impl, values in pooled.items():
        values.sort()
        rows[impl].extra = {
            "p90 (all)": percentile(values, 90),
            "p99 (all)": percentile(values, 99),
            "max (all)": values[-1] if values else float("nan"),
        }
    report.rows.extend(writes.values())
    if busy_lat:
        busy_lat.sort()
        writes[BUSY].note = f"round trip p50 {percentile(busy_lat, 50):.0f} us while busy"
    u, a, r = rows[U_NOP], rows[A_CST], rows[A_RCT]
    value = a.median / u.median if u.samples and a.samples else None
    report.targets.append(
        target(
            "p50 NOP round trip >= 0.9x stock asyncio call_soon_threadsafe's (speed ratio)",
            value,
            0.9,
        )
    )
    value = r.median / u.median if u.samples and r.samples else None
    report.targets.append(
        target("p50 NOP round trip faster than asyncio run_coroutine_threadsafe's", value, 1.0)
    )
    b = writes[BUSY]
    report.targets.append(
        Target(
            "busy loop: wakeup writes < 1 per 100 foreign submissions",
            f"{b.median:.2f}" if b.samples else "n/a",
            (b.median < 1) if b.samples else None,
        )
    )
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
