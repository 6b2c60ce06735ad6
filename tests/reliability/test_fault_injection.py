"""Faults injected under the loop: failing io_uring syscalls and tiny rings.

The seam is uringloop._ring.syscalls.inject(call, errno, times): the next `times` calls
of io_uring_setup/enter/register fail with that errno before reaching the kernel.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import warnings

import pytest

import uringloop
from tests.conftest import EnterLog
from uringloop._ring import syscalls

from ._support import CompletionLog, run_fresh

# Faults of the ring: no direct shortcut (an open from the dentry cache) bypasses it.
pytestmark = pytest.mark.usefixtures("no_fd_leak", "ring_only")


async def _file_roundtrip(loop: uringloop.Loop, directory: str) -> None:
    """Create, write, fsync, read back, stat, unlink: the basic file operations work."""
    path = os.path.join(directory, "roundtrip.bin")
    data = os.urandom(100_000)
    fd = await loop.open_fd(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        await loop.pwrite_all(fd, data, 0)
        await loop.fsync(fd)
        assert await loop.pread(fd, len(data) + 10, 0) == data
        buf = bytearray(1000)
        assert await loop.preadinto(fd, buf, 5000) == 1000
        assert buf == data[5000:6000]
        assert (await loop.fstat(fd)).st_size == len(data)
    finally:
        await loop.close_fd(fd)
    assert (await loop.stat(path)).st_size == len(data)
    await loop.unlink(path)
    assert not os.path.exists(path)


# -- io_uring_setup fails -> thread-pool fallback, one warning ------------------------------


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM, errno.ENOMEM])
def test_setup_failure_falls_back_with_one_warning(err: int, tmp_path: str) -> None:
    with syscalls.inject("setup", err, times=1), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop = uringloop.Loop()
    try:
        runtime = [w for w in seen if issubclass(w.category, RuntimeWarning)]
        assert len(runtime) == 1, [str(w.message) for w in seen]
        assert os.strerror(err) in str(runtime[0].message)
        assert len(seen) == 1, [str(w.message) for w in seen]
        assert loop.uring_available is False
        assert loop.uring_stats().uring_available is False
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
        stats = loop.uring_stats()
        assert stats.submitted == stats.completed > 0
        assert stats.in_flight == 0
    finally:
        loop.close()


def test_setup_einval_on_every_flag_combination_falls_back(tmp_path: str) -> None:
    """EINVAL makes the ring drop setup flags one by one; when even a plain ring is
    refused, the loop falls back instead of failing."""
    with (
        syscalls.inject("setup", errno.EINVAL, times=-1) as fault,
        warnings.catch_warnings(record=True) as seen,
    ):
        warnings.simplefilter("always")
        loop = uringloop.Loop()
    try:
        assert fault.times == -1
        assert [w.category for w in seen] == [RuntimeWarning]
        assert not loop.uring_available
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
    finally:
        loop.close()


def test_setup_einval_once_still_gets_a_ring(tmp_path: str) -> None:
    """One EINVAL (an old kernel refusing a flag) costs a flag, not the ring."""
    with syscalls.inject("setup", errno.EINVAL, times=1) as fault:
        loop = uringloop.Loop()
    try:
        assert fault.times == 0
        assert loop.uring_available
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
    finally:
        loop.close()


def test_setup_failure_with_unexpected_errno_raises() -> None:
    """An errno that does not mean "no io_uring here" is not silently hidden."""
    with syscalls.inject("setup", errno.EFAULT, times=1), pytest.raises(OSError) as info:
        uringloop.Loop()
    assert info.value.errno == errno.EFAULT


def test_env_disable_falls_back_without_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: str
) -> None:
    monkeypatch.setenv("URINGLOOP_DISABLE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop = uringloop.Loop()
    try:
        assert not loop.uring_available
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
    finally:
        loop.close()


# -- io_uring_register fails ----------------------------------------------------------------


@pytest.mark.parametrize("err", [errno.ENOMEM, errno.EPERM, errno.EINVAL])
def test_register_failure_at_setup_falls_back(err: int, tmp_path: str) -> None:
    """Every register call failing while the loop is built (probe, eventfd): the loop still
    works (through the fallback, with one warning), and leaks nothing."""
    with syscalls.inject("register", err, times=-1), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop = uringloop.Loop()
    try:
        assert [w.category for w in seen] == [RuntimeWarning]
        assert not loop.uring_available
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
    finally:
        loop.close()


def test_probe_failure_alone_keeps_the_ring(tmp_path: str) -> None:
    """The first register call is the opcode probe; without it the ring assumes all ops."""
    with syscalls.inject("register", errno.EINVAL, times=1) as fault:
        loop = uringloop.Loop()
    try:
        assert fault.times == 0
        assert loop.uring_available
        loop.run_until_complete(_file_roundtrip(loop, str(tmp_path)))
    finally:
        loop.close()


# -- io_uring_enter fails transiently -> retried, nothing lost -----------------------------


@pytest.mark.parametrize("err", [errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ENOMEM])
def test_enter_transient_errors_are_retried(
    err: int, completions: CompletionLog, data_file: tuple[str, bytes]
) -> None:
    path, data = data_file
    n_ops = 3000

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = await loop.open_fd(path)
        rng = random.Random(err)
        offsets = [rng.randrange(0, len(data) - 512) for _ in range(n_ops)]
        try:
            with syscalls.inject("enter", err, times=200) as fault:
                results = await asyncio.gather(
                    *(loop.pread(fd, 512, off) for off in offsets),
                    *(loop.nop() for _ in range(500)),
                )
            assert fault.times == 0, "the injected failures were not all hit"
            for off, got in zip(offsets, results, strict=False):
                assert got == data[off : off + 512]
            assert results[n_ops:] == [None] * 500
            # Keeps working after the storm.
            assert await loop.pread(fd, 100, 0) == data[:100]
        finally:
            await loop.close_fd(fd)
        stats = loop.uring_stats()
        assert stats.in_flight == 0 and stats.backlog == 0
        assert stats.submitted == stats.completed

    run_fresh(main, sq_entries=8, cq_entries=16)
    assert not completions.twice()
    assert not completions.released_early
    assert sum(completions.delivered.values()) == n_ops + 500 + 3


def test_enter_transient_errors_from_foreign_threads(data_file: tuple[str, bytes]) -> None:
    """Foreign submissions caught in an EAGAIN storm are retried too."""
    path, data = data_file
    loop = uringloop.Loop(sq_entries=4, cq_entries=8)
    try:
        fd = os.open(path, os.O_RDONLY)
        try:

            async def main() -> list[bytes]:
                running = asyncio.get_running_loop()

                def work() -> list[bytes]:
                    futs = [loop.threadsafe.pread(fd, 100, i * 100) for i in range(400)]
                    return [f.result(timeout=30) for f in futs]

                with syscalls.inject("enter", errno.EAGAIN, times=100):
                    return await running.run_in_executor(None, work)

            got = loop.run_until_complete(main())
            assert got == [data[i * 100 : i * 100 + 100] for i in range(400)]
        finally:
            os.close(fd)
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()


def test_enter_hard_error_once_is_retried(data_file: tuple[str, bytes]) -> None:
    """An enter that fails once with a hard error (EFAULT here) consumed no SQE: it is
    entered again, and every operation completes on the ring."""
    path, data = data_file

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = await loop.open_fd(path)
        try:
            with syscalls.inject("enter", errno.EFAULT, times=1) as fault:
                results = await asyncio.gather(*(loop.pread(fd, 10, i) for i in range(20)))
            assert fault.times == 0, "the injected failure was not hit"
            assert results == [data[i : i + 10] for i in range(20)]
            assert loop.uring_available
        finally:
            await loop.close_fd(fd)
        assert loop.uring_stats().in_flight == 0

    run_fresh(main)


def test_enter_failing_for_good_moves_to_the_fallback(data_file: tuple[str, bytes]) -> None:
    """An enter that keeps failing (EFAULT every time): the ring is given up with a warning;
    operations that never reached the kernel run on the thread pool, and so does
    everything after."""
    path, data = data_file

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = os.open(path, os.O_RDONLY)
        try:
            with syscalls.inject("enter", errno.EFAULT, times=-1):
                with pytest.warns(RuntimeWarning, match="thread pool from now on"):
                    results = await asyncio.gather(*(loop.pread(fd, 10, i) for i in range(20)))
                assert results == [data[i : i + 10] for i in range(20)]
                assert not loop.uring_available
                assert await loop.pread(fd, 10, 5) == data[5:15]
        finally:
            os.close(fd)

    run_fresh(main)


def test_counters_go_on_after_the_move_to_the_fallback(data_file: tuple[str, bytes]) -> None:
    """uring_stats() counts since the loop was created: the thread pool that takes over
    from a ring given up adds to the ring's counters, rather than start them again."""
    path, _ = data_file

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = os.open(path, os.O_RDONLY)
        try:
            for i in range(5):
                await loop.pread(fd, 10, i, cached_copy=False)
            before = loop.uring_stats()
            assert before.submitted == before.completed == 5
            with (
                syscalls.inject("enter", errno.EFAULT, times=-1),
                pytest.warns(RuntimeWarning, match="thread pool from now on"),
            ):
                await asyncio.gather(*(loop.pread(fd, 10, i, cached_copy=False) for i in range(3)))
            after = loop.uring_stats()
            assert not after.uring_available
            assert (after.submitted, after.completed) == (8, 8)
            assert after.enter_calls >= before.enter_calls
            assert after.max_in_flight >= before.max_in_flight
        finally:
            os.close(fd)

    run_fresh(main)


