"""A bounded soak of uringloop: mixed file operations under load, then an audit.

    python scripts/soak.py                 # 60 s, 16 coroutines, 4 foreign threads
    python scripts/soak.py --duration 10 --json soak.json

For --duration seconds, on one uringloop Loop:
  * coroutine workers run a mix of pread, preadinto, pread_many, pwrite + read-back,
    open_fd/close_fd, fstat, statx, fsync and nop, checking every byte they read;
  * 4 foreign threads submit pread, preadinto, fstatx and nop through loop.threadsafe and
    wait for each result (a result that takes longer than 30 s counts as hung);
  * a TCP echo server on 127.0.0.1 serves clients on the same loop.
Then the loop is closed and the audit runs: open file descriptors before the loop was made
and after it was closed must be equal, nothing may be in flight, no operation may have
failed or returned wrong data. Reported: operations/s (per kind and total), max RSS, RSS
after warm-up and at the end, open fds, and p50/p99/max completion latency (submission to
result, per kind), from a log-scale histogram (buckets 2% wide, constant memory).
Exit status 0 when the audit passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import random
import resource
import sys
import tempfile
import threading
import time
from typing import Any

import uringloop

DATA_SIZE = 16 << 20  # the read-only data file
SCRATCH_SIZE = 4 << 20  # the file the writers overwrite
HANG = 30.0  # seconds after which a foreign operation counts as hung
_BUCKET = math.log(1.02)


class Histogram:
    """Latencies in log-scale buckets 2% wide: constant memory however long the run."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        key = int(math.log(max(seconds, 1e-9)) / _BUCKET)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.n += 1
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.n += other.n
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """Upper edge of the bucket holding the q-quantile, in seconds."""
        if not self.n:
            return 0.0
        rank = q * self.n
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return math.exp((key + 1) * _BUCKET)
        return self.max


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, Histogram] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()  # foreign threads merge their histograms under it

    def hist(self, kind: str) -> Histogram:
        h = self.latency.get(kind)
        if h is None:
            h = self.latency[kind] = Histogram()
        return h

    def fail(self, message: str) -> None:
        with self.lock:
            if len(self.errors) < 100:
                self.errors.append(message)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> list[int]:
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


async def coroutine_worker(
    loop: uringloop.Loop,
    seed: int,
    data_path: str,
    data: bytes,
    scratch_fd: int,
    scratch: bytearray,
    stats: Stats,
    deadline: float,
) -> None:
    rng = random.Random(seed)
    fd = await loop.open_fd(data_path)
    clock = time.perf_counter
    # Each worker owns one 4 KiB region of the scratch file, so its read-back is exact.
    region = seed * 4096
    try:
        while clock() < deadline:
            kind = rng.choices(
                ["pread", "preadinto", "pread_many", "write_read", "open_close", "fstat",
                 "statx", "fsync", "nop"],
                weights=[30, 20, 5, 15, 5, 8, 5, 2, 10],
            )[0]  # fmt: skip
            t0 = clock()
            try:
                if kind == "pread":
                    off, size = rng.randrange(DATA_SIZE - 65536), rng.choice((512, 4096, 65536))
                    if await loop.pread(fd, size, off) != data[off : off + size]:
                        stats.fail(f"pread: wrong data at {off}")
                elif kind == "preadinto":
                    off = rng.randrange(DATA_SIZE - 16384)
                    buf = bytearray(16384)
                    n = await loop.preadinto(fd, buf, off)
                    if n != 16384 or buf != data[off : off + 16384]:
                        stats.fail(f"preadinto: wrong data at {off}")
                elif kind == "pread_many":
                    offs = [rng.randrange(DATA_SIZE - 4096) for _ in range(16)]
                    got = await loop.pread_many([(fd, 4096, o) for o in offs])
                    if got != [data[o : o + 4096] for o in offs]:
                        stats.fail("pread_many: wrong data")
                elif kind == "write_read":
                    payload = rng.randbytes(4096)
                    await loop.pwrite_all(scratch_fd, payload, region)
                    scratch[region : region + 4096] = payload
                    if await loop.pread(scratch_fd, 4096, region) != payload:
                        stats.fail(f"write_read: read-back differs at {region}")
                elif kind == "open_close":
                    extra = await loop.open_fd(data_path)
                    await loop.close_fd(extra)
                elif kind == "fstat":
                    if (await loop.fstat(fd)).st_size != DATA_SIZE:
                        stats.fail("fstat: wrong size")
                elif kind == "statx":
                    if (await loop.statx(data_path)).size != DATA_SIZE:
                        stats.fail("statx: wrong size")
                elif kind == "fsync":
                    await loop.fdatasync(scratch_fd)
                else:
                    await loop.nop()
            except Exception as exc:
                stats.fail(f"{kind}: {exc!r}")
            stats.hist(kind).add(clock() - t0)
    finally:
        await loop.close_fd(fd)


