"""Shared pieces of the benchmarks: result records, statistics, data files, loops, fio.

Every benchmark returns a Report: rows of samples (one per repetition) for one
implementation in one case. Competitors in a case run interleaved in one process, so a
ratio between two rows of the same case compares like with like even on a noisy machine.
Ratios are always "how many times better uringloop's reference row is than this row":
above 1 uringloop wins, whichever way the unit points.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import mmap
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")

MiB = 1 << 20
BLOCK = 4096
DEFAULT_DIR = "/var/tmp/uringloop-bench"
DEFAULT_FILE_MIB = 256
QUICK_FILE_MIB = 64
# Offsets are drawn from a fixed table of this many random blocks (a power of two).
OFFSET_TABLE = 1 << 15
# One read in this many is kept and compared with os.pread after the timed run.
VERIFY_EVERY = 64


class BenchError(RuntimeError):
    """A benchmark produced wrong data or could not run at all."""


@dataclass
class Config:
    """Knobs shared by all benchmarks (from the command line)."""

    quick: bool = False
    reps: int = 5
    duration: float = 0.4  # seconds per timed throughput run
    file_mib: int = DEFAULT_FILE_MIB
    directory: str = DEFAULT_DIR
    seed: int = 1234
    fio: bool = True

    @classmethod
    def make(
        cls,
        quick: bool,
        reps: int | None = None,
        duration: float | None = None,
        file_mib: int | None = None,
        directory: str | None = None,
        fio: bool = True,
    ) -> Config:
        return cls(
            quick=quick,
            reps=reps if reps is not None else (1 if quick else 5),
            duration=duration if duration is not None else (0.05 if quick else 0.4),
            file_mib=file_mib
            if file_mib is not None
            else (QUICK_FILE_MIB if quick else DEFAULT_FILE_MIB),
            directory=directory or DEFAULT_DIR,
            fio=fio,
        )


@dataclass
class Row:
    """One implementation in one case: a sample per repetition."""

    case: str
    impl: str
    unit: str
    higher_is_better: bool
    samples: list[float] = field(default_factory=list)
    reference: bool = False  # the uringloop row the case's ratios are relative to
    skipped: str = ""  # why the row has no samples
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)  # e.g. pooled p90/p99 latencies

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def max(self) -> float:
        return max(self.samples) if self.samples else float("nan")


@dataclass
class Target:
    """A performance goal, evaluated on this run's medians (full runs only)."""

    text: str
    measured: str
    met: bool | None  # None: could not be evaluated (a competitor was missing)


@dataclass
class Report:
    bench: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def row(self, case: str, impl: str) -> Row | None:
        for r in self.rows:
            if r.case == case and r.impl == impl:
                return r
        return None

    def cases(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r.case not in seen:
                seen.append(r.case)
        return seen

    def median(self, case: str, impl: str) -> float | None:
        r = self.row(case, impl)
        if r is None or not r.samples:
            return None
        return r.median


def ratio(ref: Row, other: Row) -> float:
    """How many times better `ref` is than `other` (> 1: ref wins)."""
    if not ref.samples or not other.samples or other.median == 0 or ref.median == 0:
        return float("nan")
    if ref.higher_is_better:
        return ref.median / other.median
    return other.median / ref.median


def reference_row(report: Report, case: str) -> Row | None:
    for r in report.rows:
        if r.case == case and r.reference:
            return r
    return None


def target(text: str, value: float | None, goal: float, fmt: str = "{:.2f}x") -> Target:
    """A target met when value >= goal (value None: not evaluated)."""
    if value is None or value != value:  # NaN
        return Target(text, "n/a", None)
    shown = fmt.format(value)
    if value < goal and shown == fmt.format(goal):  # missed by less than the rounding
        shown = fmt.replace(".2f", ".3f").format(value)
    return Target(text, shown, value >= goal)


def target_at_most(text: str, value: float | None, goal: float, fmt: str = "{:.2f} us") -> Target:
    """A target met when value <= goal (value None: not evaluated)."""
    if value is None or value != value:  # NaN
        return Target(text, "n/a", None)
    return Target(text, fmt.format(value), value <= goal)


# -- running things ---------------------------------------------------------------------


def loop_factory(name: str, **kwargs: Any) -> Callable[[], asyncio.AbstractEventLoop]:
    """'asyncio' (stock SelectorEventLoop), 'uvloop' or 'uringloop' (kwargs go to Loop)."""
    if name == "asyncio":
        return asyncio.SelectorEventLoop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "uringloop":
        import uringloop

        return lambda: uringloop.Loop(**kwargs)
    raise ValueError(f"unknown loop {name!r}")


def run_on(name: str, coro: Coroutine[Any, Any, _T], **kwargs: Any) -> _T:
    """Run `coro` on a fresh loop of the named kind, then close the loop."""
    with asyncio.Runner(loop_factory=loop_factory(name, **kwargs)) as runner:
        return runner.run(coro)


# The other libraries the benchmarks compare with; a row needing one that is not installed
# is skipped, with that reason, instead of stopping the run.
PEERS = ("uvloop", "aiofiles", "aiofile", "caio", "pyuring")


def interleaved(
    reps: int,
    impls: list[str],
    run_one: Callable[[str, int], None],
    rows: Mapping[str, Row] | None = None,
) -> None:
    """Run every implementation once per repetition, rotating the order each time. An
    implementation whose peer library is missing is skipped from then on, and its row in
    `rows` says so."""
    missing: set[str] = set()
    for rep in range(reps):
        k = rep % len(impls) if impls else 0
        for impl in impls[k:] + impls[:k]:
            if impl in missing:
                continue
            try:
                run_one(impl, rep)
            except ModuleNotFoundError as exc:
                peer = (exc.name or "").split(".")[0]
                if peer not in PEERS:
                    raise
                missing.add(impl)
                if rows is not None and impl in rows:
                    rows[impl].skipped = f"not installed: {peer}"


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


# -- data files ---------------------------------------------------------------------------


# Data files (and directories) this process created; cli.main removes them at the end
# unless --keep is given.
CREATED: list[str] = []


def data_file(cfg: Config, mib: int, name: str = "data") -> str:
    """A file of `mib` MiB of random bytes on cfg.directory, created once and reused."""
    ensure_directory(cfg)
    path = os.path.join(cfg.directory, f"{name}-{mib}M.bin")
    size = mib * MiB
    try:
        if os.stat(path).st_size == size:
            return path
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MiB))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    CREATED.append(path)
    return path


