"""What ``igtflow bench fuzz`` (and the suite, with a small budget) feeds damaged input to.

Each target is one reader of outside bytes with the one error type it may raise: anything else
it raises is a crash. Random bytes rarely get past a format's first check, so every target starts
from a valid seed file written by our own writers (or, for DICOM, by pydicom) and hypothesis
damages it: bit flips, cuts, inserted and deleted bytes, and numbers in the text swapped for
extreme ones (``1000000000``, ``-1``, ``4294967296``), which is how a header lies about sizes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

INTERESTING = (
    b"0", b"-1", b"1", b"255", b"65536", b"1000000000", b"4294967296", b"18446744073709551616",
    b"99999999999999999999999", b"1e308", b"nan", b"", b"0.0001",
)  # fmt: skip
_DIGITS = re.compile(rb"\d+")
Mutation = tuple[str, int, int, bytes]


@dataclass(frozen=True)
class Target:
    """One reader under fuzz: a seed, how to read damaged bytes, and the error it may raise."""

    name: str
    what: str
    seed: Callable[[Path], bytes]
    read: Callable[[bytes, Path], object]
    rejects: tuple[type[Exception], ...]


def mutations() -> st.SearchStrategy[list[Mutation]]:
    """One to four damages; positions are taken modulo the data's length."""
    anywhere = st.integers(0, 2**32)
    op = st.one_of(
        st.tuples(st.just("flip"), anywhere, st.integers(0, 7), st.just(b"")),
        st.tuples(st.just("cut"), anywhere, st.just(0), st.just(b"")),
        st.tuples(st.just("insert"), anywhere, st.just(0), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("delete"), anywhere, st.integers(1, 64), st.just(b"")),
        st.tuples(st.just("number"), anywhere, st.just(0), st.sampled_from(INTERESTING)),
    )
    return st.lists(op, min_size=1, max_size=4)


def mutate(data: bytes, ops: list[Mutation]) -> bytes:
    """``data`` with each damage of ``ops`` applied in turn."""
    out = bytearray(data)
    for kind, where, amount, payload in ops:
        if not out:
            out += payload
            continue
        at = where % len(out)
        if kind == "flip":
            out[at] ^= 1 << amount
        elif kind == "cut":
            del out[at:]
        elif kind == "insert":
            out[at:at] = payload
        elif kind == "delete":
            del out[at : at + amount]
        else:  # number: a run of digits in the text becomes an extreme value
            runs = list(_DIGITS.finditer(out))
            if runs:
                run = runs[where % len(runs)]
                out[run.start() : run.end()] = payload
    return bytes(out)


# -- seeds: one small valid file per format -------------------------------------------------------


def _frames() -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3, 6, 5), dtype=np.uint8)
    poses = np.repeat(np.eye(4)[None], 3, axis=0)
    poses[:, 0, 3] = [1.0, 2.0, 3.0]
    return frames, np.array([0.0, 0.04, 0.08]), {"ProbeToTracker": (poses, np.ones(3, bool))}


def _seed_nrrd(folder: Path) -> bytes:
    from igtflow.stream.readers.plus_writer import write_seq_nrrd

    frames, times, transforms = _frames()
    return write_seq_nrrd(
        folder / "seed.seq.nrrd", frames, (0.2, 0.3), times, transforms
    ).read_bytes()


def _seed_mha(folder: Path) -> bytes:
    from igtflow.stream.readers.plus_writer import write_seq_mha

    frames, times, transforms = _frames()
    path = write_seq_mha(
        folder / "seed.seq.mha", frames, (0.2, 0.3), times, transforms, compress=False
    )
    return path.read_bytes()


