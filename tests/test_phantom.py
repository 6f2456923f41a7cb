"""The synthetic phantom: truth agrees with its images, runs repeat bit for bit, files read back."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import nrrd
import numpy as np
import pytest
import vedo
from typer.testing import CliRunner

from igtflow.launch.cli import app
from igtflow.stream.phantom.anatomy import LESION, ORGAN, build_anatomy
from igtflow.stream.phantom.bench import TARGETS_FPS
from igtflow.stream.phantom.carm import CArmGeometry
from igtflow.stream.phantom.consistency import (
    FLOW_DICE_MIN,
    FOREGROUND,
    LABEL_AGREEMENT_MIN,
    LESION_CENTROID_PX_MAX,
    TARGET_PX_MAX,
    contract_ijk_to_ras,
    flow_dice,
    fluoro_target_reprojection_px,
    lesion_centroid_px,
    us_label_agreement,
)
from igtflow.stream.phantom.fluoro import FluoroConfig, FluoroSim
from igtflow.stream.phantom.motion import BREATHING_DIRECTION, make_motion
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

SEED = 0


@pytest.fixture(scope="module")
def us_static() -> UltrasoundSim:
    return UltrasoundSim(SEED, UltrasoundConfig(path="static"))


@pytest.fixture(scope="module")
def fluoro() -> FluoroSim:
    return FluoroSim(SEED)


@pytest.mark.parametrize(
    ("path", "probe"), [("static", "linear"), ("sweep", "linear"), ("sweep", "curvilinear")]
)
def test_us_labels_are_the_label_volume_resampled_at_the_probe_pose(path: str, probe: str) -> None:
    sim = UltrasoundSim(SEED, UltrasoundConfig(path=path, probe=probe))
    frame = sim.render(47)
    np.testing.assert_allclose(frame.ijk_to_ras, contract_ijk_to_ras(frame), atol=1e-9)
    # Independently: pixel → RAS at time t → exact inverse motion → nearest voxel (in the FOV).
    agreement = us_label_agreement(sim, frame)
    assert agreement >= LABEL_AGREEMENT_MIN, f"only {agreement:.4f} of pixels match the labels"
    assert set(np.unique(frame.labels[sim.fov])) >= {0, ORGAN}
    assert not frame.labels[~sim.fov].any(), "labels outside the field of view"


@pytest.fixture(scope="module")
def convex() -> UltrasoundSim:
    return UltrasoundSim(SEED, UltrasoundConfig(path="static", probe="curvilinear", depth_mm=100))


def apex_polar(sim: UltrasoundSim, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) from the virtual apex, R above the probe origin, and angle (deg) from the
    probe axis of pixels (u, v), through the contract ImageToProbe."""
    cfg = sim.config
    probe = sim.image_to_probe @ np.diag([*cfg.spacing, 1.0, 1.0])
    x = probe[0, 0] * u + probe[0, 3]
    y = probe[1, 1] * v + probe[1, 3] + cfg.radius_mm
    return np.hypot(x, y), np.degrees(np.arctan2(x, y))


