"""The live status table an integrator watches: rate, age since capture, drops, restarts."""

from __future__ import annotations

import os
from typing import Any

from rich.table import Table

from igtflow.launch.status_row import NodeState

STATE_STYLE = {
    NodeState.RUNNING: "green",
    NodeState.READY: "green",
    NodeState.STARTING: "yellow",
    NodeState.RESTARTING: "yellow",
    NodeState.FAILED: "bold red",
    NodeState.FINISHED: "blue",
    NodeState.STOPPED: "dim",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _gap(row: dict[str, Any]) -> str:
    """How long the node's restarts held its topics up, and the frames they lost."""
    if not row.get("restart_gaps"):
        return "-"
    return f"{row['restart_gap_ms']:.0f} ms, {row['restart_gap_frames']} fr"


FILE_STATES = {
    "closed": "closed",
    "recovered": "recovered after a crash, closed",
    "writing": "still being written",
    "open": "NOT CLOSED: run `igtflow recover`",
}


def run_files(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every file the run's nodes wrote, with its last state, from the status rows."""
    return [{"node": row["node"], **f} for row in rows for f in row.get("files", [])]


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What the status table cannot show: each restart gap and each file the run produced."""
    lines = []
    for row in rows:
        for gap in row.get("restart_gaps", []):
            about = "about " if gap.get("estimated") else ""
            lines.append(
                f"restart gap: {gap['topic']}: {gap['gap_ms']:.0f} ms, {about}{gap['frames']} "
                f"frame(s) lost while {gap['node']} restarted (restart {gap['restart']})"
            )
    for file in run_files(rows):
        state = FILE_STATES.get(file["state"], file["state"])
        lines.append(f"file: {file['path']} ({state}) by {file['node']}")
    return lines


def status_table(graph_name: str, rows: list[dict[str, Any]], elapsed_s: float) -> Table:
    """One row per node, from ``Supervisor.snapshot()``."""
    table = Table(title=f"igtflow · {graph_name} · {elapsed_s:.0f} s", title_justify="left")
    for header, justify in (
        ("node", "left"),
        ("uses", "left"),
        ("state", "left"),
        ("in Hz", "right"),
        ("out Hz", "right"),
        ("age p50 ms", "right"),
        ("age p99 ms", "right"),
        ("drops", "right"),
        ("restarts", "right"),
        ("restart gap", "right"),
        ("CPU %", "right"),
        ("CPU ms/fr", "right"),
        ("last alarm", "left"),
    ):
        table.add_column(header, justify=justify, no_wrap=header != "last alarm")
    for row in rows:
        style = STATE_STYLE.get(row["state"], "")
        table.add_row(
            row["node"],
            row["uses"],
            f"[{style}]{row['state']}[/]" if style else row["state"],
            f"{row['rate_in_hz']:.1f}",
            f"{row['rate_out_hz']:.1f}",
            _ms(row["age_p50_ms"]),
            _ms(row["age_p99_ms"]),
            str(row["drops"]),
            str(row["restarts"]),
            _gap(row),
            f"{row['cpu_percent']:.0f}",
            _ms(row.get("cpu_ms_per_frame")),
            row["last_alarm"][:60],
        )
    warning = cpu_budget_warning(rows)
    if warning:
        table.caption = f"[bold red]{warning}[/]"
        table.caption_justify = "left"
    return table


def cpu_budget_warning(rows: list[dict[str, Any]], cores: int | None = None) -> str:
    """A line when the graph's nodes together use more CPU than the machine has (90 % of
    its cores): frames will queue, age and drop however well each node is written."""
    cores = cores or os.cpu_count() or 1
    total = sum(float(row.get("cpu_percent") or 0.0) for row in rows)
    if total <= 90.0 * cores:
        return ""
    top = sorted(rows, key=lambda r: -float(r.get("cpu_percent") or 0.0))[:3]
    heaviest = ", ".join(f"{r['node']} {float(r['cpu_percent']):.0f} %" for r in top)
    return (
        f"the graph uses {total:.0f} % CPU, more than this machine's {cores} core(s) give: "
        f"heaviest {heaviest}"
    )
