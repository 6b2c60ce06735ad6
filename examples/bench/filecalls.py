"""Benchmark 8, filecalls: the calls made on one open file, through uringloop.open, the
built-in open() and aiofiles.

An async file library's everyday work after the open: iterate over lines, read a line
or a few bytes at a time, write a line at a time. Each pass opens a file of 55-byte lines in the
page cache (1 MiB; 256 KiB with --quick), makes the calls to its end (or writes as many
lines to a new file) and closes it; the figure is the pass's wall time per call, in
microseconds, the open and close included. The synchronous loop is the built-in open()
doing the same.

    python -m examples.bench.filecalls [--quick] [--json PATH]
"""

from __future__ import annotations

import os
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
)
from .smallfiles import LINE

NAME = "filecalls"
SIZE = 1 << 20
SIZE_QUICK = 256 << 10
READ_SIZE = len(LINE)

SYNC = "sync loop (built-in open)"
URING_OPEN = "uringloop.open"
AIOFILES = "aiofiles"
IMPLS = (SYNC, URING_OPEN, AIOFILES)
# case -> (mode, what each call does: "lines", "readline", "read" (read(READ_SIZE)) or
# "write")
CASES: dict[str, tuple[str, str]] = {
    "text: async for line in f": ("r", "lines"),
    "binary: async for line in f": ("rb", "lines"),
    "text: readline() to the end": ("r", "readline"),
    "binary: readline() to the end": ("rb", "readline"),
    f"text: read({READ_SIZE}) to the end": ("r", "read"),
    f"binary: read({READ_SIZE}) to the end": ("rb", "read"),
    "text: write() of one line": ("w", "write"),
    "binary: write() of one line": ("wb", "write"),
}


def _sync_pass(path: str, mode: str, how: str, calls: int) -> int:
    """The built-in's pass; returns how many calls it made."""
    if how == "write":
        line: Any = LINE if mode == "w" else LINE.encode()
        with open(path, mode) as f:
            for _ in range(calls):
                f.write(line)
        return calls
    done = 0
    with open(path, mode) as f:
        if how == "lines":
            for _line in f:
                done += 1
        elif how == "readline":
            while f.readline():
                done += 1
        else:
            while f.read(READ_SIZE):
                done += 1
    return done


def write_lines_file(path: str, calls: int) -> None:
    """The file the reading passes read: `calls` lines of LINE, left in the page cache."""
    with open(path, "w") as text:
        text.write(LINE * calls)
    with open(path, "rb") as data:
        data.read()


async def async_pass(opener: Callable[..., Any], path: str, mode: str, how: str, calls: int) -> int:
    """One pass through an async open() (uringloop.open or aiofiles.open); returns how many
    calls it made (reading, up to the end of the file)."""
    if how == "write":
        line: Any = LINE if mode == "w" else LINE.encode()
        async with opener(path, mode) as f:
            for _ in range(calls):
                await f.write(line)
        return calls
    done = 0
    async with opener(path, mode) as f:
        if how == "lines":
            async for _line in f:
                done += 1
        elif how == "readline":
            while await f.readline():
                done += 1
        else:
            while await f.read(READ_SIZE):
                done += 1
    return done


def _uring_opener() -> Callable[..., Any]:
    import uringloop

    return uringloop.open


def _aiofiles_opener() -> Callable[..., Any]:
    import aiofiles  # type: ignore[import-untyped]

    return aiofiles.open  # type: ignore[no-any-return]


async def _timed(coro: Coroutine[Any, Any, int]) -> tuple[float, int]:
    t0 = perf_counter()
    done = await coro
    return perf_counter() - t0, done


def measure(impl: str, case: str, source: str, target: str, calls: int) -> float:
    """Microseconds per call of one pass of `impl` in `case` (its result checked)."""
    mode, how = CASES[case]
    path = target if how == "write" else source
    if impl == SYNC:
        t0 = perf_counter()
        done = _sync_pass(path, mode, how, calls)
        elapsed = perf_counter() - t0
    else:
        loop_name, opener = (
            ("uringloop", _uring_opener())
            if impl == URING_OPEN
            else ("asyncio", _aiofiles_opener())
        )
        elapsed, done = run_on(loop_name, _timed(async_pass(opener, path, mode, how, calls)))
    if how == "write" and os.path.getsize(path) != calls * len(LINE):
        raise BenchError(f"{impl}, {case}: {os.path.getsize(path)} bytes written")
    if done != calls:
        raise BenchError(f"{impl}, {case}: {done} calls, not {calls}")
    return elapsed / calls * 1e6


def run(cfg: Config) -> Report:
    size = SIZE_QUICK if cfg.quick else SIZE
    calls = size // len(LINE)
    report = Report(NAME, "filecalls: the calls on one open file, microseconds per call")
    ensure_directory(cfg)
    top = os.path.join(cfg.directory, "filecalls")
    os.makedirs(top, exist_ok=True)
    CREATED_TREES.append(top)
    source, target = os.path.join(top, "lines.txt"), os.path.join(top, "written.txt")
    write_lines_file(source, calls)
    report.notes.append(
        f"A file of {calls} lines of {len(LINE)} bytes ({calls * len(LINE)} bytes) in "
        f"{cfg.directory}, in the page cache, opened with the default buffering. Each pass "
        f"opens it, iterates over its lines or calls read({READ_SIZE}) to its end, and "
        f"closes it; writing, it opens a file 'w', writes {calls} lines one call each and "
        "closes it. The figure is the pass's time per call, the open and close included. "
        "Lower is better."
    )
    report.notes.append(
        "uringloop.open's text and buffered files answer a call their buffers can serve (a "
        "line read ahead, bytes or characters already read, bytes that fit the write "
        "buffer) with one coroutine and no operation; the other calls read or write "
        "through the loop (cached bytes copied at once). aiofiles runs every call on the "
        "loop's thread pool."
    )
    for case in CASES:
        rows = {i: Row(case, i, "us/call", False, reference=i == URING_OPEN) for i in IMPLS}
        report.rows.extend(rows.values())

        def one(impl: str, rep: int, case: str = case, rows: dict[str, Row] = rows) -> None:
            rows[impl].samples.append(measure(impl, case, source, target, calls))

        interleaved(cfg.reps, list(IMPLS), one, rows)
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
