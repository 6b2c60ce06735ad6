"""Benchmark 5, loop overhead: work with no file I/O at all.

uringloop runs its pre-select step on every loop iteration; with nothing queued it must
cost almost nothing. Four workloads, each on uringloop, stock asyncio and uvloop:

- TCP echo over loopback with the streams API: one client, 64-byte ping-pong;
- a call_soon chain: each callback schedules the next (one callback per iteration);
- a call_later(0) chain: the same through the timer heap;
- a task switching with await asyncio.sleep(0).

    python -m examples.bench.overhead [--quick] [--json PATH]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from .common import Config, Report, Row, interleaved, run_on, target

NAME = "overhead"
LOOPS = ("uringloop", "asyncio", "uvloop")
LABEL = {"uringloop": "uringloop", "asyncio": "stock asyncio", "uvloop": "uvloop"}
MSG = b"x" * 64
CHECK = 256  # iterations between clock reads in the callback chains


async def _echo(duration: float) -> float:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:

        async def pingpong(deadline: float) -> int:
            n = 0
            while perf_counter() < deadline:
                writer.write(MSG)
                if await reader.readexactly(len(MSG)) != MSG:
                    raise RuntimeError("echo returned different bytes")
                n += 1
            return n

        await pingpong(perf_counter() + 0.02)
        t0 = perf_counter()
        n = await pingpong(t0 + duration)
        return n / (perf_counter() - t0)
    finally:
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def _chain(duration: float, timer: bool) -> float:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    count = 0
    deadline = 0.0
    schedule: Callable[..., Any] = (lambda cb: loop.call_later(0, cb)) if timer else loop.call_soon

    def step() -> None:
        nonlocal count
        count += 1
        if not count % CHECK and perf_counter() >= deadline:
            done.set_result(count)
            return
        schedule(step)

    deadline = perf_counter() + 0.02
    schedule(step)
    await done
    done = loop.create_future()
    count = 0
    t0 = perf_counter()
    deadline = t0 + duration
    schedule(step)
    n = await done
    return n / (perf_counter() - t0)


async def _sleep0(duration: float) -> float:
    async def spin(deadline: float) -> int:
        n = 0
        while True:
            for _ in range(CHECK):
                await asyncio.sleep(0)
            n += CHECK
            if perf_counter() >= deadline:
                return n

    await spin(perf_counter() + 0.02)
    t0 = perf_counter()
    n = await spin(t0 + duration)
    return n / (perf_counter() - t0)


WORKLOADS: dict[str, tuple[str, Callable[[float], Coroutine[Any, Any, float]]]] = {
    "TCP echo, 64 B ping-pong": ("round trips/s", _echo),
    "call_soon chain": ("callbacks/s", lambda d: _chain(d, timer=False)),
    "call_later(0) chain": ("callbacks/s", lambda d: _chain(d, timer=True)),
    "task await sleep(0)": ("switches/s", _sleep0),
}


def run(cfg: Config) -> Report:
    report = Report(NAME, "loop overhead: no file I/O (higher is better)")
    report.notes.append(
        "Each workload on a fresh loop; uringloop's ring is idle throughout, so the "
        "difference to stock asyncio is the cost of its pre-select step and selector wrapper."
    )
    for case, (unit, fn) in WORKLOADS.items():
        rows = {
            name: Row(case, LABEL[name], unit, True, reference=name == "uringloop")
            for name in LOOPS
        }
        report.rows.extend(rows.values())

        def one(name: str, rep: int, fn: Any = fn, rows: dict[str, Row] = rows) -> None:
            rows[name].samples.append(run_on(name, fn(cfg.duration)))

        interleaved(cfg.reps, list(LOOPS), one, rows)
        u, a = rows["uringloop"], rows["asyncio"]
        report.targets.append(
            target(
                f"{case}: uringloop within 5% of stock asyncio (ratio >= 0.95)",
                u.median / a.median if u.samples and a.samples else None,
                0.95,
            )
        )
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
