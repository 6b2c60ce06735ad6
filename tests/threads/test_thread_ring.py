"""uringloop.threads' batches: one thread's own ring, a batch waited for in one enter."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import EnterLog, run_python
from uringloop import _thread_ring, threads
from uringloop._ring import syscalls


def _in_thread(func: Callable[[], Any]) -> Any:
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(("ok", func()))
        except BaseException as exc:  # handed to the test
            box.append(("error", exc))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    status, value = box[0]
    if status == "error":
        raise value
    return value


def test_a_batch_is_one_enter_on_the_thread_s_own_ring(
    data_file: tuple[str, bytes], enter_log: EnterLog
) -> None:
    path, data = data_file
    enters = enter_log.to_submit

    def work() -> tuple[list[bytes], Any]:
        fd = os.open(path, os.O_RDONLY)
        try:
            got = threads.pread_many([(fd, 4096, i * 8192) for i in range(16)])
            return got, _thread_ring.thread_ring()
        finally:
            os.close(fd)

    got, ring = _in_thread(work)
    assert got == [data[i * 8192 : i * 8192 + 4096] for i in range(16)]
    assert isinstance(ring, _thread_ring.ThreadRing)
    # 16 reads submitted together and waited for together (a short wait may take a retry).
    assert enters[0] == 16 and len(enters) <= 3


def test_batch_results_match_os_and_errors_come_in_request_order(
    data_file: tuple[str, bytes], tmp_path: Path
) -> None:
    path, data = data_file

    def work() -> Any:
        fd = os.open(path, os.O_RDONLY)
        try:
            assert threads.pread_many([]) == []
            mixed = threads.pread_many([(fd, 10, 5), (fd, 2_000_000, 0), (fd, 3, len(data) - 1)])
            assert mixed == [data[5:15], data, data[-1:]]
            with pytest.raises(OSError) as info:
                threads.pread_many([(fd, 10, 0), (9999, 10, 0), (fd, 10, 0)])
            assert info.value.errno == errno.EBADF
            with pytest.raises(OSError) as info:
                threads.pread_many([(fd, 10, -2)])  # as os.pread: EINVAL, nothing submitted
            assert info.value.errno == errno.EINVAL
            # The ring is still good after the failures.
            return threads.pread_many([(fd, 4, 0), (fd, 4, 4)])
        finally:
            os.close(fd)

    assert _in_thread(work) == [data[:4], data[4:8]]


def test_o_direct_batch(tmp_path: Path) -> None:
    """Aligned O_DIRECT reads from a thread: the ring's buffers are page-aligned."""
    path = tmp_path / "direct.bin"
    data = os.urandom(64 * 4096)
    path.write_bytes(data)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        pytest.skip(f"no O_DIRECT here: {exc}")
    try:
        got = _in_thread(lambda: threads.pread_many([(fd, 4096, i * 4096) for i in range(64)]))
    finally:
        os.close(fd)
    assert got == [data[i * 4096 : (i + 1) * 4096] for i in range(64)]


def test_larger_batch_than_the_ring_is_written_in_rounds(data_file: tuple[str, bytes]) -> None:
    path, data = data_file
    n = _thread_ring.SQ_ENTRIES * 3 + 5

    def work() -> list[bytes]:
        fd = os.open(path, os.O_RDONLY)
        try:
            return threads.pread_many([(fd, 100, (i * 997) % (len(data) - 100)) for i in range(n)])
        finally:
            os.close(fd)

    got = _in_thread(work)
    assert got == [data[(i * 997) % (len(data) - 100) :][:100] for i in range(n)]


def test_without_io_uring_a_batch_is_plain_calls(data_file: tuple[str, bytes]) -> None:
    path, data = data_file

    def work() -> tuple[Any, list[bytes]]:
        with syscalls.inject("setup", errno.ENOSYS, times=-1):
            fd = os.open(path, os.O_RDONLY)
            try:
                got = threads.pread_many([(fd, 8, 0), (fd, 8, 8)])
            finally:
                os.close(fd)
            return _thread_ring.thread_ring(), got

    ring, got = _in_thread(work)
    assert ring is None and got == [data[:8], data[8:16]]


