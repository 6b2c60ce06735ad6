# Typing stub of the compiled twin of uringloop/_buffers.py's Pin (see _buffers_c.c).
from . import _buffers

Pin = _buffers.Pin
