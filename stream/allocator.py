"""Freed memory kept for the next frame instead of being handed back to the kernel.

glibc serves each block over its mmap threshold (128 KiB at first) with a fresh ``mmap`` and
unmaps it on ``free``, and trims the heap's top once 128 KiB lie free there: a node that makes
a few hundred KiB of intermediate arrays per frame (a network's activations, a 512² label map)
then page-faults its way through every frame. Raising the thresholds keeps those pages mapped
and reused; the process keeps its high-water mark of memory, which a node that runs the same
work every frame reaches after its first frames anyway. ``IGTFLOW_KEEP_FREED_MEMORY=0 igtflow
bench perception`` measures without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024
TOP_PAD_BYTES = 64 * 1024 * 1024

DISABLE_ENV = "IGTFLOW_KEEP_FREED_MEMORY"
_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed blocks for reuse (once per process); False where
    the C library is not glibc, or ``IGTFLOW_KEEP_FREED_MEMORY=0`` says not to (to measure
    without it: nothing changes then)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(DISABLE_ENV) == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (M_TOP_PAD, TOP_PAD_BYTES),
        )
    )
    return _applied
