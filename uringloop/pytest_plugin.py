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
Why trylast: a project's own conftest.py implementation (like this repository's `loops`
marker) is a more specific choice than a plugin's default, so it wins (firstresult).
Async fixtures requested only by sync tests are not parametrised by pytest-asyncio, so
they would get its default loop; UringloopFactories also stands in for pytest-asyncio's
private `_asyncio_loop_factory` fixture to give them a uringloop Loop too.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Mapping

import pytest

from ._loop import Loop

__all__ = ["LOOP_FACTORIES", "UringloopFactories", "is_active", "loop_factories"]

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

OPTION = "uringloop"  # --uringloop on the command line, `uringloop = true` in the ini file
DEFAULT_FACTORY = "uringloop"
_HOOK = "pytest_asyncio_loop_factories"
_REGISTERED_NAME = "uringloop-loop-factories"


def _uringloop() -> asyncio.AbstractEventLoop:
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
