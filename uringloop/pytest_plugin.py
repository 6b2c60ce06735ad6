"""pytest plugin (entry point `pytest11`): run pytest-asyncio tests on uringloop loops.

Inactive unless asked for, with `pytest --uringloop` or `uringloop = true` in the pytest
configuration (pytest.ini, tox.ini, setup.cfg or [tool.pytest.ini_options]). When active,
it implements pytest-asyncio's `pytest_asyncio_loop_factories` hook (pytest-asyncio >= 1.4),
so every pytest-asyncio test runs on a `uringloop.Loop`, whatever its loop scope
(function, class, module, package, session). A test may instead pick loops by name:

    @pytest.mark.asyncio(loop_factories=["asyncio", "uvloop", "uringloop"])
    async def test_on_three_loops(): ...

runs the test once per loop ("uvloop" is skipped when uvloop is not installed).
Names: see LOOP_FACTORIES.

Why the hook implementation is registered only when active: pytest-asyncio parametrises
every async test as soon as any implementation of the hook exists, and treats a None
result (all implementations declined) as a usage error. A module-level hook function here
would therefore change every project that merely has uringloop installed.
Without the option, a test that names loops (`loop_factories=[...]`) that this plugin
offers, in a project with no other implementation of the hook, stops the run at collection
with a message naming `--uringloop` (pytest-asyncio's own would only say that no hook is
implemented). Registering the factories always, so that such a marker worked without the
option, was considered and not done: it would be a hook implementation, and so parametrise
every async test of every project that has uringloop installed (see above).
Why trylast: a project's own conftest.py implementation (like this repository's `loops`
marker) is a more specific choice than a plugin's default, so it wins (firstresult).
Async fixtures requested only by sync tests are not parametrised by pytest-asyncio, so
they would get its default loop; UringloopFactories also stands in for pytest-asyncio's
private `_asyncio_loop_factory` fixture to give them a uringloop Loop too.
"""

from __future__ import annotations

import asyncio
import importlib.util
import warnings
from collections.abc import Callable, Generator, Mapping

import pytest

from ._loop import Loop

__all__ = ["LOOP_FACTORIES", "UringloopFactories", "is_active", "loop_factories"]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

OPTION = "uringloop"  # --uringloop on the command line, `uringloop = true` in the ini file
DEFAULT_FACTORY = "uringloop"
_HOOK = "pytest_asyncio_loop_factories"
_REGISTERED_NAME = "uringloop-loop-factories"


# The start of the RuntimeWarning each Loop() gives where io_uring is unavailable (seccomp,
# as Docker's default profile has it; kernel.io_uring_disabled; an old kernel).
_UNAVAILABLE = "io_uring is unavailable"


def _uringloop() -> asyncio.AbstractEventLoop:
    # Without io_uring, a project's `filterwarnings = error` would make each test's Loop()
    # an error: the plugin says it once, in the session's header, instead.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _UNAVAILABLE, RuntimeWarning)
        return Loop()


def _uringloop_fallback() -> asyncio.AbstractEventLoop:
    return Loop(use_uring=False)


def _uvloop() -> asyncio.AbstractEventLoop:
    import uvloop

    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


# Every loop a test may name in @pytest.mark.asyncio(loop_factories=[...]).
LOOP_FACTORIES: dict[str, LoopFactory] = {
    "uringloop": _uringloop,
    "uringloop-fallback": _uringloop_fallback,  # file operations on a thread pool
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": _uvloop,  # only offered when uvloop is importable
}


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def loop_factories() -> dict[str, LoopFactory]:
    """The loop factories available here: LOOP_FACTORIES minus uvloop if it is missing."""
    available = dict(LOOP_FACTORIES)
    if not _importable("uvloop"):
        del available["uvloop"]
    return available


