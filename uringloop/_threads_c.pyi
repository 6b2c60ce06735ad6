# Typing stub of the compiled twin of uringloop.threads' pread (see _threads_c.c).
from . import threads

pread = threads._pread_python
