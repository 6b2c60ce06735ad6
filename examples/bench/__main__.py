"""python -m examples.bench: run the suite (or the benchmarks named on the command line)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
