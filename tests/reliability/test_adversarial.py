"""Issue 12, one test per symptom an adversarial user found: each asserts the fixed
behaviour, so each fails on 93bce5b (a test parametrized over the ring and the fallback
fails at least on the loop that showed the symptom). Each docstring says how it failed.

Cases that could crash, hang or damage the test process run in a subprocess with a
timeout, and with its working directory in tmp_path: a half-written SQE once made the
kernel read a freed path buffer and create a mode-000 directory with a garbage name in
the working directory, or write a statx result into freed memory. Hang checks are bounds
(a hang fails, it never blocks the suite), never speed claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import uringloop
from uringloop import threads

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARG_ERRORS = (ValueError, OverflowError, TypeError)
SCRIPT_TIMEOUT = 60.0  # seconds a subprocess may take before it counts as hung
WAIT = 5.0  # seconds a future or an fd check may take before it counts as lost


def _uring_or_skip() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = uringloop.Loop()
    available = loop.uring_available
    loop.close()
    if not available:
        pytest.skip("io_uring is not available here")


# -- helpers ------------------------------------------------------------------------------------

PRELUDE = """
import asyncio, errno, gc, json, os, sys, threading, time
import uringloop

ARG_ERRORS = (ValueError, OverflowError, TypeError)

def report(**values):
    print("RESULT " + json.dumps(values), flush=True)

def describe(exc):
    return None if exc is None else [type(exc).__name__, getattr(exc, "errno", None), str(exc)]

def make_loop(kind, **kwargs):
    return uringloop.Loop(use_uring=(kind != "fallback"), **kwargs)
"""


def run_script(
    tmp_path: pathlib.Path, source: str, *args: str, timeout: float = SCRIPT_TIMEOUT
) -> dict[str, Any]:
    """Run PRELUDE + source in a fresh interpreter, working directory tmp_path/cwd; return
    what it report()ed. A crash, a hang (timeout) or a missing report fails the test."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    code = PRELUDE + textwrap.dedent(source)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung: no exit within {timeout} s\nstderr: {exc.stderr!r}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"exit status {proc.returncode}, no result\nstderr:\n{proc.stderr}"
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    result["_returncode"] = proc.returncode
    result["_stderr"] = proc.stderr
    return result


def fds_on(path: os.PathLike[str] | str) -> list[int]:
    """This process's descriptors open on `path`."""
    target = os.path.realpath(path)
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == target:
                found.append(int(name))
    return found


def close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


@pytest.fixture
def loop_in_thread() -> Iterator[uringloop.Loop]:
    """A uringloop Loop running in its own thread, for uringloop.threads callers."""
    _uring_or_skip()
    loop = uringloop.Loop()
    thread = threading.Thread(target=loop.run_forever, name="adversarial-loop")
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        assert not thread.is_alive(), "the loop thread did not stop"
        loop.close()


def block_loop(loop: uringloop.Loop) -> threading.Event:
    """Keep the loop busy in a callback until the returned event is set (at most WAIT s),
    so foreign work stays queued meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def busy() -> None:
        entered.set()
        release.wait(WAIT)

    loop.call_soon_threadsafe(busy)
    assert entered.wait(WAIT), "the loop did not run the blocking callback"
    return release


def eventually(check: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        gc.collect()
        time.sleep(0.01)
    return check()


# -- values that do not fit the kernel's fields ---------------------------------------------------

MKDIR_SCRIPT = """
kind, base = sys.argv[1], sys.argv[2]
reference = os.path.join(base, "reference")
os.mkdir(reference, -1)

errors = []  # kept alive: a half-written SQE then points at a live path, not freed memory

async def main():
    loop = asyncio.get_running_loop()
    outcomes = []
    for i in range(5):
        path = os.path.join(base, f"d{i}")
        try:
            await loop.mkdir(path, -1)
            outcomes.append(["ok", os.stat(path).st_mode if os.path.exists(path) else None])
        except Exception as exc:
            errors.append(exc)
            outcomes.append(["raised", describe(exc)])
        await loop.nop()
    await asyncio.sleep(0.05)
    return outcomes

outcomes = uringloop.run(main(), loop_factory=lambda: make_loop(kind))
report(expected=os.stat(reference).st_mode, outcomes=outcomes, cwd=sorted(os.listdir(".")),
       base=sorted(os.listdir(base)))
