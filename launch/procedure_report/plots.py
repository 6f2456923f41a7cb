"""The report's plots: matplotlib figures on the Agg canvas (no display, no pyplot state),
returned as PNG bytes for the page to embed."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from igtflow.launch.procedure_report.reading import Alarm, Series

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 2.8, 90
LEVEL_COLOURS = {"ok": "tab:green", "warn": "tab:orange", "error": "tab:red"}
LEVEL_NAMES = {"ok": "cleared", "warn": "warn", "error": "error"}


def _png(figure: Figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def lines(
    series: Mapping[str, Series],
    start_ns: int,
    ylabel: str,
    flagged: str | None = None,
    limit: float | None = None,
) -> bytes:
    """One line per series over seconds since ``start_ns``; flagged points (low confidence,
    invalid registration) drawn as red crosses labelled ``flagged``; ``limit`` a dashed line."""
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN))
    axes = figure.add_subplot()
    any_flag = False
    for name, one in series.items():
        seconds = (np.asarray(one.stamps_ns, np.int64) - start_ns) / 1e9
        values = np.asarray(one.values, np.float64)
        order = np.argsort(seconds, kind="stable")
        seconds, values = seconds[order], values[order]
        axes.plot(
            seconds, values, linewidth=1, marker="." if len(values) < 60 else None, label=name
        )
        flags = np.asarray(one.flags, bool)[order]
        if flagged and flags.any():
            label = flagged if not any_flag else None
            axes.plot(seconds[flags], values[flags], "x", color="tab:red", label=label)
            any_flag = True
    if limit is not None:
        axes.axhline(limit, color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel("seconds since the first capture")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="best", ncols=2 if len(series) > 4 else 1)
    return _png(figure)


def alarm_timeline(alarms: Sequence[Alarm], start_ns: int) -> bytes:
    """Each alarm as a mark on its own row (node: code), coloured by level."""
    rows = sorted({f"{a.node}: {a.code}" for a in alarms})
    height = max(1.6, 0.35 * len(rows) + 1.0)
    figure = Figure(figsize=(WIDTH_IN, height))
    axes = figure.add_subplot()
    for level, colour in LEVEL_COLOURS.items():
        picked = [a for a in alarms if a.level == level and a.stamp_ns is not None]
        if picked:
            seconds = [(a.stamp_ns - start_ns) / 1e9 for a in picked if a.stamp_ns is not None]
            axes.scatter(
                seconds,
                [rows.index(f"{a.node}: {a.code}") for a in picked],
                marker="|",
                s=200,
                color=colour,
                label=LEVEL_NAMES[level],
            )
    axes.set_yticks(range(len(rows)), rows, fontsize="small")
    axes.set_ylim(-0.6, len(rows) - 0.4)
    axes.set_xlabel("seconds since the first capture")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize="small", loc="upper right")
    return _png(figure)
