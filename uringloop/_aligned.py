"""Page-aligned buffers and alignment checks for O_DIRECT I/O.

O_DIRECT moves data between the device and the caller's memory with no page cache in
between, so the kernel demands alignment: the file offset and the length must be multiples
of the filesystem's `dio_offset_align`, and the buffer's address a multiple of
`dio_mem_align` (statx(2) reports both under STATX_DIOALIGN; Linux 6.1+). A misaligned
request fails with EINVAL and no hint of which value was wrong, so we check first and
name the alignment in a ValueError.

Anonymous mmap memory starts on a page boundary, which satisfies every dio_mem_align seen
in practice (512 or 4096 bytes, at most a page). Standard library only.
"""

from __future__ import annotations

import ctypes
import mmap
import operator

__all__ = [
    "DEFAULT_ALIGNMENT",
    "PAGE_SIZE",
    "aligned_buffer",
    "buffer_address",
    "check_aligned",
    "is_aligned",
]

PAGE_SIZE = mmap.PAGESIZE
# The alignment to assume when statx cannot tell (no STATX_DIOALIGN): a page, which is a
# multiple of every logical block size a Linux block device reports (512 .. 4096).
DEFAULT_ALIGNMENT = 4096


def aligned_buffer(size: int, alignment: int = PAGE_SIZE) -> mmap.mmap:
    """A zero-filled writable buffer of `size` bytes whose address is `alignment`-aligned.

    The result is an anonymous mmap: use it wherever a writable bytes-like object is
    accepted (readinto, memoryview, write) and close() it, or let it be collected, when
    done. `alignment` must be a power of two no larger than the page size.
    """
    size = operator.index(size)
    alignment = operator.index(alignment)
    if size <= 0:
        raise ValueError(f"size must be positive, not {size}")
    if alignment <= 0 or alignment & (alignment - 1):
        raise ValueError(f"alignment must be a power of two, not {alignment}")
    if alignment > PAGE_SIZE:
        raise ValueError(
            f"alignment {alignment} is larger than the page size ({PAGE_SIZE}); "
            "page-aligned mmap memory is all this allocator offers"
        )
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def buffer_address(buffer: object) -> int:
    """The address of a writable, C-contiguous buffer's first byte."""
    with memoryview(buffer) as view:  # type: ignore[arg-type]
        if view.readonly:
            raise TypeError(f"a writable buffer is required, not {type(buffer).__name__}")
        if not view.c_contiguous:
            raise TypeError("a contiguous buffer is required")
        if view.nbytes == 0:
            return 0
        with view.cast("B") as flat:
            # from_buffer holds an export only while the ctypes object lives.
            return ctypes.addressof(ctypes.c_char.from_buffer(flat))


def is_aligned(value: int, alignment: int) -> bool:
    return value % alignment == 0


def check_aligned(value: int, alignment: int, what: str) -> None:
    """Raise ValueError unless `value` (an offset, length or address) is aligned."""
    if value % alignment:
        raise ValueError(
            f"O_DIRECT needs the {what} aligned to {alignment} bytes; {value} is not "
            f"(use a multiple of {alignment}; uringloop.aligned_buffer() gives aligned memory)"
        )
