"""The ``igtflow bench perception`` command's body, callable without the CLI."""

from __future__ import annotations

import sys
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
    from igtflow.report import check_output, print_json, save_json

    check_output(output, force)  # refused before a long run, not after it
    err = Console(stderr=True)
    report = run_perception_bench(frames, progress=lambda text: err.print(text, highlight=False))
    if output:
        save_json(report, output, force)
    if json:
        print_json(report)
    elif markdown:
        sys.stdout.write(markdown_table(report) + "\n")
    else:
        print_report(report, Console())
    return report