"""


@pytest.mark.parametrize("kind", ["uring", "fallback"])
def test_mkdir_mode_minus_one_does_what_os_mkdir_does_and_nothing_else(
    kind: str, tmp_path: pathlib.Path
) -> None:
    """os.mkdir(p, -1) creates p (mode -1 & 0o7777 & ~umask); so must loop.mkdir, and
    nothing may appear anywhere else (on 93bce5b: struct.error, then the half-written SQE
    made a mode-0 directory; once the path buffer was freed, one with a garbage name in
    the working directory. The script keeps the buffers alive: no garbage paths here)."""
    if kind == "uring":
        _uring_or_skip()
    base = tmp_path / "base"
    base.mkdir()
    result = run_script(tmp_path, MKDIR_SCRIPT, kind, str(base))
    assert result["outcomes"] == [["ok", result["expected"]]] * 5, result["_stderr"]
    assert result["base"] == ["d0", "d1", "d2", "d3", "d4", "reference"]
    assert result["cwd"] == [], "something was created in the working directory"


async def _outcome(coro: Any) -> BaseException | None:
    """The exception `coro` raises, or None. Whatever it is, the test goes on to flush the
    ring with nops while its own descriptors are still open: a half-written SQE left
    behind must act on them, never on a descriptor number reused after they are closed."""
    try:
        await coro
    except Exception as exc:
        return exc
    return None


async def _flush(loop: uringloop.Loop) -> None:
    for _ in range(3):
        await loop.nop()
    await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_open_fd_mode_beyond_c_int_is_refused_and_leaks_no_fd(
    tmp_path: pathlib.Path,
) -> None:
    """os.open(p, O_RDONLY, 2**32) raises OverflowError; loop.open_fd must refuse it before
    anything is queued (on 93bce5b: struct.error, and the SQE was submitted anyway, opening
    an fd nobody got; on the fallback the refusal came from the pool, after submission)."""
    loop = running()
    path = tmp_path / "file"
    path.write_bytes(b"data")
    before = loop.uring_stats().submitted
    errors = []
    try:
        for _ in range(20):
            errors.append(await _outcome(loop.open_fd(path, os.O_RDONLY, 2**32)))
            await loop.nop()
        submitted = loop.uring_stats().submitted - before - 20  # less the nops
        await _flush(loop)
        leaked = fds_on(path)
    finally:
        close_all(fds_on(path))
    assert all(isinstance(e, ARG_ERRORS) for e in errors), errors[0]
    assert submitted == 0
    assert leaked == []


@pytest.mark.asyncio
async def test_open_fd_mode_minus_one_opens_exactly_the_fd_it_returns(
    tmp_path: pathlib.Path,
) -> None:
    """os.open accepts mode -1; each loop.open_fd(p, O_RDONLY, -1) returns one fd and
    opens no other (on 93bce5b: struct.error, and each call left an fd open)."""
    loop = running()
    path = tmp_path / "file"
    path.write_bytes(b"data")
    results: list[Any] = []
    try:
        for _ in range(20):
            try:
                fd = await loop.open_fd(path, os.O_RDONLY, -1)
            except Exception as exc:
                results.append(exc)
            else:
                results.append(fds_on(path) == [fd])
                os.close(fd)
            await loop.nop()
        await _flush(loop)
        leaked = fds_on(path)
    finally:
        close_all(fds_on(path))
    assert results == [True] * 20, results[0]
    assert leaked == []


@pytest.mark.asyncio
async def test_ftruncate_to_2_64_is_refused_and_truncates_nothing(tmp_path: pathlib.Path) -> None:
    """ftruncate(fd, 2**64) must raise as os.ftruncate does (OverflowError), before
    anything is queued (on 93bce5b: struct.error, then the half-written SQE truncated the
    file to 0 bytes; on the fallback the refusal came from the pool, after submission)."""
    loop = running()
    path = tmp_path / "precious"
    data = os.urandom(65536)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        before = loop.uring_stats().submitted
        error = await _outcome(loop.ftruncate(fd, 2**64))
        submitted = loop.uring_stats().submitted - before
        await _flush(loop)
        size, content = os.fstat(fd).st_size, os.pread(fd, len(data) + 1, 0)
    finally:
        os.close(fd)
    assert (size, content == data) == (len(data), True), "the file was truncated"
    assert isinstance(error, ARG_ERRORS), error
    assert submitted == 0


@pytest.mark.asyncio
async def test_fallocate_at_offset_2_64_is_refused_and_changes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    """fallocate(fd, 2**64, 1): the offset does not fit off_t, so the call is refused
    before anything is queued (on 93bce5b: struct.error after the slot was taken; the
    fallback passed 2**64 to libc as a wrapped int64 and returned success)."""
    loop = running()
    path = tmp_path / "file"
    data = os.urandom(10_000)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        before = loop.uring_stats().submitted
        error = await _outcome(loop.fallocate(fd, 2**64, 1))
        submitted = loop.uring_stats().submitted - before
        await _flush(loop)
        content = os.pread(fd, len(data) + 1, 0)
    finally:
        os.close(fd)
    assert content == data
    assert isinstance(error, ARG_ERRORS), error
    assert submitted == 0


STATX_SCRIPT = """
kind, path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
kwargs = {"mask": 2**32} if arg == "mask" else {"flags": -1}

async def main():
    loop = asyncio.get_running_loop()
    s0 = loop.uring_stats()
    error = None
    try:
        await loop.statx(path, **kwargs)
    except Exception as exc:
        error = exc
    s1 = loop.uring_stats()
    for _ in range(3):
        await loop.nop()
    s2 = loop.uring_stats()
    await asyncio.sleep(0.05)
    return (describe(error), isinstance(error, ARG_ERRORS), s1.submitted - s0.submitted,
            s2.submitted - s1.submitted, s2.in_flight, s2.backlog)

error, is_arg_error, submitted, nops, in_flight, backlog = uringloop.run(
    main(), loop_factory=lambda: make_loop(kind))
