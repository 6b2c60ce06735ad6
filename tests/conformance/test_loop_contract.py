"""Loop contract points that CPython's test_asyncio found broken on uringloop (regressions).

test_events' test_close: run_forever() on a closed loop must raise RuntimeError (asyncio's
"Event loop is closed"), not an OSError from re-enabling the closed ring.
"""

from __future__ import annotations

import asyncio

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
