"""Sample recordings in ``recordings/``: small, with their truth, and what the code makes.

A regenerated sample must say the same thing as the committed one, not be the same bytes: the
phantom renders in floating point, and another CPU or library release may round one pixel in a
thousand the other way. Bit-for-bit sameness is lockstep replay's promise on one installation,
and ``test_replay.py`` holds it to that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from igtflow.launch.samples import FLOW_STEP_PX, SAMPLES, write_sample
from igtflow.stream import wire
from igtflow.stream.messages import Image, Message
from igtflow.stream.recording import unpack_frames
from igtflow.stream.recording_scan import ScanReport, scan

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
MAX_DIFFERING_PIXELS = 0.001  # of an image's pixels, each by at most one grey level
MATRIX_TOLERANCE = 1e-6  # mm or unitless: far below anything a viewer or a metric resolves


def _messages(path: Path, report: ScanReport | None = None) -> list[Message]:
    return [wire.decode(unpack_frames(raw.data)) for raw in scan(path, report=report)]


def _assert_same_pixels(name: str, fresh: np.ndarray, stored: np.ndarray, is_flow: bool) -> None:
    assert fresh.dtype == stored.dtype and fresh.shape == stored.shape, name
    if is_flow:
        worst = float(np.max(np.abs(fresh - stored), initial=0.0))
        assert worst <= FLOW_STEP_PX + 1e-6, f"{name}: flow differs by {worst:.4f} px"
    elif np.issubdtype(fresh.dtype, np.integer):
        difference = np.abs(fresh.astype(np.int64) - stored.astype(np.int64))
        assert difference.max(initial=0) <= 1, f"{name}: a pixel differs by {difference.max()}"
        share = np.count_nonzero(difference) / difference.size
        assert share <= MAX_DIFFERING_PIXELS, f"{name}: {share:.3%} of pixels differ"
    else:
        np.testing.assert_allclose(fresh, stored, rtol=0, atol=MATRIX_TOLERANCE, err_msg=name)


def assert_same_content(fresh: Message, stored: Message) -> None:
    """Same message, field by field: exact where it is bookkeeping, within tolerance in pixels."""
    where = f"{stored.topic} seq {stored.seq}"
    assert (fresh.KIND, fresh.topic, fresh.seq, fresh.stamp_ns, fresh.frame) == (
        stored.KIND,
        stored.topic,
        stored.seq,
        stored.stamp_ns,
        stored.frame,
    ), where
    assert fresh.meta.keys() == stored.meta.keys(), where
    for key, value in stored.meta.items():
        if isinstance(value, float | list):
            np.testing.assert_allclose(
                fresh.meta[key], value, rtol=0, atol=MATRIX_TOLERANCE, err_msg=f"{where} {key}"
            )
        else:
            assert fresh.meta[key] == value, f"{where}: meta {key}"
    is_flow = isinstance(stored, Image) and stored.modality == "FIELD"
    fresh_arrays, stored_arrays = fresh.arrays(), stored.arrays()
    assert fresh_arrays.keys() == stored_arrays.keys(), where
    for name, array in stored_arrays.items():
        pixels = name == "data"
        if pixels:
            _assert_same_pixels(f"{where} {name}", fresh_arrays[name], array, is_flow)
        else:
            np.testing.assert_allclose(
                fresh_arrays[name], array, rtol=0, atol=MATRIX_TOLERANCE, err_msg=f"{where} {name}"
            )


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.file for s in SAMPLES])
def test_sample_is_small_complete_and_regenerates_with_the_same_content(
    sample, tmp_path: Path
) -> None:
    committed = RECORDINGS / sample.file
    assert committed.stat().st_size <= 5_000_000, f"{sample.file} is over 5 MB"
    report = ScanReport(str(committed))
    stored = _messages(committed, report)
    assert report.complete and not report.problems
    topics = {m.topic for m in stored}
    prefix = sample.node_id
    assert {f"{prefix}/image", f"{prefix}/truth_labels", f"{prefix}/truth_flow"} <= topics
    assert sum(m.topic == f"{prefix}/image" for m in stored) == sample.frames

    fresh = _messages(write_sample(sample, tmp_path))
    assert [(m.topic, m.seq) for m in fresh] == [(m.topic, m.seq) for m in stored]
    for again, before in zip(fresh, stored, strict=True):
        assert_same_content(again, before)


def test_content_comparison_tolerates_rounding_but_not_a_changed_picture(tmp_path: Path) -> None:
    sample = SAMPLES[0]
    stored = _messages(RECORDINGS / sample.file)
    image = next(m for m in stored if m.topic.endswith("/image"))
    data = image.data.copy()
    data.flat[: data.size // 2000] ^= 1  # one grey level, in 0.05 % of pixels
    assert_same_content(image.restamped(data=data), image)

    darker = image.data.astype(np.int64) - 2
    with pytest.raises(AssertionError):
        assert_same_content(image.restamped(data=darker.clip(0).astype(image.data.dtype)), image)
    with pytest.raises(AssertionError):
        assert_same_content(image.restamped(seq=image.seq + 1), image)
    flow = next(m for m in stored if m.topic.endswith("/truth_flow"))
    with pytest.raises(AssertionError):
        assert_same_content(flow.restamped(data=flow.data + 2 * FLOW_STEP_PX), flow)
