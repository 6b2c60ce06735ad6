"""A/B: one scenario on two commits of uringloop, alternating, one fresh process per run.

    python -m examples.bench.ab OLD NEW SCENARIO [--rounds N] [--seconds S] [--best-of K]

OLD and NEW are git revisions; each one's `uringloop/` package is exported to a temporary
directory, its compiled extensions are built there as its setup.py declares them, and it
is put first on PYTHONPATH, while the benchmark code is this checkout's (the
`examples.bench.profile` scenarios, unprofiled). Each run must use the compiled hot path
where it was built (else the comparison would pit a compiled twin against a pure-Python
one); a revision whose extensions fail to build is refused. The rounds alternate OLD and
NEW so that the machine's drift hits both; the result is the median of the per-round
ratios NEW / OLD (above 1: NEW is faster; for wakeup-nop, a latency, below 1 is better).

OLD or NEW may also be `:python` or `:c`: this checkout as installed (its compiled
extensions built), with the pure-Python twins of the hot path (the ring's queues and the
read core; URINGLOOP_NO_EXTENSIONS=1) or the compiled ones:

    python -m examples.bench.ab :python :c randread-qd64
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from .profile import SCENARIOS

_ROOT = Path(__file__).resolve().parents[2]
LATENCIES = {"wakeup-nop"}  # scenarios whose figure is a time: lower is better
_NUMBER = re.compile(r"[\d,]+(?:\.\d+)?")


def _export(rev: str, into: Path) -> str:
    """Write `rev`'s uringloop/ package into `into`; return the full commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", commit, "setup.py"],
        cwd=_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "uringloop", *listed],
        cwd=_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+ / 3.10.12+
            tar.extractall(into, filter="data")
        else:
            tar.extractall(into)  # our own repository's archive
    if listed:  # its extensions, built in place as `pip install` builds them
        built = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=into,
            capture_output=True,
            text=True,
        )
        if built.returncode or "failed" in built.stderr:
            raise SystemExit(f"{rev}'s extensions did not build:\n{built.stderr}")
    return commit


# The child's first line: where uringloop came from, a tab, and its twins: "c" or "python"
# when the ring's, the loop's and the file calls' agree (each where the revision has it),
# else all three, so that a stale extension set aside for its twin does not pass.
_CHILD = (
    "import sys, importlib.util, uringloop, uringloop._ring.ring as r; "
    "twins = [getattr(r, 'IMPLEMENTATION', 'python')] + [getattr(importlib.import_module(m), "
    "'IMPLEMENTATION', None) for m in ('uringloop._loop', 'uringloop._files') "
    "if importlib.util.find_spec(m)]; "
    "twins = [t for t in twins if t is not None]; "
    "print(uringloop.__file__ + '\\t' + (twins[0] if len(set(twins)) == 1 else '; '.join(twins)), "
    "flush=True); "
    "from examples.bench.profile import SCENARIOS; "
    "[print(SCENARIOS[sys.argv[1]](float(sys.argv[2]))) for _ in range(int(sys.argv[3]))]"
)


# The twins of this checkout: the environment each one runs with.
TWINS = {":python": {"URINGLOOP_NO_EXTENSIONS": "1"}, ":c": {"URINGLOOP_NO_EXTENSIONS": ""}}


def _run_once(package_dir: Path, scenario: str, seconds: float, rev: str, best_of: int) -> float:
    """One fresh process: `package_dir`'s uringloop, this checkout's benchmark code; the
    best of `best_of` runs of the scenario in it (for wakeup-nop, a latency: the lowest)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(package_dir), str(_ROOT)]))
    twin = rev if rev in TWINS else ""
    env.update(TWINS.get(twin, {}))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, scenario, str(seconds), str(best_of)],
        cwd=package_dir.parent,  # not the checkout: the cwd comes first on sys.path
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    header, _, results = out.partition("\n")
    where, _, implementation = header.partition("\t")
    if not where.startswith(str(package_dir)):
        raise SystemExit(f"the run imported uringloop from {where}, not {package_dir}")
    expected = twin[1:] if twin else ("c" if Path(package_dir, "setup.py").exists() else "python")
    if implementation != expected:
        raise SystemExit(f"{rev} ran the {implementation} twin, not the {expected} one")
    figures = []
    for result in results.splitlines():
        match = _NUMBER.search(result.split("p50", 1)[-1])
        if match is None:
            raise SystemExit(f"no number in the scenario's output: {result!r}")
        figures.append(float(match.group().replace(",", "")))
    return min(figures) if scenario in LATENCIES else max(figures)


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m examples.bench.ab",
        description="One scenario on two versions of uringloop, alternating in fresh "
        "processes; prints the median of the per-round NEW/OLD ratios.",
    )
    versions = (
        "a git revision, or :python / :c (this checkout with its pure-Python or compiled twins)"
    )
    p.add_argument("old", help=versions)
    p.add_argument("new", help=versions)
    p.add_argument("scenario", choices=sorted(SCENARIOS), help="an examples.bench.profile scenario")
    p.add_argument("--rounds", type=int, default=6, help="rounds, each running OLD and NEW once")
    p.add_argument("--seconds", type=float, default=1.0, help="seconds per run")
    p.add_argument(
        "--best-of",
        type=int,
        default=1,
        help="runs of the scenario in each process; its best one counts (a figure less "
        "disturbed by the machine's other work)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="uringloop-ab-") as tmp:
        revs = {"old": args.old, "new": args.new}
        dirs = {name: _ROOT if rev in TWINS else Path(tmp, name) for name, rev in revs.items()}
        commits = {
            name: rev if rev in TWINS else _export(rev, dirs[name])[:9]
            for name, rev in revs.items()
        }
        print(f"{args.scenario}: old {commits['old']}, new {commits['new']}")
        ratios = []
        for k in range(args.rounds):
            order = ("old", "new") if k % 2 == 0 else ("new", "old")
            got = {
                name: _run_once(dirs[name], args.scenario, args.seconds, revs[name], args.best_of)
                for name in order
            }
            ratios.append(got["new"] / got["old"])
            print(
                f"  round {k + 1}: old {got['old']:,.1f}  new {got['new']:,.1f}  "
                f"new/old {ratios[-1]:.3f}"
            )
        print(
            f"median new/old {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {args.rounds} rounds)"
        )


if __name__ == "__main__":
    main()
