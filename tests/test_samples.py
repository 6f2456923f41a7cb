"""Sample recordings in ``recordings/``: small, with their truth, and what the code makes."""

from __future__ import annotations

from pathlib import Path

import pytest
from igtflow.launch.samples import SAMPLES, write_sample
from igtflow.stream.recording_scan import ScanReport, scan

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.file for s in SAMPLES])
def test_sample_is_small_complete_and_regenerates_bit_for_bit(sample, tmp_path: Path) -> None:
    committed = RECORDINGS / sample.file
    assert committed.stat().st_size <= 5_000_000, f"{sample.file} is over 5 MB"
    report = ScanReport(str(committed))
    stored = [(r.topic, r.publish_time_ns, r.data) for r in scan(committed, report=report)]
    assert report.complete and not report.problems
    topics = {topic for topic, _, _ in stored}
    prefix = sample.node_id
    assert {f"{prefix}/image", f"{prefix}/truth_labels", f"{prefix}/truth_flow"} <= topics
    assert sum(t == f"{prefix}/image" for t, _, _ in stored) == sample.frames

    fresh = write_sample(sample, tmp_path)
    again = [(r.topic, r.publish_time_ns, r.data) for r in scan(fresh)]
    assert again == stored, f"{sample.file} no longer matches what the phantom renders"
