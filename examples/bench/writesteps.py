"""Each step of writing small files one after another, timed: open, write, close.

    python -m examples.bench.writesteps [--files N] [--rounds R] [--dir DIR]

Three ways of writing the same 5.5 KB to each of N files (O_CREAT | O_TRUNC), one file
after another: the built-in's system calls (os.open, os.write, os.close), uringloop's raw
operations (`open_fd`, `pwrite_all`, `close_fd`) and `uringloop.open(path, "w")` with 100
`write()` calls of a line (its write goes out at close). Each is run in a fresh process,
once free to use every CPU and once pinned to one CPU (sched_setaffinity before the loop
or its ring exist), the rounds alternating; the figures are the medians over the rounds
of the mean microseconds per file of each step.

The kernel hands an open that creates or truncates, and on ext4 every buffered write, to
an io-wq worker thread. On a machine whose idle CPUs are slow to wake (a virtual
machine), the worker and the loop's thread each wait for a CPU at every hand-off; pinned,
the worker runs on the loop's CPU as soon as the loop sleeps. Comparing the two shows
what those wake-ups cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from .smallfiles import LINE, LINES
from .smallfiles import TEXT_BYTES as DATA

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
WAYS = ("built-in system calls", "uringloop raw operations", "uringloop.open")
STEPS = ("open", "write", "close")


def _sync(paths: list[str]) -> list[float]:
    spent = [0.0, 0.0, 0.0]
    for path in paths:
        t0 = perf_counter()
        fd = os.open(path, FLAGS, 0o666)
        t1 = perf_counter()
        try:
            os.write(fd, DATA)
        finally:
            t2 = perf_counter()
            os.close(fd)
        t3 = perf_counter()
        spent[0] += t1 - t0
        spent[1] += t2 - t1
        spent[2] += t3 - t2
    return spent


async def _steps(
    paths: list[str],
    open_: Callable[[str], Awaitable[Any]],
    write: Callable[[Any], Awaitable[object]],
    close: Callable[[Any], Awaitable[object]],
) -> list[float]:
    """Seconds spent in each step, over `paths`: what open_ gives is written and closed."""
    spent = [0.0, 0.0, 0.0]
    for path in paths:
        t0 = perf_counter()
        opened = await open_(path)
        t1 = perf_counter()
        try:
            await write(opened)
        finally:
            t2 = perf_counter()
            await close(opened)
        t3 = perf_counter()
        spent[0] += t1 - t0
        spent[1] += t2 - t1
        spent[2] += t3 - t2
    return spent


async def _raw(paths: list[str]) -> list[float]:
    loop: Any = asyncio.get_running_loop()
    return await _steps(
        paths,
        lambda path: loop.open_fd(path, FLAGS, 0o666),
        lambda fd: loop.pwrite_all(fd, DATA, 0),
        loop.close_fd,
    )


async def _file(paths: list[str]) -> list[float]:
    import uringloop

    async def write(f: Any) -> None:
        for _ in range(LINES):
            await f.write(LINE)

    return await _steps(paths, lambda path: uringloop.open(path, "w"), write, lambda f: f.close())


def _child(directory: str, files: int, pinned: bool) -> dict[str, list[float]]:
    """One round in this process: each way's µs per file of each step."""
    import uringloop

    if pinned:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    paths = [os.path.join(directory, f"{i}.txt") for i in range(files)]
    _sync(paths)  # the files exist, as in every timed pass
    spent = {
        WAYS[0]: _sync(paths),
        WAYS[1]: uringloop.run(_raw(paths)),
        WAYS[2]: uringloop.run(_file(paths)),
    }
    return {way: [s / files * 1e6 for s in steps] for way, steps in spent.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.bench.writesteps", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where the files go (default: a temporary one)")
    parser.add_argument("--child", choices=("free", "pinned"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 1:
        parser.error("--files and --rounds must be at least 1")
    if args.child:
        print(json.dumps(_child(args.dir, args.files, args.child == "pinned")))
        return 0
    results: dict[str, list[dict[str, list[float]]]] = {"free": [], "pinned": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        for _ in range(args.rounds):
            for mode in results:
                command = [sys.executable, "-m", "examples.bench.writesteps", "--child", mode]
                command += ["--dir", directory, "--files", str(args.files)]
                out = subprocess.run(command, check=True, capture_output=True, text=True)
                results[mode].append(json.loads(out.stdout))
    print(f"{args.files} files of {len(DATA)} bytes, one after another; median of "
          f"{args.rounds} rounds, µs per file")  # fmt: skip
    print(f"| CPUs | way | {' | '.join(STEPS)} | total | vs built-in |")
    print("|---|---|" + "---:|" * (len(STEPS) + 2))
    for mode, rounds in results.items():
        base = 0.0
        for way in WAYS:
            steps = [statistics.median(r[way][i] for r in rounds) for i in range(len(STEPS))]
            total = sum(steps)
            base = base or total
            cells = " | ".join(f"{s:.1f}" for s in steps)
            print(f"| {mode} | {way} | {cells} | {total:.1f} | {total / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
