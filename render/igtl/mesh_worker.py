"""Mesh decimation in a worker process, so that a big mesh never stalls the other streams.

Open3D's quadric decimation holds the GIL (about 0.6 s for 89 000 → 20 000 triangles). Run in
an OpenIGTLink node's own process it would stop every transform and image the node serves for
that long, and a surgeon's live view with them. So a worker process, started with the first
mesh over budget, decimates; a thread of the node hands it jobs and publishes what comes back.
Per device only the newest waiting mesh is kept: a mesh superseded while it waited is skipped.

The worker reads and writes length-prefixed frames on its stdin/stdout, each a ``Mesh`` in the
graph's own wire format (``wire.encode`` in a packet). Nothing is pickled.
"""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from igtflow.stream import packets, wire
from igtflow.stream.messages import Mesh

_LENGTH = struct.Struct("<Q")
MAX_FRAME_BYTES = 1 << 31  # a length above this is noise on the pipe, not a mesh

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray | None]
Deliver = Callable[[str, Any, Arrays | None], None]  # None: this mesh could not be decimated


class MeshWorkerError(RuntimeError):
    """The worker process died or answered something unreadable."""


def pack_job(arrays: Arrays, budget: int) -> bytes:
    """One frame: the arrays as a ``Mesh`` in wire format, the budget in its meta."""
    vertices, faces, scalars = arrays
    mesh = Mesh(vertices=vertices, faces=faces, scalars=scalars, meta={"budget": budget})
    return packets.pack(wire.encode(mesh))


def unpack_job(frame: bytes) -> tuple[Arrays, int]:
    """The arrays and budget of a frame made by ``pack_job``."""
    mesh = wire.decode(packets.unpack(frame))
    if not isinstance(mesh, Mesh) or not isinstance(mesh.meta.get("budget"), int):
        raise MeshWorkerError(f"mesh worker frame holds a {mesh.KIND} without a budget")
    return (mesh.vertices, mesh.faces, mesh.scalars), mesh.meta["budget"]


def _write(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME_BYTES:
        raise MeshWorkerError(f"mesh worker sent a frame length of {length} bytes")
    payload = stream.read(length)
    return payload if len(payload) == length else None


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """The worker's loop: decimate every job read from ``source``, answer on ``sink``."""
    from igtflow.render.igtl.decimate import decimate

    while (frame := _read(source)) is not None:
        (vertices, faces, scalars), budget = unpack_job(frame)
        _write(sink, pack_job(decimate(vertices, faces, scalars, budget), budget))


class MeshReducer:
    """Decimates meshes over ``budget`` triangles off the node's thread, newest first.

    ``deliver(device, tag, arrays)`` is called from the reducer's thread with the decimated
    arrays, or with None when the mesh could not be decimated; ``tag`` is whatever ``submit``
    was given with the mesh (e.g. the message).
    """

    def __init__(self, budget: int, deliver: Deliver, log: logging.Logger) -> None:
        self.budget = budget
        self.deliver = deliver
        self.log = log
        self.failures = 0
        self.superseded = 0  # meshes replaced by a newer one of their device before their turn
        self._waiting: dict[str, tuple[Any, Arrays]] = {}
        self._wake = threading.Condition()
        self._stop = False
        self._worker: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._run, name="mesh-reducer", daemon=True)
        self._thread.start()

    def submit(self, device: str, tag: Any, arrays: Arrays) -> None:
        """Queue ``arrays`` of ``device`` for decimation; replaces one still waiting."""
        with self._wake:
            if device in self._waiting:
                self.superseded += 1
            self._waiting[device] = (tag, arrays)
            self._wake.notify()

    def _next(self) -> tuple[str, Any, Arrays] | None:
        with self._wake:
            while not self._waiting and not self._stop:
                self._wake.wait()
            if self._stop:
                return None
            device = next(iter(self._waiting))
            tag, arrays = self._waiting.pop(device)
            return device, tag, arrays

    def _run(self) -> None:
        while (job := self._next()) is not None:
            device, tag, arrays = job
            try:
                reduced: Arrays | None = self._decimate(arrays)
            except Exception as exc:  # the thread must outlive any one mesh
                if self._stop:
                    return
                self.failures += 1
                self.log.error("mesh %r of %d triangles not sent: %s", device, len(arrays[1]), exc)
                self._kill_worker()  # a fresh one for the next mesh
                reduced = None
            if self._stop:
                return
            try:
                self.deliver(device, tag, reduced)
            except Exception:
                self.log.exception("mesh %r could not be delivered", device)

    def _decimate(self, arrays: Arrays) -> Arrays:
        worker = self._ensure_worker()
        assert worker.stdin is not None and worker.stdout is not None
        try:
            _write(worker.stdin, pack_job(arrays, self.budget))
        except (BrokenPipeError, ValueError) as exc:
            raise MeshWorkerError(f"mesh worker is gone ({exc})") from exc
        answer = _read(worker.stdout)
        if answer is None:
            raise MeshWorkerError(f"mesh worker died (exit code {worker.poll()})")
        return unpack_job(answer)[0]

    def _ensure_worker(self) -> subprocess.Popen:
        if self._worker is None or self._worker.poll() is not None:
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "igtflow.render.igtl.mesh_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._worker

    def _kill_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(5)

    def close(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        worker = self._worker
        if worker is not None and worker.stdin is not None:
            worker.stdin.close()  # the worker ends at end of input
        self._thread.join(2.0)
        if worker is not None:
            try:
                worker.wait(2.0)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(5)


def main() -> None:
    import os

    from igtflow.stream.process import die_with_parent

    die_with_parent()
    # Frames go out on a private copy of stdout; whatever a library prints (Open3D's logger
    # writes to stdout) goes to stderr and can never be read as a frame.
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, frames)


if __name__ == "__main__":
    main()
