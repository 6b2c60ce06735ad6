"""uringloop's benchmark suite: every competitor in the same process, interleaved.

    python -m examples.bench --quick            # the whole suite in under a minute
    python -m examples.bench randread --json -  # one benchmark, JSON on stdout
    python -m examples.bench.wakeup             # each benchmark also runs alone

Benchmarks: iotest (the QEMU lost-wakeup experiment), randread, seqread, wakeup, overhead.
See docs/performance.md for the latest results and what bounds them.
"""
