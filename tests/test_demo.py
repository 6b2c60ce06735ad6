"""python -m uringloop (the README's first command) runs and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import uringloop.__main__ as demo
from uringloop import _files, threads


def test_demo_runs_and_prints_every_variant(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "uringloop", "--mib", "2", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"^\| (.+?)\s+\|\s+([0-9.]+) \|\s+([0-9.]+) \|$", proc.stdout, re.M)
    names = [name for name, _, _ in rows]
    assert names == [
        "plain thread, os.preadv (floor)",
        "uringloop, with the wakeup (the fix)",
        "uringloop, foreign_wakeup=False (the bug)",
        "uringloop, foreign_wakeup=False, busy loop",
    ]
    assert float(rows[0][2]) == 1.0  # ratios are to the floor


def test_a_reader_that_goes_away_stops_it_quietly(tmp_path: object) -> None:
    """`python -m uringloop | head -1`: no traceback when the pipe closes early, and the
    demo's temporary file is removed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uringloop", "--mib", "2", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert "hot path" in first
    proc.stdout.close()  # as head does after its line
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in stderr, stderr
    assert list(Path(str(tmp_path)).iterdir()) == []


def test_its_first_line_says_which_parts_run_where_they_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # One extension built and another not: the file calls' two parts are named as they are.
    monkeypatch.setattr(_files, "IMPLEMENTATION", "methods c, running-loop lookup python")
    monkeypatch.setattr(threads, "IMPLEMENTATION", "python")
    assert demo.main(["--mib", "1", "--dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(
        "file calls (methods c, running-loop lookup python), pure-Python thread reads"
    ), first