def ensure_directory(cfg: Config) -> None:
    if not os.path.isdir(cfg.directory):
        os.makedirs(cfg.directory)
        CREATED.append(cfg.directory)


# Directory trees this process made whole (their files are all its own): removed entirely.
CREATED_TREES: list[str] = []


def remove_created() -> list[str]:
    """Remove the data files and directories this process created; return their paths."""
    removed = []
    for tree in CREATED_TREES:
        shutil.rmtree(tree, ignore_errors=True)
        removed.append(tree)
    CREATED_TREES.clear()
    for path in reversed(CREATED):
        try:
            if os.path.isdir(path):
                os.rmdir(path)  # only if empty: other files there are not ours
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            pass
    CREATED.clear()
    return removed


def warm_cache(path: str) -> None:
    """Read the whole file once so page-cache runs do not touch the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while chunk := os.pread(fd, 4 * MiB, off):
            off += len(chunk)
    finally:
        os.close(fd)


def open_direct(path: str) -> tuple[int, bool]:
    """Open read-only with O_DIRECT; (fd, True), or (buffered fd, False) if refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return os.open(path, os.O_RDONLY), False
    probe = mmap.mmap(-1, BLOCK)
    try:
        os.preadv(fd, [probe], 0)
    except OSError:
        os.close(fd)
        return os.open(path, os.O_RDONLY), False
    finally:
        probe.close()
    return fd, True


def aligned_buffer(size: int) -> mmap.mmap:
    """Page-aligned anonymous memory (O_DIRECT wants aligned buffers)."""
    return mmap.mmap(-1, max(size, mmap.PAGESIZE))


