"""The last line of a failed ``igtflow`` command: ``error: <file>: <what happened>; <what to do>``.

Commands turn the faults they expect into that line themselves; whatever escapes them ends here
instead of in a traceback. ``IGTFLOW_DEBUG=1`` (or ``igtflow --debug``) shows the traceback.
"""

from __future__ import annotations

import errno
import os

DEBUG_ENV = "IGTFLOW_DEBUG"

# What a user can do about each operating-system fault.
_OS_ADVICE = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions",
    errno.EISDIR: "give a file, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOSPC: "free some disk space and run it again",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.EEXIST: "choose another name",
}


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def error_line(exc: BaseException) -> str:
    """One line for ``exc``: the file and the operating system's words for an ``OSError``, the
    message itself for our own errors, and an invitation to report anything else."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else "igtflow"
        advice = _OS_ADVICE.get(exc.errno or 0, "check the file and run it again")
        return f"error: {where}: {exc.strerror.lower()}; {advice}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc).__module__.startswith("igtflow"):
        return f"error: {text}"
    return (
        f"error: unexpected {type(exc).__name__}: {text}; run it again with {DEBUG_ENV}=1 for "
        "the traceback and report it"
    )
