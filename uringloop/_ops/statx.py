"""The records statx(2) fills in: StatxResult and StatxTimestamp."""

from __future__ import annotations

import os
import stat as _stat
from dataclasses import dataclass
from typing import Any

from .._ring import abi


@dataclass(frozen=True, slots=True)
class StatxTimestamp:
    """A statx timestamp: whole seconds and nanoseconds since the epoch."""

    sec: int
    nsec: int

    @property
    def ns(self) -> int:
        """The timestamp in nanoseconds, like os.stat_result.st_mtime_ns."""
        return self.sec * 1_000_000_000 + self.nsec


@dataclass(frozen=True, slots=True)
class StatxResult:
    """struct statx. `mask` says which fields the filesystem filled in."""

    mask: int
    blksize: int
    attributes: int
    nlink: int
    uid: int
    gid: int
    mode: int
    ino: int
    size: int
    blocks: int
    attributes_mask: int
    atime: StatxTimestamp
    btime: StatxTimestamp
    ctime: StatxTimestamp
    mtime: StatxTimestamp
    rdev_major: int
    rdev_minor: int
    dev_major: int
    dev_minor: int
    dio_mem_align: int  # 0 when the filesystem does not report it (STATX_DIOALIGN)
    dio_offset_align: int

    @classmethod
    def from_buffer(cls, buf: Any) -> StatxResult:
        """Parse a struct statx the kernel filled in."""
        head = abi.STATX_HEAD.unpack_from(buf, 0)
        atime, btime, ctime, mtime = (
            StatxTimestamp(*abi.STATX_TIMESTAMP.unpack_from(buf, off)[:2])
            for off in (
                abi.STATX_ATIME_OFF,
                abi.STATX_BTIME_OFF,
                abi.STATX_CTIME_OFF,
                abi.STATX_MTIME_OFF,
            )
        )
        devs = abi.STATX_DEVS.unpack_from(buf, abi.STATX_DEVS_OFF)
        dio = abi.STATX_DIO.unpack_from(buf, abi.STATX_DIO_OFF)
        mask, blksize, attributes, nlink, uid, gid, mode, _spare, ino, size, blocks, amask = head
        if not mask & abi.StatxMask.DIOALIGN:
            dio = (0, 0)
        return cls(
            mask, blksize, attributes, nlink, uid, gid, mode, ino, size, blocks, amask,
            atime, btime, ctime, mtime, *devs, *dio,
        )  # fmt: skip

    @classmethod
    def from_stat(cls, st: os.stat_result) -> StatxResult:
        """The same fields from an os.stat_result (no birth time, no DIO alignment)."""

        def ts(ns: int) -> StatxTimestamp:
            return StatxTimestamp(*divmod(ns, 1_000_000_000))

        return cls(
            int(abi.StatxMask.BASIC_STATS), st.st_blksize, 0, st.st_nlink, st.st_uid, st.st_gid,
            st.st_mode, st.st_ino, st.st_size, st.st_blocks, 0,
            ts(st.st_atime_ns), StatxTimestamp(0, 0), ts(st.st_ctime_ns), ts(st.st_mtime_ns),
            os.major(st.st_rdev), os.minor(st.st_rdev), os.major(st.st_dev), os.minor(st.st_dev),
            0, 0,
        )  # fmt: skip

    def to_stat_result(self) -> os.stat_result:
        """The same information as an os.stat_result, as os.stat() returns it."""
        a, m, c = self.atime, self.mtime, self.ctime
        return os.stat_result(
            (
                self.mode, self.ino, os.makedev(self.dev_major, self.dev_minor), self.nlink,
                self.uid, self.gid, self.size, a.sec, m.sec, c.sec,
            ),
            {
                "st_atime": a.sec + a.nsec * 1e-9,  # (as os.stat computes it, to the last bit)
                "st_mtime": m.sec + m.nsec * 1e-9,
                "st_ctime": c.sec + c.nsec * 1e-9,
                "st_atime_ns": a.ns,
                "st_mtime_ns": m.ns,
                "st_ctime_ns": c.ns,
                "st_blksize": self.blksize,
                "st_blocks": self.blocks,
                "st_rdev": os.makedev(self.rdev_major, self.rdev_minor),
            },
        )  # fmt: skip

    def is_dir(self) -> bool:
        """True for a directory (S_ISDIR of `mode`)."""
        return _stat.S_ISDIR(self.mode)

    def is_file(self) -> bool:
        """True for a regular file (S_ISREG of `mode`)."""
        return _stat.S_ISREG(self.mode)
