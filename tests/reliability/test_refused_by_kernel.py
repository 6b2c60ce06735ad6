"""Operations the kernel ended with ECANCELED without running them, as it does when it
cannot start an io-wq worker thread (a process or container at its pids limit): they are
made as blocking calls instead of failing with a cancellation nobody asked for, and a
cancellation that was asked for still ends as one.

The refusal is made by the kernel itself: the operation's SQE is swapped, as it is
written, for a NOP whose injected result is -ECANCELED (IORING_NOP_INJECT_RESULT, Linux
6.10), so the operation never runs in the kernel and its CQE is the one a refusal gives.
The last test makes the real refusal, in a pids cgroup, where one can be made.
"""

from __future__ import annotations

import asyncio
import errno
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
import uringloop.threads
from uringloop._ops import operation
from uringloop._ops.sqe import SQE_SIZE, USER_DATA_WORD
from uringloop._ring import abi

pytestmark = [
    pytest.mark.usefixtures("no_fd_leak"),
    pytest.mark.skipif(
        tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit()) < (6, 10),
        reason="IORING_NOP_INJECT_RESULT needs Linux 6.10",
    ),
]

_INJECT_RESULT = 1 << 0  # IORING_NOP_INJECT_RESULT, in the SQE's nop_flags


def _nop_ending(res: int) -> bytes:
    """An SQE for a NOP whose CQE result is `res` (user_data 0)."""
    sqe = bytearray(SQE_SIZE)
    # opcode, flags, ioprio, fd, off, addr, len (the result), nop_flags
    fields = (abi.Op.NOP, 0, 0, -1, 0, 0, res & 0xFFFFFFFF, _INJECT_RESULT)
    struct.pack_into("<BBHiQQII", sqe, 0, *fields)
    return bytes(sqe)


