"""The pytest plugin, each case in its own pytest session (pytester), away from our conftest.

The inner sessions load the plugin through its `pytest11` entry point, as a user's would.
"""

from __future__ import annotations

import importlib.util

import pytest

import uringloop
from uringloop import pytest_plugin

pytest_plugins = ["pytester"]

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def _ini(pytester: pytest.Pytester, mode: str = "strict", extra: str = "") -> None:
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = {mode}
        asyncio_default_fixture_loop_scope = function
        asyncio_default_test_loop_scope = function
        filterwarnings = error
        {extra}
        """
    )


# A test module that checks, in every loop scope, which loop runs it. `loops` collects the
# loop of each test so the scopes can be checked for sharing afterwards.
SCOPES_MODULE = """
import asyncio

import pytest
import pytest_asyncio

import uringloop

EXPECTED = {expected}
loops = {{}}  # the loops themselves: an id() of a freed loop can be reused by a later one


def check(name):
    loop = asyncio.get_running_loop()
    assert isinstance(loop, EXPECTED), repr(loop)
    loops[name] = loop
    return loop


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def module_fixture_loop():
    return check("module_fixture")


@pytest.mark.asyncio
async def test_function_scope():
    loop = check("function")
    if isinstance(loop, uringloop.Loop):
        await loop.nop()  # the loop's own ring (or its fallback) serves the operation


@pytest.mark.asyncio(loop_scope="class")
class TestClassScope:
    async def test_a(self):
        check("class_a")

    async def test_b(self):
        check("class_b")


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_a(module_fixture_loop):
    check("module_a")
    assert loops["module_fixture"] is loops["module_a"]


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_b():
    check("module_b")


@pytest.mark.asyncio(loop_scope="package")
async def test_package_scope():
    check("package")


@pytest.mark.asyncio(loop_scope="session")
async def test_session_scope():
    check("session")


def test_scopes_share_their_loops():
    assert loops["class_a"] is loops["class_b"]
    assert loops["module_a"] is loops["module_b"]
    distinct = {{id(loops[name]) for name in ("function", "class_a", "module_a", "session")}}
    assert len(distinct) == 4
"""


def test_inactive_by_default(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(SCOPES_MODULE.format(expected="asyncio.SelectorEventLoop"))
    pytester.makepyfile(
        test_not_uring="""
        import asyncio
        import pytest
        import uringloop

        @pytest.mark.asyncio
        async def test_stock_loop():
            assert not isinstance(asyncio.get_running_loop(), uringloop.Loop)
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=9)
    # No hook implementation means no loop parametrisation at all.
    result.stdout.no_fnmatch_line("*uringloop*]*")


def test_plugin_is_loaded_by_entry_point_and_not_registered_when_off(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester)
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            pm = session.config.pluginmanager
            print("entry-point:", pm.has_plugin("uringloop"))
            print("factories:", pm.has_plugin("uringloop-loop-factories"))
        """
    )
    pytester.makepyfile("def test_nothing(): pass")
    off = pytester.runpytest("-s")
    off.assert_outcomes(passed=1)
    off.stdout.fnmatch_lines(["entry-point: True", "factories: False"])
    on = pytester.runpytest("-s", "--uringloop")
    on.stdout.fnmatch_lines(["entry-point: True", "factories: True"])


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_every_scope_runs_on_uringloop(pytester: pytest.Pytester, mode: str) -> None:
    _ini(pytester, mode)
    pytester.makepyfile(SCOPES_MODULE.format(expected="uringloop.Loop"))
    result = pytester.runpytest("--uringloop")
    result.assert_outcomes(passed=8)


def test_ini_option_activates(pytester: pytest.Pytester) -> None:
    _ini(pytester, extra="uringloop = true")
    pytester.makepyfile(SCOPES_MODULE.format(expected="uringloop.Loop"))
    pytester.runpytest().assert_outcomes(passed=8)


def test_pyproject_option_activates(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        asyncio_mode = "strict"
        asyncio_default_fixture_loop_scope = "function"
        asyncio_default_test_loop_scope = "function"
        filterwarnings = ["error"]
        uringloop = true
        """
    )
    pytester.makepyfile(SCOPES_MODULE.format(expected="uringloop.Loop"))
    pytester.runpytest().assert_outcomes(passed=8)


def test_ini_false_keeps_it_off(pytester: pytest.Pytester) -> None:
    _ini(pytester, extra="uringloop = false")
    pytester.makepyfile(SCOPES_MODULE.format(expected="asyncio.SelectorEventLoop"))
    pytester.runpytest().assert_outcomes(passed=8)


def test_auto_mode_runs_unmarked_tests_and_fixtures_on_uringloop(
    pytester: pytest.Pytester,
) -> None:
    _ini(pytester, "auto")
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import uringloop

        @pytest.fixture
        async def fixture_loop():
            return asyncio.get_running_loop()

        async def test_unmarked(fixture_loop):
            loop = asyncio.get_running_loop()
            assert isinstance(loop, uringloop.Loop)
            assert fixture_loop is loop
        """
    )
    pytester.runpytest("--uringloop").assert_outcomes(passed=1)


def test_parametrised_factories(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import uringloop

        seen = []

        @pytest.mark.asyncio(loop_factories=["asyncio", "uvloop", "uringloop"])
        async def test_three_loops():
            seen.append(type(asyncio.get_running_loop()))

        @pytest.mark.asyncio(loop_factories=["uringloop-fallback"])
        async def test_fallback():
            loop = asyncio.get_running_loop()
            assert isinstance(loop, uringloop.Loop) and not loop.uring_available
            await loop.nop()

        def test_seen():
            names = [f"{t.__module__}.{t.__name__}" for t in seen]
            expected = ["asyncio.unix_events._UnixSelectorEventLoop"]
            if {uvloop}:
                expected.append("uvloop.Loop")
            expected.append("uringloop._loop.Loop")
            assert names == expected
        """.replace("{uvloop}", str(HAVE_UVLOOP))
    )
    result = pytester.runpytest("--uringloop", "-v")
    result.assert_outcomes(passed=5 if HAVE_UVLOOP else 4, skipped=0 if HAVE_UVLOOP else 1)
    result.stdout.fnmatch_lines(
        [
            "*test_three_loops?asyncio? PASSED*",
            "*test_three_loops?uvloop? *",
            "*test_three_loops?uringloop? PASSED*",
        ]
    )