def _seed_dicom(folder: Path) -> bytes:
    """A three-frame ultrasound cine, as a scanner would export it (pydicom writes it)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        UltrasoundMultiFrameImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["igtflow-fuzz"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.PatientName = "Fuzz^Seed"
    frames = _frames()[0]
    ds.Rows, ds.Columns, ds.NumberOfFrames = frames.shape[1], frames.shape[2], frames.shape[0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = 40.0
    ds.PixelData = frames.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _seed_mcap(folder: Path) -> bytes:
    from igtflow.stream.messages import Image, Transform
    from igtflow.stream.recording import RecordingWriter

    path = folder / "seed.mcap"
    frames = _frames()[0]
    with RecordingWriter(path, "name: seed\nnodes: []\n", {"case": "fuzz"}, 400) as rec:
        for seq, frame in enumerate(frames):
            rec.write(Image(topic="probe/image", seq=seq, stamp_ns=seq, data=frame), seq)
            rec.write(Transform(topic="probe/pose", seq=seq, stamp_ns=seq), seq)
    return path.read_bytes()


def _seed_graph(folder: Path) -> bytes:
    return resources.files("igtflow.launch").joinpath("graphs/us-guidance.yaml").read_bytes()


def _seed_card(folder: Path) -> bytes:
    return resources.files("igtflow.perception").joinpath("weights/us-seg.card.yaml").read_bytes()


def _seed_wire(folder: Path) -> bytes:
    """The header frame of an Image on the wire (its buffers travel beside it)."""
    from igtflow.stream import wire
    from igtflow.stream.messages import Image

    frames = wire.encode(Image(topic="probe/image", seq=4, stamp_ns=9, data=_frames()[0][0]))
    return bytes(frames[1])


def _seed_igtl(folder: Path) -> bytes:
    from igtflow.render.igtl.codec import encode
    from igtflow.render.igtl.image import ImageContent
    from igtflow.render.igtl.transform import TransformContent

    messages = [
        encode(TransformContent(np.eye(4)), "ProbeToTracker", 0, 2, {"Seq": "7"}),
        encode(ImageContent(np.ones((1, 4, 6, 1), np.uint8), np.eye(4)), "Image", 0, 1, {}),
    ]
    return b"".join(bytes(b) for buffers in messages for b in buffers)


# -- readers -------------------------------------------------------------------------------------


def _written(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _read_nrrd(data: bytes, folder: Path) -> object:
    from igtflow.stream.readers.plus_sequence import PlusSequence

    return list(PlusSequence(_written(folder, "case.seq.nrrd", data)))


def _read_mha(data: bytes, folder: Path) -> object:
    from igtflow.stream.readers.plus_sequence import PlusSequence

    return list(PlusSequence(_written(folder, "case.seq.mha", data)))


def _read_dicom(data: bytes, folder: Path) -> object:
    from igtflow.stream.readers.dicom import DicomCine

    return list(DicomCine(_written(folder, "case.dcm", data)))


def _read_mcap(data: bytes, folder: Path) -> object:
    from igtflow.stream.recording import read_messages

    return list(read_messages(_written(folder, "case.mcap", data)))


def _read_graph(data: bytes, folder: Path) -> object:
    from igtflow.launch.graph_reader import load_graph

    # Not importing 'package.module:Class' nodes: damaged text must not pick a module to run.
    return load_graph(_written(folder, "case.yaml", data), import_nodes=False)


def _read_card(data: bytes, folder: Path) -> object:
    from igtflow.perception.card import load_card

    return load_card(_written(folder, "case.card.yaml", data), check_weights=False)


def _read_wire(data: bytes, folder: Path) -> object:
    from igtflow.stream import wire

    return wire.decode([b"probe/image", data, bytes(30)])


def _read_igtl(data: bytes, folder: Path) -> object:
    from igtflow.render.igtl.codec import decode
    from igtflow.render.igtl.limits import Budget, Limits
    from igtflow.render.igtl.reader import Parser

    parser = Parser(Limits(message=1 << 20), Budget(4 << 20))
    view = memoryview(data)
    received = []
    try:
        while view:
            target = parser.buffer()
            n = min(len(target), len(view))
            target[:n] = view[:n]
            view = view[n:]
            packet = parser.advance(n)
            if packet is not None:
                received.append(decode(packet))
    finally:
        parser.close()
    return received


def targets() -> list[Target]:
    """Every reader of outside bytes, in the order the report lists them."""
    from igtflow.launch.graph_issues import GraphError
    from igtflow.perception.card import CardError
    from igtflow.render.igtl.protocol import IgtlError
    from igtflow.stream.readers.errors import SourceFileError
    from igtflow.stream.recording_scan import RecordingError
    from igtflow.stream.wire import WireError

    return [
        Target(
            "graph-yaml", "igtflow validate: a graph file", _seed_graph, _read_graph, (GraphError,)
        ),
        Target(
            "mcap", "recording reader (read_messages)", _seed_mcap, _read_mcap, (RecordingError,)
        ),
        Target("plus-nrrd", "PLUS .seq.nrrd", _seed_nrrd, _read_nrrd, (SourceFileError,)),
        Target("plus-mha", "PLUS .seq.mha (MetaIO)", _seed_mha, _read_mha, (SourceFileError,)),
        Target("dicom", "DICOM cine", _seed_dicom, _read_dicom, (SourceFileError,)),
        Target("model-card", "model card YAML", _seed_card, _read_card, (CardError,)),
        Target("wire", "wire header (msgpack)", _seed_wire, _read_wire, (WireError,)),
        Target("igtl", "OpenIGTLink stream", _seed_igtl, _read_igtl, (IgtlError,)),
    ]
