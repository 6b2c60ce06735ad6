"""open()'s common case made at once (_files._open_now and its compiled twin): the same
files as the general path makes (_open_rest), where it stops the same way, and no
descriptor left behind on any of its ways out."""

from __future__ import annotations

import asyncio
import codecs
import collections
import concurrent.futures
import gc
import io
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import uringloop
from uringloop import _files

_COMPILED = _files.OPEN_NOW is not _files._open_now
IMPLEMENTATIONS = [pytest.param(_files._open_now, id="python")] + (
    [pytest.param(_files.OPEN_NOW, id="c")] if _COMPILED else []
)
# Modes the common case takes (those that open an existing file, not appending: a file
# created or truncated opens on the ring's workers), spelled as open() takes them.
MODES = ["r", "rt", "rb", "r+", "rb+", "r+b", "r+t"]


def _args(path: Any, mode: str, **given: Any) -> tuple[Any, ...]:
    """open()'s arguments in _open_now's order: the defaults, but those `given`."""
    names = ("buffering", "encoding", "errors", "newline", "closefd", "opener", "direct")
    defaults = dict(zip(names, (-1, None, None, None, True, None, False), strict=True))
    defaults.update(given)
    executor = defaults.pop("executor", None)
    return (path, mode, *(defaults[name] for name in names), executor)


def _state(obj: Any, seen: dict[int, str], where: str = "file") -> Any:
    """What an object built by open() holds, as comparable values: its class, its slots
    and its instance dict (in the dict's order) with the objects they hold described the
    same way; a shared object (the lock of three layers) by where it was first seen."""
    if id(obj) in seen:
        return ("seen", seen[id(obj)])
    if obj is None or isinstance(obj, (bool, int, str, bytes, bytearray, float)):
        return (type(obj).__name__, obj if not isinstance(obj, bytearray) else bytes(obj))
    if isinstance(obj, types.MethodType):  # (a bound method is made at each lookup)
        return ("bound method", id(obj.__self__), id(obj.__func__))
    if isinstance(obj, (asyncio.AbstractEventLoop, concurrent.futures.Executor)) or callable(obj):
        return ("object", id(obj))  # (the loop, the executor, a function: the same ones)
    seen[id(obj)] = where
    if isinstance(obj, collections.deque):
        return ("deque", [_state(x, seen, f"{where}[]") for x in obj])
    if isinstance(obj, list):
        return ("list", [_state(x, seen, f"{where}[]") for x in obj])
    if isinstance(obj, (codecs.IncrementalDecoder, codecs.IncrementalEncoder)):
        return (type(obj).__name__, obj.errors, vars(obj))
    if isinstance(obj, io.IncrementalNewlineDecoder):
        return ("IncrementalNewlineDecoder", obj.getstate(), obj.newlines)
    slots = {}
    for cls in type(obj).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            if name in ("__dict__", "__weakref__"):
                continue
            slots[name] = _state(getattr(obj, name, "<unset>"), seen, f"{where}.{name}")
    attributes = [
        (name, _state(value, seen, f"{where}.{name}"))
        for name, value in getattr(obj, "__dict__", {}).items()
    ]
    return (type(obj).__qualname__, slots, attributes)


def _open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "data.txt"
    path.write_bytes("line one\nline två\r\nthree\n".encode())
    return path


def _fresh(path: Path) -> None:
    path.write_bytes("line one\nline två\r\nthree\n".encode())


def _run(main: Callable[[], Any]) -> Any:
    return uringloop.run(main())


def _run_leaving_no_descriptor(main: Callable[[], Any]) -> Any:
    before = _open_fds()
    result = _run(main)
    assert _open_fds() == before
    return result


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("mode", MODES)
def test_makes_the_files_the_general_path_makes(
    implementation: Callable[..., Any], mode: str, path: Path
) -> None:
    _files._parse_mode(mode)  # (a mode taken once before: the common case's)

    async def main() -> tuple[Any, Any, Any, Any]:
        _fresh(path)
        made = implementation(*_args(str(path), mode))
        assert not isinstance(made, (int, type(None))), made
        try:
            general = await _files._open_rest(*_args(str(path), mode), None)
            try:
                ours, theirs = _state(made, {}), _state(general, {})
                fds = (made.fileno(), general.fileno())
            finally:
                await general.close()
        finally:
            await made.close()
        return ours, theirs, fds, type(made)

    before = _open_fds()
    ours, theirs, fds, made_type = _run(main)
    assert fds[0] != fds[1]
    # The descriptors differ; all else is equal (the loop, executor and methods held too).
    assert _without_identities(ours) == _without_identities(theirs)
    assert made_type is (_files.AsyncBufferedFile if "b" in mode else _files.AsyncTextFile)
    assert _open_fds() <= before


