"""Randomized fuzzer: resources over time and cancellation at random points.

    timeout 300 .venv/bin/python scripts/fuzz_cancel.py --seed 1 --duration 120
    URINGLOOP_NO_EXTENSIONS=1 timeout 300 .venv/bin/python scripts/fuzz_cancel.py --seed 2
    .venv/bin/python scripts/fuzz_cancel.py --seed 7 --only-round 13   # one round again

Each round makes a fresh uringloop.Loop and runs actors on it for a short while:
  raw     a regular file through loop.pread/preadinto/preadv/pread_many/pwrite/pwritev/
          pwrite_all/pwrite_kept, at offsets and at the position, open_fd/close_fd
  fobj    a regular file through uringloop.open (binary/text, buffering 0/default,
          r+/w+/a+), read/read()/readline/readinto/write/seek/tell/flush/truncate/close
  pipe    a writer and a reader on a pipe (blocking or O_NONBLOCK), each raw, a file
          object (binary or text, buffering 0/default) or uringloop.threads from a thread
  zero    /dev/zero via open_fd + pread / uringloop.open
  thread  a regular file through uringloop.threads (timeout=tiny) from worker threads
Every operation is awaited plainly, under asyncio.timeout / wait_for with a tiny timeout,
or as a task cancelled after some loop iterations or after a random delay.
Checks: data against models (exact where the docs promise it, candidate sets where a
cancelled write may still land), /proc/self/fd equal to the start after each round,
tracemalloc and RSS growth across rounds, exceptions only of the documented kinds,
nothing reported to the loop's exception handler, each round under a wall-clock bound
(faulthandler dumps every thread and exits on a hang).
Some rounds are "abrupt": loop.stop() at a random moment with operations in flight,
sometimes run again, then loop.close(); only fds, hangs and candidate data are checked.
Op sequences are reproducible by seed (rounds use Random(f"{seed}-{round}")); the
kernel's timing is not, so a finding may need its seed run a few times.
"""

# Each lambda built in a loop here is awaited (or run) before its iteration ends: B023's
# late binding cannot bite. The findings' messages are long f-strings kept on one line.
# ruff: noqa: B023, E501

from __future__ import annotations

import argparse
import asyncio
import contextvars
import errno
import faulthandler
import gc
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
import tracemalloc
import warnings
from typing import Any

import uringloop
import uringloop.threads as uthreads
from uringloop import LoopClosedError, StrandedError

FINDINGS: list[str] = []
TRAILS: dict[str, Any] = {}
BORN: dict[int, Any] = {}
CURRENT_ROUND = [0]

LOG: contextvars.ContextVar[list[str]] = contextvars.ContextVar("LOG")


def log(msg: str) -> None:
    try:
        lst = LOG.get()
    except LookupError:
        lst = []
        LOG.set(lst)
    lst.append(msg)
    del lst[:-40]


CANCELLED = "cancelled"


class Bad(AssertionError):
    pass


def finding(msg: str) -> None:
    FINDINGS.append(msg)
    print("FINDING:", msg, file=sys.stderr, flush=True)


def fd_map() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return out


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# ------------------------------------------------------------------ cancellation


CHILDREN: list[tuple[asyncio.Task[Any], str, Any, list[bool]]] = []


def settle_children() -> None:
    """After an abrupt close: what the fuzzer itself left (not the library's to close):
    an fd an open delivered to a child task whose parent never resumed, and a close whose
    task never took its first step (it never asked for the close)."""
    for task, kind, arg, started in CHILDREN:
        if kind == "open" and task.done() and not task.cancelled() and task.exception() is None:
            if isinstance(task.result(), int):
                os.close(task.result())
        elif kind == "close" and not started[0]:
            os.close(arg)
    CHILDREN.clear()


async def run_op(
    rng: random.Random, make: Any, *, begun: bool = False, kind: str = "", arg: Any = None
) -> Any:
    """Await make() in a random way; CANCELLED if it was cancelled / timed out.
    begun=True: only ways in which the coroutine has taken its first step (a close)."""
    line = make.__code__.co_firstlineno
    mine: list[Any] = []
    res = await _run_op(rng, make, begun, kind, arg, mine)
    for entry in mine:  # (the parent resumed: what its child gave is its own)
        CHILDREN.remove(entry)
    log(f"  L{line} -> {'CANCELLED' if res is CANCELLED else summary(res)}")
    return res


def summary(x: Any) -> str:
    if isinstance(x, (bytes, str)):
        return f"{type(x).__name__}[{len(x)}]"
    return repr(x)[:60]


