"""Smoke tests of examples/bench: every benchmark runs alone in --quick mode on a tiny file,
and its JSON and markdown output parse and hold the expected rows. Never a timing. The
peers (the `bench` extra: uvloop, aiofiles, aiofile/caio, pyuring, matplotlib) need not
be installed: rows of a missing peer must then say so."""

from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The peer libraries; an implementation needs those its name mentions (rows of a missing
# one are skipped).
PEERS = {"uvloop", "aiofiles", "aiofile", "caio", "pyuring"}


def _needed_peers(impl: str) -> set[str]:
    return PEERS & set(re.findall(r"[a-z_]+", impl))


RANDREAD_IMPLS = {
    "sync loop (os.pread/preadv)",
    "asyncio + executor",
    "uvloop + executor",
    "aiofiles",
    "aiofile + caio uring SQPOLL",
    "aiofile + caio uring",
    "caio linux_aio",
    "pyuring UringAsync",
    "uringloop",
    "uringloop pread_many",
    "uringloop.open (seek + read)",
    "uringloop, busy_poll=50 us",
    "io_uring kernel floor (enter only)",
    "io_uring submit-and-wait loop (one thread)",
    "asyncio machinery floor (fake driver)",
}
# O_DIRECT only, where the filesystem takes O_DIRECT: examples/bench/refill.c's two modes.
RANDREAD_C_BOUNDS = {
    "C, the loop's waits: a batch per wake",
    "C, the loop's waits: an enter per read",
}
# Page cache at QD 1024 and 4096: the rows needing no descriptor per coroutine.
RANDREAD_DEEP_IMPLS = {
    "sync loop (os.pread/preadv)",
    "uvloop + executor",
    "aiofile + caio uring SQPOLL",
    "aiofile + caio uring",
    "caio linux_aio",
    "uringloop",
    "uringloop pread_many",
    "io_uring kernel floor (enter only)",
    "asyncio machinery floor (fake driver)",
}
# (case -> implementations that must be there); fio rows are checked separately.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "iotest": {
        "O_DIRECT 128 KiB x 16, foreign thread": {
            "uringloop (fix: wakeup)",
            "uringloop, foreign_wakeup=False (bug)",
            "uringloop, foreign_wakeup=False, busy loop",
            "floor: thread os.preadv, stock asyncio",
            "floor: thread os.preadv, uvloop",
        }
    },
    "randread": {
        **{
            f"{mode}, QD {qd}": RANDREAD_IMPLS
            for mode in ("page cache", "O_DIRECT")
            for qd in (1, 16, 64)
        },
        **{f"page cache, QD {qd}": RANDREAD_DEEP_IMPLS for qd in (1024, 4096)},
    },
    "seqread": {
        "O_DIRECT 128 KiB, QD 16": {
            "sync loop (os.pread/preadv)",
            "asyncio + executor",
            "uvloop + executor",
            "aiofiles",
            "pyuring UringAsync",
            "uringloop",
            "uringloop.open (seek + read)",
        }
    },
    "wakeup": {
        "NOP round trip, idle loop": {
            "uringloop threadsafe.nop()",
            "uringloop call_soon_threadsafe",
            "asyncio call_soon_threadsafe",
            "uvloop call_soon_threadsafe",
            "asyncio run_coroutine_threadsafe",
        },
        "4 KiB read round trip, idle loop": {
            "uringloop threadsafe.pread()",
            "asyncio call_soon_threadsafe + os.pread",
            "uvloop call_soon_threadsafe + os.pread",
        },
        "wakeup writes per 100 foreign submissions": {
            "uringloop, idle loop",
            "uringloop, busy loop (sleep(0) task)",
        },
    },
    "streams": {
        "1-byte pipe read, idle loop: write to return": {
            "uringloop loop.pread(fd, 1)",
            "uringloop add_reader + os.read",
            "asyncio add_reader + os.read",
            "uvloop add_reader + os.read",
        },
        "8 MiB into a pipe a thread drains": {
            "uringloop loop.pwrite(fd, data)",
            "asyncio, os.write on the loop's thread",
        },
    },
    "filecalls": {
        case: {"sync loop (built-in open)", "uringloop.open", "aiofiles"}
        for case in (
            "text: async for line in f",
            "binary: async for line in f",
            "text: readline() to the end",
            "binary: readline() to the end",
            "text: read(55) to the end",
            "binary: read(55) to the end",
            "text: write() of one line",
            "binary: write() of one line",
        )
    },
    "smallfiles": {
        "read a 5.5 KB text file, one after another": {
            "sync loop (built-in open)",
            "uringloop.open",
            "uringloop open_fd + pread + close_fd",
            "aiofiles",
            "io_uring submit-and-wait (private ring)",
        },
        "read a 5.5 KB text file, all at once": {
            "sync loop (built-in open)",
            "built-in open() in one task per file",
            "uringloop.open",
            "uringloop open_fd + pread + close_fd",
            "aiofiles",
            "io_uring submit-and-wait (private ring)",
        },
        "write 100 lines to a file, one after another": {
            "sync loop (built-in open)",
            "uringloop.open",
            "uringloop open_fd + pwrite + close_fd",
            "aiofiles",
            "io_uring submit-and-wait (private ring)",
        },
        "write 100 lines to a file, all at once": {
            "sync loop (built-in open)",
            "built-in open() in one task per file",
            "uringloop.open",
            "uringloop open_fd + pwrite + close_fd",
            "aiofiles",
            "io_uring submit-and-wait (private ring)",
        },
    },
    "threadio": {
        case: {
            "uringloop.threads (default route)",
            "uringloop.threads(loop=...) (through a loop)",
            "the thread's own os.pread / os.preadv",
        }
        for case in (
            "page cache, QD 1 (one read per call)",
            "O_DIRECT, QD 1 (one read per call)",
            "O_DIRECT, a batch of 16 reads per call",
        )
    },
    "overhead": {
        case: {"uringloop", "stock asyncio", "uvloop"}
        for case in (
            "TCP echo, 64 B ping-pong",
            "call_soon chain",
            "call_later(0) chain",
            "task await sleep(0)",
        )
    },
}
# Rows allowed to be skipped, with the reason they must give.
MAY_SKIP = {
    ("randread", "aiofile + caio uring SQPOLL"): "failed",  # O_DIRECT: unaligned buffers
    ("randread", "aiofile + caio uring"): "failed",
    ("randread", "caio linux_aio"): "failed",
}


