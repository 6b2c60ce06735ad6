"""uringloop.os: the os module's results and exceptions, on the ring and on executors."""

from __future__ import annotations

import array
import asyncio
import concurrent.futures
import decimal
import functools
import gc
import os
import warnings
from pathlib import Path
from typing import Any

import pytest

import uringloop
import uringloop.os as aos

ALL_LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


@pytest.mark.asyncio
@ALL_LOOPS
async def test_stat_family(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 123)
    link = tmp_path / "link"
    await aos.symlink(path, link)
    st = await aos.stat(link)
    ref = os.stat(link)
    assert (st.st_size, st.st_ino, st.st_mode, st.st_mtime_ns) == (
        ref.st_size,
        ref.st_ino,
        ref.st_mode,
        ref.st_mtime_ns,
    )
    lst = await aos.lstat(link)
    assert lst.st_ino == os.lstat(link).st_ino != st.st_ino
    fd = os.open(path, os.O_RDONLY)
    try:
        assert (await aos.stat(fd)).st_ino == ref.st_ino
        assert await aos.path.sameopenfile(fd, fd)
    finally:
        os.close(fd)
    assert await aos.path.exists(path) and await aos.path.isfile(path)
    assert await aos.path.islink(link) and not await aos.path.islink(path)
    assert await aos.path.isdir(tmp_path) and not await aos.path.isdir(path)
    assert not await aos.path.exists(tmp_path / "missing")
    assert not await aos.path.exists("bad\0path")
    assert await aos.path.getsize(path) == 123
    assert await aos.path.getmtime(path) == os.path.getmtime(path)
    assert await aos.path.samefile(path, link)
    assert await aos.path.lexists(link)
    assert await aos.readlink(link) == str(path)
    assert await aos.access(path, os.R_OK)
    with pytest.raises(FileNotFoundError) as info:
        await aos.stat(tmp_path / "missing")
    assert info.value.filename == str(tmp_path / "missing")


@pytest.mark.asyncio
@ALL_LOOPS
async def test_sameopenfile_takes_descriptors_only(tmp_path: Path, no_fd_leak: None) -> None:
    # As os.path.sameopenfile (os.fstat): a path is a TypeError, and -1 is EBADF, where
    # os.stat's answers were given (True for a path; EFAULT for -1).
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        for first, second in ((str(path), fd), (fd, -1), (-1, fd)):
            with pytest.raises(Exception) as builtins:
                os.path.sameopenfile(first, second)
            with pytest.raises(Exception) as ours:
                await aos.path.sameopenfile(first, second)
            assert type(ours.value) is type(builtins.value)
            assert getattr(ours.value, "errno", None) == getattr(builtins.value, "errno", None)
    finally:
        os.close(fd)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_directory_and_name_operations(tmp_path: Path, no_fd_leak: None) -> None:
    await aos.mkdir(tmp_path / "d")
    with pytest.raises(FileExistsError):
        await aos.mkdir(tmp_path / "d")
    await aos.makedirs(tmp_path / "a" / "b" / "c")
    await aos.makedirs(tmp_path / "a" / "b" / "c", exist_ok=True)
    with pytest.raises(FileExistsError):
        await aos.makedirs(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "c").is_dir()
    (tmp_path / "d" / "f").write_text("1")
    assert await aos.listdir(tmp_path / "d") == ["f"]
    with await aos.scandir(tmp_path / "d") as entries:
        assert [e.name for e in entries] == ["f"]
    await aos.rename(tmp_path / "d" / "f", tmp_path / "d" / "g")
    (tmp_path / "h").write_text("2")
    await aos.replace(tmp_path / "h", tmp_path / "d" / "g")
    assert (tmp_path / "d" / "g").read_text() == "2"
    await aos.link(tmp_path / "d" / "g", tmp_path / "hard")
    assert os.stat(tmp_path / "hard").st_nlink == 2
    with pytest.raises(OSError):
        await aos.rmdir(tmp_path / "d")  # not empty
    await aos.remove(tmp_path / "hard")
    await aos.unlink(tmp_path / "d" / "g")
    await aos.rmdir(tmp_path / "d")
    assert not (tmp_path / "d").exists()
    with pytest.raises(FileNotFoundError):
        await aos.unlink(tmp_path / "d")
    with pytest.raises(NotADirectoryError):
        await aos.rmdir(_a_file(tmp_path))
    await aos.removedirs(tmp_path / "a" / "b" / "c")
    assert not (tmp_path / "a").exists()
    assert await aos.getcwd() == os.getcwd()
    assert (await aos.statvfs(tmp_path)).f_bsize > 0


