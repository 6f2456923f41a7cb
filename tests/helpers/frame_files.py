"""Frame files written by libraries other than the readers under test (pydicom, pynrrd, OpenCV)
or by hand (MetaIO: a few explicit header lines and raw bytes), so a reader bug cannot hide
behind a writer with the same bug.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import nrrd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundMultiFrameImageStorage,
    XRayAngiographicImageStorage,
    generate_uid,
)

PATIENT = "Doe^Jane"
PATIENT_ID = "PID-778899"


# --- DICOM ------------------------------------------------------------------------------------


def _dataset(modality: str, sop_class: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = PATIENT
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.InstitutionName = "St Elsewhere"
    ds.StudyDate = "20240102"
    return ds


def us_rgb_frames(count: int = 4, rows: int = 16, columns: int = 20) -> np.ndarray:
    """RGB frames whose column pairs share a colour, so 4:2:2 chroma loses nothing."""
    rng = np.random.default_rng(5)
    half = rng.integers(0, 256, (count, rows, columns // 2, 3), dtype=np.uint8)
    return np.repeat(half, 2, axis=2)


def write_us_cine(path: Path, rgb: np.ndarray, frame_time_ms: float = 40.0) -> Path:
    """Multi-frame ultrasound, YBR_FULL_422 native (Y0 Y1 Cb Cr per pixel pair), FrameTime."""
    count, rows, columns, _ = rgb.shape
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    packed = np.empty((count, rows, columns // 2, 4), dtype=np.uint8)
    packed[..., 0] = ybr[:, :, 0::2, 0]
    packed[..., 1] = ybr[:, :, 1::2, 0]
    packed[..., 2] = ybr[:, :, 0::2, 1]
    packed[..., 3] = ybr[:, :, 0::2, 2]
    ds = _dataset("US", UltrasoundMultiFrameImageStorage)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, count
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = frame_time_ms
    region = Dataset()
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 3, 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = 0.02, 0.03
    ds.SequenceOfUltrasoundRegions = [region]
    ds.PixelData = packed.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def xa_frames(count: int = 5, rows: int = 12, columns: int = 10) -> np.ndarray:
    rng = np.random.default_rng(9)
    return rng.integers(0, 4096, (count, rows, columns), dtype=np.uint16)


def write_xa_cine(path: Path, frames: np.ndarray, frame_steps_ms: list[float]) -> Path:
    """XA run, uint16 MONOCHROME2 (12 bits stored), FrameTimeVector, C-arm geometry."""
    count, rows, columns = frames.shape
    ds = _dataset("XA", XRayAngiographicImageStorage)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, count
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.FrameTimeVector = list(frame_steps_ms)
    ds.ImagerPixelSpacing = [0.3, 0.2]  # row spacing, column spacing
    ds.DistanceSourceToDetector = 1100.0
    ds.DistanceSourceToPatient = 750.0
    ds.PositionerPrimaryAngle = 30.0
    ds.PositionerSecondaryAngle = -10.0
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_compressed_dicom(path: Path, transfer_syntax: str = JPEGBaseline8Bit) -> Path:
    """A US cine that says it is compressed but whose fragments are random bytes."""
    ds = _dataset("US", UltrasoundMultiFrameImageStorage)
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8, 8, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = 33.0
    rng = np.random.default_rng(3)
    ds.PixelData = encapsulate([rng.bytes(64) for _ in range(2)])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


# --- PLUS sequences ---------------------------------------------------------------------------


def tracked_content(count: int = 6, rows: int = 8, columns: int = 10) -> dict:
    """Frames, timestamps and two transforms per frame (one of them invalid now and then)."""
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 256, (count, rows, columns), dtype=np.uint8)
    probe = np.tile(np.eye(4), (count, 1, 1))
    probe[:, :3, 3] = rng.normal(0, 50, (count, 3))
    probe[:, 0, 1], probe[:, 1, 0] = 0.25, -0.25
    stylus = np.tile(np.eye(4), (count, 1, 1))
    stylus[:, :3, 3] = rng.normal(0, 20, (count, 3))
    stylus_ok = np.array([i % 3 != 1 for i in range(count)])
    return {
        "frames": frames,
        "timestamps": 1234.5 + 0.05 * np.arange(count),
        "transforms": {
            "ProbeToTracker": (probe, np.ones(count, bool)),
            "StylusToReference": (stylus, stylus_ok),
        },
        "image_ok": np.array([i != 2 for i in range(count)]),
    }


def frame_fields(content: dict, status_name: str = "ImageStatus") -> list[tuple[str, str]]:
    """PLUS's per-frame fields, by name, as plain text."""
    fields = []
    for i, time_s in enumerate(content["timestamps"]):
        prefix = f"Seq_Frame{i:04d}_"
        for name, (matrices, valid) in content["transforms"].items():
            numbers = " ".join(repr(float(v)) for v in matrices[i].reshape(16))
            fields.append((f"{prefix}{name}Transform", numbers))
            fields.append((f"{prefix}{name}TransformStatus", "OK" if valid[i] else "INVALID"))
        fields.append((f"{prefix}Timestamp", repr(float(time_s))))
        fields.append((f"{prefix}{status_name}", "OK" if content["image_ok"][i] else "INVALID"))
    return fields


