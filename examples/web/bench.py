"""Load comparison: the aiohttp and FastAPI apps on stock asyncio, uvloop and uringloop.

    python examples/web/bench.py [--apps aiohttp,fastapi] [--paths file,plain]
                                 [--seconds 3] [--connections 32] [--rounds 5]
                                 [--client auto|wrk|python]

Starts every app on every loop once, each in its own process on 127.0.0.1 (a free port),
and loads one at a time: `GET /file/f64k.bin` (a 64 KiB file read through uringloop.open)
and `GET /plain` (no file I/O). Each round measures every loop of an app back to back, in
a rotating order; the table gives the median req/s over the rounds and the median of the
per-round ratios to stock asyncio and to uvloop. Loopback only, bounded: each measurement
lasts --seconds, the whole run about apps x paths x loops x rounds x seconds.

The client is wrk when it is installed (`apt-get install wrk`), one thread; else a Python
client (uvloop if installed, keep-alive connections, every response's status and length
checked). Both share the machine with the server: compare the ratios, not the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APPS = ("aiohttp", "fastapi")
LOOPS = ("asyncio", "uvloop", "uringloop")
FILE_NAME, FILE_SIZE = "f64k.bin", 64 * 1024
PATHS = {"file": f"/file/{FILE_NAME}", "plain": "/plain"}
SIZES = {"file": FILE_SIZE, "plain": 2}


def start(app: str, loop: str, root: Path) -> tuple[subprocess.Popen[str], int]:
    """One app on one loop, in its own process; (process, port) once it listens."""
    args = ["--loop", loop, "--port", "0", "--root", str(root)]
    proc = subprocess.Popen(
        [sys.executable, str(HERE / f"app_{app}.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"{app} on {loop} did not start: {line!r}")
    return proc, int(line.rstrip().rstrip("/").rsplit(":", 1)[1])


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- clients ------------------------------------------------------------------------------


def wrk(port: int, path: str, seconds: float, connections: int) -> float:
    url = f"http://127.0.0.1:{port}{path}"
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    match = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


async def _connection(port: int, path: str, size: int, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    done = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"bad response to {path}: {head[:80]!r}")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            if length is None or int(length.group(1)) != size:
                raise RuntimeError(f"{path}: unexpected length in {head!r}")
            await reader.readexactly(size)
            done += 1
    finally:
        writer.close()
        await writer.wait_closed()
    return done


async def _load(port: int, path: str, size: int, seconds: float, connections: int) -> float:
    start = time.monotonic()
    counts = await asyncio.gather(
        *(_connection(port, path, size, start + seconds) for _ in range(connections))
    )
    return sum(counts) / (time.monotonic() - start)


def python_client(port: int, path: str, seconds: float, connections: int) -> float:
    """The Python client in its own process (uvloop if installed): req/s."""
    args = [str(port), path, str(SIZES[_kind(path)]), str(seconds), str(connections)]
    out = subprocess.run(
        [sys.executable, __file__, "--client-process", *args],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return float(out.stdout)


def _kind(path: str) -> str:
    return next(k for k, p in PATHS.items() if p == path)


def client_process(argv: list[str]) -> None:
    port, path, size, seconds, connections = argv
    factory = asyncio.new_event_loop
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factory = uvloop.new_event_loop
    loop = factory()  # (asyncio.Runner: Python 3.11+)
    try:
        rate = loop.run_until_complete(
            _load(int(port), path, int(size), float(seconds), int(connections))
        )
    finally:
        loop.close()
    print(rate)


# -- the comparison -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--apps", default=",".join(APPS))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args(argv)
    apps = [a for a in args.apps.split(",") if a]
    kinds = [k for k in args.paths.split(",") if k]
    loops = [lp for lp in LOOPS if lp != "uvloop" or importlib.util.find_spec("uvloop")]
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    measure = wrk if client == "wrk" else python_client
    results: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / FILE_NAME).write_bytes(os.urandom(FILE_SIZE))
        for app in apps:
            servers = {loop: start(app, loop, root) for loop in loops}
            try:
                for r in range(args.rounds):
                    order = loops[r % len(loops) :] + loops[: r % len(loops)]
                    for kind in kinds:
                        for loop in order:
                            port = servers[loop][1]
                            rate = measure(port, PATHS[kind], args.seconds, args.connections)
                            results.setdefault((app, kind, loop), []).append(rate)
                            print(
                                f"round {r + 1} {app:8} {kind:6} {loop:9} {rate:9.0f} req/s",
                                file=sys.stderr,
                            )
            finally:
                for proc, _ in servers.values():
                    stop(proc)
    print(
        f"\nclient {client}, {args.connections} keep-alive connections, {args.seconds:g} s per "
        f"measurement, {args.rounds} rounds; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, Linux {os.uname().release}\n"
    )
    others = [lp for lp in ("asyncio", "uvloop") if lp in loops]
    head = ["app", "endpoint", "loop", "req/s (median)"] + [f"vs {o}" for o in others]
    print("| " + " | ".join(head) + " |")
    print("| --- | --- | --- |" + " ---: |" * (len(head) - 3))
    for app in apps:
        for kind in kinds:
            for loop in loops:
                runs = results[(app, kind, loop)]
                cells = [app, PATHS[kind], loop, f"{statistics.median(runs):.0f}"]
                for other in others:
                    base = results[(app, kind, other)]
                    per_round = [x / b for x, b in zip(runs, base, strict=True)]
                    cells.append(f"{statistics.median(per_round):.2f}x")
                print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client-process":
        client_process(sys.argv[2:])
    else:
        sys.exit(main())
