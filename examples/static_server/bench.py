"""Load comparison: the same static-file server on stock asyncio, uvloop and uringloop.

    python examples/static_server/bench.py [--seconds 5] [--connections 32] [--rounds 3]

Makes a document root of small (4 KiB), medium (64 KiB) and large (1 MiB) files, starts
server.py once per loop, each in its own process, and drives one at a time from a client
process with keep-alive connections, each requesting random files of one size class back
to back. Each round measures every loop once, in a rotating order; the table reports the
medians over the rounds of requests and MiB per second, and of the ratio to stock
asyncio in the same round. Every response is checked (status and length); a wrong one
aborts the run.

The client is Python too and shares the machine: the absolute numbers say as much about
the client and the machine as about the server. Compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"4KiB": 4 * 1024, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}
FILES_PER_SIZE = {"4KiB": 256, "64KiB": 64, "1MiB": 16}


def make_root(root: Path) -> dict[str, list[tuple[str, int]]]:
    """{size class: [(url path, size), ...]} of files written under `root`."""
    files: dict[str, list[tuple[str, int]]] = {}
    for name, size in SIZES.items():
        (root / name).mkdir()
        paths = []
        for i in range(FILES_PER_SIZE[name]):
            (root / name / f"f{i}.bin").write_bytes(os.urandom(size))
            paths.append((f"/{name}/f{i}.bin", size))
        files[name] = paths
    return files


def start_server(loop: str, root: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--loop", loop, "--port", "0", "--root", root],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server on {loop} did not start: {line!r}")
    port = int(line.rstrip().rstrip("/").rsplit(":", 1)[1])
    return proc, port


# -- the client (runs in its own process) -------------------------------------------------


async def _connection(
    port: int, paths: list[tuple[str, int]], deadline: float, seed: int
) -> tuple[int, int]:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = received = 0
    try:
        while time.monotonic() < deadline:
            path, size = rng.choice(paths)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"bad response to {path}: {head[:80]!r}")
            length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            if length != size:
                raise RuntimeError(f"{path}: Content-Length {length}, expected {size}")
            await reader.readexactly(length)
            requests += 1
            received += length
    finally:
        writer.close()
        await writer.wait_closed()
    return requests, received


async def _load(port: int, paths: list[tuple[str, int]], seconds: float, conns: int) -> str:
    start = time.monotonic()
    deadline = start + seconds
    results = await asyncio.gather(
        *(_connection(port, paths, deadline, seed) for seed in range(conns))
    )
    elapsed = time.monotonic() - start
    requests = sum(r for r, _ in results)
    received = sum(b for _, b in results)
    return f"{requests / elapsed} {received / elapsed / 2**20}"


def client_main(argv: list[str]) -> None:
    """`bench.py --client PORT SECONDS CONNS PATH:SIZE...`: print 'req/s MiB/s'."""
    port, seconds, conns = int(argv[0]), float(argv[1]), int(argv[2])
    paths = [(p, int(s)) for p, s in (a.rsplit(":", 1) for a in argv[3:])]
    factory = asyncio.new_event_loop
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop  # the fastest client we have, the same for every server

        factory = uvloop.new_event_loop
    loop = factory()  # (asyncio.Runner and asyncio.run's loop_factory: Python 3.11+, 3.12+)
    try:
        print(loop.run_until_complete(_load(port, paths, seconds, conns)))
    finally:
        loop.close()


def run_client(port: int, paths: list[tuple[str, int]], seconds: float, conns: int) -> list[float]:
    args = [str(port), str(seconds), str(conns), *(f"{p}:{s}" for p, s in paths)]
    out = subprocess.run(
        [sys.executable, __file__, "--client", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return [float(x) for x in out.stdout.split()]


# -- the comparison ---------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default=",".join(SIZES), help="size classes to run")
    args = parser.parse_args()
    loops = ["asyncio", "uvloop", "uringloop"]
    if importlib.util.find_spec("uvloop") is None:
        loops.remove("uvloop")
    sizes = args.sizes.split(",")
    # {(size class, loop): [(req/s, MiB/s) per round]}
    results: dict[tuple[str, str], list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = make_root(Path(tmp))
        # All servers run for the whole comparison (idle when not measured), and each
        # round measures every loop back to back in a rotating order, so a change in
        # the machine's load hits all loops alike; ratios are taken within a round.
        servers = {loop: start_server(loop, Path(tmp)) for loop in loops}
        try:
            for r in range(args.rounds):
                order = loops[r % len(loops) :] + loops[: r % len(loops)]
                for size in sizes:
                    for loop in order:
                        port = servers[loop][1]
                        got = run_client(port, files[size], args.seconds, args.connections)
                        results.setdefault((size, loop), []).append(got)
                        print(
                            f"round {r + 1} {loop:9} {size:6} {got[0]:9.0f} req/s "
                            f"{got[1]:8.1f} MiB/s",
                            file=sys.stderr,
                        )
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=10)
    print(
        f"\n{args.connections} keep-alive connections, {args.seconds:g} s per measurement, "
        f"{args.rounds} rounds; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, Linux {os.uname().release}\n"
    )
    print("| files | loop | req/s (median) | MiB/s (median) | vs asyncio (median of rounds) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for size in sizes:
        base = [x[0] for x in results[(size, "asyncio")]]
        for loop in loops:
            runs = results[(size, loop)]
            rps = statistics.median(x[0] for x in runs)
            mib = statistics.median(x[1] for x in runs)
            ratio = statistics.median(x[0] / b for x, b in zip(runs, base, strict=True))
            print(f"| {size} | {loop} | {rps:.0f} | {mib:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_main(sys.argv[2:])
    else:
        main()