report(error=error, is_arg_error=is_arg_error, submitted=submitted, nops=nops,
       in_flight=in_flight, backlog=backlog)
"""


@pytest.mark.parametrize("kind", ["uring", "fallback"])
def test_statx_mask_2_32_is_refused_before_anything_is_queued(
    kind: str, tmp_path: pathlib.Path
) -> None:
    """statx's mask is an unsigned int: 2**32 is refused up front (on 93bce5b: struct.error,
    and a half-written statx SQE, whose result buffer may be freed, went to the kernel)."""
    if kind == "uring":
        _uring_or_skip()
    (tmp_path / "file").write_bytes(b"x")
    result = run_script(tmp_path, STATX_SCRIPT, kind, str(tmp_path / "file"), "mask")
    assert result["is_arg_error"], (result["error"], result["_stderr"])
    assert result["submitted"] == 0
    assert (result["nops"], result["in_flight"], result["backlog"]) == (3, 0, 0)


@pytest.mark.parametrize("kind", ["uring", "fallback"])
def test_statx_flags_minus_one_fails_cleanly(kind: str, tmp_path: pathlib.Path) -> None:
    """statx(p, flags=-1): EINVAL as statx(2) says, or refused up front; never a struct.error
    and a half-written SQE submitted with the next operation (93bce5b). The fallback
    ignored the flags and returned a result."""
    if kind == "uring":
        _uring_or_skip()
    (tmp_path / "file").write_bytes(b"x")
    result = run_script(tmp_path, STATX_SCRIPT, kind, str(tmp_path / "file"), "flags")
    error = result["error"]
    assert error is not None, "statx(flags=-1) returned a result"
    if result["is_arg_error"]:
        assert result["submitted"] == 0
    else:
        assert error[:2] == ["OSError", errno.EINVAL], (error, result["_stderr"])
    assert (result["nops"], result["in_flight"], result["backlog"]) == (3, 0, 0)


RENAME_SCRIPT = """
kind, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    loop = asyncio.get_running_loop()
    s0 = loop.uring_stats()
    error = None
    try:
        await loop.rename(src, dst, flags=-1)
    except Exception as exc:
        error = exc
    s1 = loop.uring_stats()
    gc.collect()
    for _ in range(3):
        await loop.nop()
    await asyncio.sleep(0.05)
    return describe(error), isinstance(error, ARG_ERRORS), s1.submitted - s0.submitted

error, is_arg_error, submitted = uringloop.run(main(), loop_factory=lambda: make_loop(kind))
report(error=error, is_arg_error=is_arg_error, submitted=submitted,
       src=os.path.exists(src), dst=os.path.exists(dst), cwd=sorted(os.listdir(".")))
"""


@pytest.mark.parametrize("kind", ["uring", "fallback"])
def test_rename_flags_minus_one_is_refused_and_renames_nothing(
    kind: str, tmp_path: pathlib.Path
) -> None:
    """renameat2's flags are an unsigned int: -1 is refused up front, as os refuses a
    negative unsigned (on 93bce5b: struct.error on the ring, then the half-written SQE
    renamed the file with flags 0; EINVAL from the kernel on the fallback)."""
    if kind == "uring":
        _uring_or_skip()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"x")
    result = run_script(tmp_path, RENAME_SCRIPT, kind, str(src), str(dst))
    assert result["is_arg_error"], (result["error"], result["_stderr"])
    assert result["submitted"] == 0
    assert (result["src"], result["dst"]) == (True, False)
    assert result["cwd"] == []


STALE_SQE_SCRIPT = """
path = sys.argv[1]
N = 4096
fd = os.open(path, os.O_RDWR)
loop = uringloop.Loop(sq_entries=4)

async def earlier_writes():
    # Every SQ slot now holds a WRITE SQE whose buffer is freed once it completes.
    await asyncio.gather(*(loop.pwrite(fd, bytes([65 + i]) * N, i * N) for i in range(8)))

loop.run_until_complete(earlier_writes())
gc.collect()
os.pwrite(fd, bytes(8 * N), 0)  # the file is zeros again; nothing of ours may change that

async def batch():
    ops = [loop.nop(), loop.ftruncate(fd, 2**64), loop.nop(), loop.nop()]
    return await asyncio.gather(*ops, return_exceptions=True)

loop_error = None
outcomes = None
try:
    outcomes = [describe(r) if isinstance(r, BaseException) else r
                for r in loop.run_until_complete(batch())]
except Exception as exc:
    loop_error = describe(exc)
for _ in range(3):
    try:
        loop.run_until_complete(loop.nop())
    except Exception:
        pass
loop.close()
data = os.pread(fd, 8 * N + 1, 0)
report(loop_error=loop_error, outcomes=outcomes, size=os.fstat(fd).st_size,
       zeros=data == bytes(8 * N),
       dirty=[i for i in range(8) if data[i * N:(i + 1) * N] != bytes(N)])
