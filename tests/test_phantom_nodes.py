"""phantom-us and phantom-fluoro as real node processes: contract outputs, recorded bit-exact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from igtflow.stream.messages import Image, Points, Transform
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim
from igtflow.stream.recording import read_messages
from tests.helpers.graph_runs import GraphRun


def by_topic(path: Path) -> dict[str, list]:
    topics: dict[str, list] = {}
    for topic, _, message in read_messages(path):
        topics.setdefault(topic, []).append(message)
    return topics


def test_phantom_sources_emit_the_contract_and_frames_depend_on_index_only(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = tmp_path / "phantom.mcap"
    run = start_graph(
        f"""
name: phantom
nodes:
  - id: us
    uses: phantom-us
    params: {{rate_hz: 20, seed: 2, path: static, key_every: 5}}
  - id: xa
    uses: phantom-fluoro
    params: {{rate_hz: 10, seed: 2, lao_deg: 20, key_every: 5}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
"""
    )
    run.run_for(2.5)
    run.stop()
    topics = by_topic(path)

    us_images = topics["us/image"]
    assert len(us_images) >= 8
    assert {
        f"us/{name}"
        for name in (
            "probe_to_tracker",
            "image_to_probe",
            "truth_labels",
            "truth_flow",
            "truth_targets",
        )
    } <= set(topics)
    us_sim = UltrasoundSim(2, UltrasoundConfig(path="static", rate_hz=20, key_every=5))
    for image, pose, calib, labels, flow, targets in zip(
        us_images,
        topics["us/probe_to_tracker"],
        topics["us/image_to_probe"],
        topics["us/truth_labels"],
        topics["us/truth_flow"],
        topics["us/truth_targets"],
        strict=False,
    ):
        assert isinstance(image, Image) and image.modality == "US"
        assert image.data.shape == (256, 256) and image.data.dtype == np.uint8
        assert isinstance(pose, Transform) and pose.name == "ProbeToTracker"
        assert isinstance(calib, Transform) and calib.name == "ImageToProbe"
        np.testing.assert_allclose(
            image.ijk_to_ras, pose.matrix @ calib.matrix @ np.diag([*image.spacing, 1.0, 1.0])
        )
        index = image.meta["index"]
        expected = us_sim.render(index)
        assert np.array_equal(image.data, expected.image), f"US frame {index} differs"
        assert labels.modality == "LABELS" and np.array_equal(labels.data, expected.labels)
        assert flow.modality == "FIELD" and flow.data.shape == (256, 256, 2)
        assert flow.meta["key_seq"] == index - index % 5
        assert isinstance(targets, Points) and targets.labels == ["lesion", "bifurcation"]
        assert len(targets.meta["pixels"]) == 2
        stamps = {m.stamp_ns for m in (image, pose, calib, labels, flow, targets)}
        assert len(stamps) == 1, "a frame and its truth share one capture time"

    xa_images = topics["xa/image"]
    assert {"xa/carm_pose", "xa/truth_labels", "xa/truth_flow", "xa/truth_targets"} <= set(topics)
    assert len(xa_images) >= 5
    first = xa_images[0]
    assert first.modality == "XA" and first.data.shape == (512, 512)
    for key in (
        "projection",
        "sid_mm",
        "sod_mm",
        "pixel_spacing_mm",
        "lao_deg",
        "cranial_deg",
        "carm_to_ras",
    ):
        assert key in first.meta, key
    assert first.meta["lao_deg"] == 20
    projection = np.array(first.meta["projection"])
    assert topics["xa/truth_labels"][0].meta["projection"] == first.meta["projection"]
    for targets in topics["xa/truth_targets"][:3]:
        h = np.c_[targets.points.astype(np.float64), np.ones(len(targets.points))] @ projection.T
        np.testing.assert_allclose(h[:, :2] / h[:, 2:3], targets.meta["pixels"], atol=0.01)
    xa_sim = FluoroSim(2, CArmGeometry(lao_deg=20.0), FluoroConfig(rate_hz=10, key_every=5))
    for image in xa_images[:3]:
        expected = xa_sim.render(image.meta["index"]).image
        assert np.array_equal(image.data, expected), f"XA frame {image.meta['index']} differs"


def test_curvilinear_phantom_us_marks_its_sector_and_the_targets_inside_it(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    path = tmp_path / "convex.mcap"
    run = start_graph(
        f"""
name: convex
nodes:
  - id: us
    uses: phantom-us
    params: {{rate_hz: 10, seed: 2, path: static, probe: curvilinear, radius_mm: 45,
              sector_deg: 65, depth_mm: 100}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 64}}}}
    params: {{path: "{path}"}}
"""
    )
    run.run_for(1.5)
    run.stop()
    topics = by_topic(path)
    config = UltrasoundConfig(
        path="static", rate_hz=10, probe="curvilinear", radius_mm=45, sector_deg=65, depth_mm=100
    )
    sim = UltrasoundSim(2, config)
    assert len(topics["us/image"]) >= 3
    for image, labels, targets in zip(
        topics["us/image"], topics["us/truth_labels"], topics["us/truth_targets"], strict=False
    ):
        fov = image.meta["fov"]
        assert image.meta["probe"] == "curvilinear" and fov["shape"] == "sector"
        assert fov["radius_mm"] == 45 and fov["sector_deg"] == 65 and fov["depth_mm"] == 100
        expected = sim.render(image.meta["index"])
        assert np.array_equal(image.data, expected.image)
        assert np.array_equal(labels.data, expected.labels)
        # The sector rebuilt from meta alone: apex pixel, radius and angle in mm.
        v, u = np.mgrid[0 : image.data.shape[0], 0 : image.data.shape[1]]
        x = (u - fov["apex_px"][0]) * image.spacing[0]
        y = (v - fov["apex_px"][1]) * image.spacing[1]
        r, angle = np.hypot(x, y), np.degrees(np.arctan2(x, y))
        outside = (r < 44) | (r > 146) | (np.abs(angle) > 33.5)
        assert not image.data[outside].any() and not labels.data[outside].any()
        assert targets.meta["in_fov"] == [True, True], "both targets lie in the static sector"