def _descriptors_of(path: Path) -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                fds.append(int(name))
        except OSError:
            pass  # (listdir's own descriptor, closed since)
    return fds


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_cancelled_scandir_closes_the_iterator_it_made(tmp_path: Path) -> None:
    # os.scandir runs to its end in its thread: the iterator the cancelled caller never
    # gets is closed, its directory descriptor with it, not left to the garbage collector
    # (an open descriptor until then, and a ResourceWarning).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = asyncio.ensure_future(aos.scandir(tmp_path, executor=pool))
            await asyncio.sleep(0)  # the call is on its way to the thread
            pool.submit(lambda: None).result()  # ... and has returned there
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(3):
                await asyncio.sleep(0)
            assert _descriptors_of(tmp_path) == []
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.write_text("")
    return path


@pytest.mark.asyncio
async def test_ring_operations_go_through_the_ring(tmp_path: Path, no_fd_leak: None) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    before = loop.uring_stats().submitted
    await aos.mkdir(tmp_path / "d")
    await aos.stat(tmp_path / "d")
    await aos.rename(tmp_path / "d", tmp_path / "e")
    await aos.rmdir(tmp_path / "e")
    assert loop.uring_stats().submitted - before == 4


@pytest.mark.asyncio
@pytest.mark.loops("asyncio")
async def test_wrap_runs_on_the_executor(tmp_path: Path) -> None:
    calls = []

    def probe(x: int) -> int:
        calls.append(x)
        return x * 2

    assert await aos.wrap(probe)(21) == 42
    assert calls == [21]


@pytest.mark.asyncio
@ALL_LOOPS
async def test_link_of_a_symlink_links_what_os_link_links(tmp_path: Path) -> None:
    # os.link(symlink, new) with its defaults links the symlink itself (link(2)); with a
    # dir_fd and follow_symlinks=True it links the target (linkat, AT_SYMLINK_FOLLOW).
    target = tmp_path / "target"
    target.write_bytes(b"x")
    link = tmp_path / "symlink"
    os.symlink(target, link)
    dangling = tmp_path / "dangling"
    os.symlink(tmp_path / "nowhere", dangling)
    await aos.link(link, tmp_path / "ours")
    os.link(link, tmp_path / "theirs")
    assert (tmp_path / "ours").is_symlink() == (tmp_path / "theirs").is_symlink()
    await aos.link(dangling, tmp_path / "ours-dangling")  # links the symlink: no ENOENT
    assert (tmp_path / "ours-dangling").is_symlink()
    dirfd = os.open(tmp_path, os.O_RDONLY)
    try:
        await aos.link("symlink", "ours-at", src_dir_fd=dirfd, dst_dir_fd=dirfd)
        os.link("symlink", "theirs-at", src_dir_fd=dirfd, dst_dir_fd=dirfd)
    finally:
        os.close(dirfd)
    assert (tmp_path / "ours-at").is_symlink() == (tmp_path / "theirs-at").is_symlink()
    # AT_FDCWD, the dir_fd default, is no dir_fd: link(2), the symlink itself.
    for keyword in ("src_dir_fd", "dst_dir_fd"):
        await aos.link(dangling, tmp_path / f"ours-{keyword}", **{keyword: -100})
        os.link(dangling, tmp_path / f"theirs-{keyword}", **{keyword: -100})
        assert (tmp_path / f"ours-{keyword}").is_symlink()
        assert (tmp_path / f"theirs-{keyword}").is_symlink()


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("dir_fd", [-100, None, "x", 1.5, 3, -5])
async def test_stat_of_a_descriptor_takes_dir_fd_as_os_stat(dir_fd: Any) -> None:
    # os.stat converts dir_fd first (TypeError), and takes AT_FDCWD, its default, as none.
    expected: Any
    ours: Any
    try:
        expected = os.stat(0, dir_fd=dir_fd).st_ino
    except Exception as exc:
        expected = type(exc)
    try:
        ours = (await aos.stat(0, dir_fd=dir_fd)).st_ino
    except Exception as exc:
        ours = type(exc)
    assert ours == expected


@pytest.mark.asyncio
@ALL_LOOPS
async def test_lstat_refuses_a_descriptor_as_os_lstat() -> None:
    with pytest.raises(TypeError):
        os.lstat(0)
    with pytest.raises(TypeError):
        await aos.lstat(0)


