# Typing stub of the compiled twin of uringloop/_ops/readcore.py (see _readcore.c).
from .._buffers import SlotPool
from .readcore import ReadCore as _Reference

class ReadCore(_Reference):
    def __init__(self, fd: int, size: int, offset: int, pool: SlotPool | None) -> None: ...
