"""uringloop.tempfile: aiofiles.tempfile's four names, with files on the loop's io_uring.

    import uringloop.tempfile

    async with uringloop.tempfile.TemporaryFile() as f:         # unnamed; gone once closed
        await f.write(b"scratch")
        await f.seek(0)
        data = await f.read()
    async with uringloop.tempfile.NamedTemporaryFile("w+") as f:  # f.name is its path
        await f.write("text")
    async with uringloop.tempfile.SpooledTemporaryFile(max_size=1 << 20) as f:
        await f.write(b"in memory until it grows past 1 MiB")
    async with uringloop.tempfile.TemporaryDirectory() as path:   # a str; removed at exit
        ...

Parameters and semantics are the tempfile module's (and aiofiles'): each call returns an
awaitable async context manager, like uringloop.open; `async with` closes (and removes) at
exit, `await` gives the object and leaves closing to you. The files are uringloop.open's
file objects (AsyncBufferedFile for binary modes, AsyncTextFile for text, AsyncFileIO with
buffering=0), so their reads and writes are operations on the loop's ring, and so is
creating them: an openat with O_TMPFILE for TemporaryFile where the filesystem supports
it, else a random name created with O_EXCL (mode 0o600) as the tempfile module does, and
mkdirat (mode 0o700) for a directory. Removing a directory tree (the tempfile module's
way) runs on the executor. On a loop that is not a uringloop Loop everything runs on the
executor, as uringloop.open does. `loop` is accepted for aiofiles compatibility and ignored.

Nothing is left behind by a cancelled call: a creation cancelled midway takes back what
it made, a removal cancelled midway still runs to its end, and a creation the loop's
shutdown cut short has what it may have made removed once the loop is gone.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import os
import secrets
import shutil
import sys
import tempfile as _stdlib_tempfile
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any

from . import os as _uring_os
from ._files import call_for_descriptor, undone_if_cancelled
from ._files import open as _open
from ._loop import Loop
from ._outcomes import kept_task, look_at
from ._running import RUNNING_LOOP as _running_loop

__all__ = ["NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile"]

_Executor = concurrent.futures.Executor
# Flags of a new named file, as the tempfile module uses them: never follow a planted
# symlink, never open an existing file.
_CREATE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TMPFILE = getattr(os, "O_TMPFILE", 0)


def _default_encoding(mode: Any, encoding: str | None) -> str | None:
    """The encoding of a text file made without one, worked out as the tempfile module
    does as it is called, so that the EncodingWarning of python -X warn_default_encoding
    names the line that calls TemporaryFile, NamedTemporaryFile or SpooledTemporaryFile
    (this function's caller's caller), not one of this module's. Else `encoding` as it is
    (uringloop.open works it out)."""
    text = isinstance(mode, str) and "b" not in mode
    if encoding is None and text and sys.flags.warn_default_encoding:
        return io.text_encoding(None, 3)
    return encoding


# -- names ----------------------------------------------------------------------------------


async def _parts(suffix: Any, prefix: Any, dir: Any, executor: _Executor | None) -> tuple[Any, ...]:
    """(suffix, prefix, dir), all str or all bytes, with the tempfile module's defaults."""
    dir = None if dir is None else os.fspath(dir)
    given = [part for part in (suffix, prefix, dir) if part is not None]
    binary = any(isinstance(part, bytes) for part in given)
    if binary and not all(isinstance(part, bytes) for part in given):
        raise TypeError("Can't mix bytes and non-bytes in path components.")
    if dir is None:
        if _stdlib_tempfile.tempdir is None:
            # The first call probes candidate directories by writing to them: off the loop.
            await asyncio.get_running_loop().run_in_executor(executor, _stdlib_tempfile.gettempdir)
        dir = _stdlib_tempfile.gettempdirb() if binary else _stdlib_tempfile.gettempdir()
    if prefix is None:
        prefix = _stdlib_tempfile.gettempprefixb() if binary else _stdlib_tempfile.gettempprefix()
    if suffix is None:
        suffix = b"" if binary else ""
    return suffix, prefix, dir