def test_uringloop_disable_makes_a_batch_plain_calls(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # URINGLOOP_DISABLE=1 asks for no io_uring: a thread's batch makes no ring of its own.
    path, data = data_file
    monkeypatch.setenv("URINGLOOP_DISABLE", "1")

    def rings() -> int:
        count = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[io_uring]"
            except OSError:  # (closed meanwhile)
                pass
        return count

    def work() -> tuple[int, list[bytes], int]:
        fd = os.open(path, os.O_RDONLY)
        try:
            before = rings()
            return before, threads.pread_many([(fd, 8, 0), (fd, 8, 8)]), rings()
        finally:
            os.close(fd)

    before, got, after = _in_thread(work)
    assert got == [data[:8], data[8:16]] and after == before


@pytest.mark.parametrize("err", [errno.EMFILE, errno.ENFILE])
def test_a_ring_refused_for_want_of_descriptors_is_made_by_a_later_batch(
    data_file: tuple[str, bytes], err: int
) -> None:
    # Out of descriptors at the thread's first batch: that batch is made with plain calls,
    # and a later one, descriptors back, makes the ring (it was never tried again).
    path, data = data_file

    def work() -> tuple[Any, list[bytes], Any, list[bytes]]:
        fd = os.open(path, os.O_RDONLY)
        try:
            with syscalls.inject("setup", err, times=1):
                first = threads.pread_many([(fd, 8, 0), (fd, 8, 8)])
                without = _ring_of_thread()
            second = threads.pread_many([(fd, 8, 16), (fd, 8, 24)])
            return without, first, _ring_of_thread(), second
        finally:
            os.close(fd)

    without, first, ring, second = _in_thread(work)
    assert without is None and first == [data[:8], data[8:16]]
    assert isinstance(ring, _thread_ring.ThreadRing) and second == [data[16:24], data[24:32]]


def _ring_of_thread() -> Any:
    """The calling thread's ring as kept (None: not made yet; False: given up)."""
    return getattr(_thread_ring._local, "ring", None)


@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS])
def test_an_enter_refused_for_good_gives_the_ring_up_and_the_batch_is_made_directly(
    data_file: tuple[str, bytes], err: int
) -> None:
    # A seccomp filter installed after the thread's ring was made refuses io_uring_enter
    # for good: the batch, which never reached the kernel, is made with plain calls (one
    # warning), and so is every later one; before, each raised that errno.
    path, data = data_file
    requests = [(0, 8, 0), (0, 8, 4096), (0, 8, 8192)]

    def work() -> tuple[list[bytes], list[bytes], list[bytes], Any]:
        fd = os.open(path, os.O_RDONLY)
        batch = [(fd, size, offset) for _, size, offset in requests]
        try:
            before = threads.pread_many(batch)
            ring = _thread_ring.thread_ring()
            assert ring is not None
            with syscalls.inject("enter", err, times=-1):
                with pytest.warns(RuntimeWarning, match="plain system calls from now on"):
                    refused = threads.pread_many(batch)
                later = threads.pread_many(batch)
            return before, refused, later, (_thread_ring.thread_ring(), ring._ring.closed)
        finally:
            os.close(fd)

    before, refused, later, (ring_now, closed) = _in_thread(work)
    expected = [data[offset : offset + size] for _, size, offset in requests]
    assert before == refused == later == expected
    assert ring_now is None and closed


def test_through_a_loop_when_asked(data_file: tuple[str, bytes]) -> None:
    """loop= sends the batch to that loop's ring instead (one foreign submission)."""
    path, data = data_file
    loop = uringloop.Loop()
    started = threading.Event()
    loop.call_soon(started.set)
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert started.wait(10)
        fd = os.open(path, os.O_RDONLY)
        try:
            before = loop.uring_stats().foreign_submissions
            got = _in_thread(lambda: threads.pread_many([(fd, 5, 0), (fd, 5, 5)], loop=loop))
            assert loop.uring_stats().foreign_submissions == before + 1
        finally:
            os.close(fd)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()
    assert got == [data[:5], data[5:10]]


