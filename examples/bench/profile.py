"""Profile uringloop's side of one benchmark scenario with cProfile.

    python -m examples.bench.profile SCENARIO [--seconds S] [--top N] [--sort tottime]
                                              [--no-profile] [--no-gc] [--driver-split]
                                              [--gc-time]

Scenarios: randread-qd1, randread-qd64, randread-qd1024, randread-qd4096, ring-qd64 and
ring-qd4096 (the same reads on a Loop(inline=False), every one on the ring), machinery-qd64,
machinery-qd4096 (the fake driver's floor), open-seekread-qd64 (uringloop.open's file
objects, seek + read), batched-qd1, batched-qd64, batched-qd1024, batched-qd4096
(pread_many), direct-qd16, direct-qd64 (uringloop reads), wakeup-nop (foreign NOP round
trips), call-soon and call-later (the loop-overhead chains), smallfiles-read-seq,
smallfiles-read-all and smallfiles-write-seq (uringloop.open over 1000 small files, files a
second), text-write and binary-write (a file's write() of one 55-byte line, writes a
second), text-lines and binary-lines (`async for line in f` over a file of 55-byte lines in
the page cache, lines a second), text-readline and binary-readline (readline() calls over
the same file, lines a second), text-read and binary-read (read(55) calls over the same
file, calls a second).
`--driver-split` times the ring driver's steps instead (writing the SQEs, the enter system
call, reaping and delivering), per completed operation; `--gc-time` the share of the run
the cyclic garbage collector took. For a sampling profile without cProfile's overhead, run
the same command under py-spy:

    py-spy record -r 2000 -f raw -o out.txt -- python -m examples.bench.profile randread-qd1
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
from collections.abc import Callable
from time import perf_counter
from typing import Any

from . import filecalls, overhead, randread, smallfiles, wakeup
from .common import (
    BLOCK,
    OFFSET_TABLE,
    Config,
    MiB,
    data_file,
    ensure_directory,
    open_direct,
    run_on,
    warm_cache,
)


def _randread(impl: str, qd: int, direct: bool) -> Callable[[float], Any]:
    def go(seconds: float) -> Any:
        cfg = Config.make(False)
        path = data_file(cfg, cfg.file_mib)
        warm_cache(path)
        rng = random.Random(1)
        nblocks = cfg.file_mib * MiB // BLOCK
        offsets = [rng.randrange(nblocks) * BLOCK for _ in range(OFFSET_TABLE)]
        fd = open_direct(path)[0] if direct else os.open(path, os.O_RDONLY)
        try:
            env = randread.Env(path, fd, direct, qd, seconds, offsets)
            return f"{randread.measure(impl, env):,.0f} ops/s"
        finally:
            os.close(fd)

    return go


def _wakeup(seconds: float) -> Any:
    n = max(100, int(seconds / 0.0004))
    lat, delta = run_on("uringloop", wakeup._session(wakeup._rt_nop, -1, n, False, b""))
    lat.sort()
    return f"p50 {lat[len(lat) // 2]:.1f} us over {len(lat)} round trips; (subs, wakeups) {delta}"


def _chain(workload: str) -> Callable[[float], Any]:
    def go(seconds: float) -> Any:
        return f"{run_on('uringloop', overhead.WORKLOADS[workload][1](seconds)):,.0f} /s"

    return go


def _smallfiles(case: str) -> Callable[[float], Any]:
    """Passes of smallfiles' `case` through uringloop.open over its 1000 files, for
    `seconds`: files a second."""

    def go(seconds: float) -> Any:
        readers, writers = smallfiles._make_files(Config.make(False), smallfiles.FILES)
        done = elapsed = 0.0
        while elapsed < seconds:
            per_file = smallfiles.measure(case, smallfiles.URING_OPEN, readers, writers)
            elapsed += per_file * smallfiles.FILES / 1e6
            done += smallfiles.FILES
        return f"{done / elapsed:,.0f} files/s"

    return go


def _scratch_path(name: str) -> str:
    """A path for a scenario's file in the benchmarks' directory (made if missing)."""
    cfg = Config.make(False)
    ensure_directory(cfg)
    return os.path.join(cfg.directory, name)


def _writes(mode: str) -> Callable[[float], Any]:
    def scenario(seconds: float) -> Any:
        """One 55-byte line at a time into a file open in `mode` ("w" or "wb"): writes a
        second."""
        line: Any = smallfiles.LINE if mode == "w" else smallfiles.LINE.encode()

        async def go() -> float:
            import uringloop

            path = _scratch_path("writes.txt")
            done = 0
            async with uringloop.open(path, mode) as f:
                start = perf_counter()
                while perf_counter() - start < seconds:
                    for _ in range(1000):
                        await f.write(line)
                    done += 1000
                elapsed = perf_counter() - start
            os.unlink(path)
            return done / elapsed

        return f"{run_on('uringloop', go()):,.0f} writes/s"

    return scenario


def _reads(mode: str, how: str) -> Callable[[float], Any]:
    def scenario(seconds: float) -> Any:
        """Over a cached file of 4 MiB of 55-byte lines, opened in `mode` again at each
        pass: filecalls' pass of `how` ("lines": `async for line in f`; "readline":
        readline() calls to its end; "read": read(55) calls to its end); calls a second."""

        async def go() -> float:
            import uringloop

            path = _scratch_path("lines.txt")
            lines = (4 << 20) // len(smallfiles.LINE)
            filecalls.write_lines_file(path, lines)
            done = 0
            start = perf_counter()
            while perf_counter() - start < seconds:
                done += await filecalls.async_pass(uringloop.open, path, mode, how, lines)
            elapsed = perf_counter() - start
            os.unlink(path)
            return done / elapsed

        return f"{run_on('uringloop', go()):,.0f} calls/s"

    return scenario


SCENARIOS: dict[str, Callable[[float], Any]] = {
    "randread-qd1": _randread(randread.URING, 1, False),
    "randread-qd64": _randread(randread.URING, 64, False),
    "randread-qd1024": _randread(randread.URING, 1024, False),
    "randread-qd4096": _randread(randread.URING, 4096, False),
    "ring-qd64": _randread(randread.URING_RING, 64, False),
    "ring-qd4096": _randread(randread.URING_RING, 4096, False),
    "machinery-qd64": _randread(randread.MACHINERY, 64, False),
    "machinery-qd1024": _randread(randread.MACHINERY, 1024, False),
    "machinery-qd4096": _randread(randread.MACHINERY, 4096, False),
    "open-seekread-qd64": _randread(randread.URING_OPEN, 64, False),
    "batched-qd1": _randread(randread.BATCHED, 1, False),
    "batched-qd64": _randread(randread.BATCHED, 64, False),
    "batched-qd1024": _randread(randread.BATCHED, 1024, False),
    "batched-qd4096": _randread(randread.BATCHED, 4096, False),
    "direct-qd1": _randread(randread.URING, 1, True),
    "direct-qd1-wait-loop": _randread(randread.WAIT_LOOP, 1, True),
    "direct-qd16": _randread(randread.URING, 16, True),
    "direct-qd64": _randread(randread.URING, 64, True),
    "wakeup-nop": _wakeup,
    "call-soon": _chain("call_soon chain"),
    "call-later": _chain("call_later(0) chain"),
    "smallfiles-read-seq": _smallfiles(smallfiles.READ_SEQ),
    "smallfiles-read-all": _smallfiles(smallfiles.READ_ALL),
    "smallfiles-write-seq": _smallfiles(smallfiles.WRITE_SEQ),
    "text-write": _writes("w"),
    "binary-write": _writes("wb"),
    "text-lines": _reads("r", "lines"),
    "binary-lines": _reads("rb", "lines"),
    "text-readline": _reads("r", "readline"),
    "binary-readline": _reads("rb", "readline"),
    "text-read": _reads("r", "read"),
    "binary-read": _reads("rb", "read"),
}


def _split_driver() -> Callable[[], str]:
    """Time the ring driver's three steps of each flush (write the SQEs: `_fill`; the
    io_uring_enter system call: `_enter`; reap and deliver the completions: `_reap`) with
    a clock around each call, the writing step without the enters and reaps it makes when
    the SQ fills. Returns what prints them, in microseconds per completed operation. A
    lone operation's entry (RingDriver.run_lone, the eager case) is written outside
    `_fill` and not counted: the split is for batches (QD 16 and up)."""
    from uringloop._driver import RingDriver

    spent = {"write SQEs": 0.0, "enter": 0.0, "reap+deliver": 0.0}
    counts = {"completed": 0}
    fill, enter, reap = RingDriver._fill, RingDriver._enter, RingDriver._reap

    def timed_fill(self: RingDriver) -> None:
        nested = spent["enter"] + spent["reap+deliver"]
        start = perf_counter()
        fill(self)
        elapsed = perf_counter() - start
        spent["write SQEs"] += elapsed - (spent["enter"] + spent["reap+deliver"] - nested)

    def timed_enter(self: RingDriver, min_complete: int = 0) -> bool:
        start = perf_counter()
        try:
            return enter(self, min_complete)
        finally:
            spent["enter"] += perf_counter() - start

    def timed_reap(self: RingDriver) -> int:
        start = perf_counter()
        got = reap(self)
        spent["reap+deliver"] += perf_counter() - start
        counts["completed"] += got
        return got

    RingDriver._fill = timed_fill  # type: ignore[method-assign]
    RingDriver._enter = timed_enter  # type: ignore[method-assign]
    RingDriver._reap = timed_reap  # type: ignore[method-assign]

    def report() -> str:
        n = max(counts["completed"], 1)
        parts = ", ".join(f"{name} {total / n * 1e6:.3f}" for name, total in spent.items())
        return f"driver, µs per completed operation: {parts} ({counts['completed']:,} completed)"

    return report


def _time_gc() -> Callable[[float], str]:
    """Time the cyclic garbage collector's collections (gc.callbacks) from now on. Returns
    what prints them, given the scenario's wall time in seconds."""
    spent = [0.0, 0.0, 0.0]
    counts = [0, 0, 0]
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = perf_counter()
        else:
            spent[info["generation"]] += perf_counter() - started[0]
            counts[info["generation"]] += 1

    gc.callbacks.append(on_gc)

    def report(wall: float) -> str:
        parts = ", ".join(
            f"generation {g}: {counts[g]} in {spent[g] * 1e3:.0f} ms" for g in range(3)
        )
        return f"cyclic GC: {100 * sum(spent) / wall:.1f} % of {wall:.2f} s ({parts})"

    return report


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m examples.bench.profile")
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--seconds", type=float, default=2.0, help="seconds the scenario runs")
    p.add_argument("--top", type=int, default=25, help="how many functions to print")
    p.add_argument("--sort", default="tottime", help="a pstats sort key (tottime, cumtime, ...)")
    p.add_argument("--no-profile", action="store_true", help="just run it (for py-spy)")
    p.add_argument(
        "--no-gc", action="store_true", help="with the cyclic garbage collector disabled"
    )
    p.add_argument(
        "--driver-split",
        action="store_true",
        help="no cProfile: time the driver's steps (write SQEs, enter, reap and deliver) "
        "per completed operation",
    )
    p.add_argument(
        "--gc-time",
        action="store_true",
        help="no cProfile: the share of the run the cyclic garbage collector took",
    )
    args = p.parse_args()
    if args.no_gc:
        gc.disable()
    run = SCENARIOS[args.scenario]
    if args.gc_time:
        gc_report = _time_gc()
        start = perf_counter()
        print(run(args.seconds))
        print(gc_report(perf_counter() - start))
        return
    if args.driver_split:
        report = _split_driver()
        print(run(args.seconds))
        print(report())
        return
    if args.no_profile:
        print(run(args.seconds))
        return
    prof = cProfile.Profile()
    prof.enable()
    result = run(args.seconds)
    prof.disable()
    print(f"{args.scenario}: {result} (under cProfile: slower than unprofiled)")
    pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
