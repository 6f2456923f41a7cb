"""Where ``igtflow`` commands write: results on stdout, progress and problems on stderr.

Keeping results alone on stdout lets ``--json`` output be piped while the live table and any
error still reach the terminal.
"""

from __future__ import annotations

from igtflow.launch.console import console

err = console(stderr=True)
out = console()


def print_error(problem: object) -> None:
    """One problem on stderr, unwrapped, so it can be read and searched for whole."""
    text = str(problem)
    text = text if text.startswith("error: ") else f"error: {text}"
    err.print(text, style="red", markup=False, highlight=False, soft_wrap=True)
