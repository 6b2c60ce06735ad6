"""python -m uringloop (the README's first command) runs and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys


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
