"""The 2D overlay: what it draws where, how a late overlay looks late, and the node's outputs.

Frames come from ``tests.helpers.frames`` (US-like speckle, XA-like projection) whose geometry
says where each contour, target and model must land; pixels are checked there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from igtflow.launch.graph_reader import parse_graph
from igtflow.render import overlay_draw as draw
from igtflow.render.image_geometry import plane_geometry, projection_geometry
from igtflow.render.overlay_compose import OverlayComposer, registration_problem
from igtflow.stream.messages import Transform
from tests.helpers.frames import SID_MM, SOD_MM, Scene, us_scene, xa_projection, xa_scene
from tests.helpers.graph_runs import GraphRun, read_jsonl

MS = 1_000_000


def compose(scene: Scene, age_ms: float = 20.0, **kwargs) -> tuple[np.ndarray, OverlayComposer]:
    composer = OverlayComposer(**kwargs)
    composer.set_labels(scene.labels)
    composer.set_targets(scene.targets)
    composer.set_model(scene.model)
    out = np.empty((*scene.image.data.shape[:2], 3), np.uint8)
    composer.compose(scene.image, out, scene.image.stamp_ns + int(age_ms * MS))
    return out, composer


def near_colour(rgb: np.ndarray, u: float, v: float, colour: tuple[int, int, int], r: int = 2):
    """Whether ``colour`` (±40 per channel) is within ``r`` pixels of (u, v)."""
    patch = rgb[int(v) - r : int(v) + r + 1, int(u) - r : int(u) + r + 1].astype(int)
    return bool(np.any(np.all(np.abs(patch - colour) <= 40, axis=-1)))


def red_fraction(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return float(np.mean((r > 180) & (g < 60) & (b < 60)))


def test_label_contour_drawn_on_the_label_boundary() -> None:
    scene = us_scene()
    rgb, _ = compose(scene)
    (cu, cv), (ax, ay) = scene.organ_centre_px, scene.organ_axes_px
    for angle in np.radians([20, 60, 120, 160, 200, 250, 290, 340]):
        u, v = cu + ax * np.cos(angle), cv + ay * np.sin(angle)
        assert near_colour(rgb, u, v, draw.LABEL_COLOURS[1]), f"no organ contour at {u:.0f},{v:.0f}"
    # Inside the organ, away from the boundary, nothing is drawn: the image shows through.
    assert not near_colour(rgb, cu - ax / 2, cv, draw.LABEL_COLOURS[1], r=3)


def test_target_marker_at_its_projected_pixel_and_model_cut_by_the_plane() -> None:
    scene = us_scene()
    rgb, _ = compose(scene)
    u, v = scene.target_px
    assert near_colour(rgb, u, v, draw.TARGET_COLOUR, r=1), "in-plane target is not filled there"
    mu, mv = scene.model_centre_px
    r = scene.model_radius_px
    for du, dv in ((r, 0), (-r, 0), (0, r)):
        assert near_colour(rgb, mu + du, mv + dv, draw.MODEL_COLOUR), "model cut not on its circle"


def test_fluoro_target_and_silhouette_follow_the_projection() -> None:
    scene = xa_scene()
    rgb, _ = compose(scene)
    u, v = scene.target_px
    assert near_colour(rgb, u, v, draw.TARGET_COLOUR, r=1)
    mu, mv = scene.model_centre_px
    r = scene.model_radius_px
    assert near_colour(rgb, mu + r, mv, draw.MODEL_COLOUR, r=3), "no silhouette outline"
    inside = rgb[int(mv) + 20, int(mu) + int(r * 0.8)].astype(int)
    plain = cv2.cvtColor(scene.image.data, cv2.COLOR_GRAY2RGB)[int(mv) + 20, int(mu) + int(r * 0.8)]
    assert inside[0] - inside[2] > plain[0] - plain[2] + 20, "silhouette fill does not tint orange"


def test_age_of_every_layer_is_written() -> None:
    rgb, _ = compose(us_scene())
    box = rgb[:120, :150]
    assert np.mean(np.all(box > 200, axis=-1)) > 0.02, "no age text in the HUD"
    assert red_fraction(rgb[:30]) < 0.05, "a fresh overlay has no STALE banner"


def test_stale_overlay_is_greyed_with_a_red_banner() -> None:
    scene = us_scene()
    fresh, _ = compose(scene, age_ms=20)
    stale, _ = compose(scene, age_ms=400)
    band = draw.banner_height(stale.shape[0])
    assert red_fraction(stale[:band]) > 0.6, "no red STALE banner"
    assert red_fraction(fresh[:band]) < 0.05
    # Where the fresh overlay has colour (contours, markers, model), the stale one is grey.
    sat_fresh = cv2.cvtColor(fresh, cv2.COLOR_RGB2HSV)[..., 1].astype(float)
    sat_stale = cv2.cvtColor(stale, cv2.COLOR_RGB2HSV)[..., 1].astype(float)
    drawn = sat_fresh > 100
    drawn[:160, :180] = False  # the HUD, whose text turns red when stale
    drawn[:, -60:] = False  # the confidence bar
    assert drawn.sum() > 500
    assert sat_stale[drawn].mean() < 0.4 * sat_fresh[drawn].mean()


@pytest.mark.parametrize(("stale", "banner"), [(False, "INVALID"), (True, "STALE")])
def test_an_invalid_registration_is_drawn_grey_under_a_red_band(stale: bool, banner: str) -> None:
    scene = us_scene()
    composer = OverlayComposer()
    composer.set_targets(scene.targets)
    composer.set_model(scene.model)
    out = np.empty((*scene.image.data.shape[:2], 3), np.uint8)
    now = scene.image.stamp_ns + 20 * MS
    transform = Transform(
        stamp_ns=scene.image.stamp_ns,
        valid=False,
        meta={"reason": "too few points", "stale": stale},
    )
    composer.set_transform(transform)
    composer.compose(scene.image, out, now)
    band = draw.banner_height(out.shape[0])
    assert red_fraction(out[-band:]) > 0.6, "no red band at the bottom"
    assert red_fraction(out[:band]) < 0.05, "the registration band is not the stale one"
    assert registration_problem([transform]) == f"REGISTRATION {banner}"
    assert "registration: too few points" in composer.problems.values()
    u, v = scene.target_px
    mu, mv = scene.model_centre_px
    r = scene.model_radius_px
    assert near_colour(out, u, v, draw.UNTRUSTED_GREY, r=1)
    assert not near_colour(out, u, v, draw.TARGET_COLOUR, r=1)
    assert not near_colour(out, mu + r, mv, draw.MODEL_COLOUR)
    # A valid transform again: colours back, no band.
    composer.set_transform(Transform(stamp_ns=scene.image.stamp_ns, valid=True))
    composer.compose(scene.image, out, now)
    assert red_fraction(out[-band:]) < 0.05
    assert near_colour(out, u, v, draw.TARGET_COLOUR, r=1)
    assert near_colour(out, mu + r, mv, draw.MODEL_COLOUR)


def test_labels_older_than_the_frame_make_it_stale() -> None:
    scene = us_scene()
    composer = OverlayComposer(stale_ms=250)
    composer.set_labels(scene.labels.replace(stamp_ns=scene.image.stamp_ns - 400 * MS))
    out = np.empty((*scene.image.data.shape, 3), np.uint8)
    freshness = composer.compose(scene.image, out, scene.image.stamp_ns + 10 * MS)
    assert freshness.stale and freshness.worst is not None
    assert freshness.worst.name == "labels"
    assert red_fraction(out[: draw.banner_height(out.shape[0])]) > 0.6


def test_static_model_never_makes_the_overlay_stale() -> None:
    scene = us_scene()
    composer = OverlayComposer(stale_ms=250, static=("model",))
    composer.set_model(scene.model.replace(stamp_ns=scene.image.stamp_ns - 60_000 * MS))
    out = np.empty((*scene.image.data.shape, 3), np.uint8)
    assert not composer.compose(scene.image, out, scene.image.stamp_ns + 10 * MS).stale


def test_low_confidence_shows_a_red_bar_and_warning() -> None:
    scene = us_scene()
    composer = OverlayComposer(low_confidence=0.5)
    composer.set_confidence(scene.image.with_data(np.full((8, 8), 0.2, np.float32)))
    out = np.empty((*scene.image.data.shape, 3), np.uint8)
    composer.compose(scene.image, out, scene.image.stamp_ns + 10 * MS)
    right = out[:200, -40:]
    assert np.any(np.all(np.abs(right.astype(int) - (230, 30, 30)) < 30, axis=-1))


def test_the_producing_nodes_verdict_on_confidence_wins_over_the_overlays_threshold() -> None:
    scene = us_scene()
    red = (230, 30, 30)
    for value, flag, expect_red in ((0.6, True, True), (0.3, False, False), (0.3, None, True)):
        composer = OverlayComposer(low_confidence=0.5)
        meta = (
            {"confidence": value} if flag is None else {"confidence": value, "low_confidence": flag}
        )
        composer.set_confidence(scene.image.with_data(np.zeros((8, 8), np.float32), meta=meta))
        out = np.empty((*scene.image.data.shape, 3), np.uint8)
        composer.compose(scene.image, out, scene.image.stamp_ns + 10 * MS)
        right = out[:200, -40:]
        is_red = bool(np.any(np.all(np.abs(right.astype(int) - red) < 30, axis=-1)))
        assert is_red == expect_red, (value, flag)


def test_plane_and_projection_geometry() -> None:
    scene = us_scene()
    plane = plane_geometry(scene.image.ijk_to_ras)
    uv, off = plane.to_pixels(scene.targets.points)
    assert np.allclose(uv[0], scene.target_px, atol=1e-6) and abs(off[0]) < 1e-6
    assert off[1] == pytest.approx(10.0, abs=1e-4)
    projection, _ = xa_projection(512)
    carm = projection_geometry(projection, SID_MM)
    assert np.allclose(carm.source, [0, -SOD_MM, 0], atol=1e-6)
    det = carm.detector_points(np.array([[256.0, 256.0]]))
    assert np.allclose(det, [[0, SID_MM - SOD_MM, 0]], atol=1e-6)


def test_compose_cost_is_a_few_ms_for_512() -> None:
    for scene in (us_scene(512), xa_scene(512)):
        composer = OverlayComposer()
        composer.set_labels(scene.labels)
        composer.set_targets(scene.targets)
        composer.set_model(scene.model)
        out = np.empty((512, 512, 3), np.uint8)
        times = []
        for _ in range(60):
            t0 = time.perf_counter()
            composer.compose(scene.image, out, time.time_ns())
            times.append(time.perf_counter() - t0)
        # Target < 5 ms on one core; 10× margin for a busy 2-core CI box.
        assert np.median(times) < 0.05, (
            f"{scene.image.modality} p50 {np.median(times) * 1e3:.1f} ms"
        )


def test_overlay_graph_validates_with_only_the_image_wired() -> None:
    graph = parse_graph(
        """
