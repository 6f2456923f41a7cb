"""The one error every file reader raises: it names the file, what is wrong, and what to do."""

from __future__ import annotations

from pathlib import Path

from igtflow.stream.node import PermanentError


class SourceFileError(PermanentError):
    """A frame file that cannot be replayed as it is; ``str()`` is the whole story for a user.

    Readers wrap library exceptions (pydicom, pynrrd, zlib, OpenCV) into this one, so a caller
    never sees a traceback from deep inside a library. Raised from a node's ``setup`` it stops
    the node for good: reopening the same file cannot make it readable.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def check_input(path: str | Path) -> Path:
    """``path`` if it is a readable, non-empty file; else a ``SourceFileError`` saying which not."""
    source = Path(path)
    if source.is_dir():
        raise SourceFileError(source, "is a folder, not a file; give the file inside it")
    if not source.exists():
        raise SourceFileError(source, "no such file; check the path")
    try:
        size = source.stat().st_size
        with source.open("rb"):
            pass
    except OSError as exc:
        raise SourceFileError(
            source, f"cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    if size == 0:
        raise SourceFileError(
            source, "is empty (0 bytes); check that it was copied or exported whole"
        )
    return source
