"""Where the command line writes: rich consoles that print tables whole when nobody is looking.

A terminal has a width and rich fits tables into it. A pipe or a file (a CI log, ``make demo >
log``) has none, and rich then assumes 80 columns and cuts every cell to ``…``; a log is read
later, often pasted, so there it prints rows at their natural width instead.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console

UNBOUNDED_WIDTH = 400  # wider than any table we print; lines are never padded to it


def console(file: TextIO | None = None, stderr: bool = False) -> Console:
    """A console on ``file`` (default stdout, or stderr), unbounded in width when not a terminal."""
    made = Console(file=file, stderr=stderr)
    if not made.is_terminal:
        made = Console(file=file, stderr=stderr, width=UNBOUNDED_WIDTH)
    return made


def whole_width(existing: Console) -> Console:
    """``existing`` itself on a terminal, else one on its file that prints tables whole."""
    if existing.is_terminal:
        return existing
    return Console(file=existing.file, width=UNBOUNDED_WIDTH)
