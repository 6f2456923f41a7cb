"""The frozen-source watchdog: a source repeating its frame, or sending none, is flagged within
two frame periods on every output (Status, overlay banner, status table), and cleared after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from igtflow.launch.bench.frozen import run_frozen_bench
from igtflow.render import overlay_draw as draw
from igtflow.render.overlay_compose import OverlayComposer
from igtflow.stream.frozen_watch import FROZEN_CODE, FROZEN_META, FrozenWatch, fingerprint
from igtflow.stream.messages import Image
from tests.helpers.frames import us_scene
from tests.helpers.graph_runs import read_jsonl

MS = 1_000_000


class Alarms:
    """Collects what the watchdog raises, as the runtime's ``alarm`` would get it."""

    def __init__(self) -> None:
        self.raised: list[tuple[str, str, str, dict[str, Any]]] = []

    def __call__(self, code: str, text: str, level: str = "warn", **fields: Any) -> None:
        self.raised.append((code, text, level, fields))

    @property
    def levels(self) -> list[str]:
        return [level for _, _, level, _ in self.raised]


def _image(data: np.ndarray, modality: str = "US") -> Image:
    return Image(data=data, modality=modality)


def test_a_repeated_frame_is_flagged_at_once_and_cleared_by_a_new_one() -> None:
    rng = np.random.default_rng(0)
    alarms = Alarms()
    watch = FrozenWatch({"image": "probe/image"}, 30.0, alarms)
    stuck = rng.integers(0, 256, (480, 640), dtype=np.uint8)
    assert not watch.sent("image", _image(stuck), 0)
    assert watch.sent("image", _image(stuck.copy()), 33 * MS), "the first repeat is frozen"
    assert watch.sent("image", _image(stuck.copy()), 66 * MS)
    assert alarms.levels == ["error"], "one alarm while it lasts"
    code, text, _, fields = alarms.raised[0]
    assert code == FROZEN_CODE and "probe/image" in text and fields["how"] == "repeat"
    fresh = rng.integers(0, 256, stuck.shape, dtype=np.uint8)
    assert not watch.sent("image", _image(fresh), 100 * MS)
    assert alarms.levels == ["error", "ok"]


def test_a_source_that_goes_quiet_is_flagged_two_of_its_own_periods_after_a_missed_frame() -> None:
    rng = np.random.default_rng(1)
    alarms = Alarms()
    watch = FrozenWatch({"image": "probe/image"}, 30.0, alarms)  # runs at 5 Hz, not 30
    for k in range(10):
        watch.sent("image", _image(rng.integers(0, 256, (8, 8), dtype=np.uint8)), k * 200 * MS)
    last = 9 * 200 * MS
    assert watch.due_in_ms(last) == pytest.approx(600, abs=0.01)
    watch.poll(last + 590 * MS)  # frame 6 was due at +200 ms
    assert alarms.raised == [], "a 5 Hz source is judged by its own period, not the rate's"
    watch.poll(last + 610 * MS)
    assert alarms.levels == ["error"] and alarms.raised[0][3]["how"] == "silent"
    watch.sent("image", _image(rng.integers(0, 256, (8, 8), dtype=np.uint8)), last + 700 * MS)
    assert alarms.levels == ["error", "ok"]


def test_label_maps_may_repeat_and_any_changed_sample_counts() -> None:
    alarms = Alarms()
    watch = FrozenWatch({"labels": "seg/labels"}, 30.0, alarms)
    labels = np.zeros((64, 64), np.uint8)
    watch.sent("labels", _image(labels, "LABELS"), 0)
    assert not watch.sent("labels", _image(labels, "LABELS"), 33 * MS)
    assert alarms.raised == []
    frame = np.random.default_rng(2).integers(0, 256, (1024, 1024), dtype=np.uint16)
    changed = frame.copy()
    changed[0, 0] += 1  # the first pixel is always sampled
    assert fingerprint(frame) != fingerprint(changed)
    assert fingerprint(frame) != fingerprint(frame.astype(np.uint8))


def test_a_frozen_frame_makes_the_overlay_stale_with_a_frozen_banner() -> None:
    scene = us_scene()
    frozen = scene.image.replace(meta={**scene.image.meta, FROZEN_META: "probe/image"})
    composer = OverlayComposer()
    out = np.empty((*scene.image.data.shape[:2], 3), np.uint8)
    freshness = composer.compose(frozen, out, frozen.stamp_ns + 5 * MS)  # new, yet not live
    assert freshness.stale and freshness.banner() == "FROZEN SOURCE (probe/image)"
    band = draw.banner_height(out.shape[0])
    r, g, b = (out[:band, ..., k].astype(int) for k in range(3))
    assert np.mean((r > 180) & (g < 60) & (b < 60)) > 0.6, "no red banner"


