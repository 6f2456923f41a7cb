"""How every ``igtflow bench …`` hands over its report: one JSON-able dict, checked for a place
to go before the run, saved atomically as JSON when asked, then printed as JSON (``--json``) or as
the bench's own table.

A bench module owns its measurements and its table (``run_…`` and ``print_…``); this module owns
what is the same for all of them, so a new bench writes and prints its report like the others.
``print_json`` is also how every other ``--json`` command prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

Printer = Callable[[dict[str, Any], Any], None]


def check_output(output: Path | None, force: bool) -> None:
    """Raise ``OutputError`` now if the report could not be saved at ``output``, so that a long
    run is refused before it starts, not after."""
    from igtflow.stream.atomic_file import check_target

    if output is not None:
        check_target(output, force)


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout; what JSON cannot hold is written as its ``str``."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def save_json(report: dict[str, Any], output: Path, force: bool = False) -> None:
    """Write ``report`` to ``output`` as JSON; the file appears whole or not at all."""
    from igtflow.stream.atomic_file import atomic_output

    with atomic_output(output, force) as partial:
        partial.write_text(json.dumps(report, indent=2))


def read_json(path: Path) -> dict[str, Any]:
    """A report saved by ``save_json`` (or ``--json``), to print again without a run."""
    return json.loads(path.read_text())


def markdown_printer(table: Callable[[dict[str, Any]], str]) -> Printer:
    """A printer writing ``table(report)`` (a README's Markdown table) to standard output."""

    def write(report: dict[str, Any], _console: Any) -> None:
        sys.stdout.write(table(report) + "\n")

    return write


def deliver(
    report: dict[str, Any],
    *,
    json_: bool,
    printer: Printer,
    console: Any,
    output: Path | None = None,
    force: bool = False,
) -> None:
    """Save ``report`` at ``output`` if given, then print it: JSON when ``json_``, else
    ``printer(report, console)``."""
    if output:
        save_json(report, output, force)
    if json_:
        print_json(report)
    else:
        printer(report, console)
