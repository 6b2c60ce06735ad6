"""The three io_uring system calls through ctypes, and the fault-injection seam for tests.

A negative return becomes an OSError carrying errno (so callers catch InterruptedError,
BlockingIOError, ... by class). Nothing here retries: retry policy belongs to the caller.

Fault injection: `inject(call, errno, times=n)` makes the next n calls of `call`
("setup", "enter" or "register") fail with that errno before reaching the kernel.
When no fault is armed the cost is one truth test of a module global per call.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from . import abi

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = [ctypes.c_long] * 7
# io_uring_enter passes only small ints (no sigset): function objects without argtypes
# convert them as C ints, about 1 us cheaper per call than the checked path. (libffi
# widens a C int argument to a full 64-bit register on x86-64 and aarch64.)
# Two of them: an enter that waits for completions (min_complete > 0) releases the GIL, as
# any blocking call must; one that does not wait (the loop's submit and reap: it never
# blocks) keeps it. Releasing it there let another thread take it for the length of the
# system call and handed it back with two thread switches: a foreign thread's round trip
# through a sleeping loop paid for that on every enter.
_enter_waiting = ctypes.CDLL(None, use_errno=True).syscall
_enter_waiting.restype = ctypes.c_long
_enter_at_once = ctypes.PyDLL(None, use_errno=True).syscall
_enter_at_once.restype = ctypes.c_long

_get_errno = ctypes.get_errno


@dataclass(slots=True)
class _Fault:
    call: str
    errno: int
    times: int  # -1: until disarmed


# Armed faults, in arming order; None when nothing is armed (the fast path).
_faults: list[_Fault] | None = None
_faults_lock = threading.Lock()


def _take_fault(call: str) -> int:
    """Consume one armed fault for `call`; return its errno, or 0 when none applies."""
    global _faults
    with _faults_lock:
        if not _faults:
            return 0
        for fault in _faults:
            if fault.call == call and fault.times != 0:
                if fault.times > 0:
                    fault.times -= 1
                return fault.errno
        return 0


def _raise_errno(err: int) -> None:
    raise OSError(err, os.strerror(err))


def setup(entries: int, params: ctypes.Array[ctypes.c_char]) -> int:
    """io_uring_setup(2): return the new ring fd; `params` is filled in by the kernel."""
    if _faults is not None:
        err = _take_fault("setup")
        if err:
            _raise_errno(err)
    res = _syscall(abi.SYS_IO_URING_SETUP, entries, ctypes.addressof(params), 0, 0, 0, 0)
    if res < 0:
        _raise_errno(_get_errno())
    return int(res)


def enter(fd: int, to_submit: int, min_complete: int, flags: int) -> int:
    """io_uring_enter(2) without a signal mask: return the number of SQEs consumed."""
    if _faults is not None:
        err = _take_fault("enter")
        if err:
            _raise_errno(err)
    call = _enter_waiting if min_complete else _enter_at_once
    res = call(abi.SYS_IO_URING_ENTER, fd, to_submit, min_complete, flags, None, 0)
    if res < 0:
        _raise_errno(_get_errno())
    return int(res)


def register(fd: int, opcode: int, arg: int, nr_args: int) -> int:
    """io_uring_register(2); `arg` is an address (or 0)."""
    if _faults is not None:
        err = _take_fault("register")
        if err:
            _raise_errno(err)
    res = _syscall(abi.SYS_IO_URING_REGISTER, fd, opcode, arg, nr_args, 0, 0)
    if res < 0:
        _raise_errno(_get_errno())
    return int(res)


@contextmanager
def inject(call: str, errno: int, times: int = 1) -> Iterator[_Fault]:
    """Test seam: make `call` fail with `errno` `times` times (-1: every time) inside the block."""
    global _faults
    if call not in ("setup", "enter", "register"):
        raise ValueError(f"unknown io_uring call {call!r}")
    fault = _Fault(call, errno, times)
    with _faults_lock:
        _faults = [*(_faults or []), fault]
    try:
        yield fault
    finally:
        with _faults_lock:
            remaining = [f for f in (_faults or []) if f is not fault]
            _faults = remaining or None
