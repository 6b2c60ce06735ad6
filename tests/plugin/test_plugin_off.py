"""With the plugin off, a test that names uringloop's loops stops the run with a message
that says how to turn it on; nothing else changes (each case its own pytester session)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
"""

NAMING = """
import asyncio
import pytest

@pytest.mark.asyncio(loop_factories={names!r})
async def test_named():
    await asyncio.sleep(0)

@pytest.mark.asyncio
async def test_plain():
    await asyncio.sleep(0)
"""


def test_naming_our_loops_without_the_option_says_how(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(NAMING.format(names=["asyncio", "uringloop"]))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*names loops of uringloop's pytest plugin, which is off*"])
    result.stdout.fnmatch_lines(["*run pytest --uringloop, or set `uringloop = true`*"])
    # With the option the same module runs: test_named once per loop.
    pytester.runpytest("--uringloop").assert_outcomes(passed=3)


def test_other_names_are_left_to_pytest_asyncio(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(NAMING.format(names=["somebody-elses-loop"]))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.no_fnmatch_line("*--uringloop*")
    result.stdout.fnmatch_lines(["*requires at least one pytest_asyncio_loop_factories*"])


def test_a_project_with_its_own_hook_is_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import asyncio

        def pytest_asyncio_loop_factories(config, item):
            return {"asyncio": asyncio.SelectorEventLoop}
        """
    )
    pytester.makepyfile(NAMING.format(names=["asyncio", "uringloop"]))
    result = pytester.runpytest("-rs")
    # pytest-asyncio's rule: a named loop the hook does not offer is skipped.
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*Loop factory 'uringloop' is not available*"])
