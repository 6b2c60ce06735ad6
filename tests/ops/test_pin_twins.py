"""Pin, the buffer export an operation holds while the kernel uses the memory, on both
twins: the pure-Python reference (uringloop/_buffers.py) and the compiled one
(_buffers_c.c), compared object by object: the address and size they give, the export they
hold (and give back), and what they refuse, with which exception."""

from __future__ import annotations

import array
import contextlib
import ctypes
import gc
import mmap
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import twin
from uringloop import _buffers

try:
    from uringloop import _buffers_c
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _buffers_c = None  # type: ignore[assignment]


@pytest.fixture
def compiled() -> Any:
    return twin(_buffers_c, "buffer pin")


def _address(obj: Any) -> int:
    """The first byte of `obj`'s memory, as ctypes finds it (0 for an empty object)."""
    with memoryview(obj) as view:
        if not view.nbytes:
            return 0
        if type(obj) is bytes:
            return _buffers.bytes_address(obj)
        if view.readonly:  # (none of the others found pinned: see the test)
            return -1
        return ctypes.addressof(ctypes.c_char.from_buffer(view))


def _objects() -> list[tuple[str, Callable[[], Any]]]:
    """Fresh objects of every kind a caller may pass (a factory each: each pin gets its own)."""
    released = memoryview(b"x")
    released.release()
    return [
        ("bytes", lambda: b"hello world"),
        ("empty bytes", lambda: b""),
        ("bytearray", lambda: bytearray(b"hello world")),
        ("empty bytearray", lambda: bytearray()),
        ("array", lambda: array.array("i", range(10))),
        ("memoryview", lambda: memoryview(bytearray(64))),
        ("readonly memoryview", lambda: memoryview(b"abcdef")),
        ("strided memoryview", lambda: memoryview(bytearray(64))[::2]),
        ("empty strided memoryview", lambda: memoryview(bytearray(64))[10:10:2]),
        ("2-d memoryview", lambda: memoryview(bytearray(64)).cast("B", (8, 8))),
        ("int memoryview", lambda: memoryview(array.array("q", range(4)))),
        ("mmap", lambda: mmap.mmap(-1, 4096)),
        ("ctypes array", lambda: (ctypes.c_char * 16)()),
        ("released memoryview", lambda: released),
        ("str", lambda: "text"),
        ("int", lambda: 5),
        ("None", lambda: None),
        ("list", lambda: [1, 2]),
    ]


def _outcome(pin_type: Any, obj: Any, writable: bool) -> Any:
    try:
        pin = pin_type(obj, writable)
    except Exception as exc:
        context = exc.__context__
        return ("raised", type(exc), str(exc), exc.__cause__, exc.__suppress_context__,
                type(context), str(context) if context is not None else None)  # fmt: skip
    try:
        return ("pinned", pin.nbytes, pin.address == (_address(obj) if pin.nbytes else 0))
    finally:
        pin.release()


@pytest.mark.parametrize("writable", [True, False])
def test_the_twins_pin_and_refuse_the_same(compiled: Any, writable: bool) -> None:
    for name, make in _objects():
        ours = [_outcome(pin_type, make(), writable) for pin_type in (_buffers.Pin, compiled.Pin)]
        assert ours[0] == ours[1], name
        pinned = {"bytearray", "mmap", "ctypes array", "memoryview"} | (
            set() if writable else {"bytes"}
        )
        if name in pinned:  # (so the comparison above is not of two refusals)
            assert ours[0][0] == "pinned" and ours[0][2], (name, ours[0])


def test_the_address_is_the_memory_the_kernel_is_given(compiled: Any) -> None:
    data = bytearray(b"\0" * 32)
    pin = compiled.Pin(data, True)
    try:
        ctypes.memmove(pin.address, b"written by address", 18)
        assert pin.nbytes == 32
    finally:
        pin.release()
    assert bytes(data[:18]) == b"written by address"
    frozen = b"read by address, through the pin"
    pin = compiled.Pin(frozen, False)
    try:
        assert ctypes.string_at(pin.address, pin.nbytes) == frozen
    finally:
        pin.release()


@pytest.mark.parametrize("writable", [True, False])
def test_a_pinned_bytearray_cannot_be_resized_until_released(compiled: Any, writable: bool) -> None:
    for pin_type in (_buffers.Pin, compiled.Pin):
        data = bytearray(b"hello")
        pin = pin_type(data, writable)
        with pytest.raises(BufferError):
            data.extend(b" world")
        pin.release()
        pin.release()  # (idempotent)
        data.extend(b" world")
        assert data == b"hello world"


