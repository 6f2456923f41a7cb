"""The ``igtflow bench perception`` command's body, callable without the CLI."""

from __future__ import annotations

import json as json_module
import sys
from typing import Any


def bench_perception(
    json: bool = False, markdown: bool = False, frames: int = 200
) -> dict[str, Any]:
    """Run the perception bench and print it: JSON (``json``), the README's markdown table
    (``markdown``) or a rich table; progress goes to stderr. Returns the report."""
    from rich.console import Console

    from igtflow.perception.bench import markdown_table, print_report, run_perception_bench

    err = Console(stderr=True)
    report = run_perception_bench(frames, progress=lambda text: err.print(text, highlight=False))
    if json:
        sys.stdout.write(json_module.dumps(report, indent=2) + "\n")
    elif markdown:
        sys.stdout.write(markdown_table(report) + "\n")
    else:
        print_report(report, Console())
    return report
