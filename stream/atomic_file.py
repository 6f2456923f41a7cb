"""Writing a file so that a failure never destroys or fakes it: ``atomic_output(path, force)``.

The content goes to a hidden temporary file in the target's own folder (same file system, so the
final move is one atomic ``rename``) whose name ends with the target's name, so writers that pick
their format by extension (pynrrd, OpenCV, VTK) still see it. Only when the ``with`` block ends
without an exception is the file synced and moved into place; on any failure, Ctrl-C included, the
temporary file is removed and the target is as it was. An existing target is replaced only with
``force``. A writer that must survive ``kill -9`` with what it has written so far (the recorder)
writes in place instead and never overwrites (see ``stream/nodes/record.py``).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputError(Exception):
    """The target cannot be written as asked; ``str()`` names the file and what to do."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_target(path: str | Path, force: bool = False) -> Path:
    """``path`` if a file may be written there: its folder exists, and it is new or ``force``."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(target, f"the folder {folder} {what}; create it first or write elsewhere")
    if target.is_dir():
        raise OutputError(target, "is a folder; give a file name")
    if target.exists() and not force:
        raise OutputError(target, "already exists; add --force to replace it")
    return target


@contextmanager
def atomic_output(path: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path``, on failure nothing does.

    Raises ``OutputError`` before the block runs if ``path`` cannot be written (missing folder,
    existing file without ``force``), and after it if the file appeared meanwhile.
    """
    target = check_target(path, force)
    temporary = target.with_name(f".{secrets.token_hex(4)}.partial.{target.name}")
    try:
        yield temporary
        _sync(temporary)
        _move(temporary, target, force)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _sync(path: Path) -> None:
    """The data on disk before the rename, so a power cut never leaves an empty target."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _move(temporary: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    # link() fails if the target exists, so a file created meanwhile is never replaced.
    try:
        os.link(temporary, target)
    except FileExistsError:
        raise OutputError(target, "already exists; add --force to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        check_target(target, force)  # a file system without hard links: check, then rename
        os.replace(temporary, target)
        return
    temporary.unlink()