def foreign_worker(
    loop: uringloop.Loop, seed: int, fd: int, data: bytes, stats: Stats, deadline: float
) -> None:
    rng = random.Random(seed)
    local: dict[str, Histogram] = {}
    clock = time.perf_counter
    while clock() < deadline:
        kind = rng.choice(["t_pread", "t_preadinto", "t_fstatx", "t_nop"])
        off = rng.randrange(DATA_SIZE - 4096)
        buf = bytearray(4096)
        t0 = clock()
        fut: concurrent.futures.Future[Any]
        if kind == "t_pread":
            fut = loop.threadsafe.pread(fd, 4096, off)
        elif kind == "t_preadinto":
            fut = loop.threadsafe.preadinto(fd, buf, off)
        elif kind == "t_fstatx":
            fut = loop.threadsafe.fstatx(fd)
        else:
            fut = loop.threadsafe.nop()
        try:
            value = fut.result(timeout=HANG)
        except concurrent.futures.TimeoutError:
            stats.fail(f"{kind}: hung for {HANG} s")
            continue
        except Exception as exc:
            stats.fail(f"{kind}: {exc!r}")
            continue
        dt = clock() - t0
        expected = data[off : off + 4096]
        wrong = (kind == "t_pread" and value != expected) or (
            kind == "t_preadinto" and (value != 4096 or buf != expected)
        )
        if wrong:
            stats.fail(f"{kind}: wrong data at {off}")
        elif kind == "t_fstatx" and getattr(value, "size", None) != DATA_SIZE:
            stats.fail(f"{kind}: wrong size")
        h = local.get(kind)
        if h is None:
            h = local[kind] = Histogram()
        h.add(dt)
    with stats.lock:
        for kind, h in local.items():
            stats.hist(kind).merge(h)


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


async def echo_client(port: int, seed: int, stats: Stats, deadline: float) -> None:
    rng = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    clock = time.perf_counter
    try:
        while clock() < deadline:
            message = rng.randbytes(rng.randrange(1, 2048)).replace(b"\n", b"_") + b"\n"
            t0 = clock()
            writer.write(message)
            await writer.drain()
            if await reader.readline() != message:
                stats.fail("tcp: echo differs")
            stats.hist("tcp_echo").add(clock() - t0)
    finally:
        writer.close()
        await writer.wait_closed()