def _without_identities(state: Any) -> Any:
    """`state` with the descriptor left out (each file has its own)."""
    if isinstance(state, tuple) and len(state) == 2 and state[0] == "int":
        return state
    if isinstance(state, tuple):
        return tuple(_without_identities(x) for x in state)
    if isinstance(state, list):
        return [_without_identities(x) for x in state]
    if isinstance(state, dict):
        return {k: (_without_identities(v) if k != "_fd" else "fd") for k, v in state.items()}
    return state


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("mode", ["r", "rb", "r+", "rb+"])
def test_the_files_made_work(implementation: Callable[..., Any], mode: str, path: Path) -> None:
    _files._parse_mode(mode)

    async def main() -> None:
        _fresh(path)
        f = implementation(*_args(str(path), mode))
        async with f:
            if "r" in mode:
                expected = path.read_bytes()
                assert await f.read() == (
                    expected if "b" in mode else expected.decode().replace("\r\n", "\n")
                )
            if "+" in mode:
                await f.seek(0)
                await f.write("new\n" if "b" not in mode else b"new\n")
        if "+" in mode:
            assert path.read_bytes().startswith(b"new\n")

    before = _open_fds()
    _run(main)
    assert _open_fds() <= before


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "given",
    [
        {"buffering": 0},
        {"buffering": 4096},
        {"buffering": True},
        {"encoding": "utf-8"},
        {"errors": "strict"},
        {"newline": ""},
        {"closefd": 1},
        {"opener": os.open},
        {"direct": 0},
    ],
    ids=lambda given: ",".join(f"{k}={v!r}" for k, v in given.items()),
)
def test_anything_but_the_defaults_is_left_to_the_general_path(
    implementation: Callable[..., Any], given: dict[str, Any], path: Path
) -> None:
    _files._parse_mode("r")

    async def main() -> Any:
        return implementation(*_args(str(path), "r", **given))

    before = _open_fds()
    assert _run(main) is None
    assert _open_fds() == before


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_other_files_modes_and_loops_are_left_to_the_general_path(
    implementation: Callable[..., Any], path: Path
) -> None:
    for mode in ("a", "ab", "a+", "w", "wb", "w+", "x", "xb"):
        _files._parse_mode(mode)

    async def main() -> list[Any]:
        return [
            implementation(*_args(path, "r")),  # a Path, not a str
            implementation(*_args(str(path).encode(), "r")),  # bytes
            implementation(*_args(str(path), "a")),
            implementation(*_args(str(path), "ab")),
            implementation(*_args(str(path), "a+")),
            *(implementation(*_args(str(path), mode)) for mode in ("w", "wb", "w+")),
            *(implementation(*_args(str(path) + "-new", mode)) for mode in ("x", "xb")),
            implementation(*_args(str(path), "rbt" + "x" * 3)),  # never parsed: not kept
            implementation(*_args(str(path), 1)),
        ]

    before = _open_fds()
    contents = path.read_bytes()
    assert _run(main) == [None] * 12
    assert asyncio.run(main()) == [None] * 12  # the stock loop: no ring
    assert _open_fds() == before
    assert path.read_bytes() == contents  # (not truncated: nothing done)
    assert not Path(str(path) + "-new").exists()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_no_inline_turn_left_gives_false(implementation: Callable[..., Any], path: Path) -> None:
    _files._parse_mode("r")

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        loop.inline_turn = lambda nbytes=0: False  # type: ignore[method-assign]
        try:
            return implementation(*_args(str(path), "r"))
        finally:
            del loop.inline_turn  # type: ignore[method-assign]

    before = _open_fds()
    assert _run(main) is False
    assert _open_fds() == before