@pytest.mark.parametrize("where", ["reserve", "prep_parts"])
def test_an_interrupted_batch_leaves_no_slot_for_the_kernel(
    where: str, data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The main thread's batch is interrupted (a signal handler's KeyboardInterrupt) as
    # its entries are written: the slots reserved and not written go back, so the next
    # batch's enter submits its own entries only (not the previous batch's, stale, into
    # buffers since released), and its parts not written are dropped.
    from uringloop._ops import operation, table

    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, 4096, i * 4096) for i in range(_thread_ring.SQ_ENTRIES)]
        expected = [data[i * 4096 : (i + 1) * 4096] for i in range(len(reqs))]
        ring = _thread_ring.ThreadRing()
        try:
            assert ring.run(table.pread_many.build(reqs)) == expected  # every slot written once
            queues = ring._queues
            fired: list[bool] = []

            class Interrupting:
                def __getattr__(self, name: str) -> Any:
                    return getattr(queues, name)

                def reserve(self, count: int) -> Any:
                    queues.reserve(count)
                    fired.append(True)
                    raise KeyboardInterrupt

            real = operation.ReadBatch.prep_parts

            def prep_parts(self: Any, *args: Any) -> Any:
                real(self, *args)
                fired.append(True)
                raise KeyboardInterrupt

            if where == "reserve":
                monkeypatch.setattr(ring, "_queues", Interrupting())
            else:
                monkeypatch.setattr(operation.ReadBatch, "prep_parts", prep_parts)
            with pytest.raises(KeyboardInterrupt):
                ring.run(table.pread_many.build(reqs))
            monkeypatch.undo()
            assert fired and queues.pending() == 0 and not ring._inflight
            unknown: list[int] = []

            class Watching:
                def __getattr__(self, name: str) -> Any:
                    return getattr(queues, name)

                def peek_columns(self, *args: Any) -> Any:
                    user_datas, results, flags, end = queues.peek_columns(*args)
                    peeked.extend(user_datas)
                    unknown.extend(ud for ud in user_datas if ud not in ring._inflight)
                    return user_datas, results, flags, end

            peeked: list[int] = []
            monkeypatch.setattr(ring, "_queues", Watching())
            assert ring.run(table.pread_many.build(reqs)) == expected
            assert len(peeked) == len(reqs) and unknown == []
            monkeypatch.undo()
        finally:
            ring.close()
    finally:
        os.close(fd)


def test_a_reused_descriptor_number_is_checked_again(
    data_file: tuple[str, bytes], no_fd_leak: None
) -> None:
    # A batch on a regular file, that file closed by the caller and its number reused by a
    # pipe: the next batch at an offset on the pipe fails with ESPIPE, as os.pread does,
    # and leaves the pipe's bytes unread (no loop iteration forgets what was checked;
    # before, both reads took the pipe's bytes, its offsets ignored).
    path, data = data_file

    def run() -> Any:
        fd = os.open(path, os.O_RDONLY)
        assert threads.pread_many([(fd, 5, 0), (fd, 5, 10)]) == [data[:5], data[10:15]]
        os.close(fd)
        r, w = os.pipe()
        try:
            os.write(w, b"hello, world")  # enough for both reads: none of them waits
            if r != fd:
                return "not reused"
            try:
                threads.pread_many([(r, 5, 0), (r, 5, 5)])
            except OSError as exc:
                return exc.errno, os.read(r, 5)
            return "no error"
        finally:
            os.close(r)
            os.close(w)

    outcome = _in_thread(run)
    if outcome == "not reused":
        pytest.skip("the descriptor number was not reused")
    assert outcome == (errno.ESPIPE, b"hello")