def test_missing_uvloop_is_skipped_with_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process run: the inner session's plugin sees the patched probe.
    real = pytest_plugin._importable
    monkeypatch.setattr(pytest_plugin, "_importable", lambda name: name != "uvloop" and real(name))
    _ini(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio(loop_factories=["uvloop", "uringloop", "no-such-loop"])
        async def test_it():
            pass
        """
    )
    result = pytester.runpytest_inprocess("--uringloop", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        ["*Loop factory 'uvloop' is not available*", "*'no-such-loop' is not available*"]
    )


def test_project_conftest_hook_wins(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makeconftest(
        """
        import asyncio

        class Custom(asyncio.SelectorEventLoop):
            pass

        def pytest_asyncio_loop_factories(config, item):
            return {"custom": Custom}
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_custom():
            assert type(asyncio.get_running_loop()).__name__ == "Custom"
        """
    )
    pytester.runpytest("--uringloop").assert_outcomes(passed=1)


def test_conftest_hook_can_decline(pytester: pytest.Pytester) -> None:
    """A conftest hook that returns None hands the choice to the plugin (firstresult)."""
    _ini(pytester)
    pytester.makeconftest(
        """
        def pytest_asyncio_loop_factories(config, item):
            return None
        """
    )
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import uringloop

        @pytest.mark.asyncio
        async def test_uring():
            assert isinstance(asyncio.get_running_loop(), uringloop.Loop)
        """
    )
    pytester.runpytest("--uringloop").assert_outcomes(passed=1)


def test_without_pytest_asyncio_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:asyncio", "--uringloop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--uringloop needs pytest-asyncio >= 1.4*"])


def test_factories_make_the_loops_they_name() -> None:
    factories = pytest_plugin.loop_factories()
    assert set(factories) >= {"asyncio", "uringloop", "uringloop-fallback"}
    assert ("uvloop" in factories) == HAVE_UVLOOP
    for name, factory in factories.items():
        loop = factory()
        try:
            assert isinstance(loop, uringloop.Loop) == name.startswith("uringloop"), name
        finally:
            loop.close()


def test_pytest_asyncio_loaded_under_another_name(pytester: pytest.Pytester) -> None:
    _ini(pytester)
    pytester.makepyfile(
        """
        import asyncio
        import pytest
        import uringloop

        @pytest.mark.asyncio
        async def test_uring():
            assert isinstance(asyncio.get_running_loop(), uringloop.Loop)
        """
    )
    result = pytester.runpytest("-p", "no:asyncio", "-p", "pytest_asyncio.plugin", "--uringloop")
    result.assert_outcomes(passed=1)


SYNC_TEST_ASYNC_FIXTURE = """
import asyncio
import pytest
import pytest_asyncio

@pytest_asyncio.fixture
async def loop_name():
    return type(asyncio.get_running_loop()).__name__

@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def module_loop_name():
    return type(asyncio.get_running_loop()).__name__

def test_sync(loop_name, module_loop_name):
    assert loop_name == module_loop_name == {expected!r}
"""


@pytest.mark.parametrize(
    ("flag", "expected"), [("--uringloop", "Loop"), (None, "_UnixSelectorEventLoop")]
)
def test_async_fixtures_of_sync_tests(
    pytester: pytest.Pytester, flag: str | None, expected: str
) -> None:
    _ini(pytester)
    pytester.makepyfile(SYNC_TEST_ASYNC_FIXTURE.format(expected=expected))
    pytester.runpytest(*([flag] if flag else [])).assert_outcomes(passed=1)


@pytest.mark.parametrize("available", [True, False])
def test_without_io_uring_the_header_says_so_and_warnings_as_errors_still_pass(
    pytester: pytest.Pytester, available: bool
) -> None:
    # Where io_uring is unavailable (Docker's default seccomp profile refuses
    # io_uring_setup with EPERM), each Loop() warns: with `filterwarnings = error`, every
    # test failed at its loop's creation. The header says it once instead.
    _ini(pytester, extra="uringloop = true")
    if not available:
        pytester.makeconftest(
            """
            import errno
            from uringloop._ring import syscalls

            def pytest_configure(config):
                config._refused = syscalls.inject("setup", errno.EPERM, times=-1)
                config._refused.__enter__()

            def pytest_unconfigure(config):
                config._refused.__exit__(None, None, None)
            """
        )
    pytester.makepyfile(
        SCOPES_MODULE.format(expected="uringloop.Loop")
        + f"""

@pytest.mark.asyncio
async def test_the_loop_has_io_uring_or_not():
    assert asyncio.get_running_loop().uring_available is {available}
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=9)
    if available:
        result.stdout.fnmatch_lines(["uringloop: io_uring (* hot path)"])
    else:
        result.stdout.fnmatch_lines(
            ["uringloop: io_uring is unavailable (Operation not permitted); *thread pool"]
        )
