# Typing stub of the compiled twin of uringloop/_handle.py (see _handle_c.c).
from . import _handle

ready_handle = _handle.ready_handle