def write_mha(
    path: Path,
    content: dict,
    compressed: bool = False,
    data_file: str | None = None,
    fields: list[tuple[str, str]] | None = None,
    element_type: str = "MET_UCHAR",
    dim_size: str | None = None,
    orientation: str = "MF",
) -> Path:
    """A MetaIO sequence the way PLUS lays it out, built line by line.

    ``data_file`` puts the pixels in a separate file (``.raw``/``.zraw``) next to the header.
    """
    frames = content["frames"]
    count, rows, columns = frames.shape
    data = frames.tobytes()
    if compressed:
        data = zlib.compress(data)
    lines = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        f"CompressedData = {compressed}",
        *([f"CompressedDataSize = {len(data)}"] if compressed else []),
        "ElementSpacing = 0.25 0.5 1",
        f"UltrasoundImageOrientation = {orientation}",
        "UltrasoundImageType = BRIGHTNESS",
        *(f"{k} = {v}" for k, v in (fields if fields is not None else frame_fields(content))),
        f"DimSize = {dim_size or f'{columns} {rows} {count}'}",
        "Kinds = domain domain list",
        f"ElementType = {element_type}",
        f"ElementDataFile = {data_file or 'LOCAL'}",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    if data_file:
        path.write_bytes(header)
        (path.parent / data_file).write_bytes(data)
    else:
        path.write_bytes(header + data)
    return path


def write_nrrd(path: Path, content: dict, encoding: str = "gzip") -> Path:
    """A 2D+list sequence the way PLUS's NRRD writer lays it out, written by pynrrd."""
    frames = content["frames"]
    header = {
        "type": "uint8",
        "dimension": 3,
        "space dimension": 2,
        "sizes": np.array([frames.shape[2], frames.shape[1], frames.shape[0]]),
        "kinds": ["domain", "domain", "list"],
        "space directions": np.array([[0.25, 0.0], [0.0, 0.5], [np.nan, np.nan]]),
        "space origin": np.array([0.0, 0.0]),
        "encoding": encoding,
        "endian": "little",
        "ultrasound image orientation": "MF",
        "ultrasound image type": "BRIGHTNESS",
    }
    header.update(dict(frame_fields(content, status_name="Status")))
    nrrd.write(str(path), frames, header, index_order="C")
    return path


# --- video ------------------------------------------------------------------------------------


def video_frames(count: int = 5, rows: int = 48, columns: int = 64) -> np.ndarray:
    """Flat colour blocks (codecs keep them), red on the left so a BGR/RGB swap shows."""
    frames = np.zeros((count, rows, columns, 3), dtype=np.uint8)
    frames[:, :, : columns // 2, 0] = 220  # red half
    frames[:, :, columns // 2 :, 2] = 200  # blue half
    for i in range(count):
        frames[i, : rows // 4, :, 1] = 40 * i  # the top band's green says which frame it is
    return frames


def write_video(path: Path, rgb: np.ndarray, fps: float = 25.0) -> Path:
    """Motion-JPEG AVI through cv2.VideoWriter (BGR in, as OpenCV wants)."""
    rows, columns = rgb.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (columns, rows))
    assert writer.isOpened(), "this OpenCV build cannot write MJPG AVI"
    for frame in rgb:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def write_mha_sitk(path: Path, content: dict, compressed: bool = True) -> Path:
    """The same sequence written by SimpleITK (ITK's MetaIO), frame fields as metadata."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(content["frames"])  # N×H×W -> DimSize W H N
    image.SetSpacing((0.25, 0.5, 1.0))
    image.SetMetaData("UltrasoundImageOrientation", "MF")
    image.SetMetaData("UltrasoundImageType", "BRIGHTNESS")
    for key, value in frame_fields(content):
        image.SetMetaData(key, value)
    sitk.WriteImage(image, str(path), useCompression=compressed)
    return path
