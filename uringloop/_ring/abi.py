"""io_uring's user-space ABI, transcribed from <linux/io_uring.h>.

Names follow the header so that a grep starting from a man page finds the code:
IORING_SETUP_SQPOLL is SetupFlag.SQPOLL, IORING_OP_READ is Op.READ.
Every struct is little-endian native layout on the 64-bit architectures we support.
"""

from __future__ import annotations

import enum
import struct

SYS_IO_URING_SETUP = 425  # same on x86-64 and aarch64 (asm-generic numbering)
SYS_IO_URING_ENTER = 426
SYS_IO_URING_REGISTER = 427

# mmap offsets for the three regions of a ring.
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000


class SetupFlag(enum.IntFlag):
    IOPOLL = 1 << 0
    SQPOLL = 1 << 1
    SQ_AFF = 1 << 2
    CQSIZE = 1 << 3
    CLAMP = 1 << 4
    ATTACH_WQ = 1 << 5
    R_DISABLED = 1 << 6
    SUBMIT_ALL = 1 << 7
    COOP_TASKRUN = 1 << 8
    TASKRUN_FLAG = 1 << 9
    SQE128 = 1 << 10
    CQE32 = 1 << 11
    SINGLE_ISSUER = 1 << 12
    DEFER_TASKRUN = 1 << 13


class Feature(enum.IntFlag):
    SINGLE_MMAP = 1 << 0
    NODROP = 1 << 1
    SUBMIT_STABLE = 1 << 2
    RW_CUR_POS = 1 << 3
    CUR_PERSONALITY = 1 << 4
    FAST_POLL = 1 << 5
    POLL_32BITS = 1 << 6
    SQPOLL_NONFIXED = 1 << 7
    EXT_ARG = 1 << 8
    NATIVE_WORKERS = 1 << 9
    RSRC_TAGS = 1 << 10
    CQE_SKIP = 1 << 11
    LINKED_FILE = 1 << 12


class EnterFlag(enum.IntFlag):
    GETEVENTS = 1 << 0
    SQ_WAKEUP = 1 << 1
    SQ_WAIT = 1 << 2
    EXT_ARG = 1 << 3


class SqFlag(enum.IntFlag):
    """Flags the kernel sets in the SQ ring's flags word."""

    NEED_WAKEUP = 1 << 0
    CQ_OVERFLOW = 1 << 1
    TASKRUN = 1 << 2


class CqFlag(enum.IntFlag):
    """Flags user space sets in the CQ ring's flags word."""

    EVENTFD_DISABLED = 1 << 0


class SqeFlag(enum.IntFlag):
    FIXED_FILE = 1 << 0
    IO_DRAIN = 1 << 1
    IO_LINK = 1 << 2
    IO_HARDLINK = 1 << 3
    ASYNC = 1 << 4
    BUFFER_SELECT = 1 << 5
    CQE_SKIP_SUCCESS = 1 << 6


class Op(enum.IntEnum):
    """enum io_uring_op. The kernel version that added each we use: _ops/table.py."""

    NOP = 0
    READV = 1
    WRITEV = 2
    FSYNC = 3
    READ_FIXED = 4
    WRITE_FIXED = 5
    POLL_ADD = 6
    POLL_REMOVE = 7
    SYNC_FILE_RANGE = 8
    SENDMSG = 9
    RECVMSG = 10
    TIMEOUT = 11
    TIMEOUT_REMOVE = 12
    ACCEPT = 13
    ASYNC_CANCEL = 14
    LINK_TIMEOUT = 15
    CONNECT = 16
    FALLOCATE = 17
    OPENAT = 18
    CLOSE = 19
    FILES_UPDATE = 20
    STATX = 21
    READ = 22
    WRITE = 23
    FADVISE = 24
    MADVISE = 25
    SEND = 26
    RECV = 27
    OPENAT2 = 28
    EPOLL_CTL = 29
    SPLICE = 30
    PROVIDE_BUFFERS = 31
    REMOVE_BUFFERS = 32
    TEE = 33
    SHUTDOWN = 34
    RENAMEAT = 35
    UNLINKAT = 36
    MKDIRAT = 37
    SYMLINKAT = 38
    LINKAT = 39
    MSG_RING = 40
    FSETXATTR = 41
    SETXATTR = 42
    FGETXATTR = 43
    GETXATTR = 44
    SOCKET = 45
    URING_CMD = 46
    SEND_ZC = 47
    SENDMSG_ZC = 48
    READ_MULTISHOT = 49
    WAITID = 50
    FUTEX_WAIT = 51
    FUTEX_WAKE = 52
    FUTEX_WAITV = 53
    FIXED_FD_INSTALL = 54
    FTRUNCATE = 55