def is_active(config: pytest.Config) -> bool:
    """True when `--uringloop` was given or the ini option `uringloop` is true."""
    return bool(config.getoption(OPTION, default=False) or config.getini(OPTION))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("uringloop")
    group.addoption(
        "--uringloop",
        action="store_true",
        dest=OPTION,
        default=False,
        help="run pytest-asyncio tests on uringloop loops (pytest-asyncio >= 1.4)",
    )
    parser.addini(
        OPTION,
        type="bool",
        default=False,
        help="run pytest-asyncio tests on uringloop loops, like --uringloop",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not is_active(config):
        return
    # pytest-asyncio declares the hook in its pytest_addoption, which has run by now.
    if not hasattr(config.hook, _HOOK):
        raise pytest.UsageError(
            f"--uringloop needs pytest-asyncio >= 1.4 (for its {_HOOK} hook); "
            "it is not installed, too old, or disabled"
        )
    if not config.pluginmanager.has_plugin(_REGISTERED_NAME):
        config.pluginmanager.register(UringloopFactories(), _REGISTERED_NAME)


def pytest_report_header(config: pytest.Config) -> str | None:
    """Active: whether the loops have io_uring here, and if not, why (the warning each
    Loop() would give, which the plugin's loops do not)."""
    if not is_active(config):
        return None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loop = Loop()
    try:
        stats = loop.uring_stats()
    finally:
        loop.close()
    if stats.uring_available:
        return f"uringloop: io_uring ({stats.implementation} hot path)"
    reasons = [str(w.message) for w in seen if str(w.message).startswith(_UNAVAILABLE)]
    return "uringloop: " + (
        reasons[0] if reasons else "io_uring turned off; file operations run on a thread pool"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> Generator[None, None, None]:
    """Inactive plugin, a test naming our loops and no other hook implementation: say
    how to turn the plugin on, before pytest-asyncio fails with its generic message."""
    _check_named_loops(metafunc)
    yield


def _check_named_loops(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    caller = getattr(config.hook, _HOOK, None)
    if caller is None or caller.get_hookimpls() or is_active(config):
        return  # no pytest-asyncio 1.4+, or somebody implements the hook: not our case
    marker = metafunc.definition.get_closest_marker("asyncio")
    names = marker.kwargs.get("loop_factories") if marker is not None else None
    if not names or isinstance(names, str) or not set(names) & set(LOOP_FACTORIES):
        return
    pytest.fail(
        f"{metafunc.definition.nodeid}: @pytest.mark.asyncio(loop_factories={list(names)!r}) "
        "names loops of uringloop's pytest plugin, which is off: run pytest --uringloop, or "
        "set `uringloop = true` in the pytest configuration ([tool.pytest.ini_options] in "
        "pyproject.toml, or pytest.ini)",
        pytrace=False,
    )


class UringloopFactories:
    """The hook implementation, registered by pytest_configure only when the plugin is on."""

    def __init__(self) -> None:
        self._available = loop_factories()

    @pytest.hookimpl(trylast=True)
    def pytest_asyncio_loop_factories(
        self, config: pytest.Config, item: pytest.Item
    ) -> Mapping[str, LoopFactory]:
        """The uringloop factory; every available one when the test names its loops.

        pytest-asyncio runs a test once per factory returned unless its asyncio marker has
        `loop_factories=[...]`; then it picks those names and skips names not returned.
        """
        marker = item.get_closest_marker("asyncio")
        if marker is not None and marker.kwargs.get("loop_factories") is not None:
            return self._available
        return {DEFAULT_FACTORY: self._available[DEFAULT_FACTORY]}

    @pytest.fixture(scope="session")
    @classmethod
    def _asyncio_loop_factory(cls, request: pytest.FixtureRequest) -> LoopFactory:
        """Stands in for pytest-asyncio's private fixture of the same name, which gives
        async fixtures of a sync test no factory (so a stock loop); ours gives uringloop's.
        Async tests get the factory pytest-asyncio parametrised, as before."""
        factory: LoopFactory = getattr(request, "param", _uringloop)
        return factory