def _run(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="error::RuntimeWarning")
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )


def _quick(tmp_path: Path) -> list[str]:
    return ["--quick", "--duration", "0.02", "--file-mib", "8", "--dir", str(tmp_path / "data")]


def _check_report(name: str, report: dict[str, Any]) -> None:
    assert report["bench"] == name
    rows = report["rows"]
    by_case: dict[str, set[str]] = {}
    for row in rows:
        by_case.setdefault(row["case"], set()).add(row["impl"])
        if row["skipped"]:
            if row["impl"].startswith("fio"):
                continue
            if row["skipped"].startswith("not installed: "):
                peer = row["skipped"].removeprefix("not installed: ")
                assert peer in _needed_peers(row["impl"]), row
                assert importlib.util.find_spec(peer) is None, row
                continue
            if row["impl"] in RANDREAD_C_BOUNDS:
                assert row["skipped"].startswith("not built: "), row
                assert shutil.which(os.environ.get("CC") or "cc") is None, row
                continue
            reason = MAY_SKIP.get((name, row["impl"]))
            assert reason is not None and "O_DIRECT" in row["case"], row
            assert row["skipped"].startswith(reason), row
            continue
        assert len(row["samples"]) >= 1, row
        for value in (row["median"], row["min"], row["max"]):
            assert isinstance(value, float) and math.isfinite(value) and value >= 0, row
        assert row["min"] <= row["median"] <= row["max"], row
    for case, impls in EXPECTED[name].items():
        assert case in by_case, f"missing case {case!r}"
        assert impls <= by_case[case], f"{case}: missing {impls - by_case[case]}"
    # Every case with a uringloop reference row has exactly one.
    for case in by_case:
        refs = [r for r in rows if r["case"] == case and r["reference"]]
        assert len(refs) <= 1
    assert report["targets"] == []  # --quick evaluates no target
    if name == "randread":
        _check_kernel_floor(report)
        _check_c_bounds(report)


def _check_c_bounds(report: dict[str, Any]) -> None:
    """refill.c's rows are in every O_DIRECT case and only there (unless the filesystem
    refused O_DIRECT), and the note sets uringloop and fio beside them."""
    if any(n.startswith("The filesystem refused O_DIRECT") for n in report["notes"]):
        assert not [r for r in report["rows"] if r["impl"] in RANDREAD_C_BOUNDS]
        return
    rows = [r for r in report["rows"] if r["impl"] in RANDREAD_C_BOUNDS]
    assert sorted((r["case"], r["impl"]) for r in rows) == sorted(
        (f"O_DIRECT, QD {qd}", impl) for qd in (1, 16, 64) for impl in RANDREAD_C_BOUNDS
    )
    if any(r["skipped"] for r in rows):
        return
    assert all(r["median"] > 0 for r in rows), rows
    notes = [n for n in report["notes"] if n.startswith("O_DIRECT bounds (median ops/s ratios): ")]
    assert len(notes) == 1
    for qd in (1, 16, 64):
        assert f"O_DIRECT, QD {qd}: uringloop " in notes[0], qd