def verify(path: str, samples: list[tuple[int, bytes]], what: str) -> None:
    """Compare sampled reads with os.pread on a plain descriptor; raise on a mismatch."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, data in samples:
            if data != os.pread(fd, len(data), off) or not data:
                raise BenchError(f"{what}: wrong bytes at offset {off}")
    finally:
        os.close(fd)


def filesystem_of(path: str) -> tuple[str, str]:
    """(mount point, filesystem type) of the filesystem holding `path`."""
    path = os.path.realpath(path)
    best = ("/", "unknown")
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                mnt, fstype = parts[1], parts[2]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(
                    best[0]
                ):
                    best = (mnt, fstype)
    except OSError:
        pass
    return best


# -- fio ----------------------------------------------------------------------------------


def fio_available() -> bool:
    return shutil.which("fio") is not None


def run_fio(
    path: str, rw: str, bs: int, iodepth: int, direct: bool, seconds: float, size: int
) -> tuple[float, float]:
    """Run fio --ioengine=io_uring on `path`; return (IOPS, MiB/s)."""
    cmd = [
        "fio",
        "--name=bench",
        f"--filename={path}",
        "--ioengine=io_uring",
        f"--rw={rw}",
        f"--bs={bs}",
        f"--iodepth={iodepth}",
        f"--direct={int(direct)}",
        f"--size={size}",
        f"--runtime={max(1, int(seconds * 1000))}ms",
        "--time_based",
        "--invalidate=0",
        "--norandommap",
        "--randrepeat=0",
        "--output-format=json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"fio failed: {out.stderr.strip() or out.stdout.strip()}")
    # fio may print notes before the JSON document.
    text = out.stdout[out.stdout.index("{") :]
    job = json.loads(text)["jobs"][0]["read"]
    return float(job["iops"]), float(job["bw"]) / 1024.0


# -- C programs ------------------------------------------------------------------------------


def build_c_program(name: str) -> str:
    """Compile examples/bench/NAME.c with $CC (else cc) into a temporary directory removed
    when this process exits; return the program's path. BenchError, with the reason, when
    there is no compiler or the build fails."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.c")
    compiler = shlex.split(os.environ.get("CC") or "cc")
    if not compiler or shutil.which(compiler[0]) is None:
        raise BenchError(f"not built: no C compiler ({' '.join(compiler)})")
    directory = tempfile.mkdtemp(prefix="uringloop-bench-")
    atexit.register(shutil.rmtree, directory, True)
    program = os.path.join(directory, name)
    out = subprocess.run(
        [*compiler, "-O2", "-o", program, source], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise BenchError(f"not built: {compiler[0]} failed: {out.stderr.strip()[:200]}")
    return program


def run_refill(
    program: str, path: str, qd: int, seconds: float, warmup: float, seed: int, mode: str
) -> tuple[float, dict[str, Any]]:
    """Run examples/bench/refill.c's program (O_DIRECT 4 KiB random reads over `path`, QD
    deep, `mode` "batch" or "each", `warmup` seconds not counted); return (reads/s, its
    JSON line). BenchError when it fails, hangs or prints something else."""
    cmd = [program, path, str(qd), f"{seconds:.6f}", f"{warmup:.6f}", str(seed), mode]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=warmup + seconds + 60
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"refill {mode} did not end: {exc}") from exc
    if out.returncode != 0:
        raise BenchError(f"refill {mode} failed: {out.stderr.strip()[:200]}")
    try:
        doc = json.loads(out.stdout)
        return doc["reads"] / doc["seconds"], doc
    except (ValueError, KeyError, TypeError, ZeroDivisionError) as exc:
        raise BenchError(f"refill {mode} printed {out.stdout[:200]!r}: {exc!r}") from exc


# -- machine --------------------------------------------------------------------------------


def machine_info(cfg: Config) -> dict[str, Any]:
    import importlib.metadata as md
    import platform

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "not installed"

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fio = "not installed"
    if fio_available():
        fio = subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
    commit = ""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=here,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "../../uringloop"],
            capture_output=True,
            text=True,
            cwd=here,
            check=False,
        ).stdout.strip()
        if commit and dirty:
            commit += " + uncommitted changes in uringloop/"
    except OSError:
        pass
    ensure_directory(cfg)
    mnt, fstype = filesystem_of(cfg.directory)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "kernel": platform.release(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg": os.getloadavg(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": {
            name: version(name)
            for name in (
                "uringloop",
                "uvloop",
                "aiofiles",
                "aiofile",
                "caio",
                "pyuring",
                "matplotlib",
            )
        },
        "fio": fio,
        "git_commit": commit,
        "uringloop_twins": uringloop_twins(),
        "data_dir": cfg.directory,
        "data_fs": f"{fstype} on {mnt}",
    }


def uringloop_twins() -> str:
    """Which twins of uringloop's hot path this process runs: "c" or "python" when all agree
    (the loop's, as uring_stats() says, the file calls' and the thread routes'), else where
    each runs (a stale build, say: an extension whose sources changed falls back to its
    twin)."""
    import uringloop
    import uringloop._files  # (its twins have no public name; python -m uringloop shows them)
    import uringloop.threads

    loop = uringloop.Loop()
    try:
        loop_twins = loop.uring_stats().implementation
    finally:
        loop.close()
    files = uringloop._files.IMPLEMENTATION
    threads = uringloop.threads.IMPLEMENTATION
    if loop_twins == files == threads:
        return loop_twins
    return f"{loop_twins}; file calls {files}; thread reads {threads}"


def report_to_json(report: Report) -> dict[str, Any]:
    d = asdict(report)
    for row, rd in zip(report.rows, d["rows"], strict=True):
        rd["median"] = row.median if row.samples else None
        rd["min"] = row.min if row.samples else None
        rd["max"] = row.max if row.samples else None
    return d
