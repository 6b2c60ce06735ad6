"""uringloop.os: coroutine counterparts of os functions, with aiofiles.os's names.

On a uringloop Loop, the calls the kernel has an io_uring operation for (stat, lstat,
unlink/remove, rename/replace, mkdir, makedirs, rmdir, link, symlink) run on the loop's
ring; the others (readlink, access, listdir, scandir, statvfs, ...) and every call on other
loops (stock asyncio, uvloop) run the os function on the loop's default executor, or the
`executor=` given. Results and exceptions are os's: FileNotFoundError with the filename,
and so on. Every function, os.path's too, takes `executor=` and `loop=` (ignored: the
running loop is used), as aiofiles.os's do.

A cancelled call is cancelled in the kernel (on an executor it runs to its end); one that
changes the file system may have made its change all the same (a directory made, a name
renamed or removed), and raises CancelledError regardless, as aiofiles.os's do: look
where it matters. makedirs cancelled between two levels leaves the levels made, as
os.makedirs interrupted does.

    import uringloop.os

    st = await uringloop.os.stat("data.bin")
    if await uringloop.os.path.exists("old"):
        await uringloop.os.remove("old")
"""

from __future__ import annotations

import concurrent.futures
import functools
import operator
import os
import stat as _stat
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from ._files import undone_if_cancelled
from ._loop import Loop
from ._ops import args as _args
from ._running import RUNNING_LOOP as _running_loop

__all__ = [
    "access",
    "getcwd",
    "link",
    "listdir",
    "lstat",
    "makedirs",
    "mkdir",
    "path",
    "readlink",
    "remove",
    "removedirs",
    "rename",
    "renames",
    "replace",
    "rmdir",
    "scandir",
    "sendfile",
    "stat",
    "statvfs",
    "symlink",
    "unlink",
    "wrap",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Executor = concurrent.futures.Executor
_AT_FDCWD = -100  # (Linux's: os's default dir_fd, the working directory)


# Until Python 3.12, os takes any bytes-like object as a path (with a DeprecationWarning);
# from 3.13 a str with a NUL is refused in os's own words, as bytes with one always was.
_BUFFER_PATHS = sys.version_info < (3, 12)
_STR_NUL_NAMED = sys.version_info >= (3, 13)
_PATH_KINDS = "string, bytes or os.PathLike"


def _os_path(
    value: Any, func: str, arg: str = "path", allow_fd: bool = False, stacklevel: int = 3
) -> Any:
    """`value` as os's `func` takes its parameter `arg`: str or bytes (a path-like
    object's), or with `allow_fd` an object with __index__ as it is (a descriptor). What
    os refuses, this refuses with os's exception and message, before anything is queued,
    so that of two bad arguments the one os reports is the one reported."""
    if isinstance(value, (str, bytes)):
        path = value
    elif allow_fd and hasattr(type(value), "__index__"):
        return value  # (os asks __index__ first, even of a path-like object)
    elif hasattr(type(value), "__fspath__"):
        path = os.fspath(value)  # (its errors, and __fspath__'s own, are os's)
    else:
        kinds = "string, bytes, os.PathLike or integer" if allow_fd else _PATH_KINDS
        message = f"{func}: {arg} should be {kinds}, not {type(value).__name__}"
        try:
            view = memoryview(value) if _BUFFER_PATHS else None
        except TypeError:
            view = None
        if view is None:
            raise TypeError(message)
        warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)
        with view:
            path = view.tobytes()
    if isinstance(path, bytes):
        if b"\0" in path:
            raise ValueError(f"{func}: embedded null character in {arg}")
    elif "\0" in path:
        named = f"{func}: embedded null character in {arg}"
        raise ValueError(named if _STR_NUL_NAMED else "embedded null byte")
    return path


def _ring_loop() -> Loop | None:
    loop = _running_loop()
    return loop if isinstance(loop, Loop) else None