async def soak(args: argparse.Namespace, directory: str, stats: Stats) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    data = os.urandom(DATA_SIZE)
    data_path = os.path.join(directory, "data.bin")
    scratch_path = os.path.join(directory, "scratch.bin")
    fd = await loop.open_fd(data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    await loop.pwrite_all(fd, data, 0)
    await loop.close_fd(fd)
    scratch = bytearray(SCRATCH_SIZE)
    scratch_fd = await loop.open_fd(scratch_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    await loop.pwrite_all(scratch_fd, bytes(SCRATCH_SIZE), 0)
    thread_fd = os.open(data_path, os.O_RDONLY)

    server = await asyncio.start_server(echo_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    start = time.perf_counter()
    deadline = start + args.duration
    warm_rss: list[int] = []
    rss_samples: list[int] = []

    async def sample_rss() -> None:
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.5)
            rss_samples.append(rss_bytes())
            if not warm_rss and time.perf_counter() - start > min(10.0, args.duration / 4):
                warm_rss.append(rss_bytes())

    threads = [
        threading.Thread(
            target=foreign_worker, args=(loop, 1000 + i, thread_fd, data, stats, deadline)
        )
        for i in range(args.threads)
    ]
    for t in threads:
        t.start()
    try:
        await asyncio.gather(
            sample_rss(),
            *(
                coroutine_worker(loop, i, data_path, data, scratch_fd, scratch, stats, deadline)
                for i in range(args.coroutines)
            ),
            *(echo_client(port, 2000 + i, stats, deadline) for i in range(args.tcp_clients)),
        )
    finally:
        # Join from the executor: the threads' operations need this loop running.
        for t in threads:
            await loop.run_in_executor(None, t.join, HANG * 2)
        server.close()
        await server.wait_closed()
        elapsed = time.perf_counter() - start
        # The scratch file must hold what the writers last wrote, region by region.
        on_disk = await loop.pread(scratch_fd, SCRATCH_SIZE, 0)
        if on_disk != bytes(scratch):
            stats.fail("scratch file differs from what was written")
        await loop.close_fd(scratch_fd)
        os.close(thread_fd)
    if any(t.is_alive() for t in threads):
        stats.fail("a foreign thread did not finish")
    uring = loop.uring_stats()
    return {
        "elapsed_s": elapsed,
        "rss_after_warmup": warm_rss[0] if warm_rss else None,
        "rss_end": rss_samples[-1] if rss_samples else rss_bytes(),
        "rss_max_sampled": max(rss_samples, default=0),
        # RSS at each quarter of the run: a leak shows as steady growth, warm-up does not.
        "rss_quarters": [rss_samples[len(rss_samples) * q // 4 - 1] for q in (1, 2, 3, 4)]
        if len(rss_samples) >= 4
        else [],
        "uring_stats": {k: getattr(uring, k) for k in uring.__dataclass_fields__},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--coroutines", type=int, default=16)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tcp-clients", type=int, default=4)
    parser.add_argument("--dir", default=None, help="where the files go (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()

    stats = Stats()
    fds_start = open_fds()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="uringloop-soak-") as directory:
        loop = uringloop.Loop()
        mode = "io_uring" if loop.uring_available else "thread-pool fallback"
        try:
            extra = loop.run_until_complete(soak(args, directory, stats))
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
        del loop
    fds_end = open_fds()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    elapsed = extra["elapsed_s"]
    kinds = {}
    total = 0
    for kind, h in sorted(stats.latency.items()):
        total += h.n
        kinds[kind] = {
            "ops": h.n,
            "ops_per_s": h.n / elapsed,
            "p50_us": h.quantile(0.50) * 1e6,
            "p99_us": h.quantile(0.99) * 1e6,
            "max_us": h.max * 1e6,
        }
    overall = Histogram()
    for h in stats.latency.values():
        overall.merge(h)
    if fds_start != fds_end:
        stats.fail(f"open fds differ: start {fds_start}, end {fds_end}")
    if extra["uring_stats"]["in_flight"] or extra["uring_stats"]["backlog"]:
        stats.fail(f"work left in the ring: {extra['uring_stats']}")
    summary = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "cpus": os.cpu_count(),
        "files": mode,
        "duration_s": elapsed,
        "ops_total": total,
        "ops_per_s": total / elapsed,
        "p50_us": overall.quantile(0.50) * 1e6,
        "p99_us": overall.quantile(0.99) * 1e6,
        "max_us": overall.max * 1e6,
        "max_rss_bytes": maxrss,
        "rss_after_warmup_bytes": extra["rss_after_warmup"],
        "rss_end_bytes": extra["rss_end"],
        "rss_quarters_bytes": extra["rss_quarters"],
        "open_fds_start": len(fds_start),
        "open_fds_end": len(fds_end),
        "per_kind": kinds,
        "uring_stats": extra["uring_stats"],
        "errors": stats.errors,
        "ok": not stats.errors,
    }

    mib = 1 << 20
    print(f"uringloop soak: {elapsed:.1f} s, files via {mode}, {os.cpu_count()} CPUs")
    print(f"  {'kind':<12} {'ops':>9} {'ops/s':>9} {'p50 us':>9} {'p99 us':>9} {'max us':>10}")
    for kind, k in kinds.items():
        print(
            f"  {kind:<12} {k['ops']:>9} {k['ops_per_s']:>9.0f} {k['p50_us']:>9.0f}"
            f" {k['p99_us']:>9.0f} {k['max_us']:>10.0f}"
        )
    print(
        f"  {'all':<12} {total:>9} {total / elapsed:>9.0f} {summary['p50_us']:>9.0f}"
        f" {summary['p99_us']:>9.0f} {summary['max_us']:>10.0f}"
    )
    warm = extra["rss_after_warmup"]
    print(
        f"  max RSS {maxrss / mib:.1f} MiB; RSS after warm-up "
        f"{(warm or 0) / mib:.1f} MiB, at the end {extra['rss_end'] / mib:.1f} MiB"
    )
    quarters = ", ".join(f"{r / mib:.1f}" for r in extra["rss_quarters"])
    print(f"  RSS at each quarter of the run (MiB): {quarters}")
    print(f"  open fds: {len(fds_start)} at start, {len(fds_end)} at end")
    print(f"  uring stats: {extra['uring_stats']}")
    if stats.errors:
        print(f"FAILED: {len(stats.errors)} problems, first: {stats.errors[:5]}")
    else:
        print("OK: no errors, no wrong data, no hang, fds equal, nothing left in flight")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if not stats.errors else 1


if __name__ == "__main__":
    sys.exit(main())
