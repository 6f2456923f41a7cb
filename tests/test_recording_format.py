"""``recordings/FORMAT.md`` is enough to read a recording: a reader written from it alone.

This reader uses no MCAP library, only ``struct``, ``zstandard`` and ``msgpack``, the way someone
writing a reader in another language would, and must get back what igtflow wrote.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zstandard

from igtflow.stream.messages import Image, Transform
from igtflow.stream.recording import RecordingWriter

MAGIC = b"\x89MCAP0\r\n"
CHANNEL, MESSAGE, CHUNK, FOOTER = 0x04, 0x05, 0x06, 0x02


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return value

    def bytes(self, n: int) -> bytes:
        self.at += n
        return self.data[self.at - n : self.at]

    def string(self) -> str:
        return self.bytes(self.take("I")).decode()


def _records(data: bytes) -> list[tuple[int, bytes]]:
    cursor, found = _Cursor(data), []
    while cursor.at < len(data):
        opcode, length = cursor.take("B"), cursor.take("Q")
        found.append((opcode, cursor.bytes(length)))
        if opcode == FOOTER:
            break
    return found


def read_like_the_doc(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data[:8] == MAGIC
    channels: dict[int, str] = {}
    out = []
    pending = _records(data[8:])
    while pending:
        opcode, body = pending.pop(0)
        cursor = _Cursor(body)
        if opcode == CHUNK:
            cursor.take("Q"), cursor.take("Q"), cursor.take("Q"), cursor.take("I")
            compression = cursor.string()
            payload = cursor.bytes(cursor.take("Q"))
            if compression == "zstd":
                payload = zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 30)
            pending = _records(payload) + pending
        elif opcode == CHANNEL:
            channel_id, _schema_id, topic = cursor.take("H"), cursor.take("H"), cursor.string()
            assert cursor.string() == "igtflow-msgpack"
            channels[channel_id] = topic
        elif opcode == MESSAGE:
            channel_id, _seq = cursor.take("H"), cursor.take("I")
            _log_time, publish_time = cursor.take("Q"), cursor.take("Q")
            framed = _Cursor(cursor.data[cursor.at :])
            frames = [framed.bytes(framed.take("I")) for _ in range(framed.take("I"))]
            header = msgpack.unpackb(frames[1])
            assert header["v"] == 1 and frames[0].decode() == channels[channel_id]
            arrays = {
                a["name"]: np.frombuffer(frames[2 + a["buf"]], a["dtype"]).reshape(a["shape"])
                for a in header["arrays"]
            }
            out.append({"topic": channels[channel_id], "stamp": publish_time, **header, **arrays})
    return out


def test_a_reader_written_from_format_md_reads_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "doc.mcap"
    pixels = np.arange(300 * 200, dtype=np.uint16).reshape(300, 200)
    pose = np.eye(4)
    pose[:3, 3] = [1.5, -2.0, 30.25]
    with RecordingWriter(path, "name: doc\nnodes: []\n", {}) as writer:
        writer.write(Image(topic="carm/image", seq=3, stamp_ns=77, data=pixels, modality="XA"))
        writer.write(Transform(topic="carm/pose", seq=9, stamp_ns=78, matrix=pose))

    image, transform = read_like_the_doc(path)
    assert image["topic"] == "carm/image" and image["kind"] == "Image" and image["seq"] == 3
    assert image["stamp"] == image["stamp_ns"] == 77
    assert np.array_equal(image["data"], pixels)
    assert image["fields"]["modality"] == "XA"
    assert transform["kind"] == "Transform" and transform["seq"] == 9
    assert np.array_equal(np.array(transform["fields"]["matrix"]), pose)
