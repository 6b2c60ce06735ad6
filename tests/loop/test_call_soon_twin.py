"""Loop.call_soon on both twins: the reference (the Python method) and the compiled method
descriptor around it (_loop_c.CallSoon) schedule the same handles, and every call the
descriptor does not make itself (debug mode, a closed loop, other arguments) is the
reference's."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
from typing import Any

import pytest

from tests.conftest import twin
from uringloop import _loop

try:
    from uringloop import _loop_c
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _loop_c = None  # type: ignore[assignment]

_in_class = vars(_loop.Loop)["call_soon"]
REFERENCE = getattr(_in_class, "__wrapped__", _in_class)
TWINS = {
    "c": _loop_c.CallSoon(REFERENCE) if _loop_c is not None else None,
    "python": REFERENCE,
}
var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture(params=sorted(TWINS))
def call_soon(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "Loop.call_soon")


@pytest.fixture
def loop() -> Any:
    loop = _loop.Loop()
    yield loop
    loop.close()


def test_it_appends_the_handle_asyncio_makes(call_soon: Any, loop: Any) -> None:
    bound = call_soon.__get__(loop, type(loop))
    ran: list[tuple[Any, ...]] = []
    first = bound(lambda *a: ran.append(a), 1, 2)
    second = bound(lambda *a: ran.append(a), context=contextvars.copy_context())
    assert type(first) is asyncio.Handle and list(loop._ready)[-2:] == [first, second]
    assert first._args == (1, 2) and second._args == ()
    loop.run_until_complete(asyncio.sleep(0))
    assert ran == [(1, 2), ()]


def test_the_context_given_or_a_copy_of_the_current_one(call_soon: Any, loop: Any) -> None:
    bound = call_soon.__get__(loop, type(loop))
    token = var.set("inside")
    try:
        current = bound(var.get)
        given = bound(var.get, context=contextvars.Context())
    finally:
        var.reset(token)
    assert current._context.run(var.get) == "inside"
    assert given._context.run(var.get) == "unset"


def test_a_context_keyword_not_interned_is_the_same(call_soon: Any, loop: Any) -> None:
    name = "".join(["con", "text"])  # a str equal to "context", not the interned one
    handle = call_soon.__get__(loop, type(loop))(print, **{name: None})
    assert handle._context is not None


def test_debug_mode_keeps_the_callers_frame_last(call_soon: Any, loop: Any) -> None:
    loop.set_debug(True)
    handle = call_soon.__get__(loop, type(loop))(print)
    assert handle._source_traceback[-1].name == sys._getframe().f_code.co_name


def test_other_calls_fail_as_the_reference_does(call_soon: Any, loop: Any) -> None:
    bound = call_soon.__get__(loop, type(loop))
    with pytest.raises(TypeError, match="unexpected keyword argument 'when'"):
        bound(print, when=1)
    with pytest.raises(TypeError, match="callback"):
        bound()
    with pytest.raises(TypeError, match="callable"):  # (debug mode's check, in any mode)
        loop.set_debug(True)
        bound(1)
    loop.set_debug(False)
    loop.close()
    with pytest.raises(RuntimeError, match="Event loop is closed"):
        bound(print)


def test_it_says_what_the_reference_says(call_soon: Any) -> None:
    assert inspect.signature(call_soon) == inspect.signature(REFERENCE)
    assert call_soon.__doc__ == REFERENCE.__doc__
    assert call_soon.__name__ == "call_soon"


def test_the_loop_uses_the_twin_built() -> None:
    in_use = vars(_loop.Loop)["call_soon"]
    assert (in_use is REFERENCE) == (_loop.LOOP_IMPLEMENTATION == "python")
    loop = _loop.Loop()
    try:
        assert loop.call_soon.__self__ is loop  # a bound method either way
        assert loop.call_soon.__func__ is in_use
    finally:
        loop.close()