def test_curvilinear_frame_is_black_outside_its_sector_with_speckle_inside(
    convex: UltrasoundSim,
) -> None:
    cfg = convex.config
    frame = convex.render(40)
    v, u = np.mgrid[0 : cfg.height, 0 : cfg.width]
    r, angle = apex_polar(convex, u, v)
    margin = 1.0  # mm / degrees: scan conversion blends the edge pixels
    outside = (r < cfg.radius_mm - margin) | (r > cfg.radius_mm + cfg.depth_mm + margin)
    outside |= np.abs(angle) > 0.5 * cfg.sector_deg + margin
    inside = (r > cfg.radius_mm + 15) & (r < cfg.radius_mm + cfg.depth_mm - margin)
    inside &= np.abs(angle) < 0.5 * cfg.sector_deg - margin
    assert outside.mean() > 0.2 and inside.mean() > 0.4, "not a sector"
    assert not frame.image[outside].any(), "image outside the sector should be black"
    assert not frame.labels[outside].any()
    assert np.all(convex.fov[inside]) and not np.any(convex.fov[outside])
    # Speckle: organ grey levels vary strongly from pixel to pixel, and rarely drop to black.
    organ = frame.image[inside & (frame.labels == ORGAN)]
    assert organ.mean() > 50 and organ.std() > 20
    assert np.mean(frame.image[inside] == 0) < 0.02, "black holes inside the sector"
    # The probe origin (pixel 0 at the middle of the top row) is the middle of the array surface.
    origin = convex.image_to_probe @ [0.5 * (cfg.width - 1) * cfg.spacing[0], 0.0, 0.0, 1.0]
    np.testing.assert_allclose(origin[:3], 0.0, atol=1e-9)
    assert frame.image[:4, cfg.width // 2 - 2 : cfg.width // 2 + 3].mean() > 100, "no skin line"


class ShiftedProbe(UltrasoundSim):
    """The static probe slid 45 mm along its lateral axis: the lesion is seen ~25° off-axis."""

    def probe_to_tracker(self, index: int) -> np.ndarray:
        pose = super().probe_to_tracker(index)
        pose[:3, 3] += 45.0 * pose[:3, 0]
        return pose


def test_curvilinear_shadow_lies_along_the_beam_from_the_apex_through_the_lesion() -> None:
    sim = ShiftedProbe(SEED, UltrasoundConfig(path="static", probe="curvilinear", depth_mm=120))
    frame = sim.render(0)
    v, u = np.mgrid[0 : sim.config.height, 0 : sim.config.width]
    r, angle = apex_polar(sim, u, v)
    lesion = frame.labels == LESION
    lesion_angle = float(np.median(angle[lesion]))
    assert abs(lesion_angle) > 15, "lesion should be off-axis, where beams and columns differ"
    far = float(r[lesion].max())
    organ_mean = frame.image[frame.labels == ORGAN].mean()
    for band in ((far + 10, far + 25), (far + 25, far + 40)):
        # Darkest 2° wedge in a ring of organ behind the lesion: the shadow's direction.
        ring = (r >= band[0]) & (r < band[1]) & (frame.labels == ORGAN)
        bins = np.arange(-34.0, 34.01, 1.0)
        means = [
            frame.image[ring & (angle >= lo) & (angle < lo + 2.0)].mean()
            if np.any(ring & (angle >= lo) & (angle < lo + 2.0))
            else np.inf
            for lo in bins
        ]
        darkest = bins[int(np.argmin(means))] + 1.0
        assert abs(darkest - lesion_angle) < 2.5, (
            f"shadow at {darkest:.1f}°, lesion {lesion_angle:.1f}°"
        )
        assert min(means) < organ_mean - 15, "no acoustic shadow behind the lesion"


def test_us_image_is_bright_where_the_lesion_is_and_shadowed_below(
    us_static: UltrasoundSim,
) -> None:
    frame = us_static.render(0)
    lesion = frame.labels == LESION
    rows = np.nonzero(lesion.any(axis=1))[0]
    cols = np.nonzero(lesion.any(axis=0))[0]
    organ_mean = frame.image[frame.labels == ORGAN].mean()
    below = frame.image[rows.max() + 10 :, cols.min() + 5 : cols.max() - 5]
    assert frame.image[lesion].mean() > organ_mean + 15, "lesion should be hyperechoic"
    assert below.mean() < organ_mean - 15, "no acoustic shadow behind the lesion"


def test_fluoro_targets_project_onto_their_marked_pixels(fluoro: FluoroSim) -> None:
    for index in (0, 47, 75):
        frame = fluoro.render(index)
        assert fluoro_target_reprojection_px(frame) < TARGET_PX_MAX
        error = lesion_centroid_px(frame)
        assert error < LESION_CENTROID_PX_MAX, f"frame {index}: lesion centroid {error:.2f} px off"


def test_carm_projection_matches_detector_geometry() -> None:
    g = CArmGeometry(lao_deg=30.0, cranial_deg=-15.0, isocenter=(4.0, -2.0, 7.0))
    pixel = np.array([[100.0, 300.0]])
    on_ray = g.source + 640.0 * g.ray_directions(pixel)
    np.testing.assert_allclose(g.project(on_ray), pixel, atol=1e-9)
    detector_point = (g.ijk_to_ras @ [100.0, 300.0, 0.0, 1.0])[:3]
    np.testing.assert_allclose(g.project(detector_point[None]), pixel, atol=1e-9)
    assert np.linalg.norm(detector_point - g.source) >= g.sid_mm - 1e-9


def test_us_flow_maps_current_labels_back_onto_the_key_frame(us_static: UltrasoundSim) -> None:
    for index in (47, 75):
        frame = us_static.render(index)
        key = us_static.render(frame.key_index)
        assert frame.key_index < index and np.abs(frame.flow).max() > 2.0, "no motion to test"
        scores = flow_dice(frame.labels, key.labels, frame.flow, (ORGAN, LESION, FOREGROUND))
        for structure, score in scores.items():
            assert score >= FLOW_DICE_MIN, f"US frame {index} {structure}: Dice {score:.4f}"


def test_fluoro_flow_maps_current_labels_back_onto_the_key_frame(fluoro: FluoroSim) -> None:
    for index in (47, 75):
        frame = fluoro.render(index)
        key = fluoro.render(frame.key_index)
        assert np.abs(frame.flow).max() > 2.0, "no motion to test"
        scores = flow_dice(frame.labels, key.labels, frame.flow, (ORGAN, LESION, FOREGROUND))
        for structure, score in scores.items():
            assert score >= FLOW_DICE_MIN, f"fluoro frame {index} {structure}: Dice {score:.4f}"


def test_motion_inverse_undoes_forward() -> None:
    motion = make_motion(SEED, np.zeros(3), deformation_mm=6.0)
    points = np.random.default_rng(1).uniform(-80, 80, (500, 3))
    for t in (0.3, 1.7, 5.2):
        back = motion.inverse(motion.forward(points, t), t)
        assert np.max(np.abs(back - points)) < 1e-3


def test_breathing_amplitude_is_the_peak_to_peak_excursion() -> None:
    motion = make_motion(SEED, np.zeros(3), amplitude_mm=7.0, period_s=4.0, deformation_mm=0.0)
    times = np.linspace(0.0, 4.0, 401)
    point = np.array([[10.0, 0.0, 5.0]])
    path = np.array([motion.forward(point, t)[0] for t in times])
    along = (path - point) @ BREATHING_DIRECTION
    assert along.max() - along.min() == pytest.approx(7.0, rel=1e-3)
    assert abs(BREATHING_DIRECTION[2]) > 0.9, "breathing should be mostly superior-inferior"


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: make_motion(0, np.zeros(3), amplitude_mm=-1.0), "breathing_amplitude_mm"),
        (lambda: make_motion(0, np.zeros(3), deformation_mm=50.0), "deformation_mm"),
        (lambda: UltrasoundConfig(width=0), "width"),
        (lambda: UltrasoundConfig(path="zigzag"), "path"),
        (lambda: UltrasoundConfig(key_every=0), "key_every"),
        (lambda: UltrasoundConfig(probe="phased"), "probe"),
        (lambda: UltrasoundConfig(radius_mm=-5.0), "radius_mm"),
        (lambda: UltrasoundConfig(sector_deg=200.0), "sector_deg"),
        (lambda: CArmGeometry(height=0), "height"),
        (lambda: CArmGeometry(sod_mm=1200.0), "sod_mm"),
        (lambda: FluoroConfig(dose=-5.0), "dose"),
        (lambda: build_anatomy(-1), "seed"),
    ],
)
def test_bad_parameters_raise_errors_that_name_them(make, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make()


FRAME_HASHES = """
import hashlib, sys
from igtflow.stream.phantom.fluoro import FluoroSim
from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim
h = hashlib.sha256()
us = UltrasoundSim(3)
convex = UltrasoundSim(3, UltrasoundConfig(probe="curvilinear"), anatomy=us.anatomy)
for i in (0, 17, 45):
    for f in (us.render(i), convex.render(i)):
        for a in (f.image, f.labels, f.flow):
            h.update(a.tobytes())
fl = FluoroSim(3)
for i in (0, 31):
    f = fl.render(i)
    for a in (f.image, f.labels, f.flow):
        h.update(a.tobytes())
sys.stdout.write(h.hexdigest())
"""


def test_frames_are_bit_identical_across_processes() -> None:
    digests = [
        subprocess.run(
            [sys.executable, "-c", FRAME_HASHES], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_different_seeds_give_different_anatomy() -> None:
    a, b = build_anatomy(0), build_anatomy(1)
    assert not np.allclose(a.lesion_center, b.lesion_center)


def test_export_writes_files_slicer_reads_back(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["phantom", "export", str(tmp_path), "--seed", "0", "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    anatomy = build_anatomy(0)

    data, header = nrrd.read(written["labels"], index_order="F")
    assert header["space"] == "right-anterior-superior"
    np.testing.assert_allclose(header["space directions"], np.diag([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(header["space origin"], anatomy.origin)
    assert data.shape == anatomy.shape and data.dtype == np.uint8
    assert set(np.unique(data)) == {0, 1, 2, 3}, "preoperative labels: no catheter"

    lo, hi = anatomy.bounds
    for name in ("organ", "vessel", "lesion"):
        for suffix in (".vtk", ".stl"):
            path = tmp_path / f"{name}{suffix}"
            assert path.stat().st_size > 1000
            vertices = vedo.load(str(path)).vertices
            assert len(vertices) > 100
            assert np.all(vertices >= lo - 0.5) and np.all(vertices <= hi + 0.5), path

    truth = json.loads((tmp_path / "truth.json").read_text())
    assert [t["id"] for t in truth["targets"]] == ["lesion", "bifurcation"]
    np.testing.assert_allclose(truth["targets"][0]["ras"], anatomy.lesion_center)
    assert len(truth["carm"]["projection"]) == 3

    sheet = cv2.imread(written["contact_sheet"])
    assert sheet is not None and sheet.shape[0] >= 256 and sheet.shape[1] >= 1024
    assert sheet.std() > 20, "contact sheet is flat"
    overlay_half = sheet[sheet.shape[0] // 2 :].astype(int)
    coloured = np.abs(overlay_half[..., 1] - overlay_half[..., 2]) > 60
    assert coloured.sum() > 500, "no truth contours drawn"

    sweep, header = nrrd.read(written["us_sweep"], index_order="C")
    assert sweep.shape == (60, 1, 256, 256) and header["kinds"][-1] == "list"
    pose = np.array(header["Seq_Frame0030_ProbeToTrackerTransform"].split(), float).reshape(4, 4)
    assert np.allclose(pose[3], [0, 0, 0, 1]) and "Seq_Frame0059_ImageToProbeTransform" in header


def test_us_case_gives_frames_with_poses() -> None:
    from igtflow.stream.phantom.export import us_case

    frames, poses, image_to_probe, spacing, stamps = us_case(SEED, 4)
    assert frames.shape == (4, 256, 256) and frames.dtype == np.uint8
    assert poses.shape == (4, 4, 4) and image_to_probe.shape == (4, 4)
    assert len(spacing) == 2 and np.all(np.diff(stamps) > 0)
    assert not np.allclose(poses[0], poses[3]), "the sweep should move the probe"
    digest = hashlib.sha256(frames.tobytes()).hexdigest()
    assert digest == hashlib.sha256(us_case(SEED, 4)[0].tobytes()).hexdigest()


def test_bench_phantom_reports_truth_consistency_on_held_out_seeds() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from igtflow.launch.cli import main; main()",
            "bench",
            "phantom",
            "--duration",
            "0.2",
            "--truth-seed",
            "1001",
            "--truth-frames",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["us_fps"] > 0 and report["fluoro_fps"] > 0
    c = report["consistency"]
    assert c["seeds"] == [1001] and c["frames"] == [7, 17]
    assert c["passes"], c["failed"]
    assert c["us_label_agreement"]["n"] == 2
    assert c["us_label_agreement"]["min"] >= LABEL_AGREEMENT_MIN
    assert c["us_curvilinear_label_agreement"]["min"] >= LABEL_AGREEMENT_MIN
    assert report["us_curvilinear_fps"] > 0
    assert report["targets_fps"] == TARGETS_FPS
    assert c["fluoro_target_px"]["max"] < TARGET_PX_MAX
    assert set(c["fluoro_flow_dice"]["per_structure"]) >= {"organ", "lesion", "foreground"}
    assert c["us_flow_dice"]["min"] >= FLOW_DICE_MIN
    assert c["fluoro_flow_dice"]["min"] >= FLOW_DICE_MIN
