"""Debian's headless Chromium, driven through Playwright, for ``igtflow bench web`` and the tests.

Playwright normally downloads a browser build of its own; here the system's Chromium is used
(``make system-deps`` installs Debian's ``chromium``), so nothing is fetched at run time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ENV = "IGTFLOW_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
# Background tabs would otherwise be throttled: every page here stands for a screen in the room.
FLAGS = (
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-gpu",
)


class BrowserMissing(RuntimeError):
    """No Chromium or no Playwright: the text says what to install."""


def find_chromium() -> str | None:
    """The Chromium to drive: ``$IGTFLOW_CHROMIUM``, else the first on PATH."""
    given = os.environ.get(CHROMIUM_ENV)
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium(path: str | None = None) -> str:
    """The Chromium to drive, with Playwright importable; :class:`BrowserMissing` otherwise
    (checked before a bench starts its graph, not after)."""
    path = path or find_chromium()
    if path is None:
        raise BrowserMissing(
            "no Chromium found: install Debian's chromium (make system-deps) or set "
            f"{CHROMIUM_ENV} to a Chromium executable"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise BrowserMissing(
            "the playwright package is missing: pip install playwright (its browser download "
            "is not needed)"
        ) from None
    return path


@contextmanager
def launch_chromium(path: str | None = None, nice: int = 0) -> Iterator[Any]:
    """A headless Chromium (Playwright ``Browser``), closed on exit; ``nice`` > 0 runs it (and
    every renderer it forks) at that much lower OS priority."""
    path = require_chromium(path)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="igtflow-chromium-") as folder:
        if nice > 0:
            # Playwright starts the executable it is given; a wrapper is how it starts niced.
            wrapper = Path(folder) / "chromium"
            wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} "{path}" "$@"\n')
            wrapper.chmod(0o755)
            path = str(wrapper)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, headless=True, args=FLAGS)
            try:
                yield browser
            finally:
                browser.close()