class Register(enum.IntEnum):
    """io_uring_register(2) opcodes we use."""

    REGISTER_EVENTFD = 4
    UNREGISTER_EVENTFD = 5
    REGISTER_EVENTFD_ASYNC = 7
    REGISTER_PROBE = 8
    REGISTER_ENABLE_RINGS = 12


FSYNC_DATASYNC = 1 << 0  # IORING_FSYNC_DATASYNC
ASYNC_CANCEL_ALL = 1 << 0  # IORING_ASYNC_CANCEL_ALL
IO_URING_OP_SUPPORTED = 1 << 0

# struct io_uring_params: 10 u32 header fields, then io_sqring_offsets and io_cqring_offsets
# (each 8 u32 + 1 u64).
PARAMS = struct.Struct("<10I" + "8IQ" + "8IQ")
PARAMS_SIZE = 120
# Field indexes in PARAMS.unpack(...).
P_SQ_ENTRIES, P_CQ_ENTRIES, P_FLAGS, P_SQ_THREAD_CPU, P_SQ_THREAD_IDLE, P_FEATURES, P_WQ_FD = range(
    7
)
# io_sqring_offsets: head, tail, ring_mask, ring_entries, flags, dropped, array, resv1, user_addr
SQ_OFF = 10
# io_cqring_offsets: head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1, user_addr
CQ_OFF = 19

# struct io_uring_sqe (64 bytes):
#   u8 opcode, u8 flags, u16 ioprio, s32 fd, u64 off|addr2, u64 addr, u32 len,
#   u32 op_flags (rw_flags, open_flags, fsync_flags, ...), u64 user_data,
#   u16 buf_index, u16 personality, s32 splice_fd_in|file_index, u64 addr3, u64 pad
SQE = struct.Struct("<BBHiQQIIQHHiQQ")
SQE_SIZE = 64

# struct io_uring_cqe (16 bytes): u64 user_data, s32 res, u32 flags
CQE = struct.Struct("<QiI")
CQE_SIZE = 16

# struct io_uring_probe: u8 last_op, u8 ops_len, u16 resv, u32 resv2[3], then ops_len of
# struct io_uring_probe_op: u8 op, u8 resv, u16 flags, u32 resv2
PROBE_HEADER = struct.Struct("<BBH3I")
PROBE_OP = struct.Struct("<BBHI")
PROBE_OPS = 256

# struct iovec: void *iov_base, size_t iov_len
IOVEC = struct.Struct("<QQ")

# struct statx (256 bytes). Offsets of the fields we read.
STATX_SIZE = 256
STATX_HEAD = struct.Struct("<IIQIIIHHQQQQ")  # mask .. attributes_mask, 64 bytes
STATX_TIMESTAMP = struct.Struct("<qIi")  # tv_sec, tv_nsec, reserved
STATX_ATIME_OFF = 64
STATX_BTIME_OFF = 80
STATX_CTIME_OFF = 96
STATX_MTIME_OFF = 112
STATX_DEVS = struct.Struct("<IIII")  # rdev_major, rdev_minor, dev_major, dev_minor at 128
STATX_DEVS_OFF = 128
STATX_DIO = struct.Struct("<II")  # dio_mem_align, dio_offset_align at 152
STATX_DIO_OFF = 152


class StatxMask(enum.IntFlag):
    """STATX_* bits: the fields statx() is asked for (`mask=`) and got (StatxResult.mask)."""

    TYPE = 0x1
    MODE = 0x2
    NLINK = 0x4
    UID = 0x8
    GID = 0x10
    ATIME = 0x20
    MTIME = 0x40
    CTIME = 0x80
    INO = 0x100
    SIZE = 0x200
    BLOCKS = 0x400
    BASIC_STATS = 0x7FF
    BTIME = 0x800
    MNT_ID = 0x1000
    DIOALIGN = 0x2000


AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EMPTY_PATH = 0x1000
