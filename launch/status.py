"""The live status table an integrator watches: rate, age since capture, drops, restarts."""

from __future__ import annotations

from typing import Any

from rich.table import Table

STATE_STYLE = {
    "running": "green",
    "ready": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "failed": "bold red",
    "finished": "blue",
    "stopped": "dim",
}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


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
        ("CPU %", "right"),
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
            f"{row['cpu_percent']:.0f}",
            row["last_alarm"][:60],
        )
    return table