def test_a_source_stuck_on_one_frame_is_flagged_everywhere_and_cleared(
    tmp_path: Path, start_graph
) -> None:
    rate = 20.0
    period_ns = 1e9 / rate
    frames, statuses, overlays = (tmp_path / f"{n}.jsonl" for n in ("frames", "status", "ovl"))
    run = start_graph(
        f"""
name: frozen
nodes:
  - id: src
    uses: tests.nodes.sources:Noise
    params: {{rate_hz: {rate}, freeze_at: 15, freeze_for: 15}}
  - id: overlay
    uses: overlay
    inputs: {{image: src/image}}
    params: {{show: false}}
  - id: frames
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/image}}
    params: {{out: "{frames}"}}
  - id: alarms
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/status}}
    params: {{out: "{statuses}"}}
  - id: shown
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: overlay/overlay}}
    params: {{out: "{overlays}"}}
"""
    )

    def frozen_alarms(level: str) -> list[dict]:
        return [s for s in read_jsonl(statuses) if s["code"] == FROZEN_CODE and s["level"] == level]

    def frame(n: int) -> dict:
        """Frame ``n`` as its sink got it (each sink is its own process: it may lag)."""
        found = lambda: [f for f in read_jsonl(frames) if f["n"] == n]  # noqa: E731
        return run.wait(found, 20, f"frame {n} at its sink")[0]

    flagged = run.wait(lambda: frozen_alarms("error"), 20, "the frozen-source alarm")[0]
    first_repeat = frame(15)
    assert flagged["stamp_ns"] - first_repeat["stamp_ns"] < 2 * period_ns, "within 2 periods"
    assert "src/image" in flagged["text"] and flagged["meta"]["how"] == "repeat"
    run.wait(lambda: run.nodes["src"].alarms > 0, 5, "the alarm in the status table")

    cleared = run.wait(lambda: frozen_alarms("ok"), 20, "the frozen-source alarm to clear")[0]
    first_fresh = frame(30)
    assert cleared["stamp_ns"] - first_fresh["stamp_ns"] < period_ns
    shown = run.wait(
        lambda: [o for o in read_jsonl(overlays) if o["n"] >= 31 and not o["meta"]["stale"]],
        20,
        "a live overlay after the freeze",
    )
    assert shown
    flags = {f["n"]: f["meta"].get(FROZEN_META) for f in read_jsonl(frames) if f["n"] < 31}
    assert [n for n, topic in flags.items() if topic == "src/image"] == list(range(15, 30))
    drawn = {o["n"]: o["meta"]["stale"] for o in read_jsonl(overlays) if 16 <= o["n"] < 30}
    assert drawn and all(drawn.values()), "every frozen frame is drawn stale"
    assert all(n.restarts == 0 for n in run.nodes.values())


def test_a_source_that_stops_sending_is_flagged_within_two_periods(
    tmp_path: Path, start_graph
) -> None:
    rate = 20.0
    period_ns = 1e9 / rate
    frames, statuses = tmp_path / "frames.jsonl", tmp_path / "status.jsonl"
    run = start_graph(
        f"""
name: silent
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    params: {{rate_hz: {rate}, count: 12}}
  - id: frames
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/image}}
    params: {{out: "{frames}"}}
  - id: alarms
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: src/status}}
    params: {{out: "{statuses}"}}
"""
    )
    flagged = run.wait(
        lambda: [s for s in read_jsonl(statuses) if s["code"] == FROZEN_CODE], 20, "silence"
    )[0]
    last = run.wait(
        lambda: [f for f in read_jsonl(frames) if f["n"] == 11], 20, "the last frame at its sink"
    )[0]
    missing_due = last["stamp_ns"] + period_ns  # frame 12 would have come then
    assert flagged["meta"]["how"] == "silent" and flagged["level"] == "error"
    # two periods after the first missing frame was due; 30 ms of slack for busy cores
    assert flagged["stamp_ns"] - missing_due < 2 * period_ns + 30 * MS


def test_bench_frozen_times_the_fingerprint_beside_a_whole_frame_crc() -> None:
    report = run_frozen_bench(rounds=20)
    assert [c["case"] for c in report["cases"]][-1] == "fluoro 1024×1024 uint16"
    for case in report["cases"]:
        assert set(case["fingerprint"]) == {"p50_us", "p99_us", "max_us"}
        assert case["baseline_full_crc32"]["p50_us"] > 0 and case["ratio_p50"] > 0