async def _run_op(
    rng: random.Random, make: Any, begun: bool, kind: str, arg: Any, mine: list[Any]
) -> Any:
    inner = make
    started = [False]

    async def make() -> Any:
        started[0] = True
        return await inner()

    def child() -> asyncio.Task[Any]:
        t = asyncio.get_running_loop().create_task(make())
        CHILDREN.append((t, kind, arg, started))
        mine.append(CHILDREN[-1])
        return t

    r = rng.random()
    if r < 0.35:
        return await make()
    if r < 0.55:
        try:
            async with asyncio.timeout(rng.choice([0, 1e-6, 1e-5, 1e-4, 1e-3, 5e-3])):
                return await make()
        except TimeoutError:
            return CANCELLED
    if r < 0.7 and not begun:
        waited = child()
        try:
            return await asyncio.wait_for(waited, rng.choice([0, 1e-5, 1e-4, 1e-3, 5e-3]))
        except TimeoutError:
            # (3.12's wait_for may raise TimeoutError for a task that completed as it
            # expired: its outcome is the task's, not a cancellation)
            if waited.done() and not waited.cancelled():
                return waited.result()
            return CANCELLED
    task = child()
    if begun:
        await asyncio.sleep(0)
    if rng.random() < 0.5:
        for _ in range(rng.randrange(0, 5)):
            if task.done():
                break
            await asyncio.sleep(0)
        task.cancel()
    else:
        asyncio.get_running_loop().call_later(rng.random() * 0.003, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():  # type: ignore[union-attr]
            raise
        return CANCELLED


# ------------------------------------------------------------------ models


class FileModel:
    """Content of a regular file: exact bytes plus candidates from writes that may land."""

    def __init__(self, path: str, rng: random.Random) -> None:
        self.path = path
        self.content = bytearray(rng.randbytes(rng.randrange(0, 20000)))
        with open(path, "wb") as f:
            f.write(self.content)
        self.extra: dict[int, set[int]] = {}
        self.max_size = len(self.content)
        self.hist: dict[int, set[int]] = {}  # every value ever issued (abrupt rounds)

    def issue(self, off: int, data: bytes) -> None:
        if not data:
            return
        for i, b in enumerate(data):
            self.hist.setdefault(off + i, set()).add(b)
        self.max_size = max(self.max_size, off + len(data))

    def commit(self, off: int, data: bytes) -> None:
        if not data:
            return  # (a write of nothing does not extend the file)
        self.issue(off, data)
        end = off + len(data)
        if end > len(self.content):
            self.content.extend(bytes(end - len(self.content)))
        self.content[off:end] = data

    def stale(self, off: int, data: bytes) -> None:
        self.issue(off, data)
        for i, b in enumerate(data):
            self.extra.setdefault(off + i, set()).add(b)

    def truncate(self, n: int) -> None:
        if n < len(self.content):
            for i in range(n, len(self.content)):
                self.hist.setdefault(i, set()).add(self.content[i])
            del self.content[n:]
            # stale writes could land beyond: keep max_size
        else:
            self.content.extend(bytes(n - len(self.content)))
        self.max_size = max(self.max_size, n)

    def allowed(self, pos: int) -> set[int]:
        s = set(self.extra.get(pos, ()))
        s.add(self.content[pos] if pos < len(self.content) else 0)
        return s

    def check_read(self, what: str, off: int, got: bytes, size: int) -> None:
        if len(got) > size:
            raise Bad(f"{what}: read {len(got)} > asked {size}")
        if not got:
            if size and off < len(self.content):
                raise Bad(f"{what}: empty read at {off} of {len(self.content)} bytes")
            return
        end = off + len(got)
        if len(got) < size and end < len(self.content):
            raise Bad(f"{what}: short read {len(got)}/{size} at {off}, size {len(self.content)}")
        if end > max(self.max_size, len(self.content)):
            raise Bad(f"{what}: read past any possible end {end} > {self.max_size}")
        exact = not self.extra and end <= len(self.content)
        if exact:
            if bytes(self.content[off:end]) != got:
                raise Bad(
                    f"{what}: wrong data at {off}+{len(got)}: {first_diff(self.content[off:end], got)}"
                )
            return
        for i, b in enumerate(got):
            if b not in self.allowed(off + i):
                raise Bad(f"{what}: wrong byte at {off + i}: {b} not in {self.allowed(off + i)}")

    def check_final(self, abrupt: bool) -> None:
        with open(self.path, "rb") as f:
            data = f.read()
        if abrupt:
            for i, b in enumerate(data):
                if (
                    b != 0
                    and b not in self.hist.get(i, ())
                    and not (i < len(self.content) and self.content[i] == b)
                ):
                    raise Bad(f"{self.path}: abrupt: byte at {i} = {b} never written there")
            return
        if not (len(self.content) <= len(data) <= max(self.max_size, len(self.content))) and (
            not self.extra or len(data) < len(self.content)
        ):
            raise Bad(
                f"{self.path}: size {len(data)}, model {len(self.content)} (max {self.max_size})"
            )
        if not self.extra:
            if data != bytes(self.content):
                raise Bad(f"{self.path}: final content differs: {first_diff(self.content, data)}")
            return
        for i, b in enumerate(data):
            if b not in self.allowed(i):
                raise Bad(f"{self.path}: final byte at {i} = {b} not in {self.allowed(i)}")


def first_diff(a: Any, b: Any) -> str:
    a, b = bytes(a), bytes(b)
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return f"first diff at +{i} (len model {len(a)}, got {len(b)}): model {a[i : i + 16]!r} got {b[i : i + 16]!r}"
    return f"lengths differ: model {len(a)} got {len(b)}"


class StreamModel:
    """What a pipe's writer sent: S, in chunks; a cancelled chunk may be a prefix only."""

    def __init__(self, rng: random.Random, text: bool) -> None:
        n = 300_000
        if text:
            alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789\n"
            self.S = bytes(rng.choice(alphabet) for _ in range(n))
        else:
            self.S = rng.randbytes(n)
        self.cursor = 0
        self.chunks: list[tuple[int, int, bool]] = []  # (start, end, certain)

    def sent(self, n: int, certain: bool = True, asked: int | None = None) -> None:
        end = self.cursor + (asked if asked is not None else n)
        if n or not certain:
            self.chunks.append((self.cursor, end if not certain else self.cursor + n, certain))
        self.cursor = end if not certain else self.cursor + n

    def check(self, got: bytes, complete: bool, name: str) -> None:
        """got must be S minus, per uncertain chunk, a suffix of that chunk."""
        S = self.S
        # candidate positions in S; gaps only from within an uncertain chunk to its end
        uncertain_end: dict[int, int] = {}
        for start, end, certain in self.chunks:
            if not certain:
                for p in range(start, end):
                    uncertain_end[p] = end
        written_end = self.cursor

        def closure(ps: set[int]) -> set[int]:
            out = set(ps)
            todo = list(ps)
            while todo:
                p = todo.pop()
                e = uncertain_end.get(p)
                if e is not None and e not in out:
                    out.add(e)
                    todo.append(e)
            return out

        ps = closure({0})
        for i, b in enumerate(got):
            nxt = {p + 1 for p in ps if p < written_end and S[p] == b}
            if not nxt:
                found = S.find(got[i : i + 24])
                near = [
                    c for c in self.chunks if c[1] >= min(ps) - 70000 and c[0] <= max(ps) + 70000
                ]
                raise Bad(
                    f"{name}: got[{i}:] is at S[{found}] (expected S[{sorted(ps)}]); "
                    f"chunks near: {near[-12:]}; "
                    f"{name}: stream byte {i} ({b}) matches no sent position "
                    f"(candidates {sorted(ps)[:5]}); got[{max(0, i - 8)}:{i + 8}]={got[max(0, i - 8) : i + 8]!r}"
                )
            ps = closure(nxt)
            if len(ps) > 64:
                ps = set(sorted(ps)[:64])
        if complete and written_end not in ps:
            raise Bad(
                f"{name}: stream ends at {sorted(ps)[:5]} of S, writer sent to {written_end}: lost data"
            )


# ------------------------------------------------------------------ actors


class Round:
    def __init__(self, rng: random.Random, loop: uringloop.Loop, tmp: str, abrupt: bool) -> None:
        self.rng = rng
        self.loop = loop
        self.tmp = tmp
        self.abrupt = abrupt
        self.stop = False
        self.closing = False  # the loop will not run again: finally blocks await nothing
        self.files: list[FileModel] = []
        self.threads_done: list[threading.Event] = []
        self.n = 0
        self.ops = 0

    def path(self, kind: str) -> str:
        self.n += 1
        return os.path.join(self.tmp, f"{kind}{self.n}")

    def unexpected(self, where: str, exc: BaseException) -> None:
        if self.abrupt and isinstance(exc, (LoopClosedError, asyncio.CancelledError)):
            return
        if isinstance(exc, Bad):
            try:
                trail = "\n".join(LOG.get()[-40:])
            except LookupError:
                trail = ""
            finding(f"{where}: {exc}\n{trail}")
        else:
            finding(
                f"{where}: unexpected {type(exc).__name__}: {exc}\n"
                + "".join(traceback.format_exception(exc))
            )


ESPIPE_OK = (errno.ESPIPE,)


async def raw_file_actor(R: Round, seed: int) -> None:
    rng = random.Random(seed)
    loop = R.loop
    m = FileModel(R.path("raw"), rng)
    R.files.append(m)
    fd: int | None = None
    pos = 0
    where = f"raw[{seed}]"

    TRAILS[m.path] = LOG.get() if LOG.get(None) is not None else (LOG.set([]) and LOG.get())
    if m.path not in TRAILS or TRAILS[m.path] is None:
        lst: list[str] = []
        LOG.set(lst)
        TRAILS[m.path] = lst

    async def reopen() -> None:
        nonlocal fd, pos
        log(f"reopen: fd {fd}")
        if fd is not None:
            old, fd = fd, None
            if rng.random() < 0.5:
                r = await run_op(rng, lambda: loop.close_fd(old), begun=True, kind="close", arg=old)
                del r  # closed either way ("never dropped")
            else:
                os.close(old)
        while fd is None and not R.stop:
            r = await run_op(rng, lambda: loop.open_fd(m.path, os.O_RDWR), kind="open")
            if r is not CANCELLED:
                fd, pos = r, 0

    try:
        await reopen()
        while not R.stop and fd is not None:
            R.ops += 1
            op = rng.randrange(12)
            size = rng.choice([0, 1, 100, 4096, 5000, 70000])
            off = rng.randrange(0, len(m.content) + 200)
            at_pos = rng.random() < 0.25
            o = -1 if at_pos else off
            here = pos if at_pos else off
            f = fd
            if op == 0:
                r = await run_op(rng, lambda: loop.pread(f, size, o))
                if r is not CANCELLED:
                    m.check_read(f"{where} pread({size},{o})", here, r, size)
            elif op == 1:
                buf = bytearray(size)
                r = await run_op(rng, lambda: loop.preadinto(f, buf, o))
                if r is not CANCELLED:
                    m.check_read(f"{where} preadinto", here, bytes(buf[:r]), size)
            elif op == 2:
                bufs = [bytearray(rng.randrange(0, 3000)) for _ in range(rng.randrange(1, 4))]
                r = await run_op(rng, lambda: loop.preadv(f, bufs, o))
                if r is not CANCELLED:
                    m.check_read(f"{where} preadv", here, b"".join(bufs)[:r], sum(map(len, bufs)))
            elif op == 3:
                reqs = [
                    (f, rng.randrange(0, 5000), rng.randrange(0, len(m.content) + 10))
                    for _ in range(rng.randrange(1, 5))
                ]
                r = await run_op(rng, lambda: loop.pread_many(reqs))
                if r is not CANCELLED:
                    for (_, s, of), got in zip(reqs, r, strict=True):
                        m.check_read(f"{where} pread_many", of, got, s)
                continue
            elif op in (4, 5, 6, 7):
                data = rng.randbytes(size)
                m.issue(here, data)  # (an abrupt close may leave it made, unreported)
                if op == 4:
                    r = await run_op(rng, lambda: loop.pwrite(f, data, o))
                elif op == 5:
                    parts = [data[: size // 3], data[size // 3 :]]
                    r = await run_op(rng, lambda: loop.pwritev(f, parts, o))
                elif op == 6:
                    if at_pos:
                        continue
                    r = await run_op(rng, lambda: loop.pwrite_all(f, data, off))
                    if r is None:
                        r = len(data)
                else:
                    kept: list[asyncio.Future[int]] = []
                    r = await run_op(rng, lambda: loop.pwrite_kept(f, data, kept.append, o))
                    if r is CANCELLED:
                        r = 0  # cancelled before it began: unclaimed never called
                        if kept:
                            try:
                                r = await kept[0]
                            except OSError as e:
                                if e.errno != errno.ECANCELED:
                                    raise
                        if r == 0:
                            continue
                if r is CANCELLED:
                    m.stale(here, data)
                    await reopen()  # position unknown now
                    continue
                if not isinstance(r, int) or not (0 <= r <= len(data)):
                    raise Bad(f"{where} write op {op} returned {r!r} for {len(data)}")
                if r != len(data):
                    raise Bad(f"{where} short write {r}/{len(data)} to a regular file (op {op})")
                m.commit(here, data[:r])
                if at_pos:
                    pos += r
                continue
            elif op == 8:
                r = await run_op(rng, lambda: loop.fstat(f))
                if r is not CANCELLED and not (
                    len(m.content) <= r.st_size <= max(m.max_size, len(m.content))
                ):
                    raise Bad(
                        f"{where} fstat size {r.st_size}, model {len(m.content)}..{m.max_size}"
                    )
                continue
            elif op == 9:
                r = await run_op(
                    rng, lambda: (loop.fsync if rng.random() < 0.5 else loop.fdatasync)(f)
                )
                continue
            elif op == 10:
                await reopen()
                continue
            else:  # ESPIPE-free invalid: negative offset
                try:
                    await loop.pread(f, 10, -5)
                except OSError as e:
                    if e.errno != errno.EINVAL:
                        raise
                else:
                    raise Bad(f"{where} pread at -5 did not fail")
                continue
            # reads
            if r is CANCELLED:
                if at_pos:
                    await reopen()
                continue
            if at_pos:
                pos += len(r) if isinstance(r, bytes) else r
    except Exception as exc:
        R.unexpected(where, exc)
    finally:
        if fd is not None:
            if R.closing:
                os.close(fd)
            else:
                await loop.close_fd(fd)


async def fobj_actor(R: Round, seed: int) -> None:
    rng = random.Random(seed)
    m = FileModel(R.path("fobj"), rng)
    R.files.append(m)
    text = rng.random() < 0.35
    if text:
        # ascii only, newline="" so tell() is the byte offset (no '\r')
        alphabet = "abcdefghij\n"
        m.content = bytearray(rng.choice(alphabet).encode()[0] for _ in range(len(m.content)))
        with open(m.path, "wb") as fh:
            fh.write(m.content)
    mode = rng.choice(["r+", "w+", "a+"] if text else ["r+b", "w+b", "a+b", "rb", "wb"])
    buffering = -1 if text else rng.choice([0, -1, -1])
    append = mode.startswith("a")
    where = f"fobj[{seed} {mode} buf={buffering}]"
    f: Any = None
    pos = 0
    read_ahead = False

    async def open_() -> None:
        nonlocal f, pos
        kw: dict[str, Any] = {"buffering": buffering}
        if text:
            kw.update(encoding="ascii", newline="")
        if mode.startswith("w"):
            os.truncate(m.path, 0)  # (a cancelled open may have truncated it)
            m.truncate(0)
        while f is None and not R.stop:
            r = await run_op(rng, lambda: uringloop.open(m.path, mode, **kw))
            if r is CANCELLED:
                continue
            f = r
            pos = len(m.content) if append else 0
            if (append and buffering == 0) or (append and not text):
                pass

    async def settle_close(old: Any) -> None:
        fd = old.fileno() if not old.closed else None
        r = await run_op(rng, lambda: old.close(), begun=True)
        if r is CANCELLED and not old.closed:
            await old.close()
        # a close cancelled once begun goes on: wait for its close(2)
        if fd is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") != m.path:
                        break
                except OSError:
                    break
                await asyncio.sleep(0.001)
            else:
                raise Bad(f"{where}: fd {fd} still open 5 s after a cancelled close")

    def enc(x: Any) -> bytes:
        return x.encode() if text else bytes(x)

    try:
        await open_()
        while not R.stop and f is not None:
            R.ops += 1
            op = rng.randrange(11)
            log(f"op {op} pos {pos} len {len(m.content)}")
            if op in (0, 1, 2, 3):
                read_ahead = True
            elif op == 10:
                read_ahead = False
            readable = "+" in mode or mode.startswith("r")
            writable = "+" in mode or mode[0] in "wa"
            if op in (0, 1, 2, 3) and readable:
                n = rng.choice([-1, 0, 1, 7, 100, 5000, 70000])
                if op == 0 or (op == 3 and text):
                    r = await run_op(rng, lambda: f.read(n))
                elif op == 1:
                    if rng.random() < 0.7:
                        n = -1
                    r = await run_op(rng, lambda: f.readline(n))
                elif op == 2:
                    r = await run_op(rng, lambda: f.read())
                    n = -1
                else:
                    n = max(n, 0)
                    buf = bytearray(n)
                    r = await run_op(rng, lambda: f.readinto(buf))
                    if r is not CANCELLED:
                        r = bytes(buf[:r])
                if r is CANCELLED:
                    t = await f.tell()
                    if t != pos:
                        raise Bad(f"{where}: cancelled read moved tell() {pos} -> {t}")
                    continue
                got = enc(r)
                if op == 1 and got:
                    rest = bytes(m.content[pos:])
                    nl = rest.find(b"\n")
                    want = rest[: nl + 1] if nl >= 0 else rest
                    if n >= 0:
                        want = want[:n]
                    if got != want:
                        raise Bad(f"{where}: readline at {pos}: {first_diff(want, got)}")
                else:
                    ask = len(m.content) + 1 if n < 0 else n
                    if n < 0 and len(got) != max(0, len(m.content) - pos):
                        raise Bad(
                            f"{where}: read() at {pos} got {len(got)} of {len(m.content) - pos}"
                        )
                    m.check_read(f"{where} read({n}) at {pos}", pos, got, ask)
                    if (
                        buffering != 0
                        and n >= 0
                        and len(got) < n
                        and pos + len(got) < len(m.content)
                    ):
                        raise Bad(f"{where}: short buffered read")
                pos += len(got)
            elif op in (4, 5) and writable:
                size = rng.choice([0, 1, 10, 1000, 5000, 70000])
                if text:
                    data: Any = "".join(rng.choice("abcdefghij\n") for _ in range(size))
                else:
                    data = rng.randbytes(size)
                if append:
                    pos = await f.seek(0, 2)  # (where the built-in's tell() would agree)
                    if pos != len(m.content):
                        raise Bad(f"{where}: seek(0, 2) gave {pos}, model {len(m.content)}")
                elif text and read_ahead:
                    # (a text write after a read goes where the buffer's read-ahead
                    # ended, as the built-in's does: put the position back first)
                    await f.seek(await f.tell())
                    read_ahead = False
                at = len(m.content) if append else pos
                m.issue(at, enc(data))
                r = await run_op(rng, lambda: f.write(data))
                if r is CANCELLED:
                    t = await f.tell()
                    if append:
                        if t == len(m.content) + size:
                            r = size
                        elif t in (len(m.content), pos):
                            r = 0
                        else:
                            raise Bad(
                                f"{where}: cancelled append write: tell {t}, end {len(m.content)}+{size}"
                            )
                    elif t == pos + size:
                        r = size
                    elif t == pos:
                        r = 0
                    else:
                        raise Bad(f"{where}: cancelled write of {size} at {pos}: tell() {t}")
                elif r != size:
                    raise Bad(f"{where}: write returned {r} for {size}")
                if r:
                    m.commit(at, enc(data))
                    pos = at + size
            elif op == 6:
                whence = rng.choice([0, 0, 1, 2]) if not text else rng.choice([0, 2])
                if text:
                    target_off = 0
                    target = 0 if whence == 0 else len(m.content)
                else:
                    target_off = rng.randrange(-50, len(m.content) + 100)
                    base = {0: 0, 1: pos, 2: len(m.content)}[whence]
                    if base + target_off < 0:
                        target_off = -base
                    target = base + target_off
                r = await run_op(rng, lambda: f.seek(target_off, whence))
                if r is CANCELLED:
                    t = await f.tell()
                    if t not in (pos, target):
                        raise Bad(f"{where}: cancelled seek {pos}->{target}: tell {t}")
                    pos = t
                else:
                    if r != target:
                        raise Bad(f"{where}: seek returned {r}, want {target}")
                    pos = target
                    read_ahead = False
            elif op == 7:
                r = await run_op(rng, lambda: f.tell())
                if r is not CANCELLED and r != pos:
                    raise Bad(f"{where}: tell {r} != {pos}")
            elif op == 8 and writable:
                r = await run_op(rng, lambda: f.flush())
                if r is CANCELLED and await f.tell() != pos:
                    raise Bad(f"{where}: cancelled flush moved")
            elif op == 9 and writable and not text and not append:
                n = rng.randrange(0, len(m.content) + 100)
                r = await run_op(rng, lambda: f.truncate(n))
                if r is CANCELLED:
                    await f.flush()
                    size = os.fstat(f.fileno()).st_size
                    if size == n:
                        m.truncate(n)
                    elif size != max(len(m.content), 0):
                        raise Bad(
                            f"{where}: cancelled truncate({n}): size {size}, model {len(m.content)}"
                        )
                else:
                    m.truncate(n)
                if await f.tell() != pos:
                    raise Bad(f"{where}: truncate moved the position")
            elif op == 10:
                old, f = f, None
                await settle_close(old)
                await open_()
    except Exception as exc:
        R.unexpected(where, exc)
    finally:
        if f is not None:
            if R.closing:
                pass  # left to the collector
            else:
                try:
                    await f.close()
                except Exception as exc:
                    R.unexpected(where + " final close", exc)


def pipe_pair(rng: random.Random) -> tuple[int, int, bool, bool]:
    r, w = os.pipe2(os.O_CLOEXEC)
    nb_r = rng.random() < 0.3
    nb_w = rng.random() < 0.3
    if nb_r:
        os.set_blocking(r, False)
    if nb_w:
        os.set_blocking(w, False)
    return r, w, nb_r, nb_w


async def pipe_actor(R: Round, seed: int) -> None:
    rng = random.Random(seed)
    rfd, wfd, nb_r, nb_w = pipe_pair(rng)
    wkind = rng.choice(["raw", "raw_kept", "fobj0", "fobj", "text", "thread"])
    if R.abrupt and wkind in ("fobj", "text"):
        # (what such a file buffered for a pipe is written when it is collected, with a
        # blocking write, as the built-in's is: an abrupt round's garbage could wait for
        # a reader that is garbage too)
        wkind = "fobj0"
    rkind = rng.choice(["raw", "fobj0", "fobj", "text", "thread"])
    text = wkind == "text" or rkind == "text"
    if text and nb_r and rkind == "text":
        nb_r = False
        os.set_blocking(rfd, True)
    sm = StreamModel(rng, text)
    where = f"pipe[{seed} w={wkind}{' nb' if nb_w else ''} r={rkind}{' nb' if nb_r else ''}]"
    loop = R.loop
    got = bytearray()
    lossy: list[int] = []
    eof = False
    writer_done = asyncio.Event()

    async def writer() -> None:
        nonlocal wfd
        f: Any = None
        try:
            if wkind.startswith("fobj") or wkind == "text":
                kw: dict[str, Any] = {"closefd": True}
                if wkind == "fobj0":
                    kw["buffering"] = 0
                if wkind == "text":
                    f = await uringloop.open(wfd, "w", encoding="ascii", newline="", **kw)
                else:
                    f = await uringloop.open(wfd, "wb", **kw)
                import weakref

                log("writer starts")
                BORN[id(f)] = (
                    CURRENT_ROUND[0],
                    where,
                    LOG.get(),
                    weakref.ref(asyncio.current_task()),
                )
                wfd = -1
            while not R.stop and sm.cursor < len(sm.S) - 80000:
                R.ops += 1
                n = rng.choice([0, 1, 50, 4096, 20000, 70000])
                chunk = sm.S[sm.cursor : sm.cursor + n]
                try:
                    if wkind == "raw":
                        if rng.random() < 0.5:
                            r = await run_op(rng, lambda: loop.pwrite(wfd, chunk))
                        else:
                            r = await run_op(rng, lambda: loop.pwritev(wfd, [chunk[:7], chunk[7:]]))
                        if r is CANCELLED:
                            sm.sent(0, certain=False, asked=n)
                        else:
                            sm.sent(r)
                    elif wkind == "raw_kept":
                        kept: list[asyncio.Future[int]] = []
                        r = await run_op(rng, lambda: loop.pwrite_kept(wfd, chunk, kept.append))
                        if r is CANCELLED:
                            r = 0
                            if kept:
                                try:
                                    r = await kept[0]
                                except BlockingIOError:
                                    r = 0
                                except OSError as e:
                                    if e.errno != errno.ECANCELED:
                                        raise
                        sm.sent(r)
                    elif wkind == "thread":
                        t = rng.choice([None, 1e-5, 1e-4, 1e-3, 0.01])

                        def call() -> Any:
                            try:
                                return uthreads.pwrite(
                                    wfd, chunk, timeout=t, loop=loop if t is None else None
                                )
                            except TimeoutError as e:
                                return "LEFT" if "may still happen" in str(e) else CANCELLED

                        r = await loop.run_in_executor(None, call)
                        if r == "LEFT":  # (documented: left behind, may still happen)
                            sm.sent(0, certain=False, asked=n)
                        else:
                            sm.sent(0 if r is CANCELLED else r)
                    else:
                        data: Any = chunk.decode() if wkind == "text" else chunk
                        log(f"write {n}")
                        r = await run_op(rng, lambda: f.write(data))
                        if r is CANCELLED:
                            sm.sent(0, certain=False, asked=n)
                            log(f"write of {n} cancelled")
                        else:
                            if r != n and wkind != "fobj0":
                                raise Bad(f"{where}: buffered write returned {r} of {n}")
                            sm.sent(r)
                except BlockingIOError as e:
                    if not nb_w:
                        raise
                    cw = (
                        getattr(e, "characters_written", 0)
                        if wkind not in ("raw", "raw_kept", "thread")
                        else 0
                    )
                    sm.sent(cw)
                    await asyncio.sleep(0.0005)
        except Exception as exc:
            R.unexpected(where + " writer", exc)
        finally:
            if f is not None:
                while True:
                    try:
                        if R.closing:
                            break
                        await (
                            f.flush()
                        )  # (a close that cannot flush loses the rest, as the built-in's)
                        await f.close()
                        break
                    except BlockingIOError as e:
                        # non-blocking close: flush could not finish: wait for the reader
                        sm_w = getattr(e, "characters_written", 0)
                        del sm_w
                        await asyncio.sleep(0.001)
                    except Exception as exc:
                        R.unexpected(where + " writer close", exc)
                        break
            elif wfd >= 0:
                os.close(wfd)
            writer_done.set()

    async def reader() -> None:
        nonlocal rfd, eof
        f: Any = None
        try:
            if rkind in ("fobj0", "fobj", "text"):
                kw: dict[str, Any] = {"closefd": True}
                if rkind == "fobj0":
                    kw["buffering"] = 0
                if rkind == "text":
                    f = await uringloop.open(rfd, "r", encoding="ascii", newline="", **kw)
                else:
                    f = await uringloop.open(rfd, "rb", **kw)
                rfd = -1
            while not eof:
                R.ops += 1
                n = rng.choice([1, 100, 4096, 65536, 100000])
                try:
                    if rkind == "raw":
                        unc: list[asyncio.Future[bytes]] = []
                        r = await run_op(rng, lambda: loop.pread(rfd, n, unclaimed=unc.append))
                        if r is CANCELLED:
                            r = b""
                            if unc:
                                try:
                                    r = await unc[0]
                                except BlockingIOError:
                                    r = b""
                                except OSError as e:
                                    if e.errno != errno.ECANCELED:
                                        raise
                                if r == b"":  # EOF seen by the kept read, or nothing read
                                    if (
                                        unc
                                        and not unc[0].cancelled()
                                        and unc[0].exception() is None
                                    ):
                                        eof = True
                                    continue
                        elif r == b"":
                            eof = True
                    elif rkind == "thread":
                        t = rng.choice([None, 1e-4, 1e-3, 0.01])

                        def call() -> Any:
                            try:
                                return uthreads.pread(
                                    rfd, n, timeout=t, loop=loop if t is None else None
                                )
                            except TimeoutError as e:
                                if "may still happen" in str(e):
                                    lossy.append(1)  # (documented: left behind, may read)
                                return CANCELLED

                        r = await loop.run_in_executor(None, call)
                        log(
                            f"thread pread({n}, timeout={t}) at {len(got)} -> {summary(r) if r is not CANCELLED else 'TIMEOUT'}"
                        )
                        if r is CANCELLED:
                            continue
                        if r == b"":
                            eof = True
                    else:
                        c = rng.randrange(4)
                        if c == 0 or (c == 3 and rkind == "text"):
                            r = await run_op(rng, lambda: f.read(n))
                        elif c == 1:
                            r = await run_op(rng, lambda: f.readline())
                        elif c == 2:
                            r = await run_op(rng, lambda: f.read())
                        else:
                            buf = bytearray(n)
                            r = await run_op(rng, lambda: f.readinto(buf))
                            if r is not CANCELLED and r is not None:
                                r = bytes(buf[:r])
                        if r is CANCELLED:
                            continue
                        if r is None:
                            if not nb_r:
                                raise Bad(f"{where}: read gave None on a blocking pipe")
                            await asyncio.sleep(0.0005)
                            continue
                        if rkind == "text":
                            r = r.encode()
                        if r == b"" and (c == 2 or n > 0):
                            eof = True
                    got.extend(r)
                except BlockingIOError:
                    if not nb_r:
                        raise
                    await asyncio.sleep(0.0005)
            if not lossy:
                sm.check(bytes(got), True, where)
        except Exception as exc:
            R.unexpected(where + " reader", exc)
        finally:
            if f is not None:
                if not R.closing:
                    await f.close()
            elif rfd >= 0:
                os.close(rfd)

    await asyncio.gather(writer(), reader())


async def zero_actor(R: Round, seed: int) -> None:
    rng = random.Random(seed)
    where = f"zero[{seed}]"
    log("zero actor")
    loop = R.loop
    try:
        if rng.random() < 0.5:
            fd = await loop.open_fd("/dev/zero", os.O_RDWR)
            try:
                while not R.stop:
                    R.ops += 1
                    n = rng.choice([0, 1, 4096, 100000, 1 << 20])
                    off = rng.choice([-1, 0, 12345])
                    if rng.random() < 0.2:
                        r = await run_op(rng, lambda: loop.pwrite(fd, b"x" * n, off))
                        if r is not CANCELLED and r != n:
                            raise Bad(f"{where}: write to /dev/zero {r} of {n}")
                        continue
                    r = await run_op(rng, lambda: loop.pread(fd, n, off))
                    # (a read of /dev/zero interrupted by the cancel may be short)
                    if r is not CANCELLED and (len(r) > n or r.count(0) != len(r) or (not r and n)):
                        raise Bad(f"{where}: /dev/zero read {len(r)} of {n}, zeros {r.count(0)}")
            finally:
                await loop.close_fd(fd)
        else:
            buffering = rng.choice([0, -1])
            f = await uringloop.open("/dev/zero", "rb", buffering=buffering)
            where += f" buffering={buffering}"
            try:
                while not R.stop:
                    R.ops += 1
                    n = rng.choice([1, 4096, 100000])
                    r = await run_op(rng, lambda: f.read(n))
                    # (buffering=0: a raw read, which may be short: see the report)
                    if r is not CANCELLED and (
                        len(r) > n or r.count(0) != len(r) or not r or (buffering and len(r) != n)
                    ):
                        raise Bad(f"{where}: /dev/zero file read {len(r)} of {n}")
            finally:
                if not R.closing:
                    await f.close()
    except Exception as exc:
        R.unexpected(where, exc)


async def thread_actor(R: Round, seed: int) -> None:
    rng = random.Random(seed)
    m = FileModel(R.path("thr"), rng)
    R.files.append(m)
    where = f"thread[{seed}]"
    loop = R.loop
    done = threading.Event()
    R.threads_done.append(done)
    plan = [
        (
            rng.randrange(6),
            rng.choice([1e-5, 1e-4, 1e-3, 0.01, None]),
            rng.randrange(0, 20000),
            rng.choice([0, 1, 100, 5000]),
            rng.random(),
        )
        for _ in range(200)
    ]
    errors: list[BaseException] = []
    trail: list[str] = []
    ino = os.stat(m.path).st_ino

    def work() -> None:
        fd = None
        try:
            for op, t, off, size, x in plan:
                if R.stop:
                    break
                R.ops += 1
                kw: dict[str, Any] = {"timeout": t} if t is not None else {"loop": loop}
                trail.append(f"op {op} t {t} fd {fd} off {off} size {size}")
                del trail[:-30]
                if fd is not None:
                    try:
                        st = os.fstat(fd)
                        if st.st_ino != ino:
                            raise Bad(
                                f"{where}: fd {fd} names another file ({os.readlink(f'/proc/self/fd/{fd}')})"
                            )
                    except OSError as e:
                        raise Bad(f"{where}: fd {fd}: {e!r}") from e
                try:
                    if fd is None or op == 5:
                        if fd is not None:
                            old, fd = fd, None
                            try:
                                uthreads.close(old, **kw)
                            except TimeoutError:
                                pass  # will still happen
                        fd = uthreads.open(m.path, os.O_RDWR, **kw)
                        trail.append(f"  opened {fd}")
                    elif op in (0, 1):
                        data = uthreads.pread(fd, size, off, **kw)
                        m.check_read(f"{where} pread", off, data, size)
                    elif op == 2:
                        reqs = [(fd, size, off), (fd, 10, 0)]
                        res = uthreads.pread_many(reqs, **kw)
                        for (_, s, o), d in zip(reqs, res, strict=True):
                            m.check_read(f"{where} pread_many", o, d, s)
                    else:
                        data = bytes([int(x * 255)]) * size
                        n = uthreads.pwrite(fd, data, off, **kw)
                        if n != size:
                            raise Bad(f"{where} pwrite {n} of {size}")
                        m.commit(off, data)
                except TimeoutError as e:
                    if "may still happen" in str(e) and op in (3, 4) and fd is not None:
                        m.stale(off, bytes([int(x * 255)]) * size)  # (documented: left behind)
                    continue  # promised: not happened
                except StrandedError:
                    # The loop closed with it under way: whether it wrote is unknown (a
                    # plain LoopClosedError promises it did not, and is not recorded).
                    if op in (3, 4) and fd is not None:
                        m.issue(off, bytes([int(x * 255)]) * size)
                    raise
        except LoopClosedError:
            if not R.closing:
                raise
        except BaseException as e:
            errors.append(e)
        finally:
            if fd is not None:
                os.close(fd)
            done.set()

    try:
        fut = loop.run_in_executor(None, work)
        await fut
        for e in errors:
            if isinstance(e, LoopClosedError) and R.abrupt:
                continue
            R.unexpected(where, e)
            print("\n".join(trail), file=sys.stderr)
    except Exception as exc:
        R.unexpected(where, exc)


ACTORS = [raw_file_actor, fobj_actor, pipe_actor, zero_actor, thread_actor]
WEIGHTS = [3, 3, 3, 1, 1]


async def round_main(R: Round, duration: float) -> None:
    rng = R.rng
    n = rng.randrange(2, 8)
    tasks = []
    for _ in range(n):
        actor = rng.choices(ACTORS, WEIGHTS)[0]
        if R.only and actor.__name__.split("_")[0] not in R.only:
            rng.randrange(1 << 30)
            continue
        tasks.append(asyncio.get_running_loop().create_task(actor(R, rng.randrange(1 << 30))))
    await asyncio.sleep(duration)
    R.stop = True
    await asyncio.gather(*tasks)


def show_refs() -> None:
    gc.collect()
    ignore: set[int] = set()
    tasks = [o for o in gc.get_objects() if type(o) is asyncio.Task]
    ignore.add(id(tasks))
    print(f"alive tasks: {len(tasks)}", file=sys.stderr)

    def desc(o: Any) -> str:
        d = type(o).__name__
        if isinstance(o, dict):
            d += " keys=" + ",".join(map(str, list(o)[:8]))
        elif isinstance(o, (list, tuple, set, frozenset)):
            d += f" len={len(o)}"
        else:
            d += " " + repr(o)[:120]
        return d

    def walk(o: Any, depth: int, seen: set[int]) -> None:
        if depth > 6:
            return
        refs = gc.get_referrers(o)
        ignore.add(id(refs))
        for r in refs:
            if id(r) in ignore or id(r) in seen or type(r).__name__ == "frame":
                continue
            seen.add(id(r))
            print("   " + "  " * depth + "<- " + desc(r), file=sys.stderr)
            walk(r, depth + 1, seen)

    for t in tasks[-1:]:
        print(" task", t.get_coro(), file=sys.stderr)
        walk(t, 0, {id(t)})


def close_pending(loop: asyncio.AbstractEventLoop) -> None:
    """After an abrupt close: close the tasks left pending from their own coroutines, each
    while its task is held, as the collector would close them but from each chain's outer
    end. The collector can reach the middle of a chain first, and CPython then closes that
    chain again while closing it (SIGSEGV on 3.11, "coroutine already executing" on 3.12+;
    scripts/cpython_close_reentry.py). Holds none of them once it returns."""
    for pending in asyncio.all_tasks(loop):
        pending.get_coro().close()  # type: ignore[union-attr]


def run_round(seed: int, rnd: int, args: argparse.Namespace, base_tmp: str) -> dict[str, Any]:
    rng = random.Random(f"{seed}-{rnd}")
    CURRENT_ROUND[0] = rnd
    abrupt = rng.random() < args.abrupt
    tmp = tempfile.mkdtemp(dir=base_tmp)
    before = fd_map()
    handler_calls: list[dict[str, Any]] = []
    kw: dict[str, Any] = {"inline": rng.random() < 0.7}
    if rng.random() < 0.3:
        kw["cq_entries"] = rng.choice([4, 8, 16])
        kw["sq_entries"] = rng.choice([2, 4, 8])
    loop = uringloop.Loop(**kw)
    # (only what is needed: a context kept would keep its task, and that task's fds)
    loop.set_exception_handler(
        lambda lp, ctx: handler_calls.append(
            {
                "message": ctx.get("message"),
                "exception": repr(ctx.get("exception")),
                "closed": lp.is_closed(),
                "task": repr(ctx.get("task"))[:600],
            }
        )
    )
    R = Round(rng, loop, tmp, abrupt)
    R.only = args.actors.split(",") if args.actors else None
    if args.no_abrupt:
        abrupt = R.abrupt = False
    duration = rng.uniform(0.05, args.round_len)
    faulthandler.dump_traceback_later(args.round_timeout, exit=True)
    print(
        f"round {rnd} seed {seed} abrupt={abrupt} loop={kw} dur={duration:.2f}",
        file=sys.stderr,
        flush=True,
    ) if args.verbose else None
    try:
        main = loop.create_task(round_main(R, duration))
        if abrupt:
            stop_at = rng.uniform(0.0, duration * 1.5)
            loop.call_later(stop_at, loop.stop)
            loop.run_forever()
            if rng.random() < 0.4:
                loop.call_later(rng.uniform(0, 0.05), loop.stop)
                loop.run_forever()
            R.stop = True
            R.closing = True
            loop.close()
            settle_children()
            close_pending(loop)
            del main
        else:
            loop.run_until_complete(main)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            CHILDREN.clear()
    finally:
        faulthandler.cancel_dump_traceback_later()
    for ev in R.threads_done:
        if not ev.wait(10):
            finding(f"round {rnd}: a thread actor did not end 10 s after the loop closed")
    files, ops = R.files, R.ops
    R.loop = None  # type: ignore[assignment]
    del R, loop
    gc.collect()
    gc.collect()
    for m in files:
        try:
            m.check_final(abrupt)
        except Bad as e:
            finding(f"round {rnd} (seed {seed}, abrupt={abrupt}): {e}")
    after = fd_map()
    leaked = {fd: p for fd, p in after.items() if before.get(fd) != p}
    if leaked:
        time.sleep(0.2)
        gc.collect()
        after = fd_map()
        leaked = {fd: p for fd, p in after.items() if before.get(fd) != p}
        if leaked:
            finding(f"round {rnd} (seed {seed}, abrupt={abrupt}, {kw}): fds left open: {leaked}")
            for p in leaked.values():
                if p in TRAILS:
                    print(f"trail of {p}:\n" + "\n".join(TRAILS[p][-15:]), file=sys.stderr)
            if os.environ.get("FUZZ_REFS"):
                show_refs()
    if not abrupt and handler_calls:
        finding(
            f"round {rnd} (seed {seed}): exception handler called: {[c.get('message') for c in handler_calls][:5]} {[repr(c.get('exception')) for c in handler_calls][:5]}"
        )
    elif abrupt:
        for c in handler_calls:
            msg = str(c.get("message", ""))
            if "Task was destroyed but it is pending" in msg and not c["closed"]:
                finding(
                    f"round {rnd} (seed {seed}, abrupt): a pending task was collected while its loop was open: {c['task']}"
                )
                continue
            if "Task was destroyed but it is pending" in msg or "never retrieved" in msg:
                continue
            finding(
                f"round {rnd} (seed {seed}, abrupt): exception handler: {msg} {c.get('exception')!r}"
            )
    shutil.rmtree(tmp, ignore_errors=True)
    TRAILS.clear()
    return {"ops": ops, "abrupt": abrupt}


def main() -> int:
    faulthandler.enable()
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=60, help="wall-clock seconds of rounds")
    ap.add_argument("--rounds", type=int, default=10**9)
    ap.add_argument("--only-round", type=int, default=None)
    ap.add_argument("--round-len", type=float, default=0.6)
    ap.add_argument("--round-timeout", type=float, default=60)
    ap.add_argument("--abrupt", type=float, default=0.2, help="share of abrupt rounds")
    ap.add_argument("--no-tracemalloc", action="store_true")
    ap.add_argument("--actors", default="", help="comma list of raw,fobj,pipe,zero,thread")
    ap.add_argument("--no-abrupt", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--dir", default=None, help="where the rounds' files go (default: TMPDIR)")
    args = ap.parse_args()
    warnings.simplefilter("ignore", ResourceWarning)  # abrupt rounds leave files to the GC
    base_tmp = tempfile.mkdtemp(prefix="uringloop-fuzz.", dir=args.dir)
    impl = "python" if os.environ.get("URINGLOOP_NO_EXTENSIONS") else "compiled"
    print(f"fuzz_cancel seed={args.seed} impl={impl}", flush=True)
    if not args.no_tracemalloc:
        tracemalloc.start(1)
    mem: list[tuple[int, int, int]] = []
    snap0 = None
    t0 = time.monotonic()
    rounds = [args.only_round] if args.only_round is not None else range(args.rounds)
    total_ops = 0
    try:
        for rnd in rounds:
            if time.monotonic() - t0 > args.duration:
                break
            res = run_round(args.seed, rnd, args, base_tmp)
            total_ops += res["ops"]
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
            mem.append((rnd, traced, rss_kib()))
            if len(mem) == 5 and tracemalloc.is_tracing():
                snap0 = tracemalloc.take_snapshot()
            if rnd % 10 == 0:
                print(
                    f"  round {rnd}: ops {total_ops} traced {traced // 1024} KiB rss {mem[-1][2]} KiB findings {len(FINDINGS)}",
                    flush=True,
                )
    finally:
        shutil.rmtree(base_tmp, ignore_errors=True)
    if len(mem) >= 20:
        k = len(mem) // 4
        early = sorted(x[1] for x in mem[4 : 4 + k])[k // 2]
        late = sorted(x[1] for x in mem[-k:])[k // 2]
        early_rss = sorted(x[2] for x in mem[4 : 4 + k])[k // 2]
        late_rss = sorted(x[2] for x in mem[-k:])[k // 2]
        print(
            f"memory: traced median {early // 1024} -> {late // 1024} KiB, rss median {early_rss} -> {late_rss} KiB over {len(mem)} rounds"
        )
        if late - early > 512 * 1024:
            finding(f"tracemalloc grew {(late - early) // 1024} KiB over {len(mem)} rounds")
            if snap0 is not None:
                for stat in tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:15]:
                    print("   ", stat)
        if late_rss - early_rss > 20 * 1024:
            finding(f"RSS grew {late_rss - early_rss} KiB over {len(mem)} rounds")
    print(
        f"done: {len(mem)} rounds, {total_ops} ops, {time.monotonic() - t0:.0f} s, findings: {len(FINDINGS)}"
    )
    return 1 if FINDINGS else 0


if __name__ == "__main__":
    sys.exit(main())
