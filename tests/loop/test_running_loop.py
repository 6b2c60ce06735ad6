"""The running loop's lookup the file calls make, on both twins: the reference
(uringloop/_running.py, which calls asyncio.get_running_loop) and the compiled one
(_running_c.c), which on Python 3.10 and 3.11 reads the loop asyncio set for the thread
without a getpid(2) at each call. Each answer and each error is compared with
asyncio.get_running_loop's in the same place."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

import uringloop
from tests.conftest import report_from_fork, twin
from uringloop import _running

try:
    from uringloop import _running_c
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _running_c = None  # type: ignore[assignment]

TWINS: dict[str, Any] = {
    "c": None if _running_c is None else getattr(_running_c, "running_loop", None),
    "python": _running.running_loop,
}
READS_THE_HOLDER = sys.version_info < (3, 12)  # (3.12+: the compiled module hands back asyncio's)


@pytest.fixture(params=sorted(TWINS))
def running_loop(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    found: Any = TWINS[request.param]
    return twin(found, "running-loop lookup")  # type: ignore[no-any-return]


def _no_loop_error(lookup: Callable[[], Any]) -> str:
    with pytest.raises(RuntimeError) as raised:
        lookup()
    return str(raised.value)


def test_outside_a_loop_it_raises_as_asyncio_does(running_loop: Any) -> None:
    assert _no_loop_error(running_loop) == _no_loop_error(asyncio.get_running_loop)


@pytest.mark.parametrize("factory", [uringloop.Loop, asyncio.SelectorEventLoop])
def test_inside_a_loop_it_is_that_loop_and_after_it_none(running_loop: Any, factory: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):  # (the first lookup may be the one that checks the layout)
            assert running_loop() is loop
            await asyncio.sleep(0)

    for _ in range(2):  # a second loop, after the first stopped: the new one, not the old
        loop = factory()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        assert _no_loop_error(running_loop) == "no running event loop"


def test_a_nested_loop_is_found_while_it_runs_and_the_outer_one_after(running_loop: Any) -> None:
    # What nest_asyncio-style code does: the outer loop set aside while an inner one runs
    # on the same thread, then set back.
    seen: list[Any] = []

    async def inner() -> None:
        seen.append(running_loop())

    async def outer() -> None:
        loop = asyncio.get_running_loop()
        seen.append(running_loop())
        asyncio.events._set_running_loop(None)
        nested = uringloop.Loop()
        try:
            nested.run_until_complete(inner())
        finally:
            nested.close()
            asyncio.events._set_running_loop(loop)
        seen.append(running_loop())
        seen.append(nested)

    loop = uringloop.Loop()
    try:
        loop.run_until_complete(outer())
    finally:
        loop.close()
    assert seen == [loop, seen[3], loop, seen[3]] and seen[3] is not loop


def test_each_thread_finds_its_own_loop(running_loop: Any) -> None:
    # Lookups alternate between two threads, each running its own loop.
    turns = [threading.Event(), threading.Event()]
    found: dict[int, list[bool]] = {0: [], 1: []}

    async def main(me: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            assert turns[me].wait(10)
            turns[me].clear()
            found[me].append(running_loop() is loop)
            turns[1 - me].set()

    threads = [threading.Thread(target=uringloop.run, args=(main(i),)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    turns[0].set()
    for thread in threads:
        thread.join(30)
    assert found == {0: [True] * 20, 1: [True] * 20}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_child_forked_inside_a_running_loop_has_none(running_loop: Any) -> None:
    # asyncio's own rule: the loop a parent ran is not the child's (3.10, 3.11: its pid is
    # compared; 3.12+: reset at fork). The lookup has answered in the parent before the fork.
    async def main() -> str:
        # Several lookups: the compiled twin's first one is asyncio's (the layout's check),
        # the next ones read the holder and keep the pid they compare with.
        for _ in range(3):
            assert running_loop() is asyncio.get_running_loop()
        if running_loop is TWINS["c"] and READS_THE_HOLDER:
            assert _running_c is not None and _running_c.lookup_counts()[0] > 0

        def child() -> bytes:
            try:
                running_loop()
            except RuntimeError as exc:
                return str(exc).encode()
            return b"a loop"

        return report_from_fork(child).decode()

    answer = uringloop.run(main())
    assert answer == "no running event loop"


@pytest.mark.skipif(not READS_THE_HOLDER, reason="asyncio's lookup makes no system call here")
def test_the_compiled_twin_reads_the_holder_without_asking_asyncio() -> None:
    # The fast path really runs: after the first lookup in a loop (asyncio's answer, which
    # the holder's layout is checked against), the others are read from the holder.
    lookup = twin(TWINS["c"], "running-loop lookup")
    assert _running_c is not None

    async def main() -> tuple[tuple[int, int], tuple[int, int]]:
        lookup()
        before = _running_c.lookup_counts()
        for _ in range(100):
            assert lookup() is asyncio.get_running_loop()
        return before, _running_c.lookup_counts()

    (held, asked), (held_after, asked_after) = uringloop.run(main())
    assert (held_after - held, asked_after - asked) == (100, 0)


def test_a_replaced_asyncio_lookup_is_the_one_called(
    running_loop: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the file calls did when they called asyncio.get_running_loop themselves: a mock's
    # or a library's replacement answers, inside a running loop (the compiled twin's
    # layout trusted by then) and outside one.
    stand_in = object()

    async def main() -> tuple[Any, Any]:
        for _ in range(3):
            assert running_loop() is asyncio.get_running_loop()
        monkeypatch.setattr(asyncio, "get_running_loop", lambda: stand_in)
        try:
            return running_loop(), asyncio.get_running_loop()
        finally:
            monkeypatch.undo()

    assert uringloop.run(main()) == (stand_in, stand_in)
    monkeypatch.setattr(asyncio, "get_running_loop", lambda: stand_in)
    assert running_loop() is stand_in


def test_no_loop_set_inside_a_running_loop_or_in_a_new_thread(running_loop: Any) -> None:
    answers: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(3):
            assert running_loop() is loop
        asyncio.events._set_running_loop(None)  # (the loop set aside, as nested runners do)
        try:
            answers.append(_no_loop_error(running_loop))
        finally:
            asyncio.events._set_running_loop(loop)
        thread = threading.Thread(target=lambda: answers.append(_no_loop_error(running_loop)))
        thread.start()
        thread.join(10)

    uringloop.run(main())
    assert answers == [_no_loop_error(asyncio.get_running_loop)] * 2