class _Index:
    """Not a path, but an integer by __index__: os.stat takes it as a descriptor."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


class _IndexedPath(_Index):
    """A path by __fspath__ and an integer by __index__: os.stat takes it as a descriptor
    (it asks __index__ first), os.lstat, which takes no descriptor, as a path."""

    def __init__(self, value: int, path: Path) -> None:
        super().__init__(value)
        self.path = path

    def __fspath__(self) -> str:
        return str(self.path)


class _PathInt(int):
    """An int whose class has __fspath__: taken as _IndexedPath is."""

    path: Path

    def __fspath__(self) -> str:
        return str(self.path)


async def _outcome(call: object) -> tuple[str, object]:
    try:
        result = await call  # type: ignore[misc]
    except Exception as exc:
        return type(exc).__name__, (str(exc), getattr(exc, "filename", None))
    return "ok", result.st_ino if isinstance(result, os.stat_result) else result


def _reference(call: object) -> tuple[str, object]:
    try:
        result = call()  # type: ignore[operator]
    except Exception as exc:
        return type(exc).__name__, (str(exc), getattr(exc, "filename", None))
    return "ok", result.st_ino if isinstance(result, os.stat_result) else result


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_descriptor_as_path_is_taken_as_os_takes_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        unused = os.dup(fd)
        os.close(unused)  # (a number no descriptor has)
        other = tmp_path / "other"  # (what the path-likes below name: not the descriptor's)
        other.write_bytes(b"y")
        path_int = _PathInt(fd)
        path_int.path = other
        both = (path_int, _IndexedPath(fd, other))
        cases = [
            ("stat", (fd,), {}),
            ("stat", (_Index(fd),), {}),
            ("stat", (fd,), {"follow_symlinks": False}),
            ("stat", (fd,), {"dir_fd": fd}),
            ("stat", (unused,), {}),
            ("stat", (fd,), {"dir_fd": fd, "follow_symlinks": False}),
            ("stat", (-1,), {}),  # (os.stat: no descriptor, a NULL path: EFAULT)
            ("stat", (-1,), {"follow_symlinks": False}),
            ("stat", (-2,), {}),
            ("stat", (-2,), {"follow_symlinks": False}),
            ("stat", (_Index(unused),), {}),
            ("stat", (_Index(-1),), {}),
            ("lstat", (fd,), {}),
            ("lstat", (_Index(fd),), {}),
            *(("stat", (arg,), {}) for arg in both),
            *(("lstat", (arg,), {}) for arg in both),
        ]
        for name, args, kwargs in cases:
            ours = await _outcome(getattr(aos, name)(*args, **kwargs))
            assert ours == _reference(functools.partial(getattr(os, name), *args, **kwargs)), (
                args,
                kwargs,
            )
        for query in ("exists", "lexists", "islink", "isfile", "getsize"):
            for arg in (fd, unused, _Index(fd), *both):
                ours = await _outcome(getattr(aos.path, query)(arg))
                assert ours == _reference(functools.partial(getattr(os.path, query), arg)), (
                    query,
                    arg,
                )
    finally:
        os.close(fd)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_path_is_its_characters_whatever_its_class_says(tmp_path: Path) -> None:
    # os converts a str path itself: a str subclass's own encode() is not called.
    kept, target = tmp_path / "kept", tmp_path / "target"

    class Elsewhere(str):
        def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
            return os.fsencode(kept)

    class ElsewhereBytes(bytes):
        def __bytes__(self) -> bytes:
            return os.fsencode(kept)

    for name in (kept, target):
        name.write_bytes(name.name.encode())
    async with uringloop.open(Elsewhere(target), "rb") as f:
        assert await f.read() == b"target"
    assert (await aos.stat(Elsewhere(target))).st_ino == os.stat(target).st_ino
    assert (await aos.stat(ElsewhereBytes(os.fsencode(target)))).st_ino == os.stat(target).st_ino
    await aos.unlink(Elsewhere(target))
    assert os.listdir(tmp_path) == ["kept"]
    target.write_bytes(b"")
    await aos.unlink(ElsewhereBytes(os.fsencode(target)))
    assert os.listdir(tmp_path) == ["kept"]


class _BrokenPath:
    """A path-like object whose __fspath__ raises."""

    def __fspath__(self) -> str:
        raise RuntimeError("no path")


# (call, arguments, keywords): each with two bad arguments at most, so the test shows which
# one os reports first, or an argument only os's path conversion refuses.
_BAD_ARGUMENTS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("stat", (None,), {}),
    ("stat", (1.5,), {"dir_fd": "x"}),
    ("stat", (b"a\0b",), {}),
    ("stat", ("a\0b",), {"dir_fd": "x"}),
    ("stat", (2**31,), {}),
    ("stat", (-(2**31) - 1,), {}),
    ("stat", (bytearray(b"missing"),), {}),
    ("lstat", (None,), {}),
    ("lstat", ("a\0b",), {"dir_fd": 2**31}),
    ("unlink", (None,), {"dir_fd": "x"}),
    ("remove", (b"a\0b",), {}),
    ("remove", (memoryview(b"missing"),), {}),
    ("rmdir", ([],), {}),
    ("mkdir", (None, "x"), {}),
    ("mkdir", ("new", 1.5), {"dir_fd": "x"}),
    ("mkdir", ("new", 2**31), {"dir_fd": "x"}),
    ("mkdir", ("a\0b",), {"dir_fd": 1.5}),
    ("makedirs", (b"new/a\0b",), {}),
    ("rename", (None, "b"), {}),
    ("rename", ("a", None), {}),
    ("rename", ("a\0b", None), {}),
    ("rename", ("a", "b\0"), {"src_dir_fd": "x"}),
    ("replace", ("a", 1.5), {}),
    ("replace", ("a\0b", _BrokenPath()), {}),
    ("link", (None, "b"), {}),
    ("link", ("a", b"b\0"), {"src_dir_fd": "x"}),
    ("symlink", ("a", None), {"dir_fd": "x"}),
    ("symlink", ("a\0b", None), {}),
    ("stat", (decimal.Decimal(1),), {}),  # (os's words name the type without its module)
    ("unlink", (array.array("b", b"missing"),), {}),
    ("rename", (bytearray(b"missing"), "b"), {}),
]


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize(("name", "args", "kwargs"), _BAD_ARGUMENTS)
async def test_a_bad_argument_is_refused_as_os_refuses_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_fd_leak: None,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    # The same exception, message and errno as os's, for the argument os reports first
    # (its path conversion's words, naming the function and the parameter); a bytes-like
    # path, which os takes with a DeprecationWarning before Python 3.12, as os takes it.
    monkeypatch.chdir(tmp_path)

    async def outcome(call: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result: Any = ("ok", await call())
            except Exception as exc:
                # (An OSError's filename is the bytes, where os's is the bytes-like object.)
                text = None if isinstance(exc, OSError) else str(exc)
                result = (type(exc), getattr(exc, "errno", None), text)
        # (A warning names the caller's line, in this file, as os's does; on another loop
        # the call is os's, on an executor's thread.)
        here = isinstance(asyncio.get_running_loop(), uringloop.Loop)
        return result, [(w.category, str(w.message), here and w.filename) for w in caught]

    async def reference() -> Any:
        return getattr(os, name)(*args, **kwargs)

    expected = await outcome(reference)
    assert await outcome(lambda: getattr(aos, name)(*args, **kwargs)) == expected


# A path of PATH_MAX (4096) bytes or more: io_uring refuses it (ENAMETOOLONG) as it prepares
# the request, before anything else; link(2) looks up its source first, and rename(2)
# resolves the source's directory first, whose errors os reports.
_TOO_LONG = "b/" * 2048  # 4096 bytes
_LONG_SECOND_PATH = [
    ("link", ("missing", _TOO_LONG), {}),
    ("link", ("no/x", "b" * 4096), {}),
    ("link", ("f", _TOO_LONG), {"src_dir_fd": 99999}),
    ("rename", ("no/x", _TOO_LONG), {}),
    ("rename", ("f", _TOO_LONG), {"src_dir_fd": 99999}),
    ("rename", ("f", _TOO_LONG), {}),
    ("link", ("missing", "b" * 4095), {}),
]


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize(("name", "args", "kwargs"), _LONG_SECOND_PATH)
async def test_a_path_too_long_is_reported_where_os_reports_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_fd_leak: None,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(OSError) as expected:
        getattr(os, name)(*args, **kwargs)
    with pytest.raises(OSError) as ours:
        await getattr(aos, name)(*args, **kwargs)
    assert (type(ours.value), ours.value.errno) == (type(expected.value), expected.value.errno)
    assert (ours.value.filename, ours.value.filename2) == args
    assert sorted(os.listdir(tmp_path)) == ["f"]
