"""The --plot chart: one horizontal bar chart per case, medians with min-max whiskers.

Red: the uringloop row a case's ratios refer to; orange: other uringloop rows; grey: the rest.
"""

from __future__ import annotations

import math
from typing import Any

from .common import Report


def plot(reports: list[Report], machine: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    panels = [(r, case) for r in reports for case in r.cases()]
    if not panels:
        return
    ncols = 3 if len(panels) >= 3 else len(panels)
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(6.4 * ncols, 3.1 * nrows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (report, case) in zip(axes.flat, panels, strict=False):
        rows = [r for r in report.rows if r.case == case and r.samples]
        if not rows:
            ax.axis("off")
            continue
        names = [r.impl for r in rows]
        med = [r.median for r in rows]
        lo = [r.median - r.min for r in rows]
        hi = [r.max - r.median for r in rows]
        colors = [
            "tab:red" if r.reference else "tab:orange" if "uringloop" in r.impl else "tab:gray"
            for r in rows
        ]
        y = range(len(rows))
        ax.barh(list(y), med, xerr=[lo, hi], color=colors, capsize=2)
        ax.set_yticks(list(y), names, fontsize=7)
        ax.invert_yaxis()
        unit = rows[0].unit
        arrow = "higher is better" if rows[0].higher_is_better else "lower is better"
        positive = [m for m in med if m > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_xscale("log")  # e.g. iotest: the bug is 20x the rest
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{report.bench}: {case}", fontsize=9)
        ax.set_xlabel(f"{unit} ({arrow})", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(
        f"uringloop benchmarks - Linux {machine['kernel']}, {machine['cpu_count']} CPUs, "
        f"Python {machine['python']} ({machine['date']})",
        fontsize=10,
    )
    fig.savefig(path, dpi=90)
    plt.close(fig)