def test_completions_read_when_interrupted_are_delivered_later(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The main thread's batch is interrupted right after its reap read the CQEs: they stay
    # in the CQ, so closing the ring (which waits for what is in flight) delivers them
    # and returns, and the batch's buffers go back. (Before, the CQEs were consumed first:
    # the batch stayed in flight for good and close() waited forever.)
    from uringloop._ops import table

    path, data = data_file
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, 4096, i * 4096) for i in range(8)]
        expected = [data[i * 4096 : (i + 1) * 4096] for i in range(len(reqs))]
        ring = _thread_ring.ThreadRing()
        try:
            queues = ring._queues

            class Interrupting:
                def __getattr__(self, name: str) -> Any:
                    return getattr(queues, name)

                def peek_columns(self, *args: Any) -> Any:
                    queues.peek_columns(*args)
                    monkeypatch.undo()
                    raise KeyboardInterrupt

            monkeypatch.setattr(ring, "_queues", Interrupting())
            batch = table.pread_many.build(reqs)
            with pytest.raises(KeyboardInterrupt):
                ring.run(batch)
            # (The parts, and the cancellations the interrupt asked for, which find them
            # done: their CQEs wait too.)
            assert list(ring._inflight.values()).count(batch) == len(reqs)
            assert queues.cq_ready() == len(ring._inflight)
            assert ring.run(table.pread_many.build(reqs[:2])) == expected[:2]
            assert not ring._inflight and batch.state == 2  # DONE: its buffers went back
        finally:
            done = threading.Event()
            closer = threading.Thread(target=lambda: (ring.close(), done.set()), daemon=True)
            closer.start()
            assert done.wait(10), "close() waited for completions already consumed"
    finally:
        os.close(fd)


_INTERRUPTED_PIPE_READ = r"""
import os, signal, sys
import uringloop.threads as threads

class Alarm(Exception):
    pass

def alarm(signum, frame):
    raise Alarm

signal.signal(signal.SIGALRM, alarm)
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"regular file data")
fd = os.open(path, os.O_RDONLY)
r, w = os.pipe()
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    threads.pread_many([(r, 10, -1), (fd, 4, 0)])  # the pipe has nothing: it waits
except Alarm:
    pass
else:
    sys.exit("not interrupted")
os.write(w, b"BBBB")
print(threads.pread_many([(fd, 7, 0), (fd, 4, 8)]))
os.set_blocking(r, False)
print(os.read(r, 100))
"""


def test_an_interrupted_batch_is_cancelled_in_the_kernel(tmp_path: Path) -> None:
    # The main thread's batch is interrupted (a signal handler's exception, as Ctrl-C's)
    # while a read waits for a pipe: as an interrupted os.read, it takes none of the bytes
    # written later, holds up neither the next batch nor the exit (the ring's close).
    proc = run_python(tmp_path, _INTERRUPTED_PIPE_READ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == ["[b'regular', b'file']", "b'BBBB'"]


_INTERRUPTED_TWICE = r"""
import os, signal, sys
import uringloop.threads as threads
from uringloop import _thread_ring

class Alarm(Exception):
    pass

def alarm(signum, frame):
    raise Alarm

made = 0
real_cancel = _thread_ring.AsyncCancel

def cancel_interrupted_once(target):  # a second interrupt, as the cleanup asks for the second
    global made
    made += 1
    if made == 2:
        raise Alarm
    return real_cancel(target)

signal.signal(signal.SIGALRM, alarm)
pipes = [os.pipe() for _ in range(8)]
signal.setitimer(signal.ITIMER_REAL, 0.2)
_thread_ring.AsyncCancel = cancel_interrupted_once
try:
    threads.pread_many([(r, 10, -1) for r, _ in pipes])  # nothing to read: it waits
except Alarm:
    pass
else:
    sys.exit("not interrupted")
_thread_ring.AsyncCancel = real_cancel
for i, (r, w) in enumerate(pipes):
    os.write(w, b"data%d" % i)
got = threads.pread_many([(r, 5, -1) for r, _ in pipes])
print(made > 2, got == [b"data%d" % i for i in range(8)])
"""


def test_a_batch_interrupted_again_as_it_is_cancelled_is_cancelled_whole(tmp_path: Path) -> None:
    # A second interrupt lands in the first one's cleanup, after one of its reads was asked
    # to be cancelled: the others are cancelled all the same, so none takes the bytes
    # written later, and the next batch of the same pipes reads them.
    proc = run_python(tmp_path, _INTERRUPTED_TWICE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True"]