name: only-image
nodes:
  - id: src
    uses: tests.nodes.cases:CaseFrames
  - id: view
    uses: overlay
    inputs: {image: src/image}
    params: {show: false}
"""
    )
    assert [w.name for w in graph.node("view").inputs] == ["image"]


def test_stale_frames_raise_an_alarm_and_outputs_are_written(
    start_graph: Callable[[str], GraphRun], tmp_path: Path
) -> None:
    alarms = tmp_path / "alarms.jsonl"
    video = tmp_path / "overlay.mp4"
    snaps = tmp_path / "snaps"
    run = start_graph(
        f"""
name: stale-overlay
nodes:
  - id: src
    uses: tests.nodes.cases:CaseFrames
    params: {{rate_hz: 20, size: 128, ages_ms: [0, 600, 0], phase_s: 1.5}}
  - id: view
    uses: overlay
    inputs: {{image: src/image, labels: src/labels, targets: src/targets, model: src/model}}
    params: {{show: false, video: "{video}", snapshot_dir: "{snaps}", snapshot_every_s: 0.5}}
  - id: alarms
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: {{from: view/status, policy: queue, depth: 64}}}}
    params: {{out: "{alarms}"}}
"""
    )
    snaps.mkdir(exist_ok=True)
    (snaps / "snapshot.request").touch()
    statuses = run.wait(
        lambda: (s := read_jsonl(alarms)) and len(s) >= 2 and s, 20, "stale then live Status"
    )
    assert [(s["level"], s["code"]) for s in statuses[:2]] == [
        ("warn", "stale-overlay"),
        ("ok", "stale-overlay"),
    ]
    assert "ms old" in statuses[0]["text"]
    run.wait(lambda: list(snaps.glob("snapshot-*.png")), 30, "the requested snapshot")
    assert not (snaps / "snapshot.request").exists(), "a served request is removed"
    run.stop()
    pngs = sorted(snaps.glob("overlay-*.png"))
    assert len(pngs) >= 3
    image = cv2.imread(str(pngs[0]))
    assert image is not None and image.shape == (128, 128, 3)
    capture = cv2.VideoCapture(str(video))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == (128, 128, 3)
    assert frames >= 20, f"MP4 holds {frames} frames"
