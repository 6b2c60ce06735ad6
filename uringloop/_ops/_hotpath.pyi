# Typing stub of the compiled twin of uringloop/_ops/hotpath.py (see _hotpath.c).
from .._buffers import SlotPool
from . import hotpath as _hotpath
from .hotpath import PositionedCore as _PositionedReference
from .hotpath import ReadCore as _Reference

class ReadCore(_Reference):
    def __init__(
        self, fd: int, size: int, offset: int, pool: SlotPool | None, into_result: bool = False
    ) -> None: ...

class PositionedCore(_PositionedReference): ...
class CopyRing(_hotpath.CopyRing): ...

write_entries = _hotpath.write_entries
deliver = _hotpath.deliver
file_facts = _hotpath.file_facts
open_cached = _hotpath.open_cached
read_cached = _hotpath.read_cached
read_many_cached = _hotpath.read_many_cached
split_requests = _hotpath.split_requests
