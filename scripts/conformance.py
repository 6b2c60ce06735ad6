#!/usr/bin/env python3
"""Run CPython's own test.test_asyncio on the stock loop and on uringloop.Loop; compare.

    python scripts/conformance.py            # the full list (several minutes)
    python scripts/conformance.py --quick    # the CI subset (well under a minute)
    python scripts/conformance.py test_streams test_events.EPollEventLoopTests

Each variant runs in its own subprocesses (one per module, `-j` at a time):
  stock  the interpreter's asyncio, untouched
  uring  every seam that makes a real loop returns uringloop.Loop: asyncio.SelectorEventLoop,
         asyncio.unix_events.SelectorEventLoop and the default policy's _loop_factory
         (hence asyncio.new_event_loop, asyncio.run, asyncio.Runner, IsolatedAsyncioTestCase)
  fallback  (with --fallback) the same, with io_uring turned off (URINGLOOP_DISABLE=1)
The worker counts, per test, the loops created by class, so the report shows that the
loop under test really was a uringloop.Loop, and flags any test that still built a stock
selector loop in a patched run (a missed seam). Loops that test_asyncio builds on purpose
around mocks (utils.TestLoop, test_selector_events' TestBaseSelectorEventLoop) stay as
they are; the modules made only of those are not in the list.

A test that passes on stock but not on uringloop is re-run alone (--reruns times, on both
variants); if it then passes on uringloop it is reported as flaky, otherwise as a
regression. Exit status 1 when there is any regression, 2 when a patched run created no
uringloop Loop at all (the patching did not take).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

PKG = "test.test_asyncio"

# The modules whose tests run real event loops (not mocks); see the module docstring.
# Left out: test_futures, test_pep492, test_runners (3.11: no test builds a real loop),
# test_selector_events, test_proactor_events, test_transports, test_protocols (mocks).
FULL = [
    "test_events",
    "test_sock_lowlevel",
    "test_sendfile",
    "test_server",
    "test_streams",
    "test_subprocess",
    "test_unix_events",
    "test_base_events",
    "test_buffered_proto",
    "test_context",
    "test_futures2",
    "test_locks",
    "test_queues",
    "test_ssl",
    "test_sslproto",
    "test_taskgroups",
    "test_tasks",
    "test_threads",
    "test_timeouts",
    "test_waitfor",
    "test_eager_task_factory",  # 3.12+
    "test_staggered",  # 3.13+
]

# The CI subset: one selector flavour of each loop-level suite, plus the small modules.
QUICK = [
    "test_events.EPollEventLoopTests",
    "test_sock_lowlevel.EPollEventLoopTests",
    "test_sendfile.EPollEventLoopTests",
    "test_server",
    "test_streams",
    "test_subprocess.SubprocessPidfdWatcherTests",
    "test_unix_events.SelectorEventLoopSignalTests",
    "test_unix_events.SelectorEventLoopUnixSocketTests",
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests",
    "test_unix_events.TestFunctional",
]

VARIANTS = ("stock", "uring", "fallback")
PER_TEST_TIMEOUT = 120.0  # seconds before the worker dumps its stacks and exits
OUTCOMES = ("pass", "fail", "error", "skip", "xfail", "xpass", "crash")
GOOD = ("pass", "xfail")
STOCK_LOOP = "asyncio.unix_events._UnixSelectorEventLoop"
# Lines of worker output counted per variant: problems a test does not assert on.
LOG_PATTERNS = (
    "ResourceWarning",
    "was never awaited",
    "Task was destroyed but it is pending",
    "Exception in callback",
    "Unhandled error in exception handler",
    "Fatal error",
    "Traceback (most recent call last)",  # any logged exception, expected ones included
)
PY_FLAGS: list[str] = []  # interpreter flags for the workers (--dev: ["-X", "dev"])


# -- worker (runs inside the child process) ------------------------------------------------


def _patch_uring() -> None:
    """Make every seam through which test_asyncio builds a real loop return uringloop.Loop.

    Loop subclasses the original SelectorEventLoop (bound at its import, before this), so
    isinstance checks against asyncio.SelectorEventLoop still hold.
    """
    import asyncio
    import asyncio.unix_events

    import uringloop

    asyncio.SelectorEventLoop = uringloop.Loop
    asyncio.unix_events.SelectorEventLoop = uringloop.Loop
    if hasattr(asyncio.unix_events, "EventLoop"):  # 3.13+: asyncio.EventLoop, the default
        asyncio.EventLoop = uringloop.Loop  # type: ignore[attr-defined,unused-ignore]
        asyncio.unix_events.EventLoop = uringloop.Loop  # type: ignore[attr-defined,unused-ignore]
    # new_event_loop(), asyncio.run(), Runner and IsolatedAsyncioTestCase go through this.
    asyncio.unix_events.DefaultEventLoopPolicy._loop_factory = uringloop.Loop  # type: ignore[attr-defined]


def _count_loops(counts: collections.Counter[str]) -> None:
    """Count every event loop constructed, by class, into `counts`."""
    import asyncio.base_events

    import uringloop

    def counting(original: Any) -> Any:
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            outermost = not getattr(self, "_conformance_counted", False)
            self._conformance_counted = True
            original(self, *args, **kwargs)
            if not outermost:
                return
            cls = type(self)
            name = f"{cls.__module__}.{cls.__qualname__}"
            if isinstance(self, uringloop.Loop):  # say how it does files, once it is built
                name += " (io_uring)" if self.uring_available else " (thread-pool)"
            counts[name] += 1

        return init

    base = asyncio.base_events.BaseEventLoop
    base.__init__ = counting(base.__init__)  # type: ignore[method-assign]
    uringloop.Loop.__init__ = counting(uringloop.Loop.__init__)  # type: ignore[method-assign]


def _worker(variant: str, names: list[str], out_path: str, exclude: set[str]) -> int:
    import faulthandler
    import traceback
    import unittest

    counts: collections.Counter[str] = collections.Counter()
    if variant in ("uring", "fallback"):
        _patch_uring()
    _count_loops(counts)

    out = open(out_path, "a", buffering=1)  # noqa: SIM115 - one line per test, flushed

    def emit(record: dict[str, Any]) -> None:
        out.write(json.dumps(record) + "\n")

    class Recorder(unittest.TestResult):
        def __init__(self) -> None:
            super().__init__()
            self._outcome: dict[str, tuple[str, str]] = {}  # {test id: (outcome, detail)}
            self._started: set[str] = set()
            self._start = 0.0

        def _set(self, test: Any, outcome: str, detail: str = "") -> None:
            tid = test.id()
            old = self._outcome.get(tid)
            # A failing subtest makes the test fail; an error beats a failure.
            rank = {"pass": 0, "skip": 1, "xfail": 1, "xpass": 2, "fail": 3, "error": 4}
            if old is None or rank[outcome] >= rank[old[0]]:
                self._outcome[tid] = (outcome, detail)
            if tid not in self._started:
                # Errors of setUpClass/setUpModule arrive without startTest.
                emit({"id": tid, "outcome": outcome, "detail": detail, "loops": {}, "t": 0})

        def startTest(self, test: Any) -> None:
            super().startTest(test)
            self._started.add(test.id())
            emit({"start": test.id()})
            counts.clear()
            self._start = time.monotonic()
            faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)

        def stopTest(self, test: Any) -> None:
            faulthandler.cancel_dump_traceback_later()
            super().stopTest(test)
            tid = test.id()
            outcome, detail = self._outcome.pop(tid, ("pass", ""))
            emit(
                {
                    "id": tid,
                    "outcome": outcome,
                    "detail": detail,
                    "loops": dict(counts),
                    "t": round(time.monotonic() - self._start, 3),
                }
            )

        def _tb(self, err: Any) -> str:
            text = "".join(traceback.format_exception(*err))
            return text[-2000:]

        def addError(self, test: Any, err: Any) -> None:
            super().addError(test, err)
            self._set(test, "error", self._tb(err))

        def addFailure(self, test: Any, err: Any) -> None:
            super().addFailure(test, err)
            self._set(test, "fail", self._tb(err))

        def addSuccess(self, test: Any) -> None:
            super().addSuccess(test)
            self._set(test, "pass")

        def addSkip(self, test: Any, reason: str) -> None:
            super().addSkip(test, reason)
            self._set(test, "skip", reason)

        def addExpectedFailure(self, test: Any, err: Any) -> None:
            super().addExpectedFailure(test, err)
            self._set(test, "xfail")

        def addUnexpectedSuccess(self, test: Any) -> None:
            super().addUnexpectedSuccess(test)
            self._set(test, "xpass")

        def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
            super().addSubTest(test, subtest, err)
            if err is not None:
                failed = issubclass(err[0], test.failureException)
                self._set(test, "fail" if failed else "error", self._tb(err))

    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for name in names:
        suite.addTests(loader.loadTestsFromName(f"{PKG}.{name}"))
    if exclude:
        suite = _filter(suite, exclude)
    result = Recorder()
    suite.run(result)
    out.close()
    return 0


def _filter(suite: Any, exclude: set[str]) -> Any:
    import unittest

    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.addTest(_filter(item, exclude))
        elif item.id() not in exclude:
            kept.addTest(item)
    return kept


# -- driver (the parent process) ------------------------------------------------------------


@dataclass
class TestRecord:
    outcome: str
    detail: str = ""
    loops: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Run:
    variant: str
    tests: dict[str, TestRecord] = field(default_factory=dict)
    seconds: float = 0.0
    logs: collections.Counter[str] = field(default_factory=collections.Counter)


def _env(variant: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("URINGLOOP_DISABLE", None)
    if variant == "fallback":
        env["URINGLOOP_DISABLE"] = "1"
    env["PYTHONWARNINGS"] = env.get("PYTHONWARNINGS", "")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_names(
    variant: str, names: list[str], verbose: bool
) -> tuple[dict[str, TestRecord], collections.Counter[str]]:
    """Run the tests `names` in a worker; restart it past a test that crashed or hung.

    Returns the per-test records and the counts of LOG_PATTERNS in the worker's output.
    """
    records: dict[str, TestRecord] = {}
    logs: collections.Counter[str] = collections.Counter()
    attempts = 0
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        while True:
            attempts += 1
            out = os.path.join(tmp, f"out{attempts}.jsonl")
            exclude = os.path.join(tmp, "exclude.json")
            with open(exclude, "w") as f:
                json.dump(sorted(records), f)
            cmd = [
                sys.executable,
                *PY_FLAGS,
                os.path.abspath(__file__),
                "--worker",
                variant,
                "--out",
                out,
                "--exclude",
                exclude,
                *names,
            ]
            proc = subprocess.run(
                cmd,
                env=_env(variant),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=3600,
            )
            for pattern in LOG_PATTERNS:
                logs[pattern] += proc.stdout.count(pattern)
            started: str | None = None
            if os.path.exists(out):
                with open(out) as f:
                    for line in f:
                        rec = json.loads(line)
                        if "start" in rec:
                            started = rec["start"]
                            continue
                        records[rec["id"]] = TestRecord(
                            rec["outcome"], rec["detail"], rec["loops"], rec["t"]
                        )
                        if rec["id"] == started:
                            started = None
            if proc.returncode == 0:
                return records, logs
            # The worker died: blame the test it had started, then go on after it.
            tail = proc.stdout[-3000:]
            if verbose:
                print(f"[{variant}] worker for {names} exited {proc.returncode}:\n{tail}")
            if started is None or attempts > 50:
                key = f"{PKG}.{'+'.join(names)} (worker)"
                records[key] = TestRecord("crash", tail)
                return records, logs
            records[started] = TestRecord("crash", tail)


def run_variant(variant: str, names: list[str], jobs: int, verbose: bool) -> Run:
    start = time.monotonic()
    run = Run(variant)
    # One worker per module: a hang or crash costs one module's remainder, not the run.
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for name in names:
        groups[name.split(".")[0]].append(name)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for records, logs in pool.map(lambda g: _run_names(variant, g, verbose), groups.values()):
            run.tests.update(records)
            run.logs.update(logs)
    run.seconds = time.monotonic() - start
    return run


def _module(test_id: str) -> str:
    parts = test_id.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["test", "test_asyncio"] else test_id


def _tally(run: Run, module: str | None = None) -> collections.Counter[str]:
    c: collections.Counter[str] = collections.Counter()
    real = "thread-pool)" if run.variant == "fallback" else "io_uring)"
    for tid, rec in run.tests.items():
        if module is None or _module(tid) == module:
            c[rec.outcome] += 1
            c["run"] += 1
            # Tests whose loop was a real one of this variant (not a mock or test loop).
            c["loops"] += any(cls.endswith(real) or cls == STOCK_LOOP for cls in rec.loops)
    return c


def _loop_summary(run: Run) -> tuple[int, int, int, list[str]]:
    """(uringloop Loops created in the variant's file mode, stock selector loops created,
    tests that made such a Loop, tests that made a stock selector loop)."""
    mode = "thread-pool" if run.variant == "fallback" else "io_uring"
    uring = stock = tests_uring = 0
    missed: list[str] = []
    for tid, rec in run.tests.items():
        u = sum(n for cls, n in rec.loops.items() if cls.endswith(f"({mode})"))
        s = rec.loops.get(STOCK_LOOP, 0)
        uring += u
        stock += s
        tests_uring += u > 0
        if s:
            missed.append(tid)
    return uring, stock, tests_uring, missed


def _fmt_row(label: str, c: collections.Counter[str]) -> str:
    return (
        f"{label:<26}{c['run']:>6}{c['pass']:>6}{c['fail']:>6}{c['error']:>6}"
        f"{c['skip']:>6}{c['xfail'] + c['xpass']:>6}{c['crash']:>6}{c['loops']:>7}"
    )


def report(runs: list[Run], reruns: dict[str, list[str]], names: list[str]) -> int:
    base = runs[0]
    modules = sorted({_module(t) for r in runs for t in r.tests})
    header = (
        f"{'module / variant':<26}"
        + "".join(f"{h:>6}" for h in ("run", "pass", "fail", "err", "skip", "x", "crash"))
        + f"{'loops':>7}"
    )
    print(header)
    print("-" * len(header))
    for mod in modules:
        for run in runs:
            print(
                _fmt_row(
                    f"{mod[5:] if mod.startswith('test_') else mod} {run.variant}", _tally(run, mod)
                )
            )
    print("-" * len(header))
    for run in runs:
        print(_fmt_row(f"TOTAL {run.variant}", _tally(run)) + f"   {run.seconds:.0f} s")
    print()

    print("loops: tests in which the loop was real (stock: SelectorEventLoop; uring and")
    print("fallback: uringloop.Loop); the rest use test_asyncio's mock or test loops.")
    print()
    print("worker output lines (warnings and logged errors no test asserts on):")
    for pattern in LOG_PATTERNS:
        counts = "  ".join(f"{run.variant} {run.logs[pattern]}" for run in runs)
        print(f"  {pattern:<40}{counts}")
    print()

    status = 0
    for run in runs[1:]:
        made, stock, tests_made, missed = _loop_summary(run)
        print(
            f"[{run.variant}] uringloop.Loop instances created: {made} (in {tests_made} tests, "
            f"files on {'thread-pool' if run.variant == 'fallback' else 'io_uring'}); "
            f"stock selector loops created: {stock}"
        )
        for tid in missed[:20]:
            print(f"    missed seam (stock loop built): {tid}")
        if made == 0:
            print(f"[{run.variant}] no uringloop.Loop was created: the patching did not take")
            status = max(status, 2)
    stock_made = _loop_summary(base)
    print(f"[stock] stock selector loops created: {stock_made[1]}")
    print()

    for run in runs[1:]:
        diffs = []
        for tid in sorted(set(base.tests) | set(run.tests)):
            a = base.tests.get(tid)
            b = run.tests.get(tid)
            oa = a.outcome if a else "absent"
            ob = b.outcome if b else "absent"
            if oa != ob:
                diffs.append((tid, oa, ob))
        print(f"Outcomes that differ, stock vs {run.variant}: {len(diffs)}")
        regressions = 0
        for tid, oa, ob in diffs:
            flaky = ""
            if oa in GOOD and ob not in GOOD:
                again = reruns.get(f"{run.variant}:{tid}", [])
                if any(o in GOOD for o in again):
                    flaky = f"  flaky: re-runs {again}"
                else:
                    regressions += 1
                    flaky = f"  REGRESSION (re-runs {again})" if again else "  REGRESSION"
            print(f"  {tid}: {oa} -> {ob}{flaky}")
            rec = run.tests.get(tid)
            if rec is not None and rec.detail and ob not in GOOD and ob != "skip":
                last = rec.detail.strip().splitlines()[-1][:200]
                print(f"      {last}")
        if regressions:
            status = max(status, 1)
        print(f"Regressions on {run.variant}: {regressions}")
        print()
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="test_asyncio modules/classes (default: list)")
    parser.add_argument("--quick", action="store_true", help="the CI subset")
    parser.add_argument("--fallback", action="store_true", help="also run with io_uring off")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers at a time per variant")
    parser.add_argument("--reruns", type=int, default=2, help="re-runs of a test that regressed")
    parser.add_argument("--json", help="write all per-test outcomes to this file")
    parser.add_argument(
        "--dev", action="store_true", help="run the workers with -X dev (asyncio debug mode)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--exclude", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        with open(args.exclude) as f:
            exclude = set(json.load(f))
        return _worker(args.worker, args.names, args.out, exclude)

    if args.dev:
        PY_FLAGS[:] = ["-X", "dev"]
    names = args.names or (QUICK if args.quick else FULL)
    if not args.names:
        # The list spans Python versions: keep the modules this interpreter has.
        names = [n for n in names if importlib.util.find_spec(f"{PKG}.{n.split('.')[0]}")]
    variants = ["stock", "uring"] + (["fallback"] if args.fallback else [])
    runs = []
    for variant in variants:
        print(f"running {len(names)} test_asyncio names on {variant} ...", flush=True)
        runs.append(run_variant(variant, names, args.jobs, args.verbose))

    # Re-run, alone, each test that passed on stock and not on a patched variant.
    reruns: dict[str, list[str]] = {}
    base = runs[0].tests
    for run in runs[1:]:
        bad = [
            tid
            for tid, rec in run.tests.items()
            if rec.outcome not in GOOD and base.get(tid, TestRecord("absent")).outcome in GOOD
        ]
        for tid in bad:
            name = tid.removeprefix(PKG + ".")
            outcomes = []
            for _ in range(args.reruns):
                rec = _run_names(run.variant, [name], args.verbose)[0].get(tid)
                outcomes.append(rec.outcome if rec else "absent")
                if outcomes[-1] in GOOD:
                    break
            reruns[f"{run.variant}:{tid}"] = outcomes

    status = report(runs, reruns, names)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {run.variant: {tid: rec.__dict__ for tid, rec in run.tests.items()} for run in runs}
                | {"reruns": reruns, "logs": {run.variant: dict(run.logs) for run in runs}},
                f,
                indent=1,
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