# -- tiny rings -----------------------------------------------------------------------------


def test_sq_of_two_entries_with_10000_queued_operations(
    completions: CompletionLog, data_file: tuple[str, bytes]
) -> None:
    path, data = data_file
    n = 10_000

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        assert loop._driver._ring.sq_entries == 2  # type: ignore[union-attr]
        fd = await loop.open_fd(path)
        try:
            offsets = [(i * 97) % (len(data) - 64) for i in range(n)]
            reads = [loop.pread(fd, 64, off) for off in offsets[: n // 2]]
            bufs = [bytearray(64) for _ in range(n // 2)]
            intos = [
                loop.preadinto(fd, buf, off)
                for buf, off in zip(bufs, offsets[n // 2 :], strict=True)
            ]
            results = await asyncio.gather(*reads, *intos)
            for off, got in zip(offsets[: n // 2], results[: n // 2], strict=True):
                assert got == data[off : off + 64]
            assert results[n // 2 :] == [64] * (n // 2)
            for off, buf in zip(offsets[n // 2 :], bufs, strict=True):
                assert buf == data[off : off + 64]
        finally:
            await loop.close_fd(fd)
        stats = loop.uring_stats()
        assert stats.in_flight == 0 and stats.backlog == 0
        assert stats.submitted == stats.completed == n + 2

    run_fresh(main, sq_entries=2, cq_entries=4)
    assert len(completions.delivered) == n + 2
    assert not completions.twice()
    assert not completions.released_early


def test_cq_overflow_delivers_every_completion_once(
    completions: CompletionLog, enter_log: EnterLog
) -> None:
    """Far more operations in flight than the CQ holds, all completing at once.

    The driver normally caps in-flight operations at the CQ size; the cap is lifted here
    so the kernel really overflows the CQ (IORING_SQ_CQ_OVERFLOW). Reads on pipes stay in
    flight until data arrives, then all complete together.
    """
    n_pipes, reads_per_pipe = 8, 64

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        driver = loop._driver
        ring = driver._ring  # type: ignore[union-attr]
        assert ring.cq_entries == 4
        driver.cap = 10_000  # type: ignore[union-attr]
        pipes = [os.pipe() for _ in range(n_pipes)]
        try:
            tasks = [
                asyncio.ensure_future(loop.pread(r, 1))
                for r, _ in pipes
                for _ in range(reads_per_pipe)
            ]
            while loop.uring_stats().in_flight < len(tasks):
                await asyncio.sleep(0.001)
            # The overflow flag right after every enter from here: proof the CQ overflowed.
            watched = len(enter_log.overflowed)
            for i, (_, w) in enumerate(pipes):
                os.write(w, bytes([i]) * reads_per_pipe)
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            results = [t.result() for t in tasks]
            overflow_seen = enter_log.overflowed[watched:]
            assert any(overflow_seen), "the CQ never overflowed: the test proves nothing"
        finally:
            for r, w in pipes:
                os.close(r)
                os.close(w)
        for i in range(n_pipes):
            chunk = results[i * reads_per_pipe : (i + 1) * reads_per_pipe]
            assert chunk == [bytes([i])] * reads_per_pipe
        stats = loop.uring_stats()
        assert stats.max_in_flight == len(tasks)
        assert stats.in_flight == 0
        assert stats.completed == len(tasks)

    run_fresh(main, sq_entries=2, cq_entries=4)
    assert len(completions.delivered) == n_pipes * reads_per_pipe
    assert not completions.twice()


def test_small_cq_with_default_cap(
    completions: CompletionLog, data_file: tuple[str, bytes]
) -> None:
    """cq_entries=4 with 2000 operations: the in-flight cap keeps the CQ from overflowing,
    and every completion arrives exactly once."""
    path, data = data_file

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        fd = await loop.open_fd(path)
        try:
            r, w = os.pipe()
            try:
                # Two reads parked on a pipe hold half the CQ for the whole run.
                parked = [asyncio.ensure_future(loop.pread(r, 1)) for _ in range(2)]
                got = await asyncio.gather(*(loop.pread(fd, 8, i * 8) for i in range(2000)))
                assert got == [data[i * 8 : i * 8 + 8] for i in range(2000)]
                os.write(w, b"ab")
                assert sorted(await asyncio.gather(*parked)) == [b"a", b"b"]
            finally:
                os.close(r)
                os.close(w)
        finally:
            await loop.close_fd(fd)
        stats = loop.uring_stats()
        assert stats.max_in_flight <= 4
        assert stats.in_flight == 0

    run_fresh(main, sq_entries=2, cq_entries=4)
    assert not completions.twice()
    assert len(completions.delivered) == 2000 + 4


def test_completions_inside_a_full_sq_refill_wake_their_tasks() -> None:
    """Regression: with the SQ full, flush() enters and reaps while refilling it; those
    completions must keep the loop from blocking, even when the last batch submitted
    (a read parked on an empty pipe) completes nothing. Before the fix the loop slept
    in select() with the nops' callbacks ready, forever."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, uringloop.Loop)
        r, w = os.pipe()
        try:
            nops = [asyncio.ensure_future(loop.nop()) for _ in range(2)]
            parked = asyncio.ensure_future(loop.pread(r, 1))
            done, _ = await asyncio.wait(nops, timeout=10)
            assert len(done) == 2, "completed nops were not delivered while a read was parked"
            os.write(w, b"x")
            assert await asyncio.wait_for(parked, 10) == b"x"
        finally:
            os.close(r)
            os.close(w)

    run_fresh(main, sq_entries=2, cq_entries=8)
