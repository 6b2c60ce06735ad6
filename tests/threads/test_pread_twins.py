"""uringloop.threads.pread on both twins: the pure-Python reference (threads._pread_python)
and the compiled one (_threads_c.c), which does the common case itself and hands the rest
to the reference. Either must give what os.read / os.pread give, value or error."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import twin
from uringloop import threads

try:
    from uringloop import _threads_c
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _threads_c = None  # type: ignore[assignment]

TWINS = {"c": getattr(_threads_c, "pread", None), "python": threads._pread_python}
DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture(params=sorted(TWINS))
def pread(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "thread pread")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "data"
    p.write_bytes(DATA)
    return p


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("value", call())
    except Exception as exc:  # the type and arguments are what must agree
        return ("error", type(exc), exc.args)


def _os_call(fd: Any, size: Any, offset: Any = -1) -> Any:
    return os.read(fd, size) if offset == -1 else os.pread(fd, size, offset)


class _Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


def test_is_the_default_where_built() -> None:
    if _threads_c is None or os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        assert threads.pread is threads._pread_python and threads.IMPLEMENTATION == "python"
    else:
        assert threads.pread is _threads_c.pread and threads.IMPLEMENTATION == "c"
        assert threads.pread.__module__ == "uringloop.threads"


READS = [(100, 0), (4096, 7), (0, 0), (20_000, 0), (100, len(DATA) - 10), (100, len(DATA)),
         (100, len(DATA) + 1000), (5, 2**62), (1 << 20, 0)]  # fmt: skip


@pytest.mark.parametrize("size, offset", READS)
def test_reads_as_os_pread(pread: Any, path: Path, size: int, offset: int) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        assert pread(fd, size, offset) == os.pread(fd, size, offset) == DATA[offset : offset + size]
    finally:
        os.close(fd)


def test_offset_minus_one_reads_at_the_position_and_moves_it(pread: Any, path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        assert [pread(fd, 3), pread(fd, 4, -1)] == [DATA[:3], DATA[3:7]]
        assert os.lseek(fd, 0, os.SEEK_CUR) == 7
        assert pread(fd, 5, 0) == DATA[:5]  # an offset leaves the position alone
        assert os.lseek(fd, 0, os.SEEK_CUR) == 7
    finally:
        os.close(fd)


def test_every_other_call_matches_os(pread: Any, path: Path) -> None:
    # Each case on a fresh descriptor (its position must start at 0 for both calls).
    cases: list[tuple[tuple[Any, ...], dict[str, Any], tuple[Any, ...]]] = [
        ((None, -1, 0), {}, (None, -1, 0)),  # negative size: EINVAL, before the descriptor
        ((None, 10, -2), {}, (None, 10, -2)),  # offset below -1: EINVAL
        ((None, 10, 2**63), {}, (None, 10, 2**63)),  # offset past off_t: OverflowError
        ((None, 10.0, 0), {}, (None, 10.0, 0)),  # TypeError
        ((None, 10, 0.0), {}, (None, 10, 0.0)),
        ((None, "10", 0), {}, (None, "10", 0)),
        ((None, _Index(10), 0), {}, (None, 10, 0)),  # an __index__ size is a size
        ((None, 10, _Index(3)), {}, (None, 10, 3)),
        ((-1, 10, 0), {}, (-1, 10, 0)),  # EBADF
        ((2**31, 10, 0), {}, (2**31, 10, 0)),  # fd past int: OverflowError
        ((999_999, 10, 0), {}, (999_999, 10, 0)),  # not open: EBADF
        ((None,), {"size": 6, "offset": 2}, (None, 6, 2)),  # keywords
        ((), {"fd": None, "size": 6}, (None, 6, -1)),
        ((None, 6, 2), {"loop": None, "timeout": None}, (None, 6, 2)),
        ((True, 0, 0), {}, (True, 0, 0)),  # a bool is the descriptor number os takes
    ]
    for args, kwargs, os_args in cases:
        fd, fd_os = os.open(path, os.O_RDONLY), os.open(path, os.O_RDONLY)
        try:
            call_args = tuple(fd if a is None else a for a in args)
            call_kwargs = {k: fd if v is None and k == "fd" else v for k, v in kwargs.items()}
            ours = _outcome(functools.partial(pread, *call_args, **call_kwargs))
            theirs = _outcome(
                functools.partial(_os_call, *(fd_os if a is None else a for a in os_args))
            )
            assert ours == theirs, (args, kwargs)
            assert os.lseek(fd, 0, os.SEEK_CUR) == os.lseek(fd_os, 0, os.SEEK_CUR)
        finally:
            os.close(fd)
            os.close(fd_os)


def test_a_pipe_reads_at_its_position_and_refuses_an_offset(pread: Any) -> None:
    r, w = os.pipe()
    try:
        os.write(w, b"pipe data")
        assert pread(r, 4) == b"pipe"
        refused = ("error", OSError, (errno.ESPIPE, os.strerror(errno.ESPIPE)))
        assert _outcome(lambda: pread(r, 4, 0)) == refused == _outcome(lambda: os.pread(r, 4, 0))
        assert pread(r, 10, -1) == b" data"
    finally:
        os.close(r)
        os.close(w)


@contextlib.contextmanager
def _signalled(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """SIGUSR1 sent to this (the main) thread every 50 ms while the block runs, handled by
    `handler` (SIGUSR1, not SIGALRM: pytest-timeout's signal method owns the latter)."""
    old = signal.signal(signal.SIGUSR1, handler)
    stop = threading.Event()
    target = threading.get_ident()

    def send() -> None:
        while not stop.wait(0.05):
            signal.pthread_kill(target, signal.SIGUSR1)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stop.set()
        sender.join(10)
        signal.signal(signal.SIGUSR1, old)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_a_signal_that_interrupts_the_read_retries_it(pread: Any, pipe: tuple[int, int]) -> None:
    # The handler runs (read interrupted by EINTR), returns, and the read goes on until
    # the data a second signal writes arrives: as os.read does (PEP 475).
    r, w = pipe
    seen: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        seen.append(signum)
        if len(seen) == 2:
            os.write(w, b"late")

    with _signalled(handler):
        assert pread(r, 10) == b"late"
    assert len(seen) >= 2


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_a_signal_handler_that_raises_ends_the_read(pread: Any, pipe: tuple[int, int]) -> None:
    r, w = pipe

    class Stop(Exception):
        pass

    raised: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if not raised:  # once: a signal still on its way after the read must not raise
            raised.append(signum)
            raise Stop

    with _signalled(handler), pytest.raises(Stop):
        pread(r, 10)
    os.write(w, b"x")  # nothing was consumed: the pipe still works
    assert os.read(r, 10) == b"x"


def test_the_read_releases_the_gil(pread: Any, pipe: tuple[int, int]) -> None:
    # A read blocked on an empty pipe in one thread lets another thread run Python code
    # (were it held, this thread would hang here: the reader is a daemon, and the write
    # that ends its read is made whatever the assertions say).
    r, w = pipe
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pread(r, 5)), daemon=True)
    reader.start()
    try:
        reader.join(0.2)
        assert reader.is_alive() and not got  # blocked in the read
    finally:
        os.write(w, b"hello")  # this thread ran while the other one waited
        reader.join(10)
    assert got == [b"hello"]
