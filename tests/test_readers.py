"""File readers against files written by other libraries (pydicom, pynrrd, SimpleITK, OpenCV) or
by hand, and against broken files: every problem is one SourceFileError naming file and fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import nrrd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import JPEGLSLossless

from igtflow.stream.readers.dicom import DicomCine
from igtflow.stream.readers.errors import SourceFileError
from igtflow.stream.readers.plus_fields import transform_frames
from igtflow.stream.readers.plus_sequence import PlusSequence
from igtflow.stream.readers.plus_writer import write_seq_mha, write_seq_nrrd
from igtflow.stream.readers.video import VideoFile
from tests.helpers import frame_files as ff


def assert_fails(path: Path, open_file: Callable[[Path], object], *words: str) -> str:
    """Opening ``path`` raises SourceFileError naming the file and every word of the problem."""
    with pytest.raises(SourceFileError) as caught:
        open_file(path)
    message = str(caught.value)
    assert path.name in message, message
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in: {message}"
    assert "Traceback" not in message
    return message


# --- DICOM ------------------------------------------------------------------------------------


def test_us_cine_in_ybr_422_comes_out_rgb_with_frame_time_and_region_spacing(
    tmp_path: Path,
) -> None:
    rgb = ff.us_rgb_frames()
    cine = DicomCine(ff.write_us_cine(tmp_path / "us.dcm", rgb, frame_time_ms=40))
    frames = list(cine)
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == rgb.shape[1:]
        # YCbCr -> RGB rounds: one grey level at most.
        assert np.abs(frame.image.astype(int) - rgb[frame.index]).max() <= 1
    assert cine.timing_source == "FrameTime"
    assert [f.time_s for f in frames] == pytest.approx([0, 0.04, 0.08, 0.12])
    assert cine.rate_hz == pytest.approx(25)
    assert cine.modality == "US"
    # PhysicalDeltaX/Y are in cm: 0.02 cm columns, 0.03 cm rows.
    assert cine.spacing == pytest.approx((0.2, 0.3))
    assert cine.spacing_source == "SequenceOfUltrasoundRegions"


def test_xa_cine_uint16_follows_frame_time_vector_and_states_carm_geometry(
    tmp_path: Path,
) -> None:
    pixels = ff.xa_frames()
    cine = DicomCine(ff.write_xa_cine(tmp_path / "xa.dcm", pixels, [0, 40, 40, 80, 40]))
    frames = list(cine)
    assert all(np.array_equal(f.image, pixels[f.index]) for f in frames)
    assert frames[0].image.dtype == np.uint16
    assert cine.timing_source == "FrameTimeVector"
    assert [f.time_s for f in frames] == pytest.approx([0, 0.04, 0.08, 0.16, 0.2])
    assert cine.modality == "XA"
    assert cine.spacing == pytest.approx((0.2, 0.3))  # (column, row) from ImagerPixelSpacing
    meta = frames[0].meta
    assert meta["sid_mm"] == 1100 and meta["sod_mm"] == 750
    assert meta["lao_deg"] == 30 and meta["cranial_deg"] == -10
    assert meta["pixel_spacing_mm"] == pytest.approx([0.2, 0.3])


def test_dicom_meta_never_names_the_patient(tmp_path: Path) -> None:
    for path in (
        ff.write_us_cine(tmp_path / "us.dcm", ff.us_rgb_frames()),
        ff.write_xa_cine(tmp_path / "xa.dcm", ff.xa_frames(), [0, 40, 40, 40, 40]),
    ):
        assert str(pydicom.dcmread(path).PatientName) == ff.PATIENT  # it is in the file
        text = json.dumps([f.meta for f in DicomCine(path)], default=str)
        for secret in ("Doe", "Jane", ff.PATIENT_ID, "19700101", "Elsewhere", "20240102"):
            assert secret not in text
        assert "SOPInstanceUID" not in text


def _truncated(tmp_path: Path) -> Path:
    path = ff.write_xa_cine(tmp_path / "cut.dcm", ff.xa_frames(), [0, 40, 40, 40, 40])
    path.write_bytes(path.read_bytes()[:-300])
    return path


def _too_many_frames(tmp_path: Path) -> Path:
    path = ff.write_xa_cine(tmp_path / "frames.dcm", ff.xa_frames(), [0, 40, 40, 40, 40])
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 7
    ds.FrameTimeVector = [0, 40, 40, 40, 40, 40, 40]
    ds.save_as(path)
    return path


def _too_few_frames(tmp_path: Path) -> Path:
    path = ff.write_xa_cine(tmp_path / "frames.dcm", ff.xa_frames(), [0, 40, 40, 40, 40])
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 3
    del ds.FrameTimeVector
    ds.save_as(path)
    return path


def _no_pixels(tmp_path: Path) -> Path:
    path = ff.write_xa_cine(tmp_path / "empty.dcm", ff.xa_frames(), [0, 40, 40, 40, 40])
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    return path


def _mr(tmp_path: Path) -> Path:
    path = ff.write_xa_cine(tmp_path / "mr.dcm", ff.xa_frames(), [0, 40, 40, 40, 40])
    ds = pydicom.dcmread(path)
    ds.Modality = "MR"
    ds.save_as(path)
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.dcm"
    path.write_text("not a DICOM file at all\n" * 20)
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_too_few_frames, ["NumberOfFrames=3", "more than", "NumberOfFrames is wrong"]),
        (_no_pixels, ["no PixelData"]),
        (_mr, ["Modality MR"]),
        (_text, ["not a DICOM file"]),
        (
            lambda tmp: ff.write_compressed_dicom(tmp / "jpeg.dcm"),
            ["frame 0", "cannot be decoded", "JPEG Baseline"],
        ),
        (
            lambda tmp: ff.write_compressed_dicom(tmp / "jpegls.dcm", JPEGLSLossless),
            ["JPEG-LS Lossless", "no decoder", "gdcmconv"],
        ),
    ],
    ids=[
        "data-beyond-frames",
        "no-pixels",
        "not-a-cine",
        "not-dicom",
        "jpeg-random-data",
        "jpeg-ls-no-decoder",
    ],
)
def test_broken_dicom_is_one_clear_error(
    tmp_path: Path, make: Callable[[Path], Path], words: list[str]
) -> None:
    assert_fails(make(tmp_path), DicomCine, *words)


# --- PLUS sequences: MetaIO -------------------------------------------------------------------


def check_sequence(sequence: PlusSequence, content: dict) -> None:
    """Frames, timestamps, image status and every transform match what was written."""
    assert sequence.frame_count == len(content["frames"])
    assert sequence.spacing == pytest.approx((0.25, 0.5))
    assert sequence.times_s == pytest.approx(content["timestamps"])
    assert sequence.transform_names == ["ProbeToTracker", "StylusToReference"]
    for frame in sequence:
        if content["image_ok"][frame.index]:
            assert np.array_equal(frame.image, content["frames"][frame.index])
        else:
            assert frame.image is None
        by_name = {t.name: t for t in frame.transforms}
        for name, (matrices, valid) in content["transforms"].items():
            assert np.array_equal(by_name[name].matrix, matrices[frame.index])
            assert by_name[name].valid == valid[frame.index]
            assert by_name[name].status == ("OK" if valid[frame.index] else "INVALID")


@pytest.mark.parametrize(
    "layout",
    [
        {},
        {"compressed": True},
        {"data_file": "seq.raw"},
        {"compressed": True, "data_file": "seq.zraw"},
    ],
    ids=["local", "local-zlib", "raw-file", "zraw-file"],
)
def test_hand_written_metaio_sequence_reads_back(tmp_path: Path, layout: dict) -> None:
    content = ff.tracked_content()
    suffix = ".mhd" if layout.get("data_file") else ".seq.mha"
    path = ff.write_mha(tmp_path / f"seq{suffix}", content, **layout)
    # An independent MetaIO reader sees the same pixels: the test file itself is right.
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), content["frames"])
    check_sequence(PlusSequence(path), content)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "zlib"])
def test_simpleitk_written_sequence_reads_back(tmp_path: Path, compressed: bool) -> None:
    content = ff.tracked_content()
    path = ff.write_mha_sitk(tmp_path / "itk.igs.mha", content, compressed)
    check_sequence(PlusSequence(path), content)


def test_frames_stored_unmarked_near_are_turned_to_mf_as_plus_does(tmp_path: Path) -> None:
    content = ff.tracked_content()
    sequence = PlusSequence(ff.write_mha(tmp_path / "un.seq.mha", content, orientation="UN"))
    frame = sequence.frame(0)
    assert np.array_equal(frame.image, content["frames"][0][::-1, ::-1])
    assert frame.meta["us_image_orientation_in_file"] == "UN"


def test_old_files_without_statuses_or_timestamps_still_give_every_transform(
    tmp_path: Path,
) -> None:
    content = ff.tracked_content(count=3)
    fields = [
        (f"Seq_Frame{i:04d}_ToolToTrackerTransform", f"1 0 0 {i} 0 1 0 0 0 0 1 0 0 0 0 1")
        for i in range(3)
    ]
    sequence = PlusSequence(ff.write_mha(tmp_path / "old.mha", content, fields=fields))
    assert sequence.times_s is None and sequence.rate_hz is None
    assert all(frame.image is not None for frame in sequence)  # no ImageStatus: all valid
    transform = sequence.frame(2).transforms[0]
    assert (transform.from_frame, transform.to_frame) == ("Tool", "Tracker")
    assert transform.valid and transform.matrix[0, 3] == 2


def _fields_without(content: dict, key: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in ff.frame_fields(content) if k != key]


def _shortened(content: dict, key: str) -> list[tuple[str, str]]:
    """The frame fields with one transform cut to 15 numbers."""
    return [(k, " ".join(v.split()[:15]) if k == key else v) for k, v in ff.frame_fields(content)]


def _without_data(header: Path) -> Path:
    (header.parent / "lost.raw").unlink()
    return header


def _cut_data(path: Path, drop: int) -> Path:
    path.write_bytes(path.read_bytes()[:-drop])
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda tmp, c: _cut_data(ff.write_mha(tmp / "cut.seq.mha", c), 475),
            ["truncated", "not one frame is whole"],
        ),
        (
            lambda tmp, c: ff.write_mha(tmp / "dims.seq.mha", c, dim_size="10 8 4"),
            ["fields for frame 4", "says 4 frames"],
        ),
        (
            lambda tmp, c: ff.write_mha(
                tmp / "gap.seq.mha",
                c,
                fields=[(k, v) for k, v in ff.frame_fields(c) if not k.startswith("Seq_Frame0003")],
            ),
            ["missing", "Seq_Frame0003"],
        ),
        (
            lambda tmp, c: ff.write_mha(
                tmp / "short.seq.mha",
                c,
                fields=_shortened(c, "Seq_Frame0004_ProbeToTrackerTransform"),
            ),
            ["Seq_Frame0004_ProbeToTrackerTransform", "15 numbers", "16"],
        ),
        (
            lambda tmp, c: ff.write_mha(
                tmp / "status.seq.mha", c, fields=_fields_without(c, "Seq_Frame0001_ImageStatus")
            ),
            ["frame 1", "no ImageStatus"],
        ),
        (
            lambda tmp, c: ff.write_mha(tmp / "type.seq.mha", c, element_type="MET_UCHAR_ARRAY"),
            ["ElementType", "MET_UCHAR_ARRAY"],
        ),
        (
            lambda tmp, c: _without_data(ff.write_mha(tmp / "lost.mhd", c, data_file="lost.raw")),
            ["ElementDataFile = lost.raw", "does not exist"],
        ),
        (
            lambda tmp, c: _cut_data(ff.write_mha(tmp / "head.mhd", c, data_file="head.raw"), 30),
            ["ElementDataFile", "truncated"],
        ),
    ],
    ids=[
        "no-whole-frame",
        "dimsize-vs-data",
        "missing-frame",
        "15-number-transform",
        "missing-image-status",
        "unknown-element-type",
        "missing-data-file",
        "header-cut",
    ],
)
def test_broken_metaio_sequence_is_one_clear_error(
    tmp_path: Path, make: Callable[[Path, dict], Path], words: list[str]
) -> None:
    assert_fails(make(tmp_path, ff.tracked_content()), PlusSequence, *words)


# --- PLUS sequences: NRRD ---------------------------------------------------------------------


def test_pynrrd_written_sequence_reads_back(tmp_path: Path) -> None:
    content = ff.tracked_content()
    check_sequence(PlusSequence(ff.write_nrrd(tmp_path / "seq.igs.nrrd", content)), content)


def test_raw_nrrd_sequence_reads_back(tmp_path: Path) -> None:
    content = ff.tracked_content()
    path = ff.write_nrrd(tmp_path / "seq.seq.nrrd", content, encoding="raw")
    check_sequence(PlusSequence(path), content)


def test_broken_nrrd_sequences_are_clear_errors(tmp_path: Path) -> None:
    content = ff.tracked_content()
    gap = ff.write_nrrd(tmp_path / "gap.seq.nrrd", content)
    text = gap.read_bytes()
    gap.write_bytes(text.replace(b"Seq_Frame0002_", b"Seq_Frame0009_"))
    assert_fails(gap, PlusSequence, "Seq_Frame0009", "6 frames")


def test_unknown_extension_names_the_ones_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "sequence.tiff"
    path.write_bytes(b"II*\0")
    assert_fails(path, PlusSequence, "unknown extension", ".seq.nrrd")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ProbeToTracker", ("Probe", "Tracker")),
        ("TestToolToTracker", ("TestTool", "Tracker")),
        ("StylusTipToStylus", ("StylusTip", "Stylus")),
        ("Custom", ("Custom", "")),
    ],
)
def test_transform_names_split_at_the_one_capitalised_to(name: str, expected: tuple) -> None:
    assert transform_frames(name) == expected


# --- the .seq.nrrd / .seq.mha writer ----------------------------------------------------------


def test_seq_nrrd_writer_round_trips_through_pynrrd_and_our_reader(tmp_path: Path) -> None:
    content = ff.tracked_content()
    path = write_seq_nrrd(
        tmp_path / "out.seq.nrrd",
        content["frames"],
        (0.25, 0.5),
        content["timestamps"],
        content["transforms"],
        image_status=content["image_ok"],
    )
    data, header = nrrd.read(str(path), index_order="C")
    # Slicer's volume-sequence layout: 3 spatial axes + a list axis, frames along the list.
    assert header["dimension"] == 4 and header["kinds"] == ["domain", "domain", "domain", "list"]
    assert list(header["sizes"]) == [10, 8, 1, 6]
    assert header["space"] == "right-anterior-superior"
    directions = header["space directions"]
    assert np.allclose(directions[:3], np.diag([0.25, 0.5, 1.0])) and np.isnan(directions[3]).all()
    ok = content["image_ok"]
    assert np.array_equal(data[:, 0][ok], content["frames"][ok])
    assert not data[:, 0][~ok].any()  # PLUS writes a blank frame where the image is invalid
    assert header["axis 3 index values"].split() == [repr(float(t)) for t in content["timestamps"]]
    probe = content["transforms"]["ProbeToTracker"][0]
    field = header["Seq_Frame0003_ProbeToTrackerTransform"]
    assert np.array_equal(np.array(field.split(), float).reshape(4, 4), probe[3])
    assert header["Seq_Frame0001_StylusToReferenceTransformStatus"] == "INVALID"
    assert header["Seq_Frame0002_Status"] == "INVALID"
    assert header["ultrasound image orientation"] == "MF"
    check_sequence(PlusSequence(path), content)


def test_seq_mha_writer_round_trips_through_simpleitk_and_our_reader(tmp_path: Path) -> None:
    content = ff.tracked_content()
    path = write_seq_mha(
        tmp_path / "out.seq.mha",
        content["frames"],
        (0.25, 0.5),
        content["timestamps"],
        content["transforms"],
        image_status=content["image_ok"],
    )
    image = sitk.ReadImage(str(path))
    ok = content["image_ok"]
    assert np.array_equal(sitk.GetArrayFromImage(image)[ok], content["frames"][ok])
    assert image.GetSpacing() == pytest.approx((0.25, 0.5, 1.0))
    assert image.GetMetaData("Seq_Frame0002_ImageStatus") == "INVALID"
    check_sequence(PlusSequence(path), content)


# --- video ------------------------------------------------------------------------------------


def test_video_frames_come_out_rgb_at_the_file_rate(tmp_path: Path) -> None:
    rgb = ff.video_frames()
    video = VideoFile(ff.write_video(tmp_path / "clip.avi", rgb, fps=25))
    frames = list(video)
    assert len(frames) == 5 and video.fps == pytest.approx(25)
    assert [f.time_s for f in frames] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    for frame in frames:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
        # Motion-JPEG is lossy; flat blocks come back within a few levels, red still red.
        assert np.abs(frame.image.astype(int) - rgb[frame.index]).mean() < 4
        red_side = frame.image[24:, :20].mean(axis=(0, 1))
        assert red_side[0] > 180 and red_side[2] < 40


def test_video_in_grayscale_gives_two_dimensional_frames(tmp_path: Path) -> None:
    video = VideoFile(ff.write_video(tmp_path / "clip.avi", ff.video_frames()), grayscale=True)
    assert next(iter(video)).image.shape == (48, 64)


def test_file_opencv_cannot_read_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\0\1\2 definitely not a movie" * 50)
    assert_fails(path, VideoFile, "OpenCV", "re-encode")
    assert_fails(tmp_path / "absent.avi", VideoFile, "no such file")


# --- files cut short: the whole frames are kept, and the reader says where the data stops ----


def _cut_mhd_data(tmp: Path, content: dict) -> Path:
    header = ff.write_mha(tmp / "cut.mhd", content, data_file="cut.raw")
    _cut_data(tmp / "cut.raw", 30)
    return header


@pytest.mark.parametrize(
    ("make", "kept", "where"),
    [
        (lambda tmp, c: _cut_data(ff.write_mha(tmp / "cut.seq.mha", c), 100), 4, "cut.seq.mha"),
        (
            lambda tmp, c: _cut_data(ff.write_mha(tmp / "z.seq.mha", c, compressed=True), 60),
            5,
            "z.seq.mha",
        ),
        (_cut_mhd_data, 5, "cut.raw"),
        (lambda tmp, c: _cut_data(ff.write_nrrd(tmp / "cut.seq.nrrd", c), 80), 5, "cut.seq.nrrd"),
        (
            lambda tmp, c: _cut_data(ff.write_nrrd(tmp / "r.seq.nrrd", c, encoding="raw"), 100),
            4,
            "r.seq.nrrd",
        ),
    ],
    ids=["metaio-raw", "metaio-zlib", "mhd-raw", "nrrd-gzip", "nrrd-raw"],
)
def test_truncated_sequence_keeps_its_whole_frames_and_says_where_it_stops(
    tmp_path: Path, make: Callable[[Path, dict], Path], kept: int, where: str
) -> None:
    content = ff.tracked_content()
    sequence = PlusSequence(make(tmp_path, content))
    assert sequence.frame_count == kept
    frames = list(sequence)
    assert [f.index for f in frames] == list(range(kept))
    for frame in frames:
        if frame.image is not None:
            assert np.array_equal(frame.image, content["frames"][frame.index])
        assert frame.time_s == content["timestamps"][frame.index]
    damage = sequence.damage
    assert damage is not None and (damage.kept, damage.declared) == (kept, 6)
    data_file = tmp_path / where
    assert 0 < damage.byte_offset <= data_file.stat().st_size
    text = str(damage)
    assert where in text and f"kept frames 0-{kept - 1} of 6" in text
    assert f"stops in frame {kept} at byte {damage.byte_offset}" in text


def test_data_appended_after_the_frames_is_ignored_and_reported(tmp_path: Path) -> None:
    content = ff.tracked_content()
    path = ff.write_mha(tmp_path / "more.seq.mha", content)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\xff" * 1000)
    sequence = PlusSequence(path)
    assert sequence.frame_count == 6
    assert sequence.damage is not None and sequence.damage.byte_offset == size
    assert "1000 bytes follow the 6 frames" in str(sequence.damage)


@pytest.mark.parametrize(("make", "kept"), [(_truncated, 3), (_too_many_frames, 5)])
def test_truncated_dicom_cine_keeps_its_whole_frames(
    tmp_path: Path, make: Callable[[Path], Path], kept: int
) -> None:
    cine = DicomCine(make(tmp_path))
    frames = list(cine)
    assert len(frames) == cine.frame_count == kept
    for frame in frames:
        assert np.array_equal(frame.image, ff.xa_frames()[frame.index])
    assert cine.damage is not None and cine.damage.kept == kept
    assert "truncated" in str(cine.damage) and f"stops in frame {kept}" in str(cine.damage)
