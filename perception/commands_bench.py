"""The ``igtflow bench perception`` command's body, callable without the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bench_perception(
    json: bool = False,
    markdown: bool = False,
    frames: int = 200,
    output: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the perception bench and print it: JSON (``json``), the README's markdown table
    (``markdown``) or a rich table; progress goes to stderr, the JSON also to ``output``."""
    from rich.console import Console

    from igtflow.perception.bench import markdown_table, print_report, run_perception_bench
    from igtflow.report import check_output, deliver, markdown_printer

    check_output(output, force)  # refused before a long run, not after it
    err = Console(stderr=True)
    report = run_perception_bench(frames, progress=lambda text: err.print(text, highlight=False))
    printer = markdown_printer(markdown_table) if markdown else print_report
    deliver(report, json_=json, printer=printer, console=Console(), output=output, force=force)
    return report
