"""running_loop() answers what asyncio.get_running_loop() answers, and
Loop.running_in_this_thread() whether the loop is the calling thread's running loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

import uringloop
from uringloop._loop import running_loop


def test_running_loop_is_the_loop_running_the_code() -> None:
    async def both() -> tuple[object, object]:
        return running_loop(), asyncio.get_running_loop()

    for make in (uringloop.Loop, asyncio.SelectorEventLoop):
        loop = make()
        try:
            told, asked = loop.run_until_complete(both())
            assert told is asked is loop
        finally:
            loop.close()


def test_running_loop_raises_as_asyncio_does_with_no_loop_running() -> None:
    with pytest.raises(RuntimeError) as asked:
        asyncio.get_running_loop()
    loop = uringloop.Loop()
    try:
        loop.run_until_complete(asyncio.sleep(0))  # this thread ran a Loop, which stopped
        with pytest.raises(RuntimeError) as told:
            running_loop()
    finally:
        loop.close()
    assert str(told.value) == str(asked.value)


def test_a_stock_loop_run_after_a_loop_in_the_same_thread_is_the_running_one() -> None:
    first = uringloop.Loop()
    try:
        first.run_until_complete(asyncio.sleep(0))
    finally:
        first.close()

    async def told() -> object:
        return running_loop()

    stock = asyncio.new_event_loop()
    try:
        assert stock.run_until_complete(told()) is stock
    finally:
        stock.close()


def test_each_thread_is_told_its_own_loop() -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, tuple[object, object, bool]] = {}

    def run(name: str) -> None:
        loop = uringloop.Loop()

        async def main() -> None:
            # Both loops run at once: each thread must be told its own.
            await loop.run_in_executor(None, barrier.wait, 10)
            seen[name] = (running_loop(), loop, loop.running_in_this_thread())
            await loop.run_in_executor(None, barrier.wait, 10)

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    threads = [threading.Thread(target=run, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(seen) == ["a", "b"]
    for told, loop, here in seen.values():
        assert told is loop and here
    assert seen["a"][1] is not seen["b"][1]


def test_running_in_this_thread_only_while_it_runs_and_only_there() -> None:
    loop = uringloop.Loop()
    try:
        assert not loop.running_in_this_thread()
        answers: list[bool] = []

        async def main() -> bool:
            other = threading.Thread(target=lambda: answers.append(loop.running_in_this_thread()))
            other.start()
            other.join(10)
            return loop.running_in_this_thread()

        assert loop.run_until_complete(main()) is True
        assert answers == [False]  # (asked from another thread while it ran)
        assert not loop.running_in_this_thread()
    finally:
        loop.close()


def test_a_forked_child_is_not_told_the_parents_loop() -> None:
    # fork() inside a coroutine: the child's stack still holds the parent's run_forever,
    # but the loop belongs to the parent, and asyncio's own lookup says no loop runs.
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        import uringloop
        from uringloop._loop import running_loop

        async def main():
            assert running_loop() is asyncio.get_running_loop()
            pid = os.fork()
            if pid == 0:
                here = main_loop.running_in_this_thread()
                try:
                    asked = asyncio.get_running_loop()
                except RuntimeError:
                    asked = None
                try:
                    told = running_loop()
                except RuntimeError:
                    told = None
                ok = not here and told is asked
                os._exit(0 if ok else 7)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

        main_loop = uringloop.Loop()
        code = main_loop.run_until_complete(main())
        main_loop.close()
        sys.exit(code)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