@pytest.mark.parametrize("writable", [True, False])
def test_a_callers_memoryview_stays_free_to_release(compiled: Any, writable: bool) -> None:
    for pin_type in (_buffers.Pin, compiled.Pin):
        data = bytearray(16)
        view = memoryview(data)
        pin = pin_type(view, writable)
        view.release()  # (the pin holds a view of its own)
        with pytest.raises(BufferError):
            data.append(1)  # the memory is still pinned
        pin.release()
        data.append(1)
        assert len(data) == 17


@pytest.mark.parametrize("writable", [True, False])
def test_a_pin_freed_without_release_gives_the_export_back(compiled: Any, writable: bool) -> None:
    for pin_type in (_buffers.Pin, compiled.Pin):
        data = bytearray(8)
        pin = pin_type(data, writable)
        del pin
        gc.collect()
        data.extend(b"more")
        assert len(data) == 12


def test_a_read_only_pin_interrupted_after_the_export_gives_it_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reference's read-only pin takes the export with PyObject_GetBuffer through
    # ctypes; a signal handler's exception landing as that call returns went through
    # __init__ with the export taken and never given back: the bytearray could never be
    # resized again. (The compiled pin takes it in C, where no such exception lands.)
    real = _buffers._get_buffer

    def interrupted(*args: Any) -> int:
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(_buffers, "_get_buffer", interrupted)
    data = bytearray(b"data")
    with pytest.raises(KeyboardInterrupt):
        _buffers.Pin(data, False)
    data.extend(b"more")
    assert data == b"datamore"


def test_the_pin_in_use_is_the_compiled_one_where_built(compiled: Any) -> None:
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        assert _buffers.PIN is _buffers.Pin and _buffers.PINS_IMPLEMENTATION == "python"
        return
    assert _buffers.PIN is compiled.Pin
    assert _buffers.PINS_IMPLEMENTATION == "c"
    with pytest.raises(TypeError):
        compiled.Pin(b"x")  # (both arguments, as the reference's)
    assert compiled.Pin(obj=b"xy", writable=False).nbytes == 2


def test_a_cycle_through_a_writable_pin_is_collected(compiled: Any) -> None:
    import weakref

    class Owner(bytearray):
        pin: Any

    for pin_type in (_buffers.Pin, compiled.Pin):
        owner = Owner(b"0123456789")
        owner.pin = pin_type(owner, True)  # the memory's owner keeps its own pin: a cycle
        ref = weakref.ref(owner)
        del owner
        gc.collect()
        assert ref() is None, pin_type


def test_the_collector_frees_a_cycle_of_pins_and_their_views_in_any_order() -> None:
    # Garbage holding pins: the collector may clear a pin's own memoryview before the
    # pin. A memoryview cleared while something exports it loses its buffer, and freeing
    # the pin after it then crashed the interpreter (a compiled Pin that held an export
    # of its memoryview). In a child process: a crash fails the test, not the run.
    script = textwrap.dedent(
        """
        import gc
        from uringloop import _buffers

        def refused(writable):
            shared = bytearray(1)
            pins = [_buffers.PIN(shared, writable) for _ in range(1025)]
            raise OSError(9, "as an operation refused after pinning its buffers")

        for writable in (True, False):
            for round in range(5):
                try:
                    refused(writable)
                except OSError as exc:
                    kept = exc  # its traceback, the frame and its pins: garbage, a cycle
                    kept.me = kept
                del kept
                gc.collect()
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


@pytest.mark.parametrize("writable", [True, False])
def test_releasing_one_of_the_pins_own_views_unpins_nothing(compiled: Any, writable: bool) -> None:
    # The views a pin holds can be reached (gc.get_referents) and released: the memory
    # must stay pinned all the same, as the reference's (whose ctypes char holds a view of
    # its own) stays.
    for pin_type in (_buffers.Pin, compiled.Pin):
        data = bytearray(4096)
        pin = pin_type(data if writable else memoryview(data), writable)
        views = [ref for ref in gc.get_referents(pin) if isinstance(ref, memoryview)]
        assert views, pin_type
        with contextlib.suppress(BufferError):  # (refused where it is exported)
            views[0].release()
        del views
        with pytest.raises(BufferError):
            data.extend(b"x")
        pin.release()
        data.extend(b"x")
