"""What a device's filesystem tells of its regular files: whether they close inline (for
those, close(2) does what the ring's CLOSE would, without the round trip), and whether
their contents are made as they are read.

io_uring runs IORING_OP_CLOSE inside io_uring_enter, on the submitting thread, unless
the file has a flush method (network and stacked filesystems have one: NFS, CIFS, FUSE,
Ceph, overlayfs); those it hands to a kernel worker, as a close there may wait for the
server. The local filesystems of CLOSES_INLINE have none for their regular files, so
close(2) on the loop's thread blocks it exactly as long as the ring's CLOSE would (the
file's final release runs on the return to user space either way, ext4's flush of a
replaced file's data included), and costs one system call instead of an operation.

The kernel's own filesystems of GENERATED_ON_READ make a file's text at each read (procfs's
seq_file: a read at another offset than where the last one ended makes it again, and its
values may have changed meanwhile), so bytes read past a line cannot be read again later
as they were.

A device's filesystem is read from /proc/self/mountinfo (no call on the filesystem
itself, which could wait for a server), and kept for at most RECHECK_AFTER seconds: a
device number is reused once its filesystem is unmounted, by whatever is mounted next. A
device found nowhere there (a btrfs subvolume's anonymous device, a mount made in another
namespace) is not among them.
"""

from __future__ import annotations

import os
from time import monotonic as _monotonic

# Filesystems whose regular files have no flush method (file_operations.flush).
CLOSES_INLINE = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs"})
# Filesystems whose files' contents are made at each read.
GENERATED_ON_READ = frozenset(
    {"proc", "sysfs", "debugfs", "tracefs", "securityfs", "configfs", "cgroup", "cgroup2",
     "pstore", "bpf", "efivarfs", "selinuxfs", "binfmt_misc", "fusectl"}
)  # fmt: skip
MOUNTINFO = "/proc/self/mountinfo"
RECHECK_AFTER = 1.0  # seconds an answer is kept

# st_dev -> (its filesystem, when it was found); a process sees few devices.
_filesystems: dict[int, tuple[str | None, float]] = {}


def closes_inline(st_dev: int) -> bool:
    """True when a regular file on device `st_dev` closes inside io_uring_enter."""
    return _known_filesystem(st_dev) in CLOSES_INLINE


def generated_on_read(st_dev: int) -> bool:
    """True when a regular file on device `st_dev` is made as it is read (/proc's)."""
    return _known_filesystem(st_dev) in GENERATED_ON_READ


def _known_filesystem(st_dev: int) -> str | None:
    """filesystem_of(st_dev), as found at most RECHECK_AFTER seconds ago."""
    now = _monotonic()
    known = _filesystems.get(st_dev)
    if known is None or now - known[1] > RECHECK_AFTER:
        known = _filesystems[st_dev] = (filesystem_of(st_dev), now)
    return known[0]


def filesystem_of(st_dev: int) -> str | None:
    """The type of the filesystem mounted from device `st_dev` ("ext4"), or None."""
    wanted = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                # id parent major:minor root mount-point options [optional...] - type ...
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and "-" in fields[6:]:
                    index = fields.index("-", 6) + 1
                    return fields[index] if index < len(fields) else None
    except OSError:
        pass
    return None