"""


def test_small_ring_never_replays_stale_sqes(tmp_path: pathlib.Path) -> None:
    """Loop(sq_entries=4): a bad argument in a batch fails that operation alone; the slots
    reserved for the batch are never submitted with stale contents (on 93bce5b the loop
    raised struct.error, then old WRITE SQEs, whose buffers were freed, were replayed and
    wrote their bytes over the file at offsets written earlier)."""
    _uring_or_skip()
    path = tmp_path / "file"
    path.write_bytes(bytes(8 * 4096))
    result = run_script(tmp_path, STALE_SQE_SCRIPT, str(path))
    assert result["loop_error"] is None, result["_stderr"]
    outcomes = result["outcomes"]
    assert outcomes[0] is None and outcomes[2] is None and outcomes[3] is None, outcomes
    assert outcomes[1][0] in ("ValueError", "OverflowError", "TypeError"), outcomes
    assert result["dirty"] == [], "stale SQEs wrote over these 4 KiB blocks"
    assert (result["size"], result["zeros"]) == (8 * 4096, True)


# -- a foreign thread's bad argument ----------------------------------------------------------

FOREIGN_BAD_ARG_SCRIPT = """
path = sys.argv[1]
loop = uringloop.Loop()
loop_errors = []  # kept alive: a half-written SQE then points at a live path, not freed memory

def run():
    try:
        loop.run_forever()
    except BaseException as exc:
        loop_errors.append(exc)

thread = threading.Thread(target=run)
thread.start()

