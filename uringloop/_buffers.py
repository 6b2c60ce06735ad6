"""Addresses of Python buffers for the kernel, and a pool of scratch buffers for reads.

Invariant: memory whose address went into an SQE stays valid until the operation's CQE is
reaped. A Pin holds a buffer export until release(): the object cannot
be resized or freed meanwhile (bytearray.extend raises BufferError). Pool slots return to
the free list only through free(), which operations call from complete().
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import sys
from collections.abc import Awaitable, Callable

from ._errors import not_bytes_like, type_name
from ._twins import compiled

PyBUF_SIMPLE = 0
PyBUF_WRITABLE = 1


class _PyBuffer(ctypes.Structure):
    # Py_buffer from CPython's Include/pybuffer.h; `obj` is a strong reference that
    # PyBuffer_Release drops, so it is declared as a plain pointer (ctypes must not touch it).
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None


class Pin:
    """A buffer export held open: `address` and `nbytes` stay valid until release().

    Refused as os.preadv/os.pwrite refuse them: TypeError for an object that is not a
    bytes-like one, BufferError for one that is not C-contiguous (or, for a read, not
    writable).

    A writable buffer is held by a memoryview and a ctypes char at its first byte
    (c_char.from_buffer, cheaper than calling PyObject_GetBuffer through ctypes); a
    read-only one by a Py_buffer from PyObject_GetBuffer (ctypes only maps writable memory).
    """

    __slots__ = ("_anchor", "_memory", "_view", "address", "nbytes")

    def __init__(self, obj: object, writable: bool) -> None:
        # Everything release() and __del__ touch is set first.
        self._view: _PyBuffer | None = None
        self._memory: memoryview | None = None
        self._anchor: ctypes.c_char | None = None
        if writable:
            self._pin_writable(obj)
            return
        if type(obj) is memoryview:
            # A view of its own: the caller's stays free to release while the kernel
            # reads (this one keeps the memory exported until release()).
            obj = self._memory = memoryview(obj)
        # Held before the export is taken: interrupted (a signal handler's exception) once
        # PyObject_GetBuffer has returned, release() gives back what it took.
        view = self._view = _PyBuffer()
        try:
            _get_buffer(obj, ctypes.byref(view), PyBUF_SIMPLE)
        except BaseException as exc:
            self.release()
            if isinstance(exc, BufferError):
                raise BufferError("memoryview: underlying buffer is not C-contiguous") from None
            if isinstance(exc, TypeError):
                raise not_bytes_like(obj) from None
            raise
        self.address = view.buf or 0
        self.nbytes = view.len

    def _pin_writable(self, obj: object) -> None:
        try:
            memory = memoryview(obj)  # type: ignore[arg-type]
        except TypeError:
            raise not_bytes_like(obj) from None
        if not memory.c_contiguous:
            memory.release()
            raise BufferError("memoryview: underlying buffer is not C-contiguous")
        if memory.readonly:
            memory.release()
            raise BufferError("memoryview: underlying buffer is not writable")
        self._memory = memory
        self.nbytes = memory.nbytes
        if self.nbytes:
            # The char keeps its own export of `memory` until it is freed.
            anchor = ctypes.c_char.from_buffer(memory)
            self._anchor = anchor
            self.address = ctypes.addressof(anchor)
        else:
            self.address = 0

    def release(self) -> None:
        """Drop the export. Idempotent; call only once the kernel is done with the memory."""
        view = self._view
        if view is not None:
            self._view = None
            if view.obj:  # (None: PyObject_GetBuffer refused it, or was not called yet)
                _release_buffer(ctypes.byref(view))
        memory = self._memory
        if memory is not None:
            self._anchor = None  # frees the char and its export of `memory` (refcounting)
            self._memory = None
            try:
                memory.release()
            except BufferError:  # something still exports it: released when it is freed
                pass

    def __del__(self) -> None:
        # Only reached when the owner dropped the pin after its operation completed or
        # never started; the object stays exported (and alive) until this runs.
        try:
            self.release()
        except AttributeError:  # __init__ interrupted before its first line: nothing held
            pass


# The Pin in use: the compiled twin (_buffers_c.c) unless URINGLOOP_NO_EXTENSIONS is set or
# it was not built. Made and recognised (type(x) is PIN) through this name.
PIN: type[Pin] = compiled("uringloop._buffers_c", "Pin") or Pin
PINS_IMPLEMENTATION = "python" if PIN is Pin else "c"


def flat_view(data: object) -> memoryview:
    """A new 1-D view of `data`'s bytes (the caller releases it), refused as os.write and
    the built-in files refuse them: TypeError for what is not bytes-like, BufferError for
    a view that is not C-contiguous; a view with a zero in its shape is an empty one."""
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise not_bytes_like(data) from None
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    with view:
        if not view.c_contiguous:
            raise BufferError("memoryview: underlying buffer is not C-contiguous")
        if not view.nbytes:  # (such a view cannot be cast)
            return memoryview(b"")
        return view.cast("B")


def writable_flat_view(buffer: object, argument: str) -> memoryview:
    """A new 1-D writable view of `buffer`'s bytes (the caller releases it), refused as the
    built-in files' readinto() refuses what is not a read-write, C-contiguous bytes-like
    object: a TypeError naming the `argument` ("readinto() argument"), and nothing of it
    kept."""
    try:
        view = memoryview(buffer)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # (ValueError: a released memoryview)
        view = None
    if view is not None and not view.readonly and view.c_contiguous:
        if view.format == "B" and view.ndim == 1:
            return view
        with view:
            if not view.nbytes:  # (such a view cannot be cast)
                return memoryview(bytearray())
            return view.cast("B")
    if view is not None:
        view.release()
    named = "None" if buffer is None else type_name(buffer, 50)  # (as CPython names them)
    raise TypeError(f"{argument} must be read-write bytes-like object, not {named}")


def release_views(*views: memoryview) -> None:
    """Release views a call made of its caller's buffer, once it is done with them: so
    that a failure's traceback, which keeps the call's frames, does not keep the buffer
    exported (a bytearray could not be resized meanwhile, as it can after os.write fails).
    One still exported is left to the collector: an operation in flight, or a read in a
    worker thread cancelled while it runs, still uses it, and the buffer must outlive that."""
    for view in views:
        try:
            view.release()
        except BufferError:
            pass


async def write_all(
    write: Callable[[memoryview, int], Awaitable[int]],
    view: memoryview,
    offset: int,
    limit: int | None = None,
) -> None:
    """Write all of `view` from `offset` with `write(part, offset)`, again after each
    short write (OSError EIO for a write of nothing): each part the rest of the view, of
    at most `limit` bytes, and released once its write returns (see release_views)."""
    done = 0
    while done < len(view):
        part = view[done : None if limit is None else done + limit]
        try:
            n = await write(part, offset + done)
        finally:
            release_views(part)
        if n == 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        done += n


def _bytes_data_offset() -> int:
    """Offset of a bytes object's data from its id(), checked against ctypes."""
    probe = b"uringloop"
    offset = sys.getsizeof(b"") - 1
    expected = ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p).value
    return offset if id(probe) + offset == expected else -1