def _candidates(suffix: Any, prefix: Any, dir: Any) -> Generator[Any, None, None]:
    """TMP_MAX random absolute paths in `dir`, str or bytes as the parts are (absolute, as
    the tempfile module's: a file is removed by its name, whatever the working directory
    is by then)."""
    dir = os.path.abspath(dir)
    for _ in range(_stdlib_tempfile.TMP_MAX):
        random = secrets.token_hex(6)
        middle = random.encode() if isinstance(prefix, bytes) else random
        yield os.path.join(dir, prefix + middle + suffix)


async def _create_file(path: Any, executor: _Executor | None) -> int:
    """A new file at `path` (O_EXCL), its descriptor; cancelled, it is closed and removed."""

    def remove(fd: int) -> None:
        try:
            os.close(fd)
        finally:
            os.unlink(path)

    since = time.time_ns()
    making = _open_fd(path, _CREATE, 0o600, executor)
    unknown = functools.partial(
        _remove_with_the_loop,
        path,
        _if_made_since(since, _remove_quietly),
        asyncio.get_running_loop(),
    )
    return await undone_if_cancelled(making, remove, unknown)


async def _create_exclusive(
    make: Callable[[Any], Awaitable[Any]], suffix: Any, prefix: Any, dir: Any
) -> tuple[Any, Any]:
    """Call make(path) on fresh names until one does not exist yet: (path, its result)."""
    for path in _candidates(suffix, prefix, dir):
        try:
            return path, await make(path)
        except FileExistsError:
            continue
    raise FileExistsError(17, "No usable temporary file name found", dir)


async def _open_fd(path: Any, flags: int, mode: int, executor: _Executor | None) -> int:
    loop = asyncio.get_running_loop()
    if isinstance(loop, Loop):
        return await loop.open_fd(path, flags, mode)
    fd: int = await call_for_descriptor(loop, executor, os.open, path, flags, mode)
    return fd


async def _close_fd(fd: int, executor: _Executor | None) -> None:
    loop = asyncio.get_running_loop()
    if isinstance(loop, Loop):
        await loop.close_fd(fd)
    else:  # shielded: the close goes on, whatever happens to the caller (as the ring's)
        await asyncio.shield(loop.run_in_executor(executor, os.close, fd))


async def _wrap(
    fd: int,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    executor: _Executor | None,
) -> Any:
    """uringloop.open's file object over `fd` (which it owns from now on)."""
    try:
        return await _open(fd, mode, buffering, encoding, errors, newline, executor=executor)
    except BaseException:
        await _close_fd(fd, executor)
        raise


async def _unlink_quietly(path: Any, executor: _Executor | None) -> None:
    try:
        await _uring_os.unlink(path, executor=executor)
    except FileNotFoundError:
        pass


