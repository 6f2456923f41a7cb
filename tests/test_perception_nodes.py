"""The ``segment`` and ``track`` nodes with TorchScript and ONNX user models: driven by hand for
their logic (garbage frames, confidence alarms, targets moved and carried over on re-key) and as
real processes in a running graph fed by the phantom."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from igtflow.perception.nodes.health import CLEAR_FRAMES
from igtflow.stream.messages import Image, Points, Status
from igtflow.stream.node import PermanentError
from igtflow.stream.recording import read_messages
from igtflow.stream.testing import NodeHarness
from tests.helpers.graph_runs import GraphRun
from tests.helpers.perception_models import ramp, segmenter, tracker

SEGMENT = "igtflow.perception.nodes.segment:Segment"
TRACK = "igtflow.perception.nodes.track:Track"


def statuses(node: NodeHarness) -> list[Status]:
    return [m for m in node.emitted.get("status", []) if isinstance(m, Status)]


def codes(node: NodeHarness) -> list[str]:
    return [s.code for s in statuses(node)]


def test_segment_sends_phantom_label_ids_and_confidence_on_the_frames_grid(tmp_path: Path) -> None:
    with NodeHarness(SEGMENT, {"model": str(segmenter(tmp_path))}, node_id="seg") as seg:
        frame = Image(data=ramp(128), modality="US", spacing=(0.5, 0.5), meta={"index": 7})
        seg.feed("image", frame)  # 128² into a 64² model: resized there and back
        (labels,) = seg.emitted["labels"]
        (confidence,) = seg.emitted["confidence"]
    assert labels.modality == "LABELS" and labels.data.dtype == np.uint8
    assert labels.data.shape == (128, 128) and labels.spacing == (0.5, 0.5)
    assert set(np.unique(labels.data)) == {0, 1, 2, 3}
    assert labels.meta["index"] == 7 and labels.meta["model"] == "seg-torchscript"
    assert confidence.data.dtype == np.float32 and confidence.data.shape == (128, 128)
    assert 0.5 < confidence.meta["confidence"] <= 1.0 and not labels.meta["low_confidence"]


GARBAGE = {
    "wrong size": Image(data=np.zeros((30, 200), np.uint8) + ramp(200)[:30]),
    "uint16": Image(data=ramp().astype(np.uint16) * 257),
    "float": Image(data=ramp().astype(np.float32) / 255),
    "colour": Image(data=np.repeat(ramp()[..., None], 3, axis=2)),
    "all black": Image(data=np.zeros((64, 64), np.uint8)),
    "noise": Image(data=np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)),
    "NaN": Image(data=np.full((64, 64), np.nan, np.float32)),
    "a label map": Image(data=np.zeros((64, 64), np.uint8), modality="LABELS"),
    "one row": Image(data=np.zeros((1, 64), np.uint8)),
}


@pytest.mark.parametrize("runtime", ["torchscript", "onnx"])
def test_garbage_frames_are_counted_and_said_never_a_crash(tmp_path: Path, runtime: str) -> None:
    model = str(segmenter(tmp_path, runtime))
    with NodeHarness(SEGMENT, {"model": model, "other_size": "refuse"}, node_id="seg") as seg:
        seg.node.health.every_s = 0.0  # say every bad frame, so each can be checked
        for frame in GARBAGE.values():
            seg.feed("image", frame)
        health = seg.node.health
        assert health.bad == {"size": 2, "blank": 1, "non-finite": 1, "modality": 1}
        # Converted frames are segmented; blank ones come out as nothing found, confidence 0.
        assert len(seg.emitted["labels"]) == 5
        black = seg.emitted["labels"][3]
        assert not black.data.any() and black.meta["confidence"] == 0.0
        said = codes(seg)
        for code in ("frame-size", "frame-blank", "frame-non-finite", "frame-modality"):
            assert code in said
        assert "low-confidence" in said
        last = [s for s in statuses(seg) if s.code == "frame-size"][-1]
        assert last.level == "warn" and last.meta["count"] == 2 and "2 bad frame(s)" in last.text


def test_bad_frames_are_said_at_most_once_a_second_with_the_count(tmp_path: Path) -> None:
    with NodeHarness(SEGMENT, {"model": str(segmenter(tmp_path))}, node_id="seg") as seg:
        for _ in range(20):
            seg.feed("image", GARBAGE["NaN"])
        assert seg.node.health.bad["non-finite"] == 20
        assert codes(seg) == ["frame-non-finite"]


def test_low_confidence_in_the_target_raises_a_status_and_recovery_clears_it(
    tmp_path: Path,
) -> None:
    model = str(segmenter(tmp_path))
    with NodeHarness(SEGMENT, {"model": model, "threshold": 0.5}, node_id="seg") as seg:
        rng = np.random.default_rng(1)
        between = Image(data=np.clip(128 + rng.normal(0, 3, (64, 64)), 0, 255).astype(np.uint8))
        seg.feed("image", between)  # halfway between two grey levels: no class wins
        seg.feed("image", between)
        for _ in range(CLEAR_FRAMES):  # recovery is said once it has clearly lasted
            seg.feed("image", Image(data=ramp()))
        alarms = [s for s in statuses(seg) if s.code == "low-confidence"]
    assert [s.level for s in alarms] == ["warn", "ok"]  # once when it falls, once on recovery
    assert "below 0.50" in alarms[0].text and alarms[0].meta["confidence"] < 0.5
    low, _, good = seg.emitted["labels"][:3]
    assert low.meta["low_confidence"] and not good.meta["low_confidence"]


def test_a_model_that_cannot_run_stops_the_node_for_good(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="is a tracking model; this node runs segmentation"):
        NodeHarness(SEGMENT, {"model": str(tracker(tmp_path))})
    with pytest.raises(PermanentError, match="target 'device' is not a label of model"):
        NodeHarness(SEGMENT, {"model": str(segmenter(tmp_path)), "target": "device"})


def targets_at(pixels: list[tuple[float, float]]) -> Points:
    """Targets on an identity-geometry US frame: RAS = (x, y, 0)."""
    return Points(points=np.array([[x, y, 0.0] for x, y in pixels]), labels=["lesion", "vessel"])


@pytest.mark.parametrize("runtime", ["torchscript", "onnx"])
def test_track_sends_the_field_and_moves_targets_with_it(tmp_path: Path, runtime: str) -> None:
    model = str(tracker(tmp_path, runtime, shift=(1.5, -0.5)))
    with NodeHarness(TRACK, {"model": model}, node_id="trk") as trk:
        trk.feed("image", Image(data=ramp(), meta={"index": 0}))  # the first frame is the key
        trk.feed("targets", targets_at([(10, 20), (30, 40)]))
        trk.feed("image", Image(data=ramp(), meta={"index": 1}))
        key_field, field = trk.emitted["field"]
        moved = trk.emitted["targets"][-1]
    assert field.modality == "FIELD" and field.data.shape == (64, 64, 2)
    assert field.data.dtype == np.float32 and not key_field.data.any()
    np.testing.assert_allclose(field.data[..., 0], 1.5, atol=1e-5)
    np.testing.assert_allclose(field.data[..., 1], -0.5, atol=1e-5)
    assert field.meta["key_index"] == 0 and field.meta["index"] == 1
    np.testing.assert_allclose(moved.meta["pixels"], [[11.5, 19.5], [31.5, 39.5]], atol=1e-4)
    np.testing.assert_allclose(moved.points, [[11.5, 19.5, 0], [31.5, 39.5, 0]], atol=1e-4)
    assert moved.labels == ["lesion", "vessel"] and field.meta["confidence"] > 0.9


def test_a_resized_frame_gets_a_field_in_its_own_pixels(tmp_path: Path) -> None:
    with NodeHarness(TRACK, {"model": str(tracker(tmp_path, shift=(1.5, -0.5)))}) as trk:
        trk.feed("image", Image(data=ramp(128)))
        trk.feed("image", Image(data=ramp(128)))
        field = trk.emitted["field"][-1].data
    assert field.shape == (128, 128, 2)
    np.testing.assert_allclose(field[64, 64], [3.0, -1.0], atol=1e-4)


def test_large_motion_rekeys_and_carries_the_targets_over(tmp_path: Path) -> None:
    model = str(tracker(tmp_path, shift=(30.0, 0.0)))
    params = {"model": model, "rekey_motion_px": 24.0}
    with NodeHarness(TRACK, params) as trk:
        trk.feed("image", Image(data=ramp(), meta={"index": 0}))
        trk.feed("targets", targets_at([(5, 5), (6, 6)]))
        for index in (1, 2):
            trk.feed("image", Image(data=ramp(), meta={"index": index}))
        first, second = trk.emitted["targets"][-2:]
        fields = trk.emitted["field"]
    assert first.meta["pixels"][0] == pytest.approx([35.0, 5.0])
    assert second.meta["pixels"][0] == pytest.approx([65.0, 5.0])  # from the new key on
    assert fields[1].meta["key_index"] == 0 and fields[2].meta["key_index"] == 1


def test_anchored_at_key_frames_new_targets_wait_for_the_next_key(tmp_path: Path) -> None:
    # As between full registrations: targets that arrive mid-key are kept for the next key, and
    # until then the network alone moves the ones anchored before.
    model = str(tracker(tmp_path, shift=(2.0, 0.0)))
    params = {"model": model, "anchor": "key", "rekey_every": 2, "rekey_motion_px": 100.0}
    with NodeHarness(TRACK, params) as trk:
        trk.feed("image", Image(data=ramp(), meta={"index": 0}))
        trk.feed("targets", targets_at([(10, 10), (20, 20)]))
        trk.feed("image", Image(data=ramp(), meta={"index": 1}))
        trk.feed("targets", targets_at([(40, 40), (50, 50)]))  # a newer plan, mid-key
        trk.feed("image", Image(data=ramp(), meta={"index": 2}))  # re-keys (age), then anchors
        trk.feed("image", Image(data=ramp(), meta={"index": 3}))
        moved = [m.meta["pixels"][0] for m in trk.emitted["targets"]]
    assert moved[0] == pytest.approx([12.0, 10.0])
    assert moved[1] == pytest.approx([12.0, 10.0]), "the mid-key plan is not taken yet"
    assert moved[2] == pytest.approx([42.0, 40.0]), "taken at the key, then moved by the net"


def test_low_tracking_confidence_and_blank_frames_are_raised(tmp_path: Path) -> None:
    with NodeHarness(TRACK, {"model": str(tracker(tmp_path, bias=-4.0))}) as trk:
        trk.node.health.every_s = 0.0
        trk.feed("image", GARBAGE["all black"])  # never the key frame
        assert trk.node.key is None and trk.emitted["field"][0].meta["confidence"] == 0.0
        del trk.emitted["field"][0]
        trk.feed("image", Image(data=ramp()))
        trk.feed("image", Image(data=ramp()))
        trk.feed("image", GARBAGE["all black"])
        trk.feed("image", GARBAGE["NaN"])
        said = codes(trk)
        fields = trk.emitted["field"]
    assert said.count("low-confidence") == 1  # low from the blank start; one good key: still low
    assert {"frame-blank", "frame-non-finite"} <= set(said)
    assert fields[1].meta["confidence"] < 0.05 and fields[2].meta["confidence"] == 0.0
    assert len(fields) == 3  # the NaN frame was refused; the blank one sent as no motion


def by_topic(path: Path) -> dict[str, list]:
    topics: dict[str, list] = {}
    for topic, _, message in read_messages(path):
        topics.setdefault(topic, []).append(message)
    return topics


def test_segment_and_track_run_user_models_in_a_live_graph(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    seg_model = segmenter(tmp_path / "seg", "torchscript")
    track_model = tracker(tmp_path / "track", "onnx")
    unsure_model = segmenter(tmp_path / "unsure", "onnx", sharpness=0.0)
    path = tmp_path / "run.mcap"
    run = start_graph(
        f"""
