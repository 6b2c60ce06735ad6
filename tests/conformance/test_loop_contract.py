"""Loop contract points that CPython's test_asyncio found broken on uringloop (regressions).

test_events' test_close: run_forever() on a closed loop must raise RuntimeError (asyncio's
"Event loop is closed"), not an OSError from re-enabling the closed ring.
test_base_events' test_create_named_task_with_custom_factory: a task factory that takes no
context= keeps working when create_task() is given none.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pytest

import uringloop


@pytest.mark.parametrize("use_uring", [True, False], ids=["uring", "fallback"])
def test_run_forever_on_closed_loop_raises_runtime_error(use_uring: bool) -> None:
    loop = uringloop.Loop(use_uring=use_uring)
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_forever()
    coro = asyncio.sleep(0)
    try:
        with pytest.raises(RuntimeError, match="closed"):
            loop.run_until_complete(coro)
    finally:
        coro.close()


def test_run_forever_from_second_thread_leaves_running_loop_intact() -> None:
    """A second run_forever() while the loop runs elsewhere raises RuntimeError and must not
    take the ring away from the thread running the loop."""
    loop = uringloop.Loop()
    errors: list[BaseException] = []

    async def main() -> bytes:
        def intruder() -> None:
            try:
                loop.run_forever()
            except BaseException as exc:
                errors.append(exc)

        await asyncio.to_thread(intruder)
        # The ring still belongs to this thread and works (the bound turns the old hang,
        # a ring re-created by the intruder, into a failure).
        await asyncio.wait_for(loop.nop(), 30)
        return b"ok"

    try:
        assert loop.run_until_complete(main()) == b"ok"
    finally:
        loop.close()
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert "already running" in str(errors[0])


def test_task_factory_without_context_parameter_still_works() -> None:
    """test_base_events' test_create_named_task_with_custom_factory: asyncio calls a task
    factory as factory(loop, coro) when create_task() got no context."""
    loop = uringloop.Loop()
    calls: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        calls.append("legacy")
        return asyncio.Task(coro, loop=loop)

    async def work() -> int:
        return 7

    try:
        loop.set_task_factory(factory)
        task = loop.create_task(work(), name="named")
        assert task.get_name() == "named"
        assert loop.run_until_complete(task) == 7
        assert calls == ["legacy"]
    finally:
        loop.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is 3.11+")
def test_task_factory_gets_an_explicit_context() -> None:
    loop = uringloop.Loop()
    seen: list[contextvars.Context] = []

    def factory(
        loop: asyncio.AbstractEventLoop, coro: Any, *, context: contextvars.Context
    ) -> asyncio.Task[Any]:
        seen.append(context)
        return asyncio.Task(coro, loop=loop, context=context)

    async def work() -> None:
        pass

    try:
        loop.set_task_factory(factory)  # type: ignore[arg-type]
        ctx = contextvars.copy_context()
        loop.run_until_complete(loop.create_task(work(), context=ctx))
        assert seen == [ctx]
    finally:
        loop.close()