class Refusals:
    """The operations' prep patched (an entry's, a read's, a write's of the caller's
    memory): the first `count` operations of `opcode` written to the ring are written as
    NOPs that end with -ECANCELED."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, opcode: int, count: int = 1) -> None:
        self.made = 0
        nop = _nop_ending(-errno.ECANCELED)
        for cls in (operation.Entry, operation.Positioned, operation.Read):
            monkeypatch.setattr(cls, "prep", self._prep(cls.prep, opcode, count, nop))

    def _prep(self, real_prep: Any, opcode: int, count: int, nop: bytes) -> Any:
        def prep(op: Any, sqes: Any, words: Any, off: int, user_data: int) -> None:
            real_prep(op, sqes, words, off, user_data)
            if op.opcode == opcode and self.made < count:
                self.made += 1
                sqes[off : off + SQE_SIZE] = nop
                words[(off >> 3) + USER_DATA_WORD] = user_data

        return prep


@pytest.fixture
def loop() -> Iterator[uringloop.Loop]:
    loop = uringloop.Loop()
    if not loop.uring_available:
        loop.close()
        pytest.skip("io_uring is unavailable")
    yield loop
    loop.close()


def test_a_mkdir_the_kernel_refused_is_made_blocking(
    loop: uringloop.Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusals = Refusals(monkeypatch, abi.Op.MKDIRAT)
    target = tmp_path / "made"
    loop.run_until_complete(loop.mkdir(str(target)))
    assert refusals.made == 1
    assert target.is_dir()
    # The next one goes through the ring again, and its errors are its own.
    with pytest.raises(FileExistsError):
        loop.run_until_complete(loop.mkdir(str(target)))


def test_a_write_the_kernel_refused_writes_its_bytes_once(
    loop: uringloop.Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data"

    async def main() -> None:
        async with uringloop.open(path, "wb") as f:
            await f.write(b"first ")
            await f.flush()
            refusals = Refusals(monkeypatch, abi.Op.WRITE)
            await f.write(b"second")
            await f.flush()
            assert refusals.made == 1

    loop.run_until_complete(main())
    assert path.read_bytes() == b"first second"


def test_a_close_the_kernel_refused_still_closes(
    loop: uringloop.Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusals = Refusals(monkeypatch, abi.Op.CLOSE)
    fd = os.open(tmp_path, os.O_RDONLY)
    loop.run_until_complete(loop.close_fd(fd))
    assert refusals.made == 1
    with pytest.raises(OSError) as closed:
        os.fstat(fd)
    assert closed.value.errno == errno.EBADF


def test_a_cancellation_asked_for_is_not_taken_for_a_refusal(loop: uringloop.Loop) -> None:
    """A thread's timeout cancels the operation, not its waiter: its ECANCELED is the one
    asked for, and the read is not made again (it would take the bytes written later)."""
    r, w = os.pipe()
    stop = threading.Event()

    def run_loop() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(asyncio.to_thread(stop.wait))

    thread = threading.Thread(target=run_loop)
    thread.start()
    try:
        with pytest.raises(TimeoutError, match="was cancelled"):
            uringloop.threads.pread(r, 10, loop=loop, timeout=0.2)
        assert loop.uring_stats().in_flight == 0
        os.write(w, b"later")
        assert os.read(r, 10) == b"later"
    finally:
        stop.set()
        thread.join()
        os.close(r)
        os.close(w)


def _left_in(r: int) -> bytes:
    os.set_blocking(r, False)
    try:
        return os.read(r, 10)
    except BlockingIOError:
        return b""


def test_a_refused_read_whose_task_is_cancelled_takes_nothing(
    loop: uringloop.Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The refused read of an empty pipe waits on the pool; its task's cancellation must
    # reach it there, or it takes the bytes written later.
    r, w = os.pipe()

    async def main() -> None:
        refusals = Refusals(monkeypatch, abi.Op.READ)
        task = asyncio.ensure_future(loop.pread(r, 10))
        for _ in range(50):
            await asyncio.sleep(0.01)
            if refusals.made and loop.uring_stats().in_flight == 0:
                break
        assert refusals.made == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        os.write(w, b"later")
        await asyncio.sleep(0.2)

    try:
        loop.run_until_complete(main())
        assert _left_in(r) == b"later"
    finally:
        os.close(r)
        os.close(w)


def test_a_refused_read_a_thread_times_out_takes_nothing(
    loop: uringloop.Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, w = os.pipe()
    stop = threading.Event()
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.to_thread(stop.wait)))
    thread.start()
    try:
        refusals = Refusals(monkeypatch, abi.Op.READ)
        with pytest.raises(TimeoutError, match="was cancelled"):
            uringloop.threads.pread(r, 10, loop=loop, timeout=0.3)
        assert refusals.made == 1
        os.write(w, b"later")
        time.sleep(0.2)
        assert _left_in(r) == b"later"
    finally:
        stop.set()
        thread.join()
        os.close(r)
        os.close(w)


def test_an_interrupt_as_a_refused_operation_is_handed_over_loses_nothing(
    loop: uringloop.Loop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signal handler's KeyboardInterrupt as the refused mkdir goes to the pool: the loop
    # goes on (as asyncio lets it after one), and the mkdir is made all the same.
    driver: Any = loop._driver
    hand_over = driver._run_blocking
    interrupted: list[Any] = []

    def interrupting(op: Any) -> None:
        if not interrupted:
            interrupted.append(op)
            raise KeyboardInterrupt
        hand_over(op)

    monkeypatch.setattr(driver, "_run_blocking", interrupting)
    Refusals(monkeypatch, abi.Op.MKDIRAT)
    target = tmp_path / "made"
    task = loop.create_task(loop.mkdir(str(target)))
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(task)
    assert interrupted
    loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 5))
    assert target.is_dir()


_PIDS_ROOT = Path("/sys/fs/cgroup/pids")

_AT_THE_LIMIT = """
import asyncio, os, sys, threading
import uringloop
path = sys.argv[1]
loop = uringloop.Loop()
assert loop.uring_available
ev = threading.Event()
hogs = []
while True:  # take every task the cgroup allows
    t = threading.Thread(target=ev.wait, daemon=True)
    try:
        t.start()
    except RuntimeError:
        break
    hogs.append(t)
async def main():
    try:
        async with uringloop.open(path, "wb") as f:
            await f.write(b"data")
        print("written")
    except RuntimeError as exc:
        print("RuntimeError", exc)
    except OSError as exc:
        print("OSError", exc.errno)
loop.run_until_complete(main())
ev.set()
loop.close()
"""


def test_at_a_pids_limit_the_kernel_refusal_is_not_a_cancellation(tmp_path: Path) -> None:
    """The real refusal: in a pids cgroup with no room left for an io-wq worker, an open
    that creates is refused by the kernel. It is then made on the loop's pool, which
    cannot start a thread either: the error says so, as run_in_executor's would, and is
    no ECANCELED."""
    if os.geteuid() != 0 or not (_PIDS_ROOT / "cgroup.procs").exists():
        pytest.skip("needs root and a cgroup v1 pids hierarchy")
    group = _PIDS_ROOT / f"uringloop-test-{os.getpid()}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot make a pids cgroup: {exc}")
    try:
        (group / "pids.max").write_text("12")
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(_AT_THE_LIMIT))
        procs = str(group / "cgroup.procs")
        done = subprocess.run(
            ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", sys.executable, str(script),
             str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    finally:
        for _ in range(50):  # (the child's threads may still be leaving the group)
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in ("written", "RuntimeError can't start new thread"), done.stdout