_BYTES_OFFSET = _bytes_data_offset()


def bytes_address(data: bytes) -> int:
    """Address of an exact `bytes` object's payload. The caller keeps `data` referenced."""
    if _BYTES_OFFSET >= 0:
        return id(data) + _BYTES_OFFSET
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


def anonymous_map(size: int) -> mmap.mmap:
    """A private anonymous mapping of `size` bytes; MemoryError where the address space has
    no room for it (mmap's ENOMEM), as for a bytes object of that size."""
    try:
        return mmap.mmap(-1, size)
    except OSError as exc:
        if exc.errno == errno.ENOMEM:
            raise MemoryError from None
        raise


class ScratchBuffer:
    """The buffer of one read that has no pool slot (large, or a foreign thread's).

    Up to SCRATCH_HEAP_MAX bytes it is heap memory. Larger, it is a private anonymous
    mapping: pages cost memory only once the kernel writes them, so a read of a huge size
    into a small file stays cheap. (A mapping per small read costs an mmap, a page fault
    and a munmap, whose TLB shootdown reaches every CPU running this process's threads.)
    Either way it starts on a page boundary, so an O_DIRECT read may use it.
    """

    __slots__ = ("_heap", "_map", "address")

    def __init__(self, size: int) -> None:
        self._map: mmap.mmap | None = None
        self._heap: ctypes.Array[ctypes.c_char] | None = None
        if size <= SCRATCH_HEAP_MAX:
            self._heap = ctypes.create_string_buffer(size + PAGE)
            start = ctypes.addressof(self._heap)
            self.address = (start + PAGE - 1) & ~(PAGE - 1)
        else:
            self._map = anonymous_map(size)
            self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))

    def take(self, n: int, start: int = 0) -> bytes:
        """The `n` bytes from byte `start`."""
        if self._heap is not None:
            return ctypes.string_at(self.address + start, n)
        assert self._map is not None
        return self._map[start : start + n]

    def release(self) -> None:
        """Free the memory; only once the kernel is done with it."""
        self.close()

    def close(self) -> None:
        self._heap = None
        m, self._map = self._map, None
        if m is not None:
            m.close()


