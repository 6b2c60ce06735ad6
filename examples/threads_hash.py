"""Hash many files from a thread pool whose file I/O goes through the loop's io_uring.

    python examples/threads_hash.py                 # 200 generated files, checked
    python examples/threads_hash.py FILE_OR_DIR ... # your files

QEMU's pattern for vCPU threads: worker threads (hashing is CPU work, and hashlib releases
the GIL on big buffers) queue their reads on the running uringloop loop with
uringloop.threads and `loop=`; the loop wakes, submits them to its ring and completes them,
and each worker blocks only on its own read. No worker makes a read system call of its own.
(Without `loop=`, uringloop.threads would make each read a plain system call in the worker,
which for page-cache reads is the faster route; see the README's "File I/O from threads".)
The loop stays free for other work meanwhile: here a ticker task counts how often it ran
while the pool hashed.

--check re-hashes every file with plain reads and compares; --threads N sizes the pool.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import os
import sys
import tempfile
import time

import uringloop
from uringloop import threads

CHUNK = 256 * 1024  # bytes per pread from a worker


def hash_file(path: str, loop: uringloop.Loop) -> tuple[str, int, str]:
    """Runs on a pool thread: sha256 of the file, every read through the loop's ring."""
    digest = hashlib.sha256()
    fd = threads.open(path, loop=loop)
    try:
        offset = 0
        while data := threads.pread(fd, CHUNK, offset, loop=loop):
            digest.update(data)
            offset += len(data)
    finally:
        threads.close(fd, loop=loop)
    return path, offset, digest.hexdigest()


def make_files(directory: str, count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"file{i:04d}.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(4096 + (i * 7919) % (1 << 20)))
        paths.append(path)
    return paths


def expand(args: list[str]) -> list[str]:
    paths = []
    for arg in args:
        if os.path.isdir(arg):
            for root, _, names in os.walk(arg):
                paths.extend(os.path.join(root, name) for name in sorted(names))
        else:
            paths.append(arg)
    return [p for p in paths if os.path.isfile(p)]


async def ticker(stop: asyncio.Event) -> int:
    ticks = 0
    while not stop.is_set():
        await asyncio.sleep(0.001)
        ticks += 1
    return ticks


async def hash_all(paths: list[str], workers: int) -> tuple[list[tuple[str, int, str]], int]:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    stop = asyncio.Event()
    tick_task = asyncio.create_task(ticker(stop))
    # Pool threads do not inherit the loop's context: name the loop explicitly (with a
    # single running uringloop loop, threads.default_loop() would find it too).
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="hasher") as pool:
        jobs = [loop.run_in_executor(pool, hash_file, path, loop) for path in paths]
        results = await asyncio.gather(*jobs)
    stop.set()
    return results, await tick_task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", help="files or directories (default: generated)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--files", type=int, default=200, help="how many files to generate")
    parser.add_argument("--check", action="store_true", help="compare with plain reads")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="uringloop-hash-") as tmp:
        paths = expand(args.paths) if args.paths else make_files(tmp, args.files)
        loop = uringloop.new_event_loop()
        try:
            start = time.perf_counter()
            results, ticks = loop.run_until_complete(hash_all(paths, args.threads))
            elapsed = time.perf_counter() - start
            stats = loop.uring_stats()
        finally:
            loop.close()
        total = sum(size for _, size, _ in results)
        for path, size, digest in results[:5]:
            print(f"{digest}  {size:>9}  {os.path.basename(path)}")
        if len(results) > 5:
            print(f"... and {len(results) - 5} more")
        print(
            f"{len(results)} files, {total / 1e6:.1f} MB in {elapsed:.3f} s with "
            f"{args.threads} threads; io_uring: {stats.uring_available}, operations from "
            f"threads: {stats.foreign_submissions}, wakeups sent: {stats.wakeups_sent}, "
            f"loop ticks meanwhile: {ticks}"
        )
        if args.check:
            bad = []
            for path, size, digest in results:
                with open(path, "rb") as f:
                    data = f.read()
                if (len(data), hashlib.sha256(data).hexdigest()) != (size, digest):
                    bad.append(path)
            print("check: ok" if not bad else f"check: {len(bad)} MISMATCHED: {bad[:3]}")
            return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
