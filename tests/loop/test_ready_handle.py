"""ready_handle(), the Handle of every callback the loop makes ready, on both twins: the
pure-Python reference (uringloop/_handle.py) and the compiled one (_handle_c.c) must make
the Handle that asyncio's constructor makes outside debug mode, field for field."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from typing import Any

import pytest

from tests.conftest import twin
from uringloop import _handle

try:
    from uringloop import _handle_c
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _handle_c = None  # type: ignore[assignment]

TWINS = {"c": getattr(_handle_c, "ready_handle", None), "python": _handle.ready_handle}
FIELDS = ("_callback", "_args", "_cancelled", "_loop", "_source_traceback", "_repr", "_context")
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(params=sorted(TWINS))
def ready_handle(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "ready handle")


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    loop.set_debug(False)  # ready_handle's callers check (PYTHONASYNCIODEBUG, -X dev)
    yield loop
    loop.close()


def test_it_is_the_handle_asyncio_makes(ready_handle: Any, loop: Any) -> None:
    ctx = contextvars.copy_context()
    made = ready_handle(print, (1, 2), loop, ctx)
    expected = asyncio.Handle(print, (1, 2), loop, ctx)
    assert type(made) is asyncio.Handle
    assert [getattr(made, f) for f in FIELDS] == [getattr(expected, f) for f in FIELDS]
    assert repr(made) == repr(expected)


def test_no_context_means_a_copy_of_the_current_one(ready_handle: Any, loop: Any) -> None:
    token = var.set("inside")
    try:
        made = ready_handle(var.get, (), loop, None)
    finally:
        var.reset(token)
    assert made._context is not contextvars.copy_context()
    assert made._context.run(var.get) == "inside"  # what was current when it was made
    assert var.get() == "unset"


def test_it_runs_and_cancels_as_a_handle(ready_handle: Any, loop: Any) -> None:
    calls: list[tuple[int, ...]] = []
    made = ready_handle(lambda *a: calls.append(a), (7, 8), loop, None)
    made._run()
    assert calls == [(7, 8)]
    made.cancel()
    assert made.cancelled() and made._callback is None and made._args is None


def test_a_cycle_through_it_is_collected(ready_handle: Any, loop: Any) -> None:
    box: list[Any] = []
    made = ready_handle(box.append, (box,), loop, None)
    box.append(made)  # made -> args -> box -> made
    ref = weakref.ref(made)
    del made, box
    gc.collect()
    assert ref() is None


def test_a_wrong_number_of_arguments_is_a_type_error(ready_handle: Any, loop: Any) -> None:
    with pytest.raises(TypeError):
        ready_handle(print, (), loop)


def test_the_loop_schedules_with_the_twin_in_use() -> None:
    async def main() -> list[str]:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        handle = loop.call_soon(order.append, "a")
        loop.call_soon(order.append, "b")
        assert type(handle) is asyncio.Handle
        assert handle._source_traceback is None  # type: ignore[attr-defined]
        await asyncio.sleep(0)
        return order

    import uringloop

    assert uringloop.run(main(), debug=False) == ["a", "b"]  # (whatever -X dev says)


def test_a_patched_handle_init_is_called(
    ready_handle: Any, loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = asyncio.Handle.__init__
    seen: list[Any] = []

    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(args[0])
        original(self, *args, **kwargs)

    monkeypatch.setattr(asyncio.Handle, "__init__", patched)
    made = ready_handle(print, (), loop, None)
    assert seen == [print] and made._callback is print
    monkeypatch.undo()  # the original again: filled in place again, and still right
    again = ready_handle(len, (), loop, None)
    assert seen == [print] and again._callback is len and again._cancelled is False
