"""Bad input, fuzzed with a small budget: every reader of outside bytes either reads damaged input
or refuses it with its own clear error, never anything else; declared sizes are refused before
anything is allocated for them. ``igtflow bench fuzz`` runs the same targets with 10 000 cases."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from igtflow.launch.bench.fuzz import fuzz_target
from igtflow.launch.bench.fuzz_targets import mutate, targets
from igtflow.perception.card import CardError, load_card
from igtflow.stream.readers.dicom import DicomCine
from igtflow.stream.readers.errors import SourceFileError
from igtflow.stream.readers.plus_sequence import PlusSequence

IGTFLOW = Path(sys.executable).parent / "igtflow"
SUITE_CASES = 40  # per target: seconds in the suite; the bench runs 10 000


@pytest.mark.parametrize("target", targets(), ids=lambda t: t.name)
def test_damaged_input_is_read_or_refused_with_a_clear_error(target) -> None:
    row = fuzz_target(target, SUITE_CASES, seed=1)
    assert row["fuzz_cases"] == SUITE_CASES
    assert row["fuzz_crashes"] == 0, row.get("first_crash")
    assert row["rejected"] > 0, "the damages reach the reader's checks"


def test_mutations_damage_numbers_as_well_as_bytes() -> None:
    text = b"sizes: 5 6 3\n"
    assert mutate(text, [("number", 1, 0, b"1000000000")]) == b"sizes: 5 1000000000 3\n"
    assert mutate(text, [("cut", 5, 0, b"")]) == b"sizes"
    assert mutate(text, [("flip", 0, 5, b"")]) == b"Sizes: 5 6 3\n"


NRRD_HEADER = (
    "NRRD0004\ntype: uint8\ndimension: 4\nsizes: 1000 1000 1 1000\nencoding: {encoding}\n"
    "endian: little\nkinds: domain domain domain list\n"
    "space directions: (0.2,0,0) (0,0.2,0) (0,0,1) none\n\n"
)


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_an_nrrd_claiming_a_billion_voxels_is_refused_before_allocation(
    tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / f"liar-{encoding}.seq.nrrd"
    pixels = bytes(4096)
    data = gzip.compress(pixels) if encoding == "gzip" else pixels
    path.write_bytes(NRRD_HEADER.format(encoding=encoding).encode() + data)
    tracemalloc.start()
    try:
        with pytest.raises(SourceFileError) as caught:
            PlusSequence(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"refusing a 10^9-voxel claim allocated {peak / 2**20:.0f} MiB"
    assert str(path) in str(caught.value)


def test_a_metaio_claiming_a_billion_voxels_compressed_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "liar.seq.mha"
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 1000 1000 1000\nElementType = MET_UCHAR\n"
        "CompressedData = True\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + zlib.compress(bytes(4096)))
    tracemalloc.start()
    try:
        with pytest.raises(SourceFileError, match="cannot inflate to more than") as caught:
            PlusSequence(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert "1,000,000,000 bytes" in str(caught.value)


def test_a_gzip_nrrd_inflates_no_further_than_its_header_declares(tmp_path: Path) -> None:
    """A small file whose stream inflates far past its sizes (pynrrd would inflate it all)."""
    path = tmp_path / "bomb.seq.nrrd"
    header = NRRD_HEADER.replace("1000 1000 1 1000", "4 4 1 2").format(encoding="gzip")
    path.write_bytes(header.encode() + gzip.compress(bytes(64 << 20), compresslevel=9))
    tracemalloc.start()
    try:
        with pytest.raises(SourceFileError, match="inflates to more than"):
            PlusSequence(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"a 64 MiB stream behind a 32-byte header cost {peak / 2**20:.0f} MiB"


def test_a_damaged_dicom_transfer_syntax_is_one_clear_error(tmp_path: Path) -> None:
    target = next(t for t in targets() if t.name == "dicom")
    data = target.seed(tmp_path).replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.0.2.1\x00")
    path = tmp_path / "bad-syntax.dcm"
    path.write_bytes(data)
    with pytest.raises(SourceFileError, match="is not a transfer syntax"):
        DicomCine(path)


def test_a_model_card_that_is_not_utf8_or_an_alias_bomb_is_refused_at_its_line(
    tmp_path: Path,
) -> None:
    card = tmp_path / "bad.card.yaml"
    card.write_bytes(b"name: us-seg\ntask: \xff\n")
    with pytest.raises(CardError, match=r"bad.card.yaml:2: .*not UTF-8"):
        load_card(card, check_weights=False)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    card.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(CardError, match="aliases expand to more than"):
        load_card(card, check_weights=False)
    assert time.monotonic() - started < 5


def test_bench_fuzz_reports_cases_and_crashes_per_target_as_json() -> None:
    done = subprocess.run(
        [str(IGTFLOW), "bench", "fuzz", "--cases", "20", "--target", "wire", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["fuzz_cases"], report["fuzz_crashes"]) == (20, 0)
    (row,) = report["targets"]
    assert row["target"] == "wire" and row["fuzz_cases"] == 20
    assert {"p50_ms", "p99_ms", "max_ms", "seed_p50_ms", "p99_vs_seed"} <= set(row)


@pytest.mark.parametrize("with_fields", [False, True])
def test_a_sequence_declaring_a_billion_frames_costs_no_memory_per_frame(
    tmp_path: Path, with_fields: bool
) -> None:
    """Found by the bench: per-frame checks once listed every declared frame (22 GB)."""
    path = tmp_path / "many.seq.mha"
    fields = "".join(f"Seq_Frame{i:04d}_Timestamp = {i * 0.04}\n" for i in range(3))
    header = (
        "ObjectType = Image\nNDims = 3\nDimSize = 5 6 1000000000\nElementType = MET_UCHAR\n"
        f"{fields if with_fields else ''}ElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + bytes(3 * 30))
    tracemalloc.start()
    started = time.monotonic()
    try:
        try:
            sequence = PlusSequence(path)
        except SourceFileError as exc:
            assert "999999992 more of 1000000000 frames" in str(exc)
        else:
            assert sequence.frame_count == 3 and sequence.damage is not None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20 and time.monotonic() - started < 5


def test_a_negative_metaio_size_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "negative.seq.mha"
    header = b"ObjectType = Image\nNDims = 3\nDimSize = 5 -1 3\nElementType = MET_UCHAR\n"
    path.write_bytes(header + b"ElementDataFile = LOCAL\n" + bytes(90))
    with pytest.raises(SourceFileError, match="DimSize = '5 -1 3' has a negative size"):
        PlusSequence(path)


def test_a_dicom_element_declaring_a_gigabyte_costs_no_gigabyte(tmp_path: Path) -> None:
    """Found by the bench: pydicom asked Python for the declared length, which sized the read."""
    target = next(t for t in targets() if t.name == "dicom")
    seed = target.seed(tmp_path)
    # PixelData (7FE0,0010) OB has a 4-byte length: declare 10^9.
    at = seed.rindex(b"\xe0\x7f\x10\x00OB\x00\x00")
    damaged = seed[: at + 8] + (10**9).to_bytes(4, "little") + seed[at + 12 :]
    path = tmp_path / "liar.dcm"
    path.write_bytes(damaged)
    tracemalloc.start()
    try:
        try:
            kept = DicomCine(path).frame_count  # a cut cine keeps its whole frames
        except SourceFileError:
            kept = 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"a 10^9-byte claim allocated {peak / 2**20:.0f} MiB"
    assert kept <= 3


def test_an_empty_ndims_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ndims.seq.mha"
    header = b"ObjectType = Image\nNDims = \nDimSize = 5 6 3\nElementType = MET_UCHAR\n"
    path.write_bytes(header + b"ElementDataFile = LOCAL\n" + bytes(90))
    with pytest.raises(SourceFileError, match="NDims"):
        PlusSequence(path)


def test_a_damaged_frame_time_is_a_clear_error(tmp_path: Path) -> None:
    target = next(t for t in targets() if t.name == "dicom")
    seed = target.seed(tmp_path)
    path = tmp_path / "frame-time.dcm"
    path.write_bytes(seed.replace(b"40.0", b"4O.0", 1))
    with pytest.raises(SourceFileError, match=r"FrameTime = .* is not a number"):
        DicomCine(path)