class _Declaration:
    def __init__(self, inline: Any) -> None:
        self.inline = inline


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    ("inline", "expected"),
    [
        (None, None),  # no inline open at all: nothing done
        (lambda path, flags, mode: None, False),  # not in the dentry cache
        (lambda path, flags, mode: (_ for _ in ()).throw(TypeError("no")), False),
    ],
    ids=["no-inline-open", "not-cached", "refused"],
)
def test_where_the_inline_open_does_not_happen(
    implementation: Callable[..., Any],
    inline: Any,
    expected: Any,
    path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _files._parse_mode("r")
    monkeypatch.setattr(_files, "_open_fd", _Declaration(inline))

    async def main() -> Any:
        return implementation(*_args(str(path), "r"))

    assert _run(main) is expected


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_an_open_error_is_raised_as_the_general_paths(
    implementation: Callable[..., Any], tmp_path: Path
) -> None:
    _files._parse_mode("r")
    missing = tmp_path / "missing"

    async def main() -> None:
        assert not missing.exists()  # (the lookup leaves a negative dentry: ENOENT inline)
        with pytest.raises(FileNotFoundError) as ours:
            implementation(*_args(str(missing), "r"))
        with pytest.raises(FileNotFoundError) as theirs:
            await _files._open_rest(*_args(str(missing), "r"), None)
        assert (ours.value.errno, ours.value.filename) == (
            theirs.value.errno,
            theirs.value.filename,
        )

    _run_leaving_no_descriptor(main)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_file_not_regular_or_not_local_gives_its_descriptor(
    implementation: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files._parse_mode("r")
    _files._parse_mode("rb")
    regular = tmp_path / "f"
    regular.write_bytes(b"x")

    async def main() -> list[Any]:
        made = [
            implementation(*_args("/dev/null", "rb")),
            implementation(*_args(str(tmp_path), "r")),  # a directory opens O_RDONLY
        ]
        with monkeypatch.context() as patch:
            patch.setattr(_files._mounts, "closes_inline", lambda st_dev: False)
            made.append(implementation(*_args(str(regular), "r")))
        return made

    before = _open_fds()
    made = _run(main)
    try:
        assert all(type(fd) is int and fd >= 0 for fd in made), made
        assert os.path.samefile(f"/proc/self/fd/{made[0]}", "/dev/null")
        assert os.path.samefile(f"/proc/self/fd/{made[1]}", tmp_path)
        assert os.path.samefile(f"/proc/self/fd/{made[2]}", regular)
    finally:
        for fd in made:
            if type(fd) is int:
                os.close(fd)
    assert _open_fds() == before


def test_open_goes_on_from_a_descriptor_open_now_gave(tmp_path: Path) -> None:
    # (the general path takes it over: a device file reads, a directory raises, and
    # neither leaves its descriptor open)
    async def main() -> None:
        async with uringloop.open("/dev/null", "rb") as f:
            assert await f.read() == b""
            assert f.raw._kernel_seeks
        with pytest.raises(IsADirectoryError):
            await uringloop.open(tmp_path)
        with pytest.raises(IsADirectoryError):
            await uringloop.open(str(tmp_path))

    _run_leaving_no_descriptor(main)


def _no_decoder_codec(name: str) -> codecs.CodecInfo | None:
    if name != "uringloop_test_no_decoder":
        return None
    utf8 = codecs.lookup("utf-8")
    info = codecs.CodecInfo(
        utf8.encode,
        utf8.decode,
        name="uringloop_test_no_decoder",
        incrementalencoder=utf8.incrementalencoder,
    )
    return info


@pytest.fixture
def no_decoder_codec() -> Iterator[str]:
    codecs.register(_no_decoder_codec)
    try:
        yield "uringloop_test_no_decoder"
    finally:
        codecs.unregister(_no_decoder_codec)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("mode", ["r", "r+"])
def test_a_codec_the_text_file_cannot_use_closes_the_file(
    implementation: Callable[..., Any],
    mode: str,
    path: Path,
    no_decoder_codec: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A locale encoding whose codec has no incremental decoder: LookupError, as the general
    # path's, with the descriptor closed and nothing reported by a half-made file's __del__.
    _files._parse_mode(mode)
    monkeypatch.setattr(_files, "_text_encoding", lambda encoding: no_decoder_codec)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    async def main() -> None:
        with pytest.raises(LookupError) as ours:
            implementation(*_args(str(path), mode))
        with pytest.raises(LookupError) as theirs:
            await _files._open_rest(*_args(str(path), mode), None)
        assert ours.value.args == theirs.value.args == (no_decoder_codec,)

    before = _open_fds()
    _run(main)
    gc.collect()
    assert _open_fds() == before
    assert unraisable == []


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_executor_given_is_the_files(implementation: Callable[..., Any], path: Path) -> None:
    _files._parse_mode("rb")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:

        async def main() -> None:
            f = implementation(*_args(str(path), "rb", executor=executor))
            async with f:
                assert f.raw._executor is executor
                assert f.raw._io().executor is executor

        _run(main)


def test_open_uses_the_compiled_twin_where_the_file_calls_are_compiled() -> None:
    assert (_files._METHODS_IMPLEMENTATION == "c") == _COMPILED
    if _COMPILED:
        assert type(_files.OPEN_NOW).__name__ == "builtin_function_or_method"


class _Failure(Exception):
    pass


def _raise(*args: Any) -> Any:
    raise _Failure("as asked")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("where", ["_file_facts", "closes_inline"])
def test_a_failure_after_the_open_closes_the_descriptor(
    implementation: Callable[..., Any], where: str, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files._parse_mode("r")
    opened: list[int] = []
    real = _files._open_fd.inline

    def inline(*args: Any) -> Any:
        fd = real(*args)
        opened.append(fd)
        return fd

    monkeypatch.setattr(_files, "_open_fd", _Declaration(inline))
    if where == "_file_facts":
        monkeypatch.setattr(_files, "_file_facts", _raise)
    else:
        monkeypatch.setattr(_files._mounts, "closes_inline", _raise)

    async def main() -> None:
        with pytest.raises(_Failure, match="as asked"):
            implementation(*_args(str(path), "r"))

    before = _open_fds()
    _run(main)
    assert len(opened) == 1 and type(opened[0]) is int  # (it did open)
    assert _open_fds() == before


class _Index:
    """A descriptor given as an object with __index__ (os.close takes it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __index__(self) -> int:
        return self.fd


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_descriptor_not_an_int_is_closed_on_a_failure_too(
    implementation: Callable[..., Any], path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _files._parse_mode("r")
    real = _files._open_fd.inline
    monkeypatch.setattr(_files, "_open_fd", _Declaration(lambda *args: _Index(real(*args))))
    monkeypatch.setattr(_files._mounts, "closes_inline", _raise)

    async def main() -> None:
        with pytest.raises(_Failure, match="as asked"):
            implementation(*_args(str(path), "r"))

    _run_leaving_no_descriptor(main)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_mode_is_read_once(
    implementation: Callable[..., Any], path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Code run in between (the encoding's lookup) that changes the cached mode does not
    # change the flags the open is made with: they were read before.
    parsed = _files._parse_mode("r")
    flags = parsed.flags
    given: list[Any] = []

    def inline(path: Any, flags: Any, mode: Any) -> None:
        given.append(flags)
        return None

    def encoding(name: Any) -> str:
        parsed.flags = flags | (1 << 40)  # (a new int object: the old one may be freed)
        return "utf-8"

    monkeypatch.setattr(_files, "_open_fd", _Declaration(inline))
    monkeypatch.setattr(_files, "_text_encoding", encoding)

    async def main() -> Any:
        return implementation(*_args(str(path), "r"))

    try:
        assert _run(main) is False
    finally:
        parsed.flags = flags
    assert given == [flags]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_mode_missing_a_field_raises_attribute_error(
    implementation: Callable[..., Any], path: Path
) -> None:
    parsed = _files._parse_mode("rb")
    readable = parsed.readable
    del parsed.readable

    async def main() -> None:
        with pytest.raises(AttributeError, match="readable"):
            implementation(*_args(str(path), "rb"))

    before = _open_fds()
    try:
        _run(main)
    finally:
        parsed.readable = readable
    assert _open_fds() == before


def test_the_compiled_twin_makes_the_common_case_itself(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reference calls the file classes; the compiled twin fills them itself (so its
    # own path runs: the other tests would pass were it to hand every call over).
    _files._parse_mode("r")
    calls: list[str] = []
    for cls in (_files.AsyncFileIO, _files.AsyncBufferedFile, _files.AsyncTextFile):
        init = cls.__init__

        def counted(self: Any, *args: Any, _init: Any = init, _name: str = cls.__name__) -> None:
            calls.append(_name)
            _init(self, *args)

        monkeypatch.setattr(cls, "__init__", counted)

    async def main() -> list[list[str]]:
        seen = []
        for implementation in (_files._open_now, _files.OPEN_NOW):
            calls.clear()
            f = implementation(*_args(str(path), "r"))
            await f.close()
            seen.append(list(calls))
        return seen

    reference, default = _run(main)
    assert reference == ["AsyncFileIO", "AsyncBufferedFile", "AsyncTextFile"]
    assert default == ([] if _COMPILED else reference)
