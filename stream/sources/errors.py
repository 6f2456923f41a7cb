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
