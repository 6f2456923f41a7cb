"""Single key presses from the terminal while the status table runs (space: pause/resume)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def key_reader() -> Iterator[Callable[[], str]]:
    """Yields a function returning the keys pressed since its last call ('' when none).

    The terminal is put in cbreak mode (keys arrive without Enter, Ctrl-C still works) and
    restored on exit; without a terminal on stdin the function always returns ''.
    """
    if not sys.stdin.isatty():
        yield lambda: ""
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)

        def pressed() -> str:
            keys = ""
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 32).decode(errors="ignore")
                if not chunk:
                    break
                keys += chunk
            return keys

        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
