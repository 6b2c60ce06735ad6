"""Benchmark 3, seqread: 128 KiB sequential O_DIRECT reads at queue depth 16, in MiB/s.

The 16 coroutines take the next chunk of the file from a shared counter (wrapping at the
end), so the file is read in order with 16 reads in flight. Only implementations that can
do O_DIRECT take part (caio/aiofile read into unaligned bytes objects: EINVAL), plus fio
on the same file as the device's limit.

    python -m examples.bench.seqread [--quick] [--json PATH]
"""

from __future__ import annotations

import os

from .common import (
    BenchError,
    Config,
    MiB,
    Report,
    Row,
    fio_available,
    interleaved,
    open_direct,
    run_fio,
    target,
)
from .common import data_file as make_data_file
from .randread import (
    AIOFILES,
    ASYNCIO,
    PYURING,
    SYNC,
    URING,
    URING_OPEN,
    UVLOOP,
    WARMUP,
    Env,
    measure,
)

NAME = "seqread"
CHUNK = 128 * 1024
QD = 16
FIO = "fio io_uring (C)"
IMPLS = (SYNC, ASYNCIO, UVLOOP, AIOFILES, PYURING, URING, URING_OPEN)


def run(cfg: Config) -> Report:
    mib = cfg.file_mib
    report = Report(NAME, f"seqread: 128 KiB sequential O_DIRECT reads, QD {QD} (MiB/s)")
    path = make_data_file(cfg, mib)
    fd, direct = open_direct(path)
    nchunks = mib * MiB // CHUNK
    table = 1 << (nchunks.bit_length() - 1)  # a power of two for the index mask
    offsets = [k * CHUNK for k in range(table)]
    report.notes.append(
        f"{table * CHUNK // MiB} MiB of {path} read in order, wrapping around"
        + ("" if direct else "; O_DIRECT refused, buffered reads")
        + ". The sync loop reads one chunk at a time (QD 1). caio/aiofile cannot do O_DIRECT "
        "(they read into unaligned bytes objects: EINVAL) and are left out."
    )
    case = f"O_DIRECT {CHUNK // 1024} KiB, QD {QD}"
    rows = {impl: Row(case, impl, "MiB/s", True, reference=impl == URING) for impl in IMPLS}
    report.rows.extend(rows.values())
    failed: set[str] = set()

    def one(impl: str, rep: int) -> None:
        if impl in failed:
            return
        env = Env(path, fd, direct, QD, cfg.duration, offsets, bs=CHUNK)
        try:
            rate = measure(impl, env)
        except (OSError, SystemError, BenchError) as exc:
            if isinstance(exc, BenchError) and "wrong bytes" in str(exc):
                raise
            failed.add(impl)
            rows[impl].skipped = f"failed: {exc!r}"[:160]
            return
        rows[impl].samples.append(rate * CHUNK / MiB)

    try:
        interleaved(cfg.reps, list(IMPLS), one, rows)
    finally:
        os.close(fd)
    rows[SYNC].note = "QD 1"
    fio_mibs: float | None = None
    if cfg.fio and fio_available():
        fio_row = Row(case, FIO, "MiB/s", True, note="same file, same depth")
        report.rows.append(fio_row)
        for _ in range(cfg.reps):
            try:
                _iops, mibs = run_fio(
                    path, "read", CHUNK, QD, direct, cfg.duration + WARMUP, table * CHUNK
                )
            except BenchError as exc:
                fio_row.skipped = str(exc)[:160]
                break
            fio_row.samples.append(mibs)
        if fio_row.samples:
            fio_mibs = fio_row.median
    elif cfg.fio:
        report.rows.append(Row(case, FIO, "MiB/s", True, skipped="fio is not installed"))
    uring = rows[URING]
    report.targets.append(
        target(
            "uringloop >= 0.9x fio io_uring MiB/s",
            uring.median / fio_mibs if uring.samples and fio_mibs else None,
            0.9,
        )
    )
    return report


if __name__ == "__main__":
    from .cli import main

    main(only=[NAME])
