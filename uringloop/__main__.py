"""python -m uringloop: the QEMU lost-wakeup experiment in miniature, on the public API only.

A foreign thread (QEMU's vCPU) reads a file through the loop's io_uring in 128 KiB chunks,
in batches of 16, sleeping 1 ms before each batch and 1 ms after each completion, while
the loop (QEMU's main loop) is idle but for a periodic 499 ms timer. With the wakeup the
thread is as fast as doing the reads itself; without it (Loop(foreign_wakeup=False), the
bug QEMU fixed) every batch waits for the loop's next timer.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import uringloop
from uringloop import _files

CHUNK = 128 * 1024
BATCH = 16
TIMER = 0.499  # seconds: QEMU's main loop slept up to 499 ms


def _open_file(directory: str, size: int) -> tuple[str, bool]:
    """A file of `size` random bytes; (path, whether O_DIRECT works on it)."""
    fd, path = tempfile.mkstemp(prefix="uringloop-demo-", dir=directory)
    try:
        block = os.urandom(1 << 20)
        for _ in range(size // len(block)):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
        direct = True
    except OSError:
        direct = False
    return path, direct


@contextlib.contextmanager
def _idle_loop(foreign_wakeup: bool = True) -> Iterator[uringloop.Loop]:
    """A Loop running in its own thread with nothing to do but a periodic 499 ms timer."""
    loop = uringloop.Loop(foreign_wakeup=foreign_wakeup)

    def tick() -> None:
        loop.call_later(TIMER, tick)

    loop.call_soon(tick)
    thread = threading.Thread(target=loop.run_forever, name="main-loop")
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _vcpu_reads(submit: Callable[[int, mmap.mmap, int], object], size: int) -> float:
    """The vCPU thread's work: batches of reads with processing delays; returns seconds."""
    buffers = [mmap.mmap(-1, CHUNK) for _ in range(BATCH)]  # page-aligned, for O_DIRECT
    start = time.perf_counter()
    for batch_start in range(0, size, CHUNK * BATCH):
        time.sleep(0.001)  # preparing the batch
        waits = []
        for i in range(BATCH):
            offset = batch_start + i * CHUNK
            if offset >= size:
                break
            waits.append(submit(i, buffers[i], offset))
        for wait in waits:
            if callable(wait):
                wait()
            time.sleep(0.001)  # processing the completion
    elapsed = time.perf_counter() - start
    for buf in buffers:
        buf.close()
    return elapsed


def _through_loop(
    path: str, flags: int, size: int, foreign_wakeup: bool = True, busy: bool = False
) -> float:
    """The vCPU thread's reads go through the loop; `busy`: a timer keeps the loop awake
    every 0.2 ms (the busy ssh socket of the QEMU report)."""
    fd = os.open(path, flags)
    try:
        with _idle_loop(foreign_wakeup) as loop:
            if busy:

                def spin() -> None:
                    loop.call_later(0.0002, spin)

                loop.call_soon_threadsafe(spin)
            time.sleep(0.05)  # the loop is asleep in select now (or spinning)

            def submit(i: int, buf: mmap.mmap, offset: int) -> Callable[[], object]:
                future = loop.threadsafe.preadinto(fd, buf, offset)
                return lambda: future.result(timeout=60)

            return _vcpu_reads(submit, size)
    finally:
        os.close(fd)


def _plain_thread(path: str, flags: int, size: int) -> float:
    """The floor: the thread does the reads itself with os.preadv, no loop involved."""
    fd = os.open(path, flags)
    try:
        result: list[float] = []

        def work() -> None:
            def submit(i: int, buf: mmap.mmap, offset: int) -> None:
                os.preadv(fd, [buf], offset)

            result.append(_vcpu_reads(submit, size))

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        return result[0]
    finally:
        os.close(fd)


def _described(names: dict[str, str], implementation: str, what: str) -> str:
    """ "compiled file calls", or "file calls (methods c, ...)" where the parts differ."""
    if implementation in names:
        return f"{names[implementation]} {what}"
    return f"{what} ({implementation})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uringloop", description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=16, help="file size in MiB (default 16)")
    parser.add_argument(
        "--dir", default="/var/tmp", help="directory for the test file (a real disk, not tmpfs)"
    )
    args = parser.parse_args(argv)
    size = args.mib << 20
    directory = args.dir if os.path.isdir(args.dir) else tempfile.gettempdir()
    path, direct = _open_file(directory, size)
    flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
    try:
        probe = uringloop.Loop()
        available = probe.uring_available
        implementation = probe.uring_stats().implementation
        probe.close()
        names = {"c": "compiled", "python": "pure-Python"}
        hot_path = names.get(implementation, implementation)
        # (an implementation that is not one name, where one extension was built and
        # another not, is shown as it is: "file calls (methods c, running-loop lookup python)")
        file_calls = _files.IMPLEMENTATION
        thread_reads = uringloop.threads.IMPLEMENTATION
        parts = "ring queues, reads, ready handles, pread, buffer pins"
        if implementation == file_calls == thread_reads:
            what = f"{hot_path} hot path ({parts}, file calls, thread reads)"
        else:
            what = (
                f"{hot_path} hot path ({parts}), {_described(names, file_calls, 'file calls')}, "
                f"{_described(names, thread_reads, 'thread reads')}"
            )
        print(f"uringloop {uringloop.__version__}: io_uring {'on' if available else 'OFF'}, {what}")
        print(
            f"{args.mib} MiB in {CHUNK // 1024} KiB reads, batches of {BATCH}, 1 ms delays, "
            f"{'O_DIRECT' if direct else 'buffered (O_DIRECT refused)'}, file in {directory}"
        )
        print("a foreign thread reads through a loop that is idle but for a 499 ms timer:\n")
        rows = [
            ("plain thread, os.preadv (floor)", _plain_thread(path, flags, size)),
            ("uringloop, with the wakeup (the fix)", _through_loop(path, flags, size)),
            (
                "uringloop, foreign_wakeup=False (the bug)",
                _through_loop(path, flags, size, foreign_wakeup=False),
            ),
            (
                "uringloop, foreign_wakeup=False, busy loop",
                _through_loop(path, flags, size, foreign_wakeup=False, busy=True),
            ),
        ]
        floor = rows[0][1]
        print(f"| {'variant':<44} | {'seconds':>8} | {'x floor':>7} |")
        print(f"|{'-' * 46}|{'-' * 10}|{'-' * 9}|")
        for name, seconds in rows:
            print(f"| {name:<44} | {seconds:8.3f} | {seconds / floor:7.2f} |")
    finally:
        os.unlink(path)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
