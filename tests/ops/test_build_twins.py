"""Spec.build (uringloop/_ops/spec.py), the reference, and its compiled twin
(_hotpath.build, which spec.builder() binds): the same operation, carrying its declaration
and public arguments, for the same arguments; RunNow answered by a Finished; every error
the same, with the same context."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import twin
from uringloop._ops import spec as spec_module
from uringloop._ops import table
from uringloop._ops.operation import Finished, Positioned

try:
    from uringloop._ops._hotpath import build as compiled_build
except ImportError:
    compiled_build = None  # type: ignore[assignment]


def _reference(spec: Any, *args: Any, **kwargs: Any) -> Any:
    return spec.build(*args, **kwargs)


BUILDS: dict[str, Callable[..., Any] | None] = {"c": compiled_build, "python": _reference}


@pytest.fixture(params=sorted(BUILDS))
def build(request: pytest.FixtureRequest) -> Callable[..., Any]:
    return twin(BUILDS[request.param], "build")


def test_the_operation_carries_its_declaration_and_arguments(build: Callable[..., Any]) -> None:
    buf = bytearray(16)
    op = build(table.preadinto, 0, buf, 4)
    assert type(op) is Positioned and op.spec is table.preadinto
    assert op.args == (0, buf, 4) and type(op.args) is tuple and op.kwargs == {}
    op.complete(0)
    op = build(table.preadinto, 0, buf, offset=4)
    assert op.args == (0, buf) and op.kwargs == {"offset": 4} and type(op.kwargs) is dict
    assert op._offset == 4
    op.complete(0)


def test_run_now_is_answered_by_the_blocking_call(
    build: Callable[..., Any], pipe: tuple[int, int]
) -> None:
    r, w = pipe
    os.write(w, b"abc")
    os.set_blocking(r, False)
    # At an O_NONBLOCK pipe's position the stub raises RunNow(call): call answers.
    op = build(table.pread, r, 2)
    assert type(op) is Finished and op.spec is table.pread
    assert (op.value, op.failure, op.args, op.kwargs) == (b"ab", None, (r, 2), {})
    # An empty path: RunNow() with no call, the declaration's blocking call answers.
    op = build(table.stat, "", follow_symlinks=False)
    assert type(op) is Finished and op.spec is table.stat
    assert op.kwargs == {"follow_symlinks": False}
    assert isinstance(op.failure, FileNotFoundError) and op.value is None


def _contexts(exc: BaseException) -> list[str]:
    """The names of the exceptions `exc` happened while handling, innermost first."""
    names = []
    while (exc := exc.__context__) is not None:  # type: ignore[assignment]
        names.append(type(exc).__name__)
    return names


def test_an_answer_s_error_has_the_caller_s_context_not_the_run_now(
    build: Callable[..., Any],
) -> None:
    # Answered after the stub's RunNow was caught: an error of the answer (an argument
    # refused, or the system call's own failure) does not show uringloop's RunNow as an
    # exception it happened while handling, but what the caller was handling, as os's.
    with pytest.raises(TypeError) as refused:
        build(table.open_fd, "", flags="x")
    assert "RunNow" not in _contexts(refused.value)
    op = build(table.stat, "")
    assert isinstance(op.failure, FileNotFoundError) and op.failure.__context__ is None
    try:
        raise KeyError("the caller's")
    except KeyError as handled:
        with pytest.raises(TypeError) as refused:
            build(table.open_fd, "", flags="x")
        assert _contexts(refused.value)[-1:] == ["KeyError"]
        assert "RunNow" not in _contexts(refused.value)
        op = build(table.stat, "")
        assert op.failure.__context__ is handled


REFUSED = [("pread", (0, 0, -7), {}, OSError), ("preadinto", (0, bytearray(1), "x"), {}, TypeError),
           ("fsync", (), {}, TypeError), ("fsync", (0,), {"later": 1}, TypeError)]  # fmt: skip


@pytest.mark.parametrize("name, args, kwargs, error", REFUSED)
def test_a_refused_argument_raises_as_from_the_stub(
    build: Callable[..., Any], name: str, args: Any, kwargs: Any, error: type[BaseException]
) -> None:
    with pytest.raises(error) as raised:
        build(getattr(table, name), *args, **kwargs)
    with pytest.raises(error) as expected:
        getattr(table, name).stub(*args, **kwargs)
    assert str(raised.value) == str(expected.value)


def test_builder_is_the_compiled_twin_where_it_was_built() -> None:
    made = table.fsync.builder()
    if spec_module._COMPILED_BUILD is None:
        assert made == table.fsync.build
    else:
        assert made.func is spec_module._COMPILED_BUILD and made.args == (table.fsync,)  # type: ignore[attr-defined]