name: perception
nodes:
  - id: us
    uses: phantom-us
    params: {{rate_hz: 15, seed: 3, width: 64, height: 64, path: static}}
  - id: seg
    uses: segment
    inputs: {{image: us/image}}
    params: {{model: "{seg_model}", device: cpu}}
  - id: unsure
    uses: segment
    inputs: {{image: us/image}}
    params: {{model: "{unsure_model}", confidence_dtype: uint8}}
  - id: trk
    uses: track
    inputs: {{image: us/image, targets: us/truth_targets}}
    params: {{model: "{track_model}"}}
  - id: rec
    uses: record
    inputs: {{"*": {{from: "*", policy: queue, depth: 256}}}}
    params: {{path: "{path}"}}
"""
    )
    run.wait(
        lambda: all(run.stats(n).get("sent", 0) >= 12 for n in ("seg", "trk")),
        60,
        "segment and track to send a few frames",
    )
    run.wait(lambda: run.nodes["unsure"].alarms >= 1, 30, "the low-confidence alarm")
    run.stop()
    topics = by_topic(path)
    labels = topics["seg/labels"]
    assert len(labels) >= 5
    for message in labels:
        assert message.modality == "LABELS" and message.data.shape == (64, 64)
        assert set(np.unique(message.data)) <= {0, 1, 2, 3}
    assert all(m.data.dtype == np.float32 for m in topics["seg/confidence"])
    assert all(m.data.dtype == np.uint8 for m in topics["unsure/confidence"])
    fields = topics["trk/field"]
    assert all(m.modality == "FIELD" and m.data.shape == (64, 64, 2) for m in fields)
    moved = topics["trk/targets"]
    assert moved and moved[-1].labels == topics["us/truth_targets"][-1].labels
    alarm = next(m for m in topics["unsure/status"] if m.code == "low-confidence")
    assert alarm.level == "warn" and "below 0.50" in alarm.text
    assert "low-confidence" in (run.nodes["unsure"].last_alarm or "")


def test_the_overlay_shows_the_segment_nodes_confidence(tmp_path: Path) -> None:
    from igtflow.render.overlay_compose import OverlayComposer

    params = {"model": str(segmenter(tmp_path, sharpness=0.0)), "confidence_dtype": "uint8"}
    with NodeHarness(SEGMENT, params) as seg:
        seg.feed("image", Image(data=ramp()))
        (labels,) = seg.emitted["labels"]
        (confidence,) = seg.emitted["confidence"]
    composer = OverlayComposer(low_confidence=0.5)
    composer.set_labels(labels)  # no confidence input wired: the labels' own
    assert composer.confidence == labels.meta["confidence"] < 0.5
    composer.set_confidence(confidence)  # a uint8 map: its meta, not its 0..255 mean
    assert composer.confidence == confidence.meta["confidence"] < 0.5
