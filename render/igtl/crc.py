"""CRC-64 as OpenIGTLink computes it over every message body.

ECMA-182 polynomial 0x42F0E1EBA9EA3693, initial value 0, no reflection, no final XOR — the
``crc64()`` of the reference library's ``igtl_util.c``.

We use ``anycrc`` (zlib licence, a compiled extension built on Mark Adler's crcany): it runs
word-wise at about 0.25 ms per 2 MiB, while crcmod's C extension (pyigtl's choice) is byte-at-a-time
at about 20 ms per 2 MiB, too slow for 1024×1024 frames at 30 Hz, and a numpy table loop slower
still. Its ``init`` argument chains, so a body in several buffers needs no concatenation.
"""

from __future__ import annotations

from collections.abc import Iterable

import anycrc

_MODEL = anycrc.Model("CRC64-ECMA-182")


def crc64(parts: Iterable[bytes | bytearray | memoryview], crc: int = 0) -> int:
    """CRC-64 of the concatenation of ``parts`` (chained from ``crc``)."""
    for part in parts:
        view = memoryview(part)
        if view.nbytes:
            crc = _MODEL.calc(view.cast("B") if view.format != "B" or view.ndim != 1 else view, crc)
    return crc