async def _in_executor(
    executor: _Executor | None, func: Callable[..., _T], *args: Any, **kwargs: Any
) -> _T:
    loop = _running_loop()
    call = functools.partial(func, *args, **kwargs) if kwargs else func
    return await loop.run_in_executor(executor, call, *(() if kwargs else args))


def wrap(func: Callable[_P, _T]) -> Callable[..., Awaitable[_T]]:
    """An os-style blocking function as a coroutine function run on the executor.

    The result accepts `executor=` (default: the running loop's default executor) besides
    the function's own arguments, as aiofiles.os.wrap's does (its `loop=` is ignored:
    the running loop is always used).
    """

    @functools.wraps(func)
    async def run(
        *args: Any, executor: _Executor | None = None, loop: object = None, **kwargs: Any
    ) -> _T:
        return await _in_executor(executor, func, *args, **kwargs)

    return run


# -- on the ring where the loop has the operation --------------------------------------------


async def stat(
    path: Any,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    executor: _Executor | None = None,
    loop: object = None,
) -> os.stat_result:
    """os.stat(): statx on the ring. `path` may be an open file descriptor (fstat)."""
    loop = _ring_loop()
    if loop is None:
        return await _in_executor(
            executor, os.stat, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks
        )
    # Loop.stat takes what os.stat takes for a descriptor (an object with __index__, even
    # a path-like one) as a descriptor; a path goes as str or bytes.
    target = _os_path(path, "stat", allow_fd=True)
    return await loop.stat(target, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


async def _fstat(fd: int, executor: _Executor | None) -> os.stat_result:
    """os.fstat(): descriptors only (EBADF for -1, where os.stat's is EFAULT)."""
    loop = _ring_loop()
    if loop is None:
        return await _in_executor(executor, os.fstat, fd)
    return await loop.fstat(fd)


async def lstat(
    path: Any, *, dir_fd: int | None = None, executor: _Executor | None = None, loop: object = None
) -> os.stat_result:
    """os.lstat(): stat without following a final symlink."""
    if _ring_loop() is None:
        return await _in_executor(executor, os.lstat, path, dir_fd=dir_fd)
    # A path, as os.lstat takes it, even an object with __index__ (no descriptor).
    return await stat(_os_path(path, "lstat"), dir_fd=dir_fd, follow_symlinks=False)


async def unlink(
    path: Any, *, dir_fd: int | None = None, executor: _Executor | None = None, loop: object = None
) -> None:
    await _unlink(os.unlink, path, dir_fd, executor)


async def remove(
    path: Any, *, dir_fd: int | None = None, executor: _Executor | None = None, loop: object = None
) -> None:
    await _unlink(os.remove, path, dir_fd, executor)


async def _unlink(
    func: Callable[..., None], path: Any, dir_fd: Any, executor: _Executor | None
) -> None:
    """os.unlink or os.remove (the one whose name os's errors give)."""
    loop = _ring_loop()
    if loop is None:
        await _in_executor(executor, func, path, dir_fd=dir_fd)
        return
    await loop.unlink(_os_path(path, func.__name__, stacklevel=4), dir_fd=dir_fd)


async def rename(
    src: Any,
    dst: Any,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    await _rename(os.rename, src, dst, src_dir_fd, dst_dir_fd, executor)


async def replace(
    src: Any,
    dst: Any,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    """os.replace(): on Linux the same system call as rename (renameat, no flags)."""
    await _rename(os.replace, src, dst, src_dir_fd, dst_dir_fd, executor)


async def _rename(
    func: Callable[..., None],
    src: Any,
    dst: Any,
    src_dir_fd: Any,
    dst_dir_fd: Any,
    executor: _Executor | None,
) -> None:
    """os.rename or os.replace (the one whose name os's errors give)."""
    loop = _ring_loop()
    if loop is None:
        await _in_executor(executor, func, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    name = func.__name__
    src, dst = _os_path(src, name, "src", stacklevel=4), _os_path(dst, name, "dst", stacklevel=4)
    await loop.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


async def mkdir(
    path: Any,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    loop = _ring_loop()
    if loop is None:
        await _in_executor(executor, os.mkdir, path, mode, dir_fd=dir_fd)
        return
    path = _os_path(path, "mkdir")
    mode = _args.c_int(mode)  # (before dir_fd, as os converts them)
    await loop.mkdir(path, mode, dir_fd=dir_fd)


async def makedirs(
    name: Any,
    mode: int = 0o777,
    exist_ok: bool = False,
    *,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    """os.makedirs(): create the missing parents, then the leaf, with mkdir on the ring."""
    if _ring_loop() is None:
        await _in_executor(executor, os.makedirs, name, mode, exist_ok)
        return
    name = os.fspath(name)
    head, tail = os.path.split(name)
    if not tail:
        head, tail = os.path.split(head)
    curdir = os.curdir if isinstance(name, str) else os.fsencode(os.curdir)
    if head and tail and not await path.exists(head):
        try:
            await makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # another task or process made it meanwhile
        if tail == curdir:  # xxx/newdir/. exists once xxx/newdir does
            return
    try:
        await mkdir(name, mode)
    except OSError:
        # Cannot rely on the errno (EEXIST, or EROFS/EACCES on a read-only parent).
        if not exist_ok or not await path.isdir(name):
            raise


async def rmdir(
    path: Any, *, dir_fd: int | None = None, executor: _Executor | None = None, loop: object = None
) -> None:
    loop = _ring_loop()
    if loop is None:
        await _in_executor(executor, os.rmdir, path, dir_fd=dir_fd)
        return
    await loop.rmdir(_os_path(path, "rmdir"), dir_fd=dir_fd)


async def link(
    src: Any,
    dst: Any,
    *,
    src_dir_fd: int | None = None,
    dst_dir_fd: int | None = None,
    follow_symlinks: bool = True,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    loop = _ring_loop()
    if loop is None:
        await _in_executor(
            executor,
            os.link,
            src,
            dst,
            src_dir_fd=src_dir_fd,
            dst_dir_fd=dst_dir_fd,
            follow_symlinks=follow_symlinks,
        )
        return
    # As os.link: with no dir_fd (None, or AT_FDCWD, its default), follow_symlinks=True is
    # link(2), which links a symlink itself; only linkat with a dir_fd follows it
    # (AT_SYMLINK_FOLLOW).
    src, dst = _os_path(src, "link", "src"), _os_path(dst, "link", "dst")
    dir_fds = _names_a_directory(src_dir_fd) or _names_a_directory(dst_dir_fd)
    await loop.link(
        src,
        dst,
        src_dir_fd=src_dir_fd,
        dst_dir_fd=dst_dir_fd,
        follow_symlinks=bool(follow_symlinks) and dir_fds,
    )


def _names_a_directory(dir_fd: Any) -> bool:
    """Whether os's `dir_fd=` argument names a directory: not None, nor AT_FDCWD (-100 on
    Linux, its default: the working directory). A value os refuses does (the call it goes
    to refuses it)."""
    if dir_fd is None:
        return False
    try:
        return operator.index(dir_fd) != _AT_FDCWD
    except TypeError:
        return True


async def symlink(
    src: Any,
    dst: Any,
    target_is_directory: bool = False,
    *,
    dir_fd: int | None = None,
    executor: _Executor | None = None,
    loop: object = None,
) -> None:
    """os.symlink(): make `dst` a symbolic link to `src`."""
    loop = _ring_loop()
    if loop is None:
        await _in_executor(executor, os.symlink, src, dst, target_is_directory, dir_fd=dir_fd)
        return
    src, dst = _os_path(src, "symlink", "src"), _os_path(dst, "symlink", "dst")
    await loop.symlink(src, dst, dir_fd=dir_fd)


# -- through the executor: io_uring has no operation for these -------------------------------

readlink: Callable[..., Awaitable[Any]] = wrap(os.readlink)
access = wrap(os.access)
listdir = wrap(os.listdir)
getcwd = wrap(os.getcwd)
statvfs = wrap(os.statvfs)
sendfile = wrap(os.sendfile)
removedirs = wrap(os.removedirs)
renames = wrap(os.renames)


async def scandir(
    path: Any = None, *, executor: _Executor | None = None, loop: object = None
) -> Any:
    """os.scandir(), on the executor. If the awaiting task is cancelled, the call still
    runs to its end in its thread, and the iterator it made is closed then (its directory
    descriptor with it), not left to the garbage collector."""
    running = _running_loop()
    job = running.run_in_executor(executor, os.scandir, path)
    return await undone_if_cancelled(job, _close_iterator)


def _close_iterator(entries: Any) -> None:
    entries.close()


# -- os.path ----------------------------------------------------------------------------------


async def _stat_or_none(
    p: Any, follow_symlinks: bool = True, executor: _Executor | None = None
) -> os.stat_result | None:
    """stat (lstat, not following) as os.path's queries take it: None for the errors they
    answer False to."""
    try:
        if follow_symlinks:
            return await stat(p, executor=executor)
        return await lstat(p, executor=executor)
    except (OSError, ValueError):
        return None


class _Path:
    """uringloop.os.path: coroutine counterparts of os.path's file-system queries, their
    parameters named as os.path's. Each takes `executor=` (where it runs off the ring) and
    `loop=` (ignored), as aiofiles'."""

    @staticmethod
    async def exists(path: Any, *, executor: _Executor | None = None, loop: object = None) -> bool:
        return await _stat_or_none(path, executor=executor) is not None

    @staticmethod
    async def lexists(path: Any, *, executor: _Executor | None = None, loop: object = None) -> bool:
        return await _stat_or_none(path, follow_symlinks=False, executor=executor) is not None

    @staticmethod
    async def isfile(path: Any, *, executor: _Executor | None = None, loop: object = None) -> bool:
        st = await _stat_or_none(path, executor=executor)
        return st is not None and _stat.S_ISREG(st.st_mode)

    @staticmethod
    async def isdir(s: Any, *, executor: _Executor | None = None, loop: object = None) -> bool:
        st = await _stat_or_none(s, executor=executor)
        return st is not None and _stat.S_ISDIR(st.st_mode)

    @staticmethod
    async def islink(path: Any, *, executor: _Executor | None = None, loop: object = None) -> bool:
        st = await _stat_or_none(path, follow_symlinks=False, executor=executor)
        return st is not None and _stat.S_ISLNK(st.st_mode)

    @staticmethod
    async def getsize(
        filename: Any, *, executor: _Executor | None = None, loop: object = None
    ) -> int:
        return (await stat(filename, executor=executor)).st_size

    @staticmethod
    async def getmtime(
        filename: Any, *, executor: _Executor | None = None, loop: object = None
    ) -> float:
        return (await stat(filename, executor=executor)).st_mtime

    @staticmethod
    async def getatime(
        filename: Any, *, executor: _Executor | None = None, loop: object = None
    ) -> float:
        return (await stat(filename, executor=executor)).st_atime

    @staticmethod
    async def getctime(
        filename: Any, *, executor: _Executor | None = None, loop: object = None
    ) -> float:
        return (await stat(filename, executor=executor)).st_ctime

    @staticmethod
    async def samefile(
        f1: Any, f2: Any, *, executor: _Executor | None = None, loop: object = None
    ) -> bool:
        first = await stat(f1, executor=executor)
        return os.path.samestat(first, await stat(f2, executor=executor))

    @staticmethod
    async def sameopenfile(
        fp1: int, fp2: int, *, executor: _Executor | None = None, loop: object = None
    ) -> bool:
        first = await _fstat(fp1, executor)
        return os.path.samestat(first, await _fstat(fp2, executor))

    ismount = staticmethod(wrap(os.path.ismount))
    abspath = staticmethod(wrap(os.path.abspath))  # type: ignore[var-annotated,arg-type]


path = _Path()