def wait(future, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not future.done() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not future.done():
        return ["never resolved", None]
    exc = future.exception()
    return ["raised", describe(exc)] if exc is not None else ["ok", future.result()]

try:
    first = wait(loop.threadsafe.mkdir(path, -1))
except Exception as exc:  # refused in the calling thread: fine too
    first = ["refused", describe(exc)]
later = wait(loop.threadsafe.nop()) if thread.is_alive() else ["loop dead", None]
alive = thread.is_alive()
loop.call_soon_threadsafe(loop.stop)
thread.join(5)
if not thread.is_alive():
    loop.close()
report(first=first, later=later, alive=alive, loop_error=[describe(e) for e in loop_errors])
"""


def test_foreign_bad_argument_fails_only_its_own_future(tmp_path: pathlib.Path) -> None:
    """loop.threadsafe.mkdir(p, -1) from a thread: that call succeeds (as os.mkdir does) or
    fails on its own; the loop keeps running and later foreign futures resolve (on 93bce5b
    the loop's run_forever raised struct.error and no foreign future resolved again)."""
    _uring_or_skip()
    result = run_script(tmp_path, FOREIGN_BAD_ARG_SCRIPT, str(tmp_path / "made"))
    assert result["loop_error"] == [], result["loop_error"]
    assert result["first"][0] in ("ok", "raised", "refused"), result["first"]
    assert result["alive"]
    assert result["later"] == ["ok", None]


# -- one completion's failure and the rest of its batch --------------------------------------

KEYBOARD_INTERRUPT_SCRIPT = """
loop = uringloop.Loop()
# Queued before the loop runs: the first pre-select step submits them with one enter and
# reaps their completions as one batch.
futures = [loop.threadsafe.nop() for _ in range(8)]

def interrupt(future):
    raise KeyboardInterrupt

futures[0].add_done_callback(interrupt)
try:
    loop.run_until_complete(asyncio.sleep(0.2))
    outcome = "no KeyboardInterrupt"
except KeyboardInterrupt:
    outcome = "KeyboardInterrupt"
delivered = [f.done() for f in futures[1:]]
loop.close()
report(outcome=outcome, delivered=delivered, after_close=[f.done() for f in futures[1:]])
"""


def test_keyboard_interrupt_from_a_foreign_done_callback_loses_no_completion(
    tmp_path: pathlib.Path,
) -> None:
    """A KeyboardInterrupt raised by one foreign future's done-callback propagates, but only
    after every other completion of the same batch was delivered (on 93bce5b the other
    seven futures never resolved, not even at close())."""
    _uring_or_skip()
    result = run_script(tmp_path, KEYBOARD_INTERRUPT_SCRIPT)
    assert result["outcome"] == "KeyboardInterrupt", result["_stderr"]
    assert result["delivered"] == [True] * 7
    assert result["after_close"] == [True] * 7


LATE_OPEN_CLEANUP_FAILS = """
path = sys.argv[1]
target = os.path.realpath(path)
real_close = os.close
injected = []

def failing_close(fd):
    # Closes for real, then reports a failure: the late-open cleanup's close fails.
    try:
        link = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        link = None
    real_close(fd)
    if link == target and not injected:
        injected.append(fd)
        raise OSError(errno.EIO, "injected close failure")

def fds_on_target():
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                found.append(int(name))
        except OSError:
            pass
    return found
"""

DELIVERY_FAILURE_SCRIPT = """
class DeliveryError(BaseException):
    # Not an Exception: concurrent.futures does not swallow it in a done-callback, and
    # asyncio's callbacks hand it to the exception handler.
    pass

loop = uringloop.Loop()
handled = []
loop.set_exception_handler(lambda l, context: handled.append(describe(context.get("exception"))))
# Queued before the loop runs: one enter submits them, one reap delivers them, in order.
futures = [loop.threadsafe.nop() for _ in range(8)]

def fail(future):
    raise DeliveryError("delivering this completion failed")

futures[0].add_done_callback(fail)
try:
    loop.run_until_complete(asyncio.sleep(0.2))
    loop_error = None
except BaseException as exc:
    loop_error = describe(exc)
delivered = [f.done() for f in futures[1:]]
loop.close()
report(loop_error=loop_error, handled=handled, delivered=delivered)
"""


def test_delivery_failure_goes_to_the_exception_handler_and_spares_the_batch(
    tmp_path: pathlib.Path,
) -> None:
    """Delivering one completion raises (its foreign future's done-callback raises an
    exception that is not an Exception): the exception goes to the loop's exception handler,
    as asyncio does for a callback, and the seven other completions of the batch are
    delivered (on 93bce5b it escaped run_until_complete and the other seven were lost)."""
    _uring_or_skip()
    result = run_script(tmp_path, DELIVERY_FAILURE_SCRIPT)
    assert result["loop_error"] is None, result["loop_error"]
    assert [h[0] for h in result["handled"]] == ["DeliveryError"], result["handled"]
    assert result["delivered"] == [True] * 7


UNRELATED_COROUTINE_SCRIPT = (
    LATE_OPEN_CLEANUP_FAILS
    + """
loop = uringloop.Loop()
handled = []
loop.set_exception_handler(lambda l, context: handled.append(describe(context.get("exception"))))
os.mkfifo(path)
writers = []

async def opener():
    writers.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # the FIFO open completes
    time.sleep(0.1)  # ... in the kernel, meanwhile
    await loop.nop()

async def main():
    # O_CREAT sends the open to a kernel worker, where it waits for a writer.
    future = loop.threadsafe.open_fd(path, os.O_RDONLY | os.O_CREAT)
    await asyncio.sleep(0.05)
    assert loop.uring_stats().in_flight == 1
    future.set_result(None)  # its caller gives up: the fd is closed once the open completes
    os.close = failing_close
    try:
        # Ten coroutines queue a nop each in one loop iteration; one of them hands the
        # queue to the kernel early, and that reap delivers the FIFO open's completion.
        outcomes = await asyncio.gather(opener(), *(loop.nop() for _ in range(9)),
                                        return_exceptions=True)
        await asyncio.sleep(0.05)
    finally:
        os.close = real_close
        for fd in writers:
            real_close(fd)
    return [describe(o) if isinstance(o, BaseException) else o for o in outcomes]

try:
    outcomes = loop.run_until_complete(main())
    loop_error = None
except Exception as exc:
    outcomes, loop_error = None, describe(exc)
loop.close()
report(outcomes=outcomes, loop_error=loop_error, handled=handled, injected=len(injected),
       leaked=len(fds_on_target()))
"""
)


def test_delivery_failure_never_reaches_an_unrelated_coroutine(tmp_path: pathlib.Path) -> None:
    """A late open (its caller gave up) completes, and closing its fd fails (os.close
    raises): the failure goes to the exception handler, whichever code path reaps the
    completion, and never into an unrelated coroutine (on 93bce5b it was reaped during
    another coroutine's early submission, and that coroutine's nop raised the OSError)."""
    _uring_or_skip()
    result = run_script(tmp_path, UNRELATED_COROUTINE_SCRIPT, str(tmp_path / "fifo"))
    assert result["injected"] == 1, (
        "the late-open cleanup did not os.close() the fd: update this test's fault injection",
        result["_stderr"],
    )
    assert result["loop_error"] is None, result["loop_error"]
    assert result["outcomes"] == [None] * 10
    assert [h[:2] for h in result["handled"]] == [["OSError", errno.EIO]], result["handled"]
    assert result["leaked"] == 0


# -- cancellation and timeouts ----------------------------------------------------------------


@pytest.mark.parametrize("where", ["ring backlog", "fallback pool"])
def test_cancelled_close_still_closes_the_fd(
    where: str, tmp_path: pathlib.Path, capped_stream_waits: None
) -> None:
    """`await f.close()` cancelled while the close waits (in the ring's backlog behind the
    in-flight cap, or in the fallback pool's queue behind busy workers: reads parked on a
    pipe, counted against them here as slow operations are): the fd is closed all the same
    (on 93bce5b the close was dropped, the file marked closed, and __del__ skipped it: the
    fd leaked)."""
    if where == "ring backlog":
        _uring_or_skip()
        loop = uringloop.Loop(sq_entries=4, cq_entries=4)  # at most 4 operations in flight
        blockers = 8
    else:
        loop = uringloop.Loop(use_uring=False)
        blockers = 64  # more reads than the pool has workers
    path = tmp_path / "file"
    path.write_bytes(b"data")
    r, w = os.pipe()

    async def main() -> int:
        f = await uringloop.open(path, "rb", buffering=0)
        fd: int = f.fileno()
        # Reads of an empty pipe take every in-flight slot (every worker) until written to.
        reads = [asyncio.ensure_future(loop.pread(r, 1, -1)) for _ in range(blockers)]
        await asyncio.sleep(0.1)
        closing = asyncio.ensure_future(f.close())
        await asyncio.sleep(0.05)  # the close is queued behind the reads
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        os.write(w, b"x" * blockers)
        await asyncio.gather(*reads)
        for _ in range(20):
            if fd not in fds_on(path):
                break
            await asyncio.sleep(0.05)
        del f
        return fd

    try:
        fd = loop.run_until_complete(main())
        gc.collect()
        still_open = fd in fds_on(path)
    finally:
        close_all(fds_on(path))
        loop.close()
        os.close(r)
        os.close(w)
    assert not still_open, "the cancelled close left the fd open"


def test_timed_out_threads_open_leaks_no_fd(
    loop_in_thread: uringloop.Loop, tmp_path: pathlib.Path
) -> None:
    """uringloop.threads.open(..., timeout=...) that times out: the open, if it happens
    later, is closed (on 93bce5b its fd leaked)."""
    loop = loop_in_thread
    path = tmp_path / "file"
    path.write_bytes(b"data")
    release = block_loop(loop)
    try:
        with pytest.raises(TimeoutError):
            threads.open(path, os.O_RDONLY, loop=loop, timeout=0.1)
    finally:
        release.set()
    try:
        loop.threadsafe.nop().result(WAIT)
        closed = eventually(lambda: not fds_on(path), timeout=1.0)
    finally:
        close_all(fds_on(path))
    assert closed, "the timed-out open left an fd open"


def test_timed_out_threads_pwrite_does_not_land_later(
    loop_in_thread: uringloop.Loop, tmp_path: pathlib.Path
) -> None:
    """A threads.pwrite that raised TimeoutError must not write afterwards, over what the
    caller wrote since (on 93bce5b it landed once the loop got to it)."""
    loop = loop_in_thread
    path = tmp_path / "file"
    path.write_bytes(b"original")
    fd = os.open(path, os.O_RDWR)
    try:
        release = block_loop(loop)
        try:
            with pytest.raises(TimeoutError):
                threads.pwrite(fd, b"TIMEDOUT", 0, loop=loop, timeout=0.1)
            os.pwrite(fd, b"retried!", 0)  # the caller's retry, after the TimeoutError
        finally:
            release.set()
        loop.threadsafe.nop().result(WAIT)
        time.sleep(0.05)
        loop.threadsafe.nop().result(WAIT)
        assert os.pread(fd, 100, 0) == b"retried!"
    finally:
        os.close(fd)


@pytest.mark.parametrize("target", ["socket", "file"])
def test_threads_pwrite_all_refuses_offset_minus_one_up_front(
    target: str, loop_in_thread: uringloop.Loop, tmp_path: pathlib.Path
) -> None:
    """threads.pwrite_all(fd, data, -1) raises ValueError before writing anything, as
    loop.pwrite_all does (on 93bce5b it wrote at -1 and then at offsets -1 + n)."""
    loop = loop_in_thread
    data = b"y" * 1000
    if target == "socket":
        a, b = socket.socketpair()
        try:
            with pytest.raises(ValueError):
                threads.pwrite_all(a.fileno(), data, -1, loop=loop, timeout=WAIT)
            b.setblocking(False)
            with pytest.raises(BlockingIOError):
                b.recv(4096)  # nothing was written
        finally:
            a.close()
            b.close()
        return
    path = tmp_path / "file"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(ValueError):
            threads.pwrite_all(fd, data, -1, loop=loop, timeout=WAIT)
        assert os.fstat(fd).st_size == 0
    finally:
        os.close(fd)


@pytest.mark.parametrize("api", ["uringloop.threads.pread", "loop.threadsafe.pread"])
def test_foreign_pread_on_an_o_direct_fd(
    api: str, loop_in_thread: uringloop.Loop, tmp_path: pathlib.Path
) -> None:
    """An aligned pread (offset and size multiples of 4096) of an O_DIRECT fd from a
    foreign thread works, or raises the ValueError naming the alignment that
    uringloop.open(direct=True) raises (on 93bce5b: a bare EINVAL, from an unaligned
    scratch buffer)."""
    loop = loop_in_thread
    path = tmp_path / "direct.bin"
    data = os.urandom(4 * 4096)
    path.write_bytes(data)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            pytest.skip(f"the filesystem under {tmp_path} refuses O_DIRECT")
        raise
    try:
        for offset in (0, 8192):
            try:
                if api == "uringloop.threads.pread":
                    got = threads.pread(fd, 4096, offset, loop=loop, timeout=WAIT)
                else:
                    got = loop.threadsafe.pread(fd, 4096, offset).result(WAIT)
            except ValueError as exc:
                assert "align" in str(exc)
                continue
            assert got == data[offset : offset + 4096]
    finally:
        os.close(fd)


# -- signals, seccomp, ring sizes, fork, pipes ----------------------------------------------------

SIGNAL_REENTRY_SCRIPT = """
import faulthandler, signal, socket
faulthandler.dump_traceback_later(10, exit=True)  # a deadlock ends the process, with stacks

loop = uringloop.Loop()
ticks = [0]

def tick():
    ticks[0] += 1
    loop.call_later(0.005, tick)  # the loop wakes often, and goes back to sleep each time

started = threading.Event()
loop.call_soon(tick)
loop.call_soon(started.set)
thread = threading.Thread(target=loop.run_forever, daemon=True)
thread.start()
started.wait(5)

state = {"armed": False, "handler_ran": False}
inner = []

def handler(signum, frame):
    # Runs in the main thread while it is inside loop.threadsafe.* (its wake-up path).
    state["handler_ran"] = True
    start = ticks[0]
    deadline = time.monotonic() + 2
    while ticks[0] < start + 3 and time.monotonic() < deadline:
        time.sleep(0.001)  # let the loop wake on its timer and go back to sleep
    inner.append(loop.threadsafe.nop())

signal.signal(signal.SIGUSR1, handler)

def hook():
    if state["armed"] and threading.current_thread() is threading.main_thread():
        state["armed"] = False
        os.kill(os.getpid(), signal.SIGUSR1)

# The wake-up writes to an eventfd or a self-pipe: raise the signal from inside that call.
real_eventfd_write, real_write, real_send = os.eventfd_write, os.write, socket.socket.send

def eventfd_write(fd, value):
    hook()
    return real_eventfd_write(fd, value)

def write(fd, data):
    hook()
    return real_write(fd, data)

def send(self, data, *args):
    hook()
    return real_send(self, data, *args)

os.eventfd_write, os.write, socket.socket.send = eventfd_write, write, send
outer = []
for _ in range(100):  # until one submission finds the loop asleep and wakes it
    state["armed"] = True
    outer.append(loop.threadsafe.nop())
    if state["handler_ran"]:
        break
    time.sleep(0.02)
state["armed"] = False
resolved = [f.result(timeout=5) is None for f in outer + inner]
loop.call_soon_threadsafe(loop.stop)
thread.join(5)
loop.close()
faulthandler.cancel_dump_traceback_later()
report(handler_ran=state["handler_ran"], inner=len(inner), resolved=resolved)
"""


def test_signal_handler_reentering_threadsafe_does_not_deadlock(tmp_path: pathlib.Path) -> None:
    """A signal handler calls loop.threadsafe.* while the same thread is inside
    loop.threadsafe.* waking the loop (the signal is raised from inside the wake-up
    write): both calls complete (on 93bce5b the handler deadlocked on the wake path's
    non-reentrant lock)."""
    _uring_or_skip()
    result = run_script(tmp_path, SIGNAL_REENTRY_SCRIPT, timeout=30)
    assert result["handler_ran"], "the re-entry was not exercised: no wake-up write seen"
    assert result["inner"] == 1
    assert all(result["resolved"])


EPERM_SCRIPT = """
from uringloop._ring import syscalls

loop = uringloop.Loop()
r, w = os.pipe()
seccomp = syscalls.inject("enter", errno.EPERM, times=-1)

async def main():
    task = asyncio.ensure_future(loop.pread(r, 5, -1))
    await asyncio.sleep(0.05)
    in_flight = loop.uring_stats().in_flight
    seccomp.__enter__()  # from now on every io_uring_enter fails with EPERM
    os.write(w, b"hello")  # the read completes in the kernel
    try:
        data = await asyncio.wait_for(task, 2.0)
        return in_flight, ["data", data.decode()]
    except TimeoutError:
        return in_flight, ["lost", None]
    except OSError as exc:
        return in_flight, ["error", describe(exc)]

try:
    in_flight, outcome = loop.run_until_complete(main())
    start = time.monotonic()
    loop.close()
    close_seconds = time.monotonic() - start
finally:
    seccomp.__exit__(None, None, None)
report(in_flight=in_flight, outcome=outcome, close_seconds=close_seconds)
"""


def test_enter_refused_after_setup_loses_no_read_and_close_is_quick(
    tmp_path: pathlib.Path,
) -> None:
    """io_uring_enter starts failing with EPERM while a read is in flight: the read still
    ends, with its data or an error, and close() does not wait out its 2 s timeout (on
    93bce5b the read never completed and close() took 2 s). The 1 s bound is a hang check."""
    _uring_or_skip()
    result = run_script(tmp_path, EPERM_SCRIPT)
    assert result["in_flight"] == 1
    outcome = result["outcome"]
    assert outcome[0] in ("data", "error"), "the in-flight read was lost"
    if outcome[0] == "data":
        assert outcome[1] == "hello"
    assert result["close_seconds"] < 1.0


@pytest.mark.parametrize(
    "sizes",
    [{"sq_entries": 1 << 20}, {"sq_entries": 1 << 16}, {"cq_entries": 1 << 20}],
    ids=["sq_entries=2**20", "sq_entries=2**16", "cq_entries=2**20"],
)
def test_ring_size_the_kernel_refuses_is_a_value_error(sizes: dict[str, Any]) -> None:
    """A ring size the user asked for and the kernel refuses is a ValueError, not a quiet
    fall back to the thread pool (on 93bce5b: a RuntimeWarning and a thread-pool loop for
    the SQ sizes; for the CQ size, a ring whose CQ silently has the default size, the
    CQSIZE setup flag having been dropped on EINVAL)."""
    _uring_or_skip()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            loop = uringloop.Loop(**sizes)
        except ValueError:
            loop = None
    if loop is not None:
        uring = loop.uring_available
        loop.close()
        messages = [str(w.message) for w in seen]
        pytest.fail(f"Loop({sizes}) returned a loop (io_uring: {uring}); warnings: {messages}")


FORK_EXIT_SCRIPT = """
import asyncio, os, sys
import uringloop

async def main():
    pid = os.fork()
    if pid == 0:
        sys.exit(3)  # in the child, inside a coroutine of the parent's loop
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

runner = uringloop.run if sys.argv[1] == "uringloop" else asyncio.run
report(child_status=runner(main()))
"""


def test_forked_child_sys_exit_status_is_kept(tmp_path: pathlib.Path) -> None:
    """A forked child calling sys.exit(3) inside a coroutine exits with status 3, as under
    stock asyncio (on 93bce5b: 1, because teardown raised "this loop belongs to the parent
    process" over the SystemExit)."""
    stock = run_script(tmp_path, FORK_EXIT_SCRIPT, "asyncio")
    ours = run_script(tmp_path, FORK_EXIT_SCRIPT, "uringloop")
    assert stock["child_status"] == 3
    assert ours["child_status"] == stock["child_status"]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["eventfd", "epoll"])
async def test_an_offset_on_a_descriptor_that_takes_none_is_espipe(kind: str) -> None:
    """An eventfd or epoll descriptor takes lseek(2) but no offset: pread(2) and pwrite(2)
    fail with ESPIPE, and so does every route here, where the ring's READ and WRITE read
    or write at it (an eventfd's count taken or added to, a read of an empty one waiting
    for ever)."""
    loop = running()
    if kind == "eventfd":
        fd = os.eventfd(5, os.EFD_NONBLOCK)
    else:
        poller = __import__("select").epoll()
        fd = os.dup(poller.fileno())
        poller.close()
    buffer = bytearray(8)
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("os.pread", lambda: os.pread(fd, 8, 0)),
        ("os.pwrite", lambda: os.pwrite(fd, (1).to_bytes(8, "little"), 0)),
        ("pread", lambda: loop.pread(fd, 8, 0)),
        ("preadinto", lambda: loop.preadinto(fd, buffer, 0)),
        ("pwrite", lambda: loop.pwrite(fd, (1).to_bytes(8, "little"), 0)),
        ("pread_many", lambda: loop.pread_many([(fd, 8, 0), (fd, 8, 8)])),
        ("threadsafe", lambda: asyncio.wrap_future(loop.threadsafe.pread(fd, 8, 0))),
        ("threads loop=", lambda: asyncio.to_thread(threads.pread, fd, 8, 0, loop=loop)),
        ("threads ring", lambda: asyncio.to_thread(threads.pread_many, [(fd, 8, 0)] * 2)),
        ("threads write", lambda: asyncio.to_thread(threads.pwrite, fd, b"\1" * 8, 0, loop=loop)),
    ]
    try:
        for name, call in calls:
            with pytest.raises(OSError) as info:
                result = call()
                if not isinstance(result, (bytes, int)):
                    await asyncio.wait_for(result, 10)
            assert info.value.errno == errno.ESPIPE, name
        if kind == "eventfd":
            assert os.eventfd_read(fd) == 5  # (nothing taken from the count, nothing added)
    finally:
        os.close(fd)


