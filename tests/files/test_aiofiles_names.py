"""Every public name of aiofiles, aiofiles.os, aiofiles.os.path and aiofiles.tempfile has
a counterpart in uringloop, checked name by name against the installed aiofiles: so
`import uringloop as aiofiles` (and uringloop.os, uringloop.tempfile) finds them all."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import os
import types
from collections.abc import Callable
from typing import Any

import pytest

import uringloop
import uringloop.os
import uringloop.tempfile

aiofiles = pytest.importorskip(
    "aiofiles", reason="aiofiles is not installed (pip install -e '.[test]' installs it)"
)
aiofiles_os = importlib.import_module("aiofiles.os")
aiofiles_tempfile = importlib.import_module("aiofiles.tempfile")

# (aiofiles module, its public names, our module)
MODULES = [
    (aiofiles, aiofiles.__all__, uringloop),
    (aiofiles_os, aiofiles_os.__all__, uringloop.os),
    (aiofiles_os.path, aiofiles_os.path.__all__, uringloop.os.path),
    (aiofiles_tempfile, aiofiles_tempfile.__all__, uringloop.tempfile),
]
NAMES = [
    pytest.param(theirs, name, ours, id=f"{theirs.__name__}.{name}")
    for theirs, names, ours in MODULES
    for name in names
]


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have no signature
        return None


def _accepts_the_same_calls(theirs: inspect.Signature, ours: inspect.Signature) -> list[str]:
    """What a call valid for `theirs` may pass that `ours` does not take: as many
    positional arguments, and every optional parameter by name (required ones are passed
    positionally, and their names differ between os functions anyway)."""
    p = inspect.Parameter
    positional = (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    problems = []
    ours_params = ours.parameters.values()
    if not any(q.kind == p.VAR_POSITIONAL for q in ours_params):
        needed = sum(q.kind in positional for q in theirs.parameters.values())
        if sum(q.kind in positional for q in ours_params) < needed:
            problems.append(f"{needed} positional arguments")
        # An optional argument passed by position lands on the parameter of that name.
        ours_positional = [q.name for q in ours_params if q.kind in positional]
        for at, q in enumerate(theirs.parameters.values()):
            optional = q.kind in positional and q.default is not p.empty
            if optional and (at >= len(ours_positional) or ours_positional[at] != q.name):
                problems.append(f"{q.name} at position {at}")
    if not any(q.kind == p.VAR_KEYWORD for q in ours_params):
        for q in theirs.parameters.values():
            optional = q.default is not p.empty and q.kind != p.POSITIONAL_ONLY
            if optional and q.name != "loop" and q.name not in ours.parameters:
                problems.append(q.name)
    return problems


@pytest.mark.parametrize(("theirs", "name", "ours"), NAMES)
def test_counterpart(theirs: Any, name: str, ours: Any) -> None:
    assert hasattr(ours, name), f"uringloop has no counterpart of {theirs.__name__}.{name}"
    their_obj, our_obj = getattr(theirs, name), getattr(ours, name)
    if isinstance(their_obj, types.ModuleType):
        # A module there; here a module, or (uringloop.os.path) an object with the
        # module's names, each checked on its own above.
        for inner in getattr(their_obj, "__all__", ()):
            assert hasattr(our_obj, inner), f"{name}.{inner}"
        return
    assert callable(their_obj) == callable(our_obj), name
    if not callable(their_obj) or isinstance(their_obj, type):
        return
    # A coroutine function on their side is one on ours (aiofiles.os.path.* and the os
    # functions), and our counterpart accepts the calls theirs does.
    if inspect.iscoroutinefunction(their_obj):
        assert inspect.iscoroutinefunction(our_obj), name
    their_sig, our_sig = _signature(their_obj), _signature(our_obj)
    if their_sig is not None and our_sig is not None:
        problems = _accepts_the_same_calls(their_sig, our_sig)
        assert not problems, f"{theirs.__name__}.{name}{our_sig} does not take {problems}"


STREAMS = ["stdin", "stdout", "stderr", "stdin_bytes", "stdout_bytes", "stderr_bytes"]


@pytest.mark.parametrize("name", STREAMS)
def test_standard_stream_members(name: str) -> None:
    """Each public member of aiofiles' stream object exists on ours; the ones aiofiles
    awaits we await too (readable(), a plain method on our files, excepted)."""
    theirs, ours = getattr(aiofiles, name), getattr(uringloop, name)
    members = {m for m in dir(type(theirs)) if not m.startswith("_")}
    assert members
    for member in sorted(members):
        assert hasattr(type(ours), member), f"uringloop.{name}.{member}"
        their_attr = getattr(type(theirs), member)
        if inspect.iscoroutinefunction(their_attr) and member != "readable":
            assert inspect.iscoroutinefunction(getattr(type(ours), member)), member


def test_every_aiofiles_module_is_covered() -> None:
    """The modules above are all of aiofiles' public ones (a new one would fail here)."""
    public = {
        name
        for name, value in vars(aiofiles).items()
        if isinstance(value, types.ModuleType) and not name.startswith("_")
    }
    # base, threadpool and ospath are aiofiles' implementation modules, not in __all__;
    # ospath is checked above as aiofiles.os.path.
    assert public - {"base", "threadpool", "ospath", "os"} <= set(aiofiles.__all__)


