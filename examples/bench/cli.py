"""The command line shared by the suite and by every benchmark run alone; output formats.

    python -m examples.bench [NAME ...] [--quick] [--reps N] [--duration S]
                             [--file-mib N] [--dir PATH] [--no-fio] [--keep]
                             [--json [PATH]] [--markdown PATH] [--plot [PATH]]

The markdown report goes to stdout (unless --json -); --json writes the same data as
JSON, --plot a PNG chart (matplotlib). Benchmarks run in the order given. --quick is a
smoke test (one short repetition each): it reports what ran, and evaluates no targets.
Rows whose peer library is not installed are skipped with that reason. The data files a
run makes are removed at its end unless --keep is given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import shlex
import sys
import time
from typing import Any

from .common import (
    Config,
    Report,
    Row,
    machine_info,
    ratio,
    reference_row,
    remove_created,
    report_to_json,
)

BENCHES = (
    "iotest",
    "randread",
    "seqread",
    "wakeup",
    "overhead",
    "threadio",
    "smallfiles",
    "filecalls",
    "streams",
)


# uring_stats().implementation when every twin agrees, as the report names it.
TWIN_NAMES = {"c": "compiled", "python": "pure Python (URINGLOOP_NO_EXTENSIONS=1 or no build)"}


def parse_args(argv: list[str] | None, only: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m examples.bench" + (f".{only[0]}" if only else ""),
        description="uringloop benchmarks, side by side with stock asyncio, uvloop, aiofiles, "
        "aiofile/caio and pyuring",
    )
    if only is None:
        p.add_argument("benches", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHES)}")
    p.add_argument("--quick", action="store_true", help="short runs, one repetition (< 1 minute)")
    p.add_argument("--reps", type=int, help="repetitions per implementation (default 5; quick 1)")
    p.add_argument("--duration", type=float, help="seconds per timed throughput run")
    p.add_argument("--file-mib", type=int, help="size of the data file in MiB (default 256)")
    p.add_argument("--dir", help="where data files live (default /var/tmp/uringloop-bench)")
    p.add_argument("--no-fio", action="store_true", help="do not run fio")
    p.add_argument(
        "--keep", action="store_true", help="keep the data files made for the run (reused later)"
    )
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write JSON (- = stdout)")
    p.add_argument("--markdown", metavar="PATH", help="also write the markdown report here")
    p.add_argument("--plot", nargs="?", const="bench.png", metavar="PATH", help="write a PNG chart")
    args = p.parse_args(argv)
    if only is not None:
        args.benches = only
    for name in args.benches:
        if name not in BENCHES:
            p.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
    if not args.benches:
        args.benches = list(BENCHES)
    return args


def main(argv: list[str] | None = None, only: list[str] | None = None) -> int:
    args = parse_args(argv, only)
    cfg = Config.make(
        args.quick, args.reps, args.duration, args.file_mib, args.dir, fio=not args.no_fio
    )
    command = "python -m examples.bench" + (f".{only[0]}" if only else "")
    command += "".join(" " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    machine = machine_info(cfg)
    reports: list[Report] = []
    started = time.perf_counter()
    try:
        for name in args.benches:
            module = importlib.import_module(f"examples.bench.{name}")
            t0 = time.perf_counter()
            print(f"# running {name} ...", file=sys.stderr, flush=True)
            report: Report = module.run(cfg)
            if cfg.quick:
                report.targets.clear()  # a smoke run measures nothing worth judging
            print(f"# {name} took {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
            reports.append(report)
    finally:
        if not args.keep:
            for path in remove_created():
                print(f"# removed {path} (--keep keeps it)", file=sys.stderr)
    elapsed = time.perf_counter() - started
    text = render_markdown(reports, machine, command, cfg, elapsed)
    doc = {
        "command": command,
        "machine": machine,
        "config": vars(cfg),
        "elapsed_s": elapsed,
        "reports": [report_to_json(r) for r in reports],
    }
    if args.json == "-":
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        print(text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(doc, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.plot:
        from .plot import plot

        plot(reports, machine, args.plot)
        print(f"# chart written to {args.plot}", file=sys.stderr)
    return 0


# -- markdown -------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "-"
    a = abs(value)
    if a >= 10_000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio_cell(ref: Row | None, row: Row) -> str:
    if row.skipped or not row.samples:
        return ""
    if ref is None:
        return ""
    if row is ref:
        return "1 (ref)"
    r = ratio(ref, row)
    return "-" if math.isnan(r) else f"{r:.2f}x"


def render_case(report: Report, case: str) -> list[str]:
    rows = [r for r in report.rows if r.case == case]
    unit = rows[0].unit
    better = "higher is better" if rows[0].higher_is_better else "lower is better"
    ref = reference_row(report, case)
    extra_keys: list[str] = []
    for r in rows:
        for k in r.extra:
            if k not in extra_keys:
                extra_keys.append(k)
    lines = [f"#### {case} ({unit}, {better})", ""]
    head = ["implementation", "median", "min", "max", *extra_keys]
    if ref is not None:
        head.append(f"{ref.impl} vs this")
    head.append("note")
    lines.append("| " + " | ".join(head) + " |")
    lines.append(
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head) - 1)) + "|---|"
    )
    for r in rows:
        if r.skipped:
            cells = [r.impl, "-", "-", "-", *["-" for _ in extra_keys]]
            if ref is not None:
                cells.append("")
            cells.append(f"skipped: {r.skipped}")
        else:
            cells = [r.impl, fmt(r.median), fmt(r.min), fmt(r.max)]
            cells += [fmt(r.extra.get(k, float("nan"))) for k in extra_keys]
            if ref is not None:
                cells.append(_ratio_cell(ref, r))
            cells.append(r.note)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines.append("")
    return lines


def render_markdown(
    reports: list[Report], machine: dict[str, Any], command: str, cfg: Config, elapsed: float
) -> str:
    pk = machine["packages"]
    twins = machine["uringloop_twins"]
    lines = [
        "## Benchmark results",
        "",
        f"Command: `{command}` ({cfg.reps} repetition(s), {cfg.duration:g} s per timed run, "
        f"{elapsed:.0f} s in all)",
        "",
        f"Machine: Linux {machine['kernel']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable, {machine['cpu']}), load average "
        f"{', '.join(f'{x:.2f}' for x in machine['loadavg'])} at start; Python "
        f"{machine['python']}; data on {machine['data_dir']} ({machine['data_fs']}); "
        f"{machine['fio']}; git {machine['git_commit'] or '?'}; {machine['date']}",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in pk.items()),
        "",
        f"uringloop's hot path: {TWIN_NAMES.get(twins, twins)}",
        "",
        *(
            [
                "**Warning: compiled and pure-Python twins mixed in this run** (an extension "
                "built from other sources falls back to its twin: rebuild with "
                "`pip install -e .`).",
                "",
            ]
            if twins not in TWIN_NAMES
            else []
        ),
        *(
            [
                "**Quick run: a smoke test.** One short repetition each, on a small file: "
                "it shows that every benchmark runs and what each row measures; its figures "
                "are not measurements, and no target is evaluated. A full run: "
                "`python -m examples.bench`.",
                "",
            ]
            if cfg.quick
            else []
        ),
        "Medians of the repetitions, competitors interleaved in one process. "
        '"X vs this" = how many times better X (the uringloop reference row) is than the '
        "row: above 1 uringloop wins, whichever way the unit points.",
        "",
    ]
    for report in reports:
        lines += [f"### {report.title}", ""]
        for note in report.notes:
            lines += [note, ""]
        for case in report.cases():
            lines += render_case(report, case)
    targets = [(r.bench, t) for r in reports for t in r.targets]
    if targets:
        lines += ["### Goals", "", "| benchmark | goal | measured | met |"]
        lines.append("|---|---|---:|---|")
        for bench, t in targets:
            met = "n/a" if t.met is None else ("yes" if t.met else "**no**")
            lines.append(f"| {bench} | {t.text} | {t.measured} | {met} |")
        lines.append("")
    return "\n".join(lines)
