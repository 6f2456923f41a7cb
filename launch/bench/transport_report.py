"""The report of ``igtflow bench transport``: per-case comparison, targets, table and Markdown."""

from __future__ import annotations

from typing import Any

import igtflow.machine
from igtflow.launch.bench.transport_cases import (
    SHM_TARGET_MIN_BYTES,
    THROUGHPUT_TARGET_MIN_BYTES,
    Case,
)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _target(
    case: Case,
    igt: dict[str, Any],
    raw: dict[str, Any],
    ratio_p99: float | None,
    ratio_rate: float | None,
) -> tuple[str, bool | None]:
    """(rule, met) for ``case``; met is None where the issue sets no target."""
    if not case.rate_hz:
        if case.payload_bytes >= THROUGHPUT_TARGET_MIN_BYTES:
            return "msgs/s ≥ 1.5×", ratio_rate is not None and ratio_rate >= 1.5
        return "—", None
    clean = igt["drops"] == 0 and igt["corrupt"] == 0 and ratio_p99 is not None
    if case.payload_bytes >= SHM_TARGET_MIN_BYTES:
        return "p99 ≤ 0.6×, 0 drops", clean and ratio_p99 <= 0.6
    near = clean and (ratio_p99 <= 1.1 or igt["p99_ms"] <= raw["p99_ms"] + 0.2)
    return "p99 ≤ 1.1× or +0.2 ms, 0 drops", near


def compare(case: Case, igt: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """One case of the JSON report from both sides' stats."""
    ratio_p99 = _ratio(igt["p99_ms"], raw["p99_ms"])
    ratio_rate = _ratio(igt["msgs_per_s"], raw["msgs_per_s"])
    rule, met = _target(case, igt, raw, ratio_p99, ratio_rate)
    return {
        "payload": case.payload,
        "payload_bytes": case.payload_bytes,
        "shape": [case.height, case.width],
        "dtype": case.dtype,
        "hops": case.hops,
        "rate_hz": case.rate_hz,
        "seconds": case.seconds,
        "igtflow": igt,
        "raw": raw,
        "ratio_p99": ratio_p99,
        "ratio_msgs_per_s": ratio_rate,
        "target": rule,
        "target_met": met,
    }


# --- printing --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _three(side: dict[str, Any]) -> str:
    return "/".join(_ms(side[k]) for k in ("p50_ms", "p99_ms", "max_ms"))


def _x(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.3f}×"


def _verdict(row: dict[str, Any]) -> str:
    met = row["target_met"]
    return "—" if met is None else ("met" if met else "MISSED")


def _rate(row: dict[str, Any]) -> str:
    return f"{row['rate_hz']:g} Hz" if row["rate_hz"] else "max"


def progress_line(row: dict[str, Any]) -> str:
    igt, raw = row["igtflow"], row["raw"]
    return (
        f"{row['payload']:>17} {row['hops']} hop {_rate(row):>6}: "
        f"igtflow p99 {_ms(igt['p99_ms'])} ms {igt['msgs_per_s']:.0f}/s drops {igt['drops']} · "
        f"raw p99 {_ms(raw['p99_ms'])} ms {raw['msgs_per_s']:.0f}/s drops {raw['drops']} · "
        f"p99 {_x(row['ratio_p99'])} · {_verdict(row)}"
    )


def print_table(report: dict[str, Any], console: Any) -> None:
    """The report as a rich table: per-hop latency, msgs/s, ratios and the target verdict."""
    from rich.table import Table

    from igtflow.launch.console import whole_width

    machine = report["machine"]
    table = Table(
        title="igtflow vs raw pyzmq · per-hop latency (ms) and throughput",
        title_justify="left",
        caption=(
            f"{machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
            f"pyzmq {machine['pyzmq']} / libzmq {machine['libzmq']}, "
            f"load {machine.get('load_avg_1m', '?')} → {machine.get('load_avg_1m_end', '?')}, "
            f"{_rehearsal(report)}. Rate max = saturated.\n{igtflow.machine.describe(machine)}\n"
            "Targets: paced p99 ≤ 0.6× raw from 512 KiB, else ≤ 1.1× raw or raw + 0.2 ms, "
            "both with 0 drops; saturated 2 MiB msgs/s ≥ 1.5× raw."
        ),
        caption_justify="left",
    )
    for header in (
        "payload",
        "hops",
        "rate",
        "igtflow ms\np50/p99/max",
        "raw ms\np50/p99/max",
        "msgs/s\nigtflow",
        "msgs/s\nraw",
        "ratio\np99",
        "ratio\nmsgs/s",
        "drops\nigt/raw",
        "target",
    ):
        justify = "left" if header in ("payload", "target") else "right"
        table.add_column(header, justify=justify, no_wrap=True)
    for row in report["cases"]:
        igt, raw = row["igtflow"], row["raw"]
        verdict = _verdict(row)
        style = {"met": "green", "MISSED": "bold red"}.get(verdict, "dim")
        drops = f"{igt['drops']}/{raw['drops']}"
        if igt.get("corrupt"):
            drops += f" ({igt['corrupt']} corrupt)"
        table.add_row(
            row["payload"],
            str(row["hops"]),
            _rate(row),
            _three(igt),
            _three(raw),
            f"{igt['msgs_per_s']:.0f}",
            f"{raw['msgs_per_s']:.0f}",
            _x(row["ratio_p99"]),
            _x(row["ratio_msgs_per_s"]),
            drops,
            f"[{style}]{verdict}[/]",
        )
    whole_width(console).print(table)


def _rehearsal(report: dict[str, Any]) -> str:
    on = report.get("settings", {}).get("rehearsal", True)  # older reports: always on
    return "rehearsal on" if on else "rehearsal off"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, for pasting into the README as it is."""
    machine = report["machine"]
    lines = [
        f"Measured on {machine['cpu_model']}, {machine['cores']} cores, Python "
        f"{machine['python']}, pyzmq {machine['pyzmq']} / libzmq {machine['libzmq']}, "
        f"{_rehearsal(report)}; per-hop latency in ms (p50 / p99 / max); rate max = saturated.",
        "",
        igtflow.machine.describe(machine) + ".",
        "",
        "| payload | hops | rate | igtflow ms | raw pyzmq ms | msgs/s igtflow | msgs/s raw "
        "| p99 ratio | msgs/s ratio | drops igt/raw | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cases"]:
        igt, raw = row["igtflow"], row["raw"]
        lines.append(
            f"| {row['payload']} | {row['hops']} | {_rate(row)} | {_three(igt)} | {_three(raw)} "
            f"| {igt['msgs_per_s']:.0f} | {raw['msgs_per_s']:.0f} | {_x(row['ratio_p99'])} "
            f"| {_x(row['ratio_msgs_per_s'])} | {igt['drops']}/{raw['drops']} | {_verdict(row)} |"
        )
    return "\n".join(lines) + "\n"