OS_FUNCTIONS = [
    pytest.param(theirs, name, ours, id=f"{theirs.__name__}.{name}")
    for theirs, names, ours in MODULES[1:3]
    for name in names
    if inspect.iscoroutinefunction(getattr(theirs, name))
]


@pytest.mark.parametrize(("theirs", "name", "ours"), OS_FUNCTIONS)
def test_os_functions_take_aiofiles_loop_and_executor(theirs: Any, name: str, ours: Any) -> None:
    # aiofiles' wrapper adds both to every function (its signature, unwrapped, hides them).
    wrapper = inspect.signature(getattr(theirs, name), follow_wrapped=False).parameters
    assert {"loop", "executor"} <= set(wrapper)
    ours_ = inspect.signature(getattr(ours, name), follow_wrapped=False).parameters.values()
    if not any(q.kind == inspect.Parameter.VAR_KEYWORD for q in ours_):
        assert {"loop", "executor"} <= {q.name for q in ours_}, name


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
async def test_os_path_queries_run_on_the_executor_given(tmp_path: Any) -> None:
    calls: list[object] = []

    class Counting(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            calls.append(fn)
            return super().submit(fn, *args, **kwargs)

    with Counting(1) as executor:
        path = uringloop.os.path
        assert await path.exists(tmp_path, executor=executor, loop=None)
        assert await path.isdir(tmp_path, executor=executor, loop=None)
        assert not await path.isfile(tmp_path / "none", executor=executor, loop=None)
        assert await path.samefile(tmp_path, tmp_path, executor=executor, loop=None)
        st = await uringloop.os.stat(tmp_path, executor=executor, loop=None)
        await uringloop.os.mkdir(tmp_path / "d", executor=executor, loop=None)
        await uringloop.os.rmdir(tmp_path / "d", executor=executor, loop=None)
    assert st.st_ino == os.stat(tmp_path).st_ino
    # A uringloop Loop makes them as operations (on its ring, or its own thread pool).
    ours = isinstance(asyncio.get_running_loop(), uringloop.Loop)
    assert len(calls) == (0 if ours else 8)  # (samefile stats twice)


_PATH_QUERIES = ["exists", "lexists", "isfile", "isdir", "islink", "getsize", "getmtime",
                 "getatime", "getctime", "samefile", "sameopenfile"]  # fmt: skip


@pytest.mark.parametrize("name", _PATH_QUERIES)
def test_os_path_queries_name_their_parameters_as_os_path(name: str) -> None:
    # So a call that names them (`exists(path=p)`, which aiofiles' wrappers of os.path
    # take) works: the same names on every Python version uringloop supports.
    theirs = list(inspect.signature(getattr(os.path, name)).parameters)
    ours = inspect.signature(getattr(uringloop.os.path, name)).parameters
    assert list(ours)[: len(theirs)] == theirs


@pytest.mark.asyncio
async def test_os_path_queries_take_their_arguments_by_name(tmp_path: Any) -> None:
    file = tmp_path / "f"
    file.write_bytes(b"abc")
    path = uringloop.os.path
    assert await path.exists(path=file) and await path.isdir(s=tmp_path)
    assert await path.getsize(filename=file) == 3
    assert await path.samefile(f1=file, f2=str(file))
