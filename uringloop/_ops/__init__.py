"""Operations (L2): declared once in table.py, each one Operation per request.

args.py       Python arguments to C values, converted as os converts them
sqe.py        the SQE's fields with their kernel types; a whole entry built and checked
operation.py  Operation (one request: its SQE, what it points into, its outcome), Entry,
              Read, ReadBatch, AsyncCancel
hotpath.py    the hot half of Read (its buffer, SQE and completion), and the loops that
              write SQEs and deliver completions (Reaper: deliver, then consume the
              CQEs); twin: _hotpath.c
state.py      an operation's states
spec.py       what a declaration states, and `declare`
table.py      the declarations, one per operation
statx.py      StatxResult, StatxTimestamp
libc.py       the blocking calls os lacks (statx, renameat2, fallocate)
"""

from __future__ import annotations

from .hotpath import DELIVER as DELIVER
from .hotpath import WRITE_ENTRIES as WRITE_ENTRIES
from .hotpath import Reaper as Reaper
from .operation import (
    DONE as DONE,
)
from .operation import (
    MAX_RW_COUNT as MAX_RW_COUNT,
)
from .operation import (
    ON_RING as ON_RING,
)
from .operation import (
    QUEUED as QUEUED,
)
from .operation import (
    STREAM_ON_RING as STREAM_ON_RING,
)
from .operation import (
    STREAM_WAITS_NOTED as STREAM_WAITS_NOTED,
)
from .operation import (
    SUBMITTED as SUBMITTED,
)
from .operation import (
    AsyncCancel as AsyncCancel,
)
from .operation import (
    Operation as Operation,
)
from .operation import (
    Read as Read,
)
from .operation import (
    ReadBatch as ReadBatch,
)
from .operation import (
    StreamRead as StreamRead,
)
from .operation import (
    StreamReadBatch as StreamReadBatch,
)
from .operation import (
    Waiter as Waiter,
)
from .operation import (
    check_position as check_position,
)
from .operation import (
    checked_positions as checked_positions,
)
from .operation import (
    copies_cached as copies_cached,
)
from .operation import (
    copies_refused as copies_refused,
)
from .operation import (
    forget_descriptor as forget_descriptor,
)
from .operation import (
    forget_positions as forget_positions,
)
from .operation import (
    give_back_stream_waits as give_back_stream_waits,
)
from .operation import (
    has_o_direct as has_o_direct,
)
from .operation import (
    keep_positions as keep_positions,
)
from .operation import (
    made_at_position as made_at_position,
)
from .operation import (
    note_stream_wait as note_stream_wait,
)
from .operation import (
    read_args as read_args,
)
from .operation import (
    ring_leaves_position as ring_leaves_position,
)
from .operation import (
    stream_waits_made as stream_waits_made,
)
from .operation import (
    take_stream_waits as take_stream_waits,
)
from .spec import Spec as Spec
from .sqe import USER_DATA_WORD as USER_DATA_WORD
from .statx import StatxResult as StatxResult
from .statx import StatxTimestamp as StatxTimestamp
from .table import OPERATIONS as OPERATIONS
from .table import note_stream_reads as note_stream_reads
from .table import read_many_args as read_many_args