@pytest.mark.asyncio
async def test_a_proc_file_takes_an_offset_for_reads_and_none_for_writes() -> None:
    """A /proc file read through a seq_file takes pread(2) at an offset and refuses
    pwrite(2) (ESPIPE): a write's check is its own, even in the loop iteration where a
    read of the same descriptor was checked (the ring's write would change the thread's
    name)."""
    loop = running()
    fd = os.open("/proc/thread-self/comm", os.O_RDWR)
    try:
        name = os.pread(fd, 64, 0)
        with pytest.raises(OSError) as builtin:
            os.pwrite(fd, b"renamed", 0)
        assert builtin.value.errno == errno.ESPIPE
        with pytest.raises(OSError) as alone:
            await loop.pwrite(fd, b"renamed", 0)
        assert alone.value.errno == errno.ESPIPE
        await asyncio.sleep(0)  # a new iteration: nothing checked yet
        read, written = await asyncio.gather(
            loop.pread(fd, 64, 0), loop.pwrite(fd, b"renamed", 0), return_exceptions=True
        )
        assert read == name
        assert isinstance(written, OSError) and written.errno == errno.ESPIPE
        assert os.pread(fd, 64, 0) == name
    finally:
        os.close(fd)


@pytest.mark.asyncio
async def test_pread_at_an_offset_of_a_pipe_is_espipe(pipe: tuple[int, int]) -> None:
    """pread(pipe_fd, n, 5) raises ESPIPE as os.pread does, on the ring as on the fallback,
    and through loop.threadsafe; nothing is consumed (on 93bce5b the ring returned data)."""
    loop = running()
    r, w = pipe
    os.write(w, b"0123456789")
    with pytest.raises(OSError) as info:
        await loop.pread(r, 4, 5)
    assert info.value.errno == errno.ESPIPE
    with pytest.raises(OSError) as info:
        await asyncio.wrap_future(loop.threadsafe.pread(r, 4, 5))
    assert info.value.errno == errno.ESPIPE
    os.set_blocking(r, False)
    assert os.read(r, 100) == b"0123456789"
