"""``igtflow convert REC.mcap OUT.mcap --to foxglove``: read back with the ``mcap`` reader and the
protobuf decoder Foxglove's schemas come with, the output must hold every convertible topic in its
well-known schema, with the recorded times, and the same pixels, poses and surfaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from mcap.reader import make_reader
from mcap_protobuf.decoder import DecoderFactory
from scipy.spatial.transform import Rotation

from igtflow.launch.convert_foxglove import to_foxglove_mcap
from igtflow.stream.messages import Image, Mesh, Points, Status, Transform
from igtflow.stream.recording import RecordingWriter, read_messages
from tests.helpers.cli import REPO, igtflow

US = REPO / "recordings" / "phantom-us.mcap"
FLUORO = REPO / "recordings" / "phantom-fluoro.mcap"


def _schemas(path: Path) -> dict[str, str]:
    with path.open("rb") as file:
        summary = make_reader(file).get_summary()
    assert summary is not None
    return {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}


def _decoded(path: Path, topic: str) -> list[tuple[Any, Any]]:
    """``(mcap message, decoded protobuf)`` of ``topic``, file order."""
    with path.open("rb") as file:
        reader = make_reader(file, decoder_factories=[DecoderFactory()])
        return [(m, p) for _, _, m, p in reader.iter_decoded_messages(topics=[topic])]


def _matrix(transform: Any) -> np.ndarray:
    q, t = transform.rotation, transform.translation
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    matrix[:3, 3] = np.array([t.x, t.y, t.z]) * 1000.0  # Foxglove's metres back to millimetres
    return matrix


def test_us_recording_opens_as_foxglove_schemas_with_pixels_poses_and_times_kept(
    tmp_path: Path,
) -> None:
    target = tmp_path / "us-foxglove.mcap"
    done = igtflow("convert", str(US), str(target), "--to", "foxglove", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert _schemas(target) == {
        "/probe/image": "foxglove.RawImage",
        "/probe/truth_labels": "foxglove.RawImage",
        "/probe/probe_to_tracker": "foxglove.FrameTransforms",
        "/probe/image_to_probe": "foxglove.FrameTransforms",
        "/probe/truth_targets": "foxglove.SceneUpdate",
    }
    assert "probe/truth_flow" in result["skipped"]  # FIELD: no Foxglove image form
    assert result["problems"] == []

    recorded = {
        topic: [(log_time, m) for t, log_time, m in read_messages(US) if t == topic]
        for topic in ("probe/image", "probe/truth_labels", "probe/probe_to_tracker")
    }
    images = _decoded(target, "/probe/image")
    assert len(images) == len(recorded["probe/image"])
    for (log_time, source), (record, image) in zip(recorded["probe/image"], images, strict=True):
        assert isinstance(source, Image)
        assert record.log_time == log_time and record.publish_time == source.stamp_ns
        assert image.timestamp.ToNanoseconds() == source.stamp_ns
        assert (image.encoding, image.width, image.height) == ("mono8", 256, 256)
        pixels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)
        assert np.array_equal(pixels, source.data)

    _, labels = _decoded(target, "/probe/truth_labels")[0]
    source_labels = recorded["probe/truth_labels"][0][1]
    assert isinstance(source_labels, Image) and labels.encoding == "mono8"
    assert np.array_equal(
        np.frombuffer(labels.data, np.uint8).reshape(256, 256), source_labels.data
    )

    poses = _decoded(target, "/probe/probe_to_tracker")
    for (_, source), (_, pose) in zip(recorded["probe/probe_to_tracker"], poses, strict=True):
        assert isinstance(source, Transform)
        (frame,) = pose.transforms
        assert (frame.parent_frame_id, frame.child_frame_id) == ("Tracker", "Probe")
        assert frame.timestamp.ToNanoseconds() == source.stamp_ns
        np.testing.assert_allclose(_matrix(frame), source.matrix, atol=1e-6)

    _, targets = _decoded(target, "/probe/truth_targets")[0]
    (entity,) = targets.entities
    assert [t.text for t in entity.texts] == ["lesion", "bifurcation"]
    assert len(entity.spheres) == 2 and entity.frame_id == "Tracker"


def test_fluoro_recording_converts_every_topic_but_the_flow(tmp_path: Path) -> None:
    target = tmp_path / "fluoro-foxglove.mcap"
    result = to_foxglove_mcap(FLUORO, target)
    assert _schemas(target) == {
        "/carm/image": "foxglove.RawImage",
        "/carm/truth_labels": "foxglove.RawImage",
        "/carm/truth_targets": "foxglove.SceneUpdate",
    }
    # the phantom C-arm's pose mirrors (a left-handed detector frame): no quaternion holds it
    assert sorted(result["skipped"]) == ["carm/carm_pose", "carm/truth_flow"]
    assert "CArmToTracker mirrors" in result["skipped"]["carm/carm_pose"]
    _, image = _decoded(target, "/carm/image")[0]
    assert image.frame_id == "Detector" and len(image.data) == 256 * 256


def test_mesh_status_and_other_pixel_types_map_to_their_schemas(tmp_path: Path) -> None:
    source = tmp_path / "short.mcap"
    vertices = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=np.float32)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3], [0, 2, 1]], dtype=np.int32)
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    colour = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    with RecordingWriter(source, "", {}) as writer:
        writer.write(Mesh(topic="reg/model", frame="Reference", vertices=vertices, faces=faces))
        writer.write(Status(topic="reg/status", level="warn", code="stale", text="overlay 300 ms"))
        writer.write(Image(topic="cam/depth", data=depth))
        writer.write(Image(topic="cam/video", data=colour))
        writer.write(Points(topic="reg/contour", points=np.zeros((3, 3))))
    target = tmp_path / "short-foxglove.mcap"
    to_foxglove_mcap(source, target)
    assert _schemas(target) == {
        "/reg/model": "foxglove.SceneUpdate",
        "/reg/status": "foxglove.Log",
        "/cam/depth": "foxglove.RawImage",
        "/cam/video": "foxglove.RawImage",
        "/reg/contour": "foxglove.SceneUpdate",
    }
    _, scene = _decoded(target, "/reg/model")[0]
    (triangles,) = scene.entities[0].triangles
    assert len(triangles.indices) // 3 == len(faces) and len(triangles.points) == 4
    assert triangles.points[1].x == 0.01 and scene.entities[0].frame_id == "Reference"
    _, log = _decoded(target, "/reg/status")[0]
    assert log.level == log.WARNING and log.message == "stale: overlay 300 ms"
    assert log.name == "reg"
    _, mono16 = _decoded(target, "/cam/depth")[0]
    assert mono16.encoding == "mono16" and mono16.step == 8
    assert np.array_equal(np.frombuffer(mono16.data, "<u2").reshape(3, 4), depth)
    _, rgb = _decoded(target, "/cam/video")[0]
    assert rgb.encoding == "rgb8" and rgb.data == colour.tobytes()
    _, contour = _decoded(target, "/reg/contour")[0]
    assert len(contour.entities[0].spheres) == 3 and not contour.entities[0].texts


def test_wrong_inputs_exit_2_and_a_damaged_recording_converts_what_it_can_with_exit_3(
    tmp_path: Path,
) -> None:
    text = tmp_path / "notes.mcap"
    text.write_text("not a recording\n" * 10)
    target = tmp_path / "out.mcap"
    not_mcap = igtflow("convert", str(text), str(target), "--to", "foxglove")
    assert not_mcap.returncode == 2 and "notes.mcap" in not_mcap.stderr
    assert "Traceback" not in not_mcap.stderr and not target.exists()

    foxglove = tmp_path / "already.mcap"
    to_foxglove_mcap(FLUORO, foxglove)
    twice = igtflow("convert", str(foxglove), str(target), "--to", "foxglove")
    assert twice.returncode == 2 and "not an igtflow recording" in twice.stderr
    assert not target.exists()

    existing = igtflow("convert", str(US), str(foxglove), "--to", "foxglove")
    assert existing.returncode == 2 and "--force" in existing.stderr

    cut = tmp_path / "cut.mcap"
    data = US.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    damaged = igtflow("convert", str(cut), str(target), "--to", "foxglove", "--json")
    assert damaged.returncode == 3, damaged.stderr
    assert "damaged" in damaged.stderr
    result = json.loads(damaged.stdout)
    assert result["problems"] and 0 < result["messages"]["/probe/image"] < 36
    assert len(_decoded(target, "/probe/image")) == result["messages"]["/probe/image"]