def _check_kernel_floor(report: dict[str, Any]) -> None:
    """The two floor rows ran (they are not allowed to be skipped) in every case, and the
    page cache QD 64 explanation and the own-work figures were derived from them."""
    for impl in ("io_uring kernel floor (enter only)", "asyncio machinery floor (fake driver)"):
        floors = [r for r in report["rows"] if r["impl"] == impl]
        assert len(floors) == 8, impl
        for row in floors:
            assert not row["skipped"] and not row["reference"], row
            assert row["median"] > 0, row
    copies = [
        r for r in report["rows"] if r["impl"] == "pread_many copy floor (read_many_cached only)"
    ]
    assert sorted(r["case"] for r in copies) == [f"page cache, QD {qd}" for qd in (1, 16, 64)]
    assert all(not r["skipped"] and r["median"] > 0 for r in copies), copies
    floor_notes = [n for n in report["notes"] if n.startswith("page cache, QD 64: io_uring_enter")]
    assert len(floor_notes) == 1 and "those copies alone, without the loop, cost" in floor_notes[0]
    own = [n for n in report["notes"] if n.startswith("uringloop's own work per read:")]
    assert len(own) == 1
    for qd in (1, 16, 64, 1024, 4096):
        assert f"page cache, QD {qd}: " in own[0], qd


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_runs_alone_and_output_parses(name: str, tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    out_md = tmp_path / "out.md"
    proc = _run(
        [
            "-m",
            f"examples.bench.{name}",
            *_quick(tmp_path),
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out_json.read_text())
    assert doc["command"].startswith(f"python -m examples.bench.{name}")
    machine = doc["machine"]
    for key in ("kernel", "cpu_count", "python", "packages", "data_fs"):
        assert machine[key], key
    assert set(machine["packages"]) >= {"uringloop", "uvloop", "aiofiles", "caio", "pyuring"}
    expected_twins = "python" if os.environ.get("URINGLOOP_NO_EXTENSIONS") == "1" else "c"
    assert machine["uringloop_twins"] == expected_twins
    assert doc["config"]["quick"] is True
    [report] = doc["reports"]
    _check_report(name, report)
    md = out_md.read_text()
    assert md.strip() == proc.stdout.strip()
    assert "| implementation | median | min | max |" in md
    assert "Quick run: a smoke test." in md and "### Goals" not in md
    assert "uringloop's hot path: " in md and "twins mixed" not in md
    # The data it made is gone (no --keep).
    assert not (tmp_path / "data").exists(), list((tmp_path / "data").iterdir())
    for impls in EXPECTED[name].values():
        for impl in impls:
            assert f"| {impl} |" in md


def test_report_warns_of_mixed_twins(tmp_path: Path) -> None:
    # A run where one extension fell back to its pure-Python twin (built from other
    # sources) says so at the top of its report, rather than passing as compiled.
    sys.path.insert(0, str(ROOT))
    from examples.bench.cli import render_markdown
    from examples.bench.common import Config, machine_info

    cfg = Config.make(True, directory=str(tmp_path / "data"))
    machine = machine_info(cfg)
    plain = render_markdown([], machine, "python -m examples.bench", cfg, 1.0)
    assert "twins mixed" not in plain
    machine["uringloop_twins"] = "queues c, reads c, handles c, pread python, pins c"
    mixed = render_markdown([], machine, "python -m examples.bench", cfg, 1.0)
    assert "uringloop's hot path: queues c, reads c, handles c, pread python" in mixed
    assert "**Warning: compiled and pure-Python twins mixed in this run**" in mixed


def test_keep_keeps_the_data_files(tmp_path: Path) -> None:
    proc = _run(["-m", "examples.bench.wakeup", *_quick(tmp_path), "--keep"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["data-8M.bin"]


def test_suite_runner_json_on_stdout_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib (the 'bench' extra)")
    png = tmp_path / "chart.png"
    proc = _run(
        [
            "-m",
            "examples.bench",
            "overhead",
            "wakeup",
            *_quick(tmp_path),
            "--json",
            "-",
            "--plot",
            str(png),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert [r["bench"] for r in doc["reports"]] == ["overhead", "wakeup"]
    for report in doc["reports"]:
        _check_report(report["bench"], report)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    proc = _run(["-m", "examples.bench", "nosuchbench", "--quick"])
    assert proc.returncode == 2
    assert "unknown benchmark 'nosuchbench'" in proc.stderr


def test_ab_runs_each_revision_s_own_package() -> None:
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("examples.bench.ab needs a git checkout")
    args = ["HEAD", "HEAD", "call-later", "--rounds", "2", "--seconds", "0.05"]
    proc = _run(["-m", "examples.bench.ab", *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("call-later: old ")
    rounds = [line for line in lines if line.lstrip().startswith("round ")]
    assert len(rounds) == 2
    ratio = float(lines[-1].split()[2])
    assert math.isfinite(ratio) and ratio > 0


def test_refill_program_reads_and_refuses_bad_arguments(tmp_path: Path) -> None:
    # refill.c, the O_DIRECT rows' C bound: both modes read (and check what they read);
    # "each" submits every new read on its own, "batch" a wake's in one enter; a wrong mode
    # or a file under one block is refused before any I/O.
    sys.path.insert(0, str(ROOT))
    from examples.bench.common import BenchError, build_c_program, run_refill

    if shutil.which(os.environ.get("CC") or "cc") is None:
        pytest.skip("no C compiler")
    program = build_c_program("refill")
    path = tmp_path / "data"
    path.write_bytes(os.urandom(1 << 20))
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        pytest.skip("the filesystem refuses O_DIRECT")
    docs = {}
    for mode in ("batch", "each"):
        rate, doc = run_refill(program, str(path), 8, 0.05, 0.01, 7, mode)
        assert rate > 0 and doc["reads"] > 0 and doc["refills"] > 0, doc
        docs[mode] = doc
    assert docs["each"]["submits"] == docs["each"]["refills"] + 1, docs  # + the first QD
    assert docs["batch"]["submits"] <= docs["batch"]["refills"] + 1, docs
    with pytest.raises(BenchError, match="refill sideways failed: usage"):
        run_refill(program, str(path), 4, 0.05, 0, 7, "sideways")
    small = tmp_path / "small"
    small.write_bytes(b"x" * 100)
    with pytest.raises(BenchError, match="smaller than one block"):
        run_refill(program, str(small), 4, 0.05, 0, 7, "batch")
    with pytest.raises(BenchError, match="refill batch printed"):
        run_refill("/bin/echo", str(path), 4, 0.05, 0, 7, "batch")


def test_c_program_without_a_compiler_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(ROOT))
    from examples.bench.common import BenchError, build_c_program

    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(BenchError, match="not built: no C compiler"):
        build_c_program("refill")
    monkeypatch.setenv("CC", "false")
    with pytest.raises(BenchError, match="not built: false failed"):
        build_c_program("refill")
    if shutil.which("cc") is not None:  # a compiler given with its arguments
        monkeypatch.setenv("CC", "cc -Wall")
        assert os.access(build_c_program("refill"), os.X_OK)


def test_copy_floor_reads_a_page_the_cache_will_not_copy(tmp_path: Path) -> None:
    # The randread copy floor's batches meet pages RWF_NOWAIT will not copy (the file
    # evicted here; in a run, pages marked for readahead): it reads the rest of such a
    # batch as the synchronous loop does, and its answers are the file's (it raised
    # BenchError).
    sys.path.insert(0, str(ROOT))
    from examples.bench import randread
    from uringloop._ops.hotpath import read_cached

    path = tmp_path / "data"
    path.write_bytes(os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.pread(fd, 1 << 20, 0)
        if read_cached(fd, 4096, 0) == -errno.EOPNOTSUPP:
            pytest.skip("the filesystem cannot copy without waiting (tmpfs)")
        os.fsync(fd)  # (dirty pages are not evicted)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if read_cached(fd, 4096, 0) != -errno.EAGAIN:
            pytest.skip("the kernel kept the evicted file cached")
        env = randread.Env(str(path), fd, False, 64, 0.05, [i * 4096 for i in range(256)])
        assert randread._copy_floor(env) > 0
        assert env.keep
        for offset, data in env.keep:
            assert data == os.pread(fd, 4096, offset)
    finally:
        os.close(fd)


def test_writesteps_times_each_step_free_and_pinned(tmp_path: Path) -> None:
    proc = _run(
        ["-m", "examples.bench.writesteps", "--files", "3", "--rounds", "1", "--dir", str(tmp_path)]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert rows[0][0].strip() == "CPUs"
    table = {(cells[0].strip(), cells[1].strip()): cells[2:] for cells in rows[1:]}
    assert set(table) == {(mode, way) for mode in ("free", "pinned") for way in (
        "built-in system calls", "uringloop raw operations", "uringloop.open")}  # fmt: skip
    for cells in table.values():
        open_, write, close, total = (float(c) for c in cells[:4])
        assert min(open_, write, close) > 0 and abs(open_ + write + close - total) < 0.2
    assert all(
        table[mode, "built-in system calls"][4].strip() == "1.00x" for mode in ("free", "pinned")
    )
    assert list(tmp_path.iterdir()) == []  # its files are gone