async def _to_its_end(
    work: Awaitable[Any], done: Callable[[], object], left: Any, remove: Callable[[Any], None]
) -> None:
    """Await `work`, which removes `left` (a path), shielded: a cancelled caller does not
    stop it. done() once it has completed; if it is itself cancelled (the loop shutting
    down), remove(left) is made once the loop is gone instead (_remove_with_the_loop)."""
    future = asyncio.ensure_future(work)

    def finished(future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            _remove_with_the_loop(left, remove, future.get_loop())
        elif future.exception() is None:
            done()

    future.add_done_callback(finished)
    await asyncio.shield(future)


def _remove_with_the_loop(path: Any, remove: Callable[[Any], None], loop: object) -> None:
    """remove(path), for a path a creation or a removal cancelled by the loop's shutdown
    (or left pending by a loop closed) may have left (whether the operation made, or
    removed, it is not known then): once `loop`, the operation's, is gone (collected, or
    at the interpreter's exit), when none of its operations or executor jobs can still
    make it."""
    weakref.finalize(loop, remove, path)


# How much earlier than the clock a new inode's ctime may read (the file system's clock is
# the kernel's coarse one, a tick behind, or more on a busy virtual machine).
_CTIME_SLACK_NS = 1_000_000_000


def _if_made_since(since: int, remove: Callable[[Any], None]) -> Callable[[Any], None]:
    """remove, for a path only if what is there now is this process's making since `since`
    (time.time_ns() as the creation began: its ctime no earlier, its owner this user).
    A creation whose outcome is not known may have failed (EEXIST: the name was someone
    else's), and what is there then, made before, or by another user, is not removed."""

    def remove_if_ours(path: Any) -> None:
        try:
            st = os.lstat(path)
        except OSError:
            return
        if st.st_uid == os.geteuid() and st.st_ctime_ns >= since - _CTIME_SLACK_NS:
            remove(path)

    return remove_if_ours


def _rmdir_quietly(path: Any) -> None:
    """A directory whose making was cancelled: removed only if empty (a name that was
    someone else's keeps what it holds)."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def _rmtree_quietly(path: Any) -> None:
    _rmtree(path, ignore_errors=True)


def _rmtree(top: Any, ignore_errors: bool = False, repeated: bool = False) -> None:
    """shutil.rmtree(top), as the tempfile module's TemporaryDirectory removes its tree:
    an entry it may not remove has its directory (and itself, if not a symbolic link)
    made writable, and is removed again; what is gone already is no error. A symbolic
    link is never followed: nothing outside the tree changes. `repeated`: this removal is
    of a directory that refused it once (Python 3.13's rmtree reports an entry's error
    raised by the handler as the directory's): refused again, it gives up."""

    def handle(function: Any, path: Any, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, PermissionError) and not (repeated and path == top):
            try:
                if path != top:
                    _make_writable(os.path.dirname(path))
                _make_writable(path)
                try:
                    os.unlink(path)
                except IsADirectoryError:
                    _rmtree(path, ignore_errors, repeated=path == top)
                return
            except FileNotFoundError:
                return
            except OSError as again:
                exc = again
        if not ignore_errors:
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(top, onexc=handle)
    else:
        shutil.rmtree(top, onerror=lambda function, path, info: handle(function, path, info[1]))


def _make_writable(path: Any) -> None:
    """chmod 0o700 of `path`, unless it is a symbolic link (Linux has no lchmod: chmod would
    change what it points at)."""
    if not os.path.islink(path):
        os.chmod(path, 0o700)


# -- the awaitable context ------------------------------------------------------------------


class _Context:
    """What the four functions return: await it for the object, or `async with` it (the
    object's own __aenter__/__aexit__ then run: a file gives itself and closes, a
    directory gives its path and removes the tree)."""

    __slots__ = ("_make", "_obj")

    def __init__(self, make: Callable[[], Awaitable[Any]]) -> None:
        self._make = make
        self._obj: Any = None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._make().__await__()

    async def __aenter__(self) -> Any:
        # Entered once at a time: a second block would make a second object, and this
        # context could close or remove only one of them.
        if self._obj is not None:
            raise RuntimeError("this temporary file or directory context is already entered")
        self._obj = _ENTERING
        try:
            self._obj = await self._make()
            return await self._obj.__aenter__()
        except BaseException:
            self._obj = None
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        obj, self._obj = self._obj, None
        if obj is not None and obj is not _ENTERING:
            await obj.__aexit__(*exc_info)


_ENTERING = object()  # _Context._obj while its object is being made


# -- files ----------------------------------------------------------------------------------


async def _temporary_file(
    mode: str,
    buffering: int,
    encoding: str | None,
    newline: str | None,
    suffix: Any,
    prefix: Any,
    dir: Any,
    errors: str | None,
    executor: _Executor | None,
) -> Any:
    suffix, prefix, dir = await _parts(suffix, prefix, dir, executor)
    fd = -1
    if _TMPFILE:
        try:
            # No name at all; O_EXCL: it can never be linked into the file system later.
            flags = (_CREATE & ~os.O_CREAT) | _TMPFILE
            fd = await _open_fd(dir, flags, 0o600, executor)
        except OSError:
            pass  # a filesystem (or kernel) without O_TMPFILE: a name, removed at once
    if fd < 0:
        path, fd = await _create_exclusive(
            functools.partial(_create_file, executor=executor), suffix, prefix, dir
        )
        try:
            unlinking = _uring_os.unlink(path, executor=executor)
            await _to_its_end(unlinking, _nothing, path, _remove_quietly)
        except BaseException:
            await _close_fd(fd, executor)
            raise
    return await _wrap(fd, mode, buffering, encoding, errors, newline, executor)


def _nothing() -> None:
    pass


def TemporaryFile(
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    loop: object = None,
    executor: _Executor | None = None,
    *,
    errors: str | None = None,
) -> Any:
    """An unnamed temporary file (tempfile.TemporaryFile): it has no name in the file
    system, so nothing is left behind once it is closed. The object is a uringloop.open
    file; its `name` is the descriptor."""

    encoding = _default_encoding(mode, encoding)
    return _Context(
        lambda: _temporary_file(
            mode, buffering, encoding, newline, suffix, prefix, dir, errors, executor
        )
    )


class NamedTemporaryFileWrapper:
    """A named temporary file (what NamedTemporaryFile gives): the uringloop.open file
    object as `file`, its path as `name`, every other attribute the file's.

    With `delete` (the default), the file is removed when it is closed
    (`delete_on_close`, the default) or else when the `async with` block exits; if
    neither happens, when this object is garbage collected.
    """

    def __init__(
        self, file: Any, name: Any, delete: bool, delete_on_close: bool, executor: _Executor | None
    ) -> None:
        self.file = file
        self.name = name
        self.delete = delete
        self.delete_on_close = delete_on_close
        self._executor = executor
        self._removed = not delete
        self._finalizer = weakref.finalize(self, _remove_quietly, name) if delete else None

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.file, attribute)

    async def _remove(self) -> None:
        # The unlink runs to its end even if the caller is cancelled; the finalizer stays
        # until it has (so a file whose unlink the loop's shutdown cancelled is removed
        # when this object is collected, or at exit).
        if self._removed:
            return
        self._removed = True
        if _no_loop_runs():
            # (The block's exit, or close(), as its task is destroyed after its loop closed,
            # as the file's own close is then: a blocking call, not a loop's task.)
            _remove_quietly(self.name)
            self._unlinked()
            return
        unlinking = _unlink_quietly(self.name, self._executor)
        # (The callback keeps this object, so its finalizer waits for the unlink's end.)
        await _to_its_end(unlinking, self._unlinked, self.name, _remove_quietly)

    def _unlinked(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()

    async def close(self) -> None:
        """Close the file; remove it too if `delete` and `delete_on_close` are set."""
        try:
            await self.file.close()
        finally:
            if self.delete_on_close:
                await self._remove()

    async def __aenter__(self) -> NamedTemporaryFileWrapper:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.file.close()
        finally:
            await self._remove()

    def __aiter__(self) -> Any:
        return self.file.__aiter__()

    def __repr__(self) -> str:
        return f"<uringloop.tempfile.NamedTemporaryFileWrapper name={self.name!r} {self.file!r}>"


def _no_loop_runs() -> bool:
    """Whether no event loop runs in this thread: a removal is then made with blocking
    calls, where asyncio.ensure_future() would make a new event loop (left open, its
    descriptors with it) whose task nobody runs."""
    try:
        _running_loop()
    except RuntimeError:
        return True
    return False


def _remove_quietly(path: Any) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _named_temporary_file(
    mode: str,
    buffering: int,
    encoding: str | None,
    newline: str | None,
    suffix: Any,
    prefix: Any,
    dir: Any,
    delete: bool,
    delete_on_close: bool,
    executor: _Executor | None,
    errors: str | None,
) -> Any:
    """NamedTemporaryFile's work, its parameters in either order."""

    async def make() -> NamedTemporaryFileWrapper:
        parts = await _parts(suffix, prefix, dir, executor)

        path, fd = await _create_exclusive(
            functools.partial(_create_file, executor=executor), *parts
        )
        try:
            file = await _wrap(fd, mode, buffering, encoding, errors, newline, executor)
        except BaseException:
            # The name goes too, even if this task is cancelled on the way (see _to_its_end).
            await _to_its_end(_unlink_quietly(path, executor), _nothing, path, _remove_quietly)
            raise
        # As the tempfile module does: the file object's name is the path, not the fd.
        raw = getattr(file, "buffer", file)
        getattr(raw, "raw", raw).name = path
        return NamedTemporaryFileWrapper(file, path, delete, delete_on_close, executor)

    return _Context(make)


if sys.version_info >= (3, 12):

    def NamedTemporaryFile(
        mode: str = "w+b",
        buffering: int = -1,
        encoding: str | None = None,
        newline: str | None = None,
        suffix: Any = None,
        prefix: Any = None,
        dir: Any = None,
        delete: bool = True,
        delete_on_close: bool = True,
        loop: object = None,
        executor: _Executor | None = None,
        *,
        errors: str | None = None,
    ) -> Any:
        """A temporary file with a visible name (tempfile.NamedTemporaryFile): a
        NamedTemporaryFileWrapper, whose `name` is the path. `delete_on_close` is accepted
        on every Python version (the tempfile module has it from 3.12); its place is
        aiofiles': after `delete` from Python 3.12, a keyword after `executor` before."""
        encoding = _default_encoding(mode, encoding)
        return _named_temporary_file(
            mode, buffering, encoding, newline, suffix, prefix, dir, delete, delete_on_close,
            executor, errors,
        )  # fmt: skip

else:

    def NamedTemporaryFile(
        mode: str = "w+b",
        buffering: int = -1,
        encoding: str | None = None,
        newline: str | None = None,
        suffix: Any = None,
        prefix: Any = None,
        dir: Any = None,
        delete: bool = True,
        loop: object = None,
        executor: _Executor | None = None,
        *,
        delete_on_close: bool = True,
        errors: str | None = None,
    ) -> Any:
        """A temporary file with a visible name (tempfile.NamedTemporaryFile): a
        NamedTemporaryFileWrapper, whose `name` is the path. `delete_on_close` is accepted
        on every Python version (the tempfile module has it from 3.12); its place is
        aiofiles': after `delete` from Python 3.12, a keyword after `executor` before."""
        encoding = _default_encoding(mode, encoding)
        return _named_temporary_file(
            mode, buffering, encoding, newline, suffix, prefix, dir, delete, delete_on_close,
            executor, errors,
        )  # fmt: skip


# -- spooled --------------------------------------------------------------------------------


class SpooledTemporaryFileWrapper:
    """What SpooledTemporaryFile gives: data stays in memory (an io.BytesIO, or an
    io.TextIOWrapper over one) until a write or truncate takes it past `max_size`, or
    until rollover() or fileno(); then it moves to a TemporaryFile on the ring, at the
    same position, and every call after that is that file's.

    Methods are coroutines (in memory they complete without suspending), except
    readable(); fileno() is one too, because it rolls the file over first.
    """

    def __init__(
        self,
        max_size: int,
        mode: str,
        buffering: int,
        encoding: str | None,
        newline: str | None,
        suffix: Any,
        prefix: Any,
        dir: Any,
        errors: str | None,
        executor: _Executor | None,
    ) -> None:
        self._file: Any
        if "b" in mode:
            self._file = io.BytesIO()
        else:
            encoding = io.text_encoding(encoding)
            self._file = io.TextIOWrapper(
                io.BytesIO(), encoding=encoding, errors=errors, newline=newline
            )
        self._max_size = max_size
        self._rolled = False
        # The rollover under way: every call waits for it (a write to the memory file
        # meanwhile would be lost), and a second one joins it.
        self._rolling: asyncio.Future[None] | None = None
        # A close made while a rollover was under way: it waits for it, then closes the
        # file, whoever is cancelled (close()).
        self._closing: asyncio.Future[None] | None = None
        self._args = (mode, buffering, encoding, newline, suffix, prefix, dir, errors, executor)

    async def rollover(self) -> None:
        """Move the data to a TemporaryFile on the ring (once; later calls do nothing).
        It runs to its end even if the caller is cancelled."""
        if self._rolled:
            return
        if self._rolling is None:
            self._rolling = asyncio.ensure_future(self._roll_over())
            # Its failure is its callers' to see; with them all cancelled, nobody's (the
            # next call tries again).
            self._rolling.add_done_callback(look_at)
        await asyncio.shield(self._rolling)

    async def _settled(self) -> None:
        """Wait for a rollover under way, if any (its failure is its caller's to see), and
        for a close made meanwhile (a call after it finds the file closed)."""
        rolling = self._rolling
        if rolling is not None:
            await asyncio.wait((rolling,))
        closing = self._closing
        if closing is not None:
            await asyncio.wait((closing,))

    async def _roll_over(self) -> None:
        try:
            await self._move_to_a_file()
        finally:
            self._rolling = None

    async def _move_to_a_file(self) -> None:
        memory = self._file
        file = await _temporary_file(*self._args)
        try:
            position = memory.tell()
            data = memory.buffer.getvalue() if isinstance(memory, io.TextIOWrapper) else None
            if data is None:
                data = memory.getvalue()
            target = getattr(file, "buffer", file)  # text: the bytes go in as they are
            view = memoryview(data)
            while view:
                view = view[await target.write(view) :]
            await file.seek(position, 0)
        except BaseException:
            await file.close()
            raise
        self._file = file
        self._rolled = True
        memory.close()

    async def _check(self) -> None:
        if not self._rolled and self._max_size and self._file.tell() > self._max_size:
            await self.rollover()

    async def write(self, data: Any) -> int:
        await self._settled()
        if self._rolled:
            return await self._file.write(data)  # type: ignore[no-any-return]
        count: int = self._file.write(data)
        await self._check()
        return count

    async def writelines(self, lines: Iterable[Any]) -> None:
        await self._settled()
        if self._rolled:
            await self._file.writelines(lines)
            return
        self._file.writelines(lines)
        await self._check()

    async def truncate(self, size: int | None = None) -> int:
        await self._settled()
        if not self._rolled and size is not None and size > self._max_size:
            await self.rollover()
        return await self._call("truncate", size)  # type: ignore[no-any-return]

    async def fileno(self) -> int:
        """Roll over, then return the descriptor."""
        await self.rollover()
        return self._file.fileno()  # type: ignore[no-any-return]

    async def _call(self, method: str, *args: Any) -> Any:
        await self._settled()
        return await self._call_now(method, *args)

    async def _call_now(self, method: str, *args: Any) -> Any:
        """The file's `method`, awaited once it is a file of uringloop.open (rolled over)."""
        result = getattr(self._file, method)(*args)
        if self._rolled:
            result = await result
        return result

    async def read(self, size: int | None = -1) -> Any:
        return await self._call("read", size)

    async def readline(self, size: int | None = -1) -> Any:
        return await self._call("readline", size)

    async def readlines(self, hint: int | None = -1) -> list[Any]:
        return await self._call("readlines", hint)  # type: ignore[no-any-return]

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return await self._call("seek", offset, whence)  # type: ignore[no-any-return]

    async def tell(self) -> int:
        return await self._call("tell")  # type: ignore[no-any-return]

    async def flush(self) -> None:
        await self._call("flush")

    async def isatty(self) -> bool:
        return await self._call("isatty")  # type: ignore[no-any-return]

    async def seekable(self) -> bool:
        return await self._call("seekable")  # type: ignore[no-any-return]

    async def writable(self) -> bool:
        return await self._call("writable")  # type: ignore[no-any-return]

    def readable(self) -> bool:
        return self._file.readable()  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the file. Made while a rollover is under way, the close waits for it in a
        task of its own (kept, as a file's close behind another call: a loop's shutdown
        cancels every task), shielded: a cancelled caller does not drop it, and the file
        the rollover moves the data to is closed once it is there."""
        closing = self._closing
        if closing is None:
            rolling = self._rolling
            if rolling is None:
                await self._call("close")
                return
            closing = self._closing = kept_task(self._close_after(rolling))
            closing.add_done_callback(look_at)  # (its failure is its callers' to see)
        await asyncio.shield(closing)

    async def _close_after(self, rolling: asyncio.Future[None]) -> None:
        try:
            await asyncio.wait((rolling,))
            await self._call_now("close")
        finally:
            self._closing = None

    @property
    def closed(self) -> bool:
        return self._file.closed  # type: ignore[no-any-return]

    @property
    def mode(self) -> str:
        return getattr(self._file, "mode", self._args[0])

    @property
    def name(self) -> Any:
        """None while in memory; the descriptor once rolled over (a TemporaryFile)."""
        return self._file.name if self._rolled else None

    # The file's own, as the tempfile module's: a binary file has none (AttributeError).
    @property
    def encoding(self) -> str:
        return self._file.encoding  # type: ignore[no-any-return]

    @property
    def errors(self) -> str:
        return self._file.errors  # type: ignore[no-any-return]

    @property
    def newlines(self) -> Any:
        return self._file.newlines

    async def __aenter__(self) -> SpooledTemporaryFileWrapper:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> SpooledTemporaryFileWrapper:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __repr__(self) -> str:
        where = "rolled over" if self._rolled else "in memory"
        return f"<uringloop.tempfile.SpooledTemporaryFileWrapper {where}>"


def SpooledTemporaryFile(
    max_size: int = 0,
    mode: str = "w+b",
    buffering: int = -1,
    encoding: str | None = None,
    newline: str | None = None,
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    loop: object = None,
    executor: _Executor | None = None,
    *,
    errors: str | None = None,
) -> Any:
    """A temporary file kept in memory until it grows past `max_size` bytes (0: no
    limit), then moved to a TemporaryFile (tempfile.SpooledTemporaryFile): a
    SpooledTemporaryFileWrapper."""
    encoding = _default_encoding(mode, encoding)

    async def make() -> SpooledTemporaryFileWrapper:
        return SpooledTemporaryFileWrapper(
            max_size, mode, buffering, encoding, newline, suffix, prefix, dir, errors, executor
        )

    return _Context(make)


# -- directories ----------------------------------------------------------------------------


class TemporaryDirectoryWrapper:
    """What awaiting TemporaryDirectory gives: `name` (the absolute path) and the
    coroutines cleanup() and close(), which remove the tree. A directory still there when
    this object is garbage collected is removed then, with a ResourceWarning, as the
    tempfile module does (unless made with delete=False: then only cleanup() removes it)."""

    def __init__(
        self,
        name: Any,
        executor: _Executor | None,
        ignore_cleanup_errors: bool = False,
        delete: bool = True,
    ) -> None:
        self.name = name
        self._executor = executor
        self._ignore_cleanup_errors = ignore_cleanup_errors
        self._delete = delete
        self._finalizer = weakref.finalize(self, _implicit_cleanup, name, repr(self), delete)
        self._cleaning: asyncio.Future[None] | None = None  # the removal, once begun

    async def cleanup(self) -> None:
        """Remove the directory and everything in it, on the executor, as the tempfile
        module does (read-only entries made writable first; nothing to do once it is
        gone). The removal runs to its end even if the caller is cancelled, and a call
        made meanwhile waits for it; until it has, the directory is still removed when
        this object is collected. After a removal that failed, the next call tries again.
        With ignore_cleanup_errors, what cannot be removed is left, and no error raised."""
        if self._cleaning is None:
            if not self._finalizer.alive:
                return  # removed already
            if _no_loop_runs():
                # (The block's exit as its task is destroyed after its loop closed: removed
                # with blocking calls, as a uringloop.open file is closed then.)
                _remove_tree(self.name, self._ignore_cleanup_errors)
                self._finalizer.detach()
                return
            self._cleaning = asyncio.ensure_future(self._remove())
            # (The callback keeps this object, so its finalizer waits for the removal.)
            self._cleaning.add_done_callback(self._cleaned)
        await asyncio.shield(self._cleaning)

    async def _remove(self) -> None:
        loop = asyncio.get_running_loop()
        removing = loop.run_in_executor(
            self._executor, _remove_tree, self.name, self._ignore_cleanup_errors
        )
        await _to_its_end(removing, self._removed, self.name, _rmtree_quietly)

    def _cleaned(self, removal: asyncio.Future[None]) -> None:
        if removal.cancelled() or removal.exception() is not None:
            self._cleaning = None  # the next cleanup() tries again

    def _removed(self) -> None:
        self._finalizer.detach()

    async def close(self) -> None:
        """The same as cleanup()."""
        await self.cleanup()

    async def __aenter__(self) -> Any:
        return self.name

    async def __aexit__(self, *exc_info: object) -> None:
        if self._delete:
            await self.cleanup()

    def __repr__(self) -> str:
        return f"<uringloop.tempfile.TemporaryDirectoryWrapper {self.name!r}>"


def _remove_tree(name: Any, ignore_errors: bool) -> None:
    """The tempfile module's removal of a TemporaryDirectory (_rmtree): nothing when it is
    gone already."""
    if os.path.lexists(name):
        _rmtree(name, ignore_errors)


def _implicit_cleanup(name: Any, what: str, delete: bool) -> None:
    if delete:  # (as the tempfile module's: nothing removed, nothing said, without)
        _rmtree_quietly(name)
        warnings.warn(f"Implicitly cleaning up {what}", ResourceWarning, stacklevel=2)


def TemporaryDirectory(
    suffix: Any = None,
    prefix: Any = None,
    dir: Any = None,
    loop: object = None,
    executor: _Executor | None = None,
    *,
    ignore_cleanup_errors: bool = False,
    delete: bool = True,
) -> Any:
    """A new directory (tempfile.TemporaryDirectory, made with mode 0o700). `async with`
    gives its path and removes the tree at exit (not with delete=False); `await` gives a
    TemporaryDirectoryWrapper. With ignore_cleanup_errors, a removal leaves what it
    cannot remove without raising. The positional order is aiofiles' (`loop` fourth); the
    tempfile module's two later parameters are keywords here."""

    async def make() -> TemporaryDirectoryWrapper:
        parts = await _parts(suffix, prefix, dir, executor)

        async def create(path: Any) -> None:
            since = time.time_ns()
            making = _uring_os.mkdir(path, 0o700, executor=executor)
            made = _if_made_since(since, _rmdir_quietly)
            unknown = functools.partial(
                _remove_with_the_loop, path, made, asyncio.get_running_loop()
            )
            await undone_if_cancelled(making, lambda _: os.rmdir(path), unknown)

        path, _ = await _create_exclusive(create, *parts)
        return TemporaryDirectoryWrapper(
            os.path.abspath(path), executor, bool(ignore_cleanup_errors), bool(delete)
        )

    return _Context(make)
