"""The ``igtflow bench registration`` command's body, callable without the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bench_registration(
    json: bool = False,
    markdown: bool = False,
    points: int = 10000,
    repeats: int = 60,
    seed: int = 1001,
    output: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the rigid ICP bench (ours beside Open3D's point-to-plane ICP, one thread each) and
    print it: JSON (``json``), the README's markdown table (``markdown``) or a rich table; the
    JSON also goes to ``output``."""
    from rich.console import Console

    from igtflow.registration.bench_icp import bench_icp, markdown_table, print_report
    from igtflow.report import check_output, deliver, markdown_printer

    check_output(output, force)  # refused before a long run, not after it
    Console(stderr=True).print(
        f"ICP bench: {points} points, {repeats} repeats (phantom organ seed {seed})",
        highlight=False,
    )
    report = bench_icp(points=points, repeats=repeats, seed=seed)
    printer = markdown_printer(markdown_table) if markdown else print_report
    deliver(report, json_=json, printer=printer, console=Console(), output=output, force=force)
    return report