SCRATCH_HEAP_MAX = 64 << 10  # bytes; larger scratch buffers are mappings of their own
PAGE = mmap.PAGESIZE
# Size classes of pooled read buffers, in bytes. Reads larger than the largest class get a
# mapping of their own (a fresh mapping costs a page fault per 4 KiB on first touch, which
# made 128 KiB-1 MiB reads 4x slower per byte than pooled ones).
SLOT_SIZES = (4096, 16384, 65536, 262144, 1048576)
# Bytes per arena, the pool's unit of growth; pages are only backed once written.
_ARENA_BYTES = 4 << 20
# The pool never shrinks, so each size class stops growing here; reads beyond it get
# mappings of their own (slower, but memory after a burst stays bounded).
_MAX_CLASS_BYTES = 32 << 20


class SlotPool:
    """Pooled anonymous-mmap buffers for reads into a new buffer.

    alloc(size) -> slot id, or -1 when `size` exceeds the largest class. Per slot, the
    parallel lists give its arena, offset, address and free list, so a hot path can copy
    out (`arena_of[slot][off:off + n]`) and free (`free_list_of[slot].append(slot)`)
    without method calls. Not thread-safe: the loop thread owns it.
    """

    def __init__(self) -> None:
        self._arenas: list[mmap.mmap] = []
        self.arena_of: list[mmap.mmap] = []  # {slot: arena}
        self.offset_of: list[int] = []  # {slot: offset in its arena}
        self.address_of: list[int] = []  # {slot: address}
        self.free_list_of: list[list[int]] = []  # {slot: free list of its size class}
        self._free: dict[int, list[int]] = {size: [] for size in SLOT_SIZES}
        self.free_small = self._free[SLOT_SIZES[0]]
        self._class_bytes: dict[int, int] = {}  # {size class: bytes of arenas}

    def _grow(self, size: int) -> None:
        count = max(1, _ARENA_BYTES // size)
        arena = anonymous_map(size * count)
        self._class_bytes[size] = self._class_bytes.get(size, 0) + size * count
        base = ctypes.addressof(ctypes.c_char.from_buffer(arena))
        self._arenas.append(arena)
        free = self._free[size]
        for i in range(count):
            slot = len(self.arena_of)
            self.arena_of.append(arena)
            self.offset_of.append(i * size)
            self.address_of.append(base + i * size)
            self.free_list_of.append(free)
            free.append(slot)

    def alloc(self, size: int) -> int:
        for cls in SLOT_SIZES:
            if size <= cls:
                free = self._free[cls]
                if not free:
                    if self._class_bytes.get(cls, 0) >= _MAX_CLASS_BYTES:
                        return -1
                    try:
                        self._grow(cls)
                    except MemoryError:  # no memory for an arena: no slot, as when full
                        return -1
                return free.pop()
        return -1

    def address(self, slot: int) -> int:
        return self.address_of[slot]

    def take(self, slot: int, n: int, start: int = 0) -> bytes:
        """The `n` bytes from byte `start` of `slot`."""
        off = self.offset_of[slot] + start
        return self.arena_of[slot][off : off + n]

    def free(self, slot: int) -> None:
        self.free_list_of[slot].append(slot)

    def in_use(self) -> int:
        return len(self.arena_of) - sum(len(f) for f in self._free.values())
