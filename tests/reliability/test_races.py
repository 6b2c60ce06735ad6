"""Races: cancellation storms, foreign threads across stop/close, the seed's lost wakeup,
fork() with operations in flight, a loop collected without close()."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
import pathlib
import random
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import uringloop
from uringloop import _loop, _ops
from uringloop._ops import table

from ._support import CompletionLog

# Generous liveness bounds (seconds). Exceeding one means "hung", not "slow": the loop
# under test answers in well under a millisecond; these absorb a loaded 2-core machine.
WAKEUP_BOUND = 5.0
HANG_BOUND = 30.0


class Buf(bytearray):
    """A bytearray that can be weakly referenced, tagged with the index of its read."""

    idx: int


@contextlib.asynccontextmanager
async def _deadline(seconds: float) -> AsyncIterator[None]:
    """asyncio.timeout(seconds) (Python 3.11+), also on 3.10: the task is cancelled when the
    time is up, and TimeoutError raised from the block."""
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError(f"not done within {seconds} s") from None
        raise
    finally:
        handle.cancel()


# -- 10,000 in-flight reads cancelled at random moments -------------------------------------


@pytest.mark.parametrize("n", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_cancel_storm(
    n: int,
    completions: CompletionLog,
    data_file: tuple[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    no_fd_leak: None,
) -> None:
    path, data = data_file
    rng = random.Random(n)
    ops: dict[int, _ops.Operation] = {}  # {read index: its operation}
    freed_under_kernel: list[int] = []
    freed: set[int] = set()
    created: set[int] = set()

    stub = table.preadinto.stub

    def recording_stub(fd: int, buffer: Any, offset: int = -1) -> _ops.Operation:
        op = stub(fd, buffer, offset)
        if isinstance(buffer, Buf):
            ops[buffer.idx] = op
        return op

    monkeypatch.setattr(table.preadinto, "stub", recording_stub)

    def on_buffer_death(idx: int) -> None:
        # A buffer may die only once its operation is done and the kernel is done with it:
        # its CQE was reaped, or it never reached the kernel (user_data 0).
        freed.add(idx)
        op = ops.get(idx)
        if op is None:
            return  # the read was cancelled before its operation was even built
        if op.state != _ops.DONE or (id(op) not in completions.cqe_seen and op.user_data != 0):
            freed_under_kernel.append(idx)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = os.open(path, os.O_RDONLY)
        pipes = [os.pipe() for _ in range(4)]
        try:
            kinds = ["pipe" if rng.random() < 0.4 else "file" for _ in range(n)]
            offsets = [rng.randrange(0, len(data) - 4096) for _ in range(n)]

            async def reader(i: int) -> tuple[int, bytes]:
                buf = Buf(4096)
                buf.idx = i
                created.add(i)
                weakref.finalize(buf, on_buffer_death, i)
                if kinds[i] == "pipe":
                    target, off = pipes[i % len(pipes)][0], -1
                else:
                    target, off = fd, offsets[i]
                got = await loop.preadinto(target, buf, off)
                return got, bytes(buf[:got])

            tasks = {i: asyncio.ensure_future(reader(i)) for i in range(n)}
            finished: list[int] = []

            def on_done(i: int) -> Callable[[asyncio.Future[Any]], None]:
                return lambda _: finished.append(i)

            for i, t in tasks.items():
                t.add_done_callback(on_done(i))
            # Every pipe read must be cancelled (most will never get data); half the file
            # reads too. Cancel in random bursts, at random points of the loop's cycle.
            victims = [i for i in range(n) if kinds[i] == "pipe" or rng.random() < 0.5]
            rng.shuffle(victims)
            outcome: dict[int, str] = {}
            results: dict[int, tuple[int, bytes]] = {}
            async with _deadline(max(HANG_BOUND * 4, n / 500)):
                start = 0
                while start < len(victims):
                    k = rng.randint(1, 200)
                    burst, start = victims[start : start + k], start + k
                    for i in burst:
                        if i in tasks:  # not harvested yet
                            tasks[i].cancel()
                    if rng.random() < 0.1:
                        os.write(pipes[rng.randrange(len(pipes))][1], b"p")
                    if rng.random() < 0.5:
                        await asyncio.sleep(0)
                    else:
                        await asyncio.sleep(rng.random() * 0.002)
                    # Harvest finished tasks and drop them: a finished task's traceback
                    # would keep the buffer alive and hide an early release.
                    while finished:
                        i = finished.pop()
                        t = tasks.pop(i)
                        if t.cancelled():
                            outcome[i] = "cancelled"
                        else:
                            outcome[i] = "result"
                            results[i] = t.result()
                    if rng.random() < 0.05:
                        gc.collect()
                # Pipe reads that ended with data consumed it; the rest were cancelled, so
                # only file reads remain, and they complete on their own.
                for i, t in list(tasks.items()):
                    try:
                        results[i] = await t
                        outcome[i] = "result"
                    except asyncio.CancelledError:
                        outcome[i] = "cancelled"
                tasks.clear()
                gc.collect()
                # Cancelled reads stay in flight until their own CQE; wait for those.
                while loop.uring_stats().in_flight:
                    await asyncio.sleep(0.001)
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)
            os.close(fd)

        assert len(outcome) == n
        for i, (got, content) in results.items():
            if kinds[i] == "file":
                assert got == 4096 and content == data[offsets[i] : offsets[i] + 4096]
            else:
                assert 1 <= got <= 4096 and content == b"p" * got
        assert any(kinds[i] == "pipe" and o == "cancelled" for i, o in outcome.items())
        stats = loop.uring_stats()
        assert stats.in_flight == 0 and stats.backlog == 0
        assert stats.cancelled > 0

    loop = uringloop.Loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    gc.collect()
    assert not freed_under_kernel, f"buffers freed before their CQE: {freed_under_kernel[:10]}"
    # (A task cancelled before its first step never made a buffer.)
    assert freed == created, f"{len(created - freed)} buffers never released"
    assert len(ops) > n // 2
    assert not completions.twice()
    assert not completions.released_early
    # Every operation built was either completed once or dropped before submission.
    for op in ops.values():
        assert op.state == _ops.DONE
        assert completions.delivered[id(op)] == (1 if op.user_data else 0)


# -- foreign threads while the loop stops, restarts and closes ------------------------------


@pytest.mark.parametrize("use_uring", [True, False], ids=["uring", "fallback"])
@pytest.mark.parametrize("rounds", [6, pytest.param(100, marks=pytest.mark.slow)])
def test_foreign_threads_across_stop_restart_close(
    rounds: int, use_uring: bool, data_file: tuple[str, bytes], no_fd_leak: None
) -> None:
    path, data = data_file
    n_threads = 8
    # Small rings: a backlog builds up behind the in-flight cap.
    loop = uringloop.Loop(sq_entries=8, cq_entries=16, use_uring=use_uring)
    fd = os.open(path, os.O_RDONLY)
    outcomes: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(n_threads + 1)

    def check(kind: str, off: int, fut: concurrent.futures.Future[Any], buf: bytearray) -> str:
        try:
            value = fut.result(timeout=HANG_BOUND)
        except concurrent.futures.TimeoutError:
            return f"hung: {kind} at {off}"
        except RuntimeError:
            return "refused"
        except BaseException as exc:
            return f"unexpected {exc!r} for {kind}"
        if kind == "pread" and value != data[off : off + 64]:
            return f"wrong data at {off}"
        if kind == "preadinto" and (value != 64 or buf != data[off : off + 64]):
            return f"wrong data at {off}"
        if kind == "nop" and value is not None:
            return f"nop returned {value!r}"
        return "ok"

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        while True:
            batch = []
            try:
                for _ in range(rng.randint(1, 40)):
                    kind = rng.choice(["pread", "preadinto", "nop"])
                    off = rng.randrange(0, len(data) - 64)
                    buf = bytearray(64)
                    fut: concurrent.futures.Future[Any]
                    if kind == "pread":
                        fut = loop.threadsafe.pread(fd, 64, off)
                    elif kind == "preadinto":
                        fut = loop.threadsafe.preadinto(fd, buf, off)
                    else:
                        fut = loop.threadsafe.nop()
                    batch.append((kind, off, fut, buf))
            except RuntimeError:
                closed = True  # the submission itself met the closed loop
            else:
                closed = False
            results = [check(*item) for item in batch]
            if closed:
                results.append("refused")
            with lock:
                outcomes.extend(r for r in results if r in ("ok", "refused"))
                problems.extend(r for r in results if r not in ("ok", "refused"))
            if closed:
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    try:
        start.wait()
        for _ in range(rounds):
            loop.run_until_complete(asyncio.sleep(0.05))
            time.sleep(0.02)  # stopped: submissions pile up in the foreign queue
        t0 = time.monotonic()
        loop.close()
        close_took = time.monotonic() - t0
        for t in threads:
            t.join(HANG_BOUND * 2)
        assert not any(t.is_alive() for t in threads), "a submitting thread hung"
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(fd)
    assert not problems, problems[:10]
    assert outcomes.count("ok") > 0
    # A bound, not a speed: close() waits at most CLOSE_TIMEOUT for cancelled operations.
    assert close_took < _loop.CLOSE_TIMEOUT + WAKEUP_BOUND
    with pytest.raises(RuntimeError):
        loop.threadsafe.nop()


# -- a foreign submission exactly while the loop enters select (the seed's bug) -------------


def _race_submissions(
    count: int, seed: int, bound: float = WAKEUP_BOUND, **loop_kwargs: Any
) -> list[float]:
    """An idle loop (select with no timeout) in a thread; this thread submits `count` nops
    one at a time after random tiny sleeps, so each lands somewhere on the loop's way into
    select. Returns each submission's wait. A wait of `bound` means it never came."""
    loop = uringloop.Loop(**loop_kwargs)
    ready = threading.Event()
    loop.call_soon(ready.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    waits: list[float] = []
    rng = random.Random(seed)
    try:
        assert ready.wait(HANG_BOUND)
        for _ in range(count):
            pause = rng.choice((0.0, 0.0, 1e-6, 1e-5, 5e-5, 2e-4))
            if pause:
                time.sleep(pause)
            t0 = time.monotonic()
            fut = loop.threadsafe.nop()
            try:
                fut.result(timeout=bound)
            except concurrent.futures.TimeoutError:
                waits.append(bound)
                break  # the loop is asleep with work queued: that is the finding
            waits.append(time.monotonic() - t0)
    finally:
        loop.call_soon_threadsafe(loop.stop)  # the self-pipe always wakes it
        thread.join(HANG_BOUND)
        assert not thread.is_alive()
        loop.close()
    return waits


def _assert_no_lost_wakeup(waits: list[float], count: int) -> None:
    assert len(waits) == count, f"submission {len(waits)} never completed"
    assert max(waits) < WAKEUP_BOUND


def test_foreign_submission_while_entering_select() -> None:
    _assert_no_lost_wakeup(_race_submissions(10_000, seed=1), 10_000)


def test_foreign_submission_race_fails_without_wakeup() -> None:
    """The same check must catch the seed's bug when the wakeup is turned off."""
    # A lost wakeup waits forever (no timer is set): a second tells it from a served nop.
    waits = _race_submissions(300, seed=2, bound=1.0, foreign_wakeup=False)
    with pytest.raises(AssertionError):
        _assert_no_lost_wakeup(waits, 300)


@pytest.mark.slow
def test_foreign_submission_while_entering_select_100k() -> None:
    _assert_no_lost_wakeup(_race_submissions(100_000, seed=3), 100_000)


# -- fork() with operations in flight -------------------------------------------------------


def test_fork_with_operations_in_flight(data_file: tuple[str, bytes], tmp_path: str) -> None:
    path, data = data_file
    child_file = os.path.join(tmp_path, "child.bin")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = await loop.open_fd(path)
        r, w = os.pipe()
        try:
            parked = [asyncio.ensure_future(loop.pread(r, 1)) for _ in range(8)]
            reads = [asyncio.ensure_future(loop.pread(fd, 4096, i * 4096)) for i in range(64)]
            while loop.uring_stats().in_flight < 8:
                await asyncio.sleep(0)
            pid = os.fork()
            if pid == 0:  # child: must not touch the parent's ring
                code = 1
                try:
                    code = _child(loop, path, data, child_file)
                finally:
                    os._exit(code)
            # Parent: the in-flight operations complete as if nothing happened.
            got = await asyncio.gather(*reads)
            assert got == [data[i * 4096 : (i + 1) * 4096] for i in range(64)]
            os.write(w, b"abcdefgh")
            assert sorted(await asyncio.gather(*parked)) == [bytes([c]) for c in b"abcdefgh"]
            _, status = await loop.run_in_executor(None, os.waitpid, pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, "the child failed (see its stderr)"
            assert await loop.pread(fd, 10, 0) == data[:10]
        finally:
            os.close(r)
            os.close(w)
            await loop.close_fd(fd)
        with open(child_file, "rb") as f:
            assert f.read() == data[:65536][::-1]

    loop = uringloop.Loop()
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def _child(parent_loop: uringloop.Loop, path: str, data: bytes, out: str) -> int:
    try:
        parent_loop.threadsafe.nop()
    except RuntimeError:
        pass
    else:
        print("child: the parent's loop accepted an operation", file=sys.stderr)
        return 2

    async def child_main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop) and loop.uring_available
        fd = await loop.open_fd(path)
        got = await loop.pread(fd, 65536, 0)
        await loop.close_fd(fd)
        assert got == data[:65536]
        ofd = await loop.open_fd(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        await loop.pwrite_all(ofd, got[::-1], 0)
        await loop.fsync(ofd)
        await loop.close_fd(ofd)

    try:
        asyncio.set_event_loop(None)
        uringloop.run(child_main())
    except BaseException as exc:
        print(f"child: {exc!r}", file=sys.stderr)
        return 3
    return 0


# -- a loop garbage-collected without close() -----------------------------------------------

_GC_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, os, sys, warnings
    import uringloop

    def fds():
        return {int(n) for n in os.listdir("/proc/self/fd")}

    async def work(loop, r):
        fd = await loop.open_fd(sys.argv[1])
        assert await loop.pread(fd, 4, 0) == open(sys.argv[1], "rb").read(4)
        await loop.close_fd(fd)
        # Leave reads parked on a pipe: in flight when the loop is dropped.
        for _ in range(4):
            asyncio.ensure_future(loop.pread(r, 1))
        await asyncio.sleep(0.01)
        assert loop.uring_stats().in_flight == 4

    warnings.simplefilter("always")
    r, w = os.pipe()
    before = fds()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop = uringloop.Loop()
        loop.run_until_complete(work(loop, r))
        del loop
        gc.collect()
    kinds = [w.category.__name__ for w in seen]
    assert "ResourceWarning" in kinds, kinds
    messages = [str(w.message) for w in seen]
    assert any("unclosed event loop" in m for m in messages), messages
    leaked = fds() - before
    assert not leaked, {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked}

    # And one left for interpreter exit, with reads in flight.
    keep = uringloop.Loop()
    keep.run_until_complete(work(keep, r))
    print("END", flush=True)
    """
)


def test_loop_collected_without_close(data_file: tuple[str, bytes], tmp_path: str) -> None:
    path, _ = data_file
    script = os.path.join(tmp_path, "gc_loop.py")
    with open(script, "w") as f:
        f.write(_GC_SCRIPT)
    proc = subprocess.run(
        [sys.executable, "-X", "dev", script, path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "END"
    # Interpreter exit with an unclosed loop: a ResourceWarning at most, never a traceback.
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Fatal Python error" not in proc.stderr, proc.stderr


def test_cancel_with_the_in_flight_cap_full(no_fd_leak: None, capped_stream_waits: None) -> None:
    """Regression: the in-flight cap (the CQ size) full of reads parked on a pipe (counted
    against it here, as slow ones are), more queued behind them; cancelling a parked read
    must not wait behind the queue. Before the fix its ASYNC_CANCEL sat at the end of the
    backlog, which could not move: deadlock."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        r, w = os.pipe()
        try:
            tasks = [asyncio.ensure_future(loop.pread(r, 1)) for _ in range(12)]
            while loop.uring_stats().in_flight < 4:
                await asyncio.sleep(0.001)
            stats = loop.uring_stats()
            assert stats.in_flight == 4 and stats.backlog == 8  # the cap is full
            for t in tasks:
                t.cancel()
            done, pending = await asyncio.wait(tasks, timeout=HANG_BOUND)
            assert not pending, "cancelled reads never ended"
            assert all(t.cancelled() for t in done)
            while loop.uring_stats().in_flight:
                await asyncio.sleep(0.001)
            os.write(w, b"z")
            assert await loop.pread(r, 1) == b"z"  # the queued ones did not eat it
        finally:
            os.close(r)
            os.close(w)

    loop = uringloop.Loop(sq_entries=4, cq_entries=4)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def test_close_with_foreign_operations_in_flight(
    no_fd_leak: None, capped_stream_waits: None
) -> None:
    """Foreign reads parked in the kernel when the loop closes, and those queued behind them
    (the in-flight cap is full: they count against it here, as slow ones do), fail with a
    RuntimeError (LoopClosedError); none is left unresolved, and close() stays within its
    bound.

    Closed from the thread that ran the loop, so close() can cancel them in the kernel
    (another thread could not enter a SINGLE_ISSUER ring: they would be stranded)."""
    loop = uringloop.Loop(sq_entries=4, cq_entries=4)
    r, w = os.pipe()
    futs: list[concurrent.futures.Future[bytes]] = []
    try:

        async def park() -> None:
            submitter = threading.Thread(
                target=lambda: futs.extend(loop.threadsafe.pread(r, 1) for _ in range(16))
            )
            submitter.start()
            await loop.run_in_executor(None, submitter.join)
            while loop.uring_stats().backlog < 12:
                await asyncio.sleep(0.001)

        loop.run_until_complete(park())
        loop.run_until_complete(loop.shutdown_default_executor())
        stats = loop.uring_stats()
        assert (stats.in_flight, stats.backlog) == (4, 12)
        t0 = time.monotonic()
        loop.close()
        assert time.monotonic() - t0 < _loop.CLOSE_TIMEOUT + WAKEUP_BOUND
        assert not _loop._never_freed, "close() stranded operations it could cancel"
        for fut in futs:
            with pytest.raises(RuntimeError):
                fut.result(timeout=HANG_BOUND)
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(r)
        os.close(w)


def test_close_fallback_with_foreign_operations_blocked_and_queued(
    no_fd_leak: None, tmp_path: pathlib.Path
) -> None:
    """The thread-pool fallback: opens blocked in half the workers (a FIFO with no
    writer), pipe reads waiting for data in the others, and more reads queued in the pool
    when the loop closes. The waiting reads are withdrawn (they read nothing), the queued
    ones dropped; the opens, which nothing can stop, are kept alive. Each foreign future
    resolves (RuntimeError); none is left hanging."""
    loop = uringloop.Loop(use_uring=False)
    r, w = os.pipe()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    pool = loop._driver._pool  # type: ignore[union-attr]
    workers = pool._max_workers
    opens = workers // 2
    futs: list[concurrent.futures.Future[Any]] = []
    never_freed = len(_loop._never_freed)
    try:

        async def park() -> None:
            futs.extend(loop.threadsafe.open_fd(fifo, os.O_RDONLY) for _ in range(opens))
            futs.extend(loop.threadsafe.pread(r, 1) for _ in range(workers - opens + 16))
            while loop.uring_stats().in_flight < workers + 16:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.05)  # let every worker block (in open(), or poll())

        loop.run_until_complete(park())
        t0 = time.monotonic()
        loop.close()
        assert time.monotonic() - t0 < _loop.CLOSE_TIMEOUT + WAKEUP_BOUND
        os.close(os.open(fifo, os.O_WRONLY))  # release the blocked opens
        for thread in list(pool._threads):
            thread.join(HANG_BOUND)
        # The operations close() could not wait for (the opens) were kept alive; the
        # workers are done now, so this test's share can go.
        assert len(_loop._never_freed) == never_freed + 1
        assert len(_loop._never_freed[never_freed][0]) == opens
        del _loop._never_freed[never_freed:]
        _, hung = concurrent.futures.wait(futs, timeout=HANG_BOUND)
        assert not hung, f"{len(hung)} of {len(futs)} foreign futures never resolved"
        others = [f for f in futs if not isinstance(f.exception(), RuntimeError)]
        assert not others, others[0].exception()
        os.write(w, b"x" * (workers + 16))  # no read took any: the pipe gives them all back
        os.set_blocking(r, False)
        assert os.read(r, 1000) == b"x" * (workers + 16)
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(r)
        os.close(w)
