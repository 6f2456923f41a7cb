"""Replay: a recording played into a graph is what the graph saw live, and lockstep repeats itself.

Recordings are written here with ``RecordingWriter`` (known content and timing), played by the
``replay`` node in real node processes, and recorded again by the ``record`` node, so both ends
are real MCAP files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from igtflow.launch.graph_edit import replay_graph, source_topics, with_recorder
from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.stream import wire
from igtflow.stream.messages import Image, Message, Transform
from igtflow.stream.recording import RecordingWriter, read_info, read_messages
from tests.helpers.cli import igtflow
from tests.helpers.graph_runs import GraphRun, read_jsonl
from tests.helpers.messages import sample_messages

FRAMES = 40
PERIOD_NS = 25_000_000  # 40 Hz
GRAPH = """name: probe-case
nodes:
  - id: probe
    uses: synthetic-image
  - id: rec
    uses: record
    inputs: {"*": {from: "*", policy: queue, depth: 256}}
    params: {path: x.mcap}
"""


def make_recording(path: Path) -> list[Message]:
    rng = np.random.default_rng(11)
    messages: list[Message] = []
    for i in range(FRAMES):
        stamp = 1_700_000_000_000_000_000 + i * PERIOD_NS
        pose = np.eye(4)
        pose[:3, 3] = rng.normal(size=3)
        messages.append(
            Image(
                topic="probe/image",
                seq=i,
                stamp_ns=stamp,
                frame="Image",
                meta={"n": i},
                spacing=(0.3, 0.3),
                data=rng.integers(0, 256, (128, 160), dtype=np.uint8),
            )
        )
        messages.append(
            Transform(
                topic="probe/pose",
                seq=i,
                stamp_ns=stamp,
                matrix=pose,
                from_frame="Probe",
                to_frame="Tracker",
            )
        )
    with RecordingWriter(path, GRAPH, {"case": "replay"}, chunk_size=64_000) as writer:
        for message in messages:
            writer.write(message, log_time_ns=message.stamp_ns + 1000)
    return messages


def content(message: Message) -> bytes:
    """The wire bytes of ``message`` without what only says when it travelled."""
    frames = wire.encode(message.restamped(trace=[], stamp_ns=0, seq=0, topic=""))
    return b"".join(bytes(f) for f in frames)


def run_until_drained(run: GraphRun, timeout_s: float = 30) -> None:
    run.wait(lambda: run.supervisor.drained(), timeout_s, "the replay to finish")
    run.stop()


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, list[Message]]:
    path = tmp_path / "case.mcap"
    return path, make_recording(path)


def test_live_replay_gives_back_every_message_with_scaled_timing(
    start_graph: Callable[..., GraphRun], tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, originals = recording
    out = tmp_path / "again.mcap"
    text, replay_id = replay_graph(
        str(path), None, sorted(read_info(path).topics), [], {"rate": 2.0}
    )
    assert replay_id == "probe"
    run_until_drained(start_graph(with_recorder(text, str(out))))

    replayed = [m for _, _, m in read_messages(out)]
    by_topic = {t: [m for m in replayed if m.topic == t] for t in ("probe/image", "probe/pose")}
    for topic, got in by_topic.items():
        want = [m for m in originals if m.topic == topic]
        assert [content(m) for m in got] == [content(m) for m in want], f"{topic} differs"
        assert [m.seq for m in got] == list(range(FRAMES))
    stamps = np.array([m.stamp_ns for m in by_topic["probe/image"]])
    span_s = (stamps[-1] - stamps[0]) / 1e9
    recorded_s = (FRAMES - 1) * PERIOD_NS / 1e9
    assert recorded_s / 2 * 0.8 <= span_s <= recorded_s / 2 * 1.5, f"span {span_s:.3f} s at 2x"
    assert abs(stamps[-1] / 1e9 - time.time()) < 60, "replayed frames are re-stamped"


def test_two_lockstep_replays_produce_identical_outputs(
    start_graph: Callable[..., GraphRun], tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, originals = recording
    downstream = """name: downstream
nodes:
  - id: relay
    uses: passthrough
    inputs: {in: probe/image}
  - id: relay2
    uses: passthrough
    inputs: {in: relay/out}
"""
    digests = []
    for attempt in range(2):
        out = tmp_path / f"lockstep-{attempt}.mcap"
        text, _ = replay_graph(str(path), downstream, sorted(read_info(path).topics))
        run = start_graph(with_recorder(text, str(out)), lockstep=True)
        run_until_drained(run)
        assert run.supervisor.ledger is not None and run.supervisor.ledger.released >= FRAMES
        got = [m for topic, _, m in read_messages(out) if topic == "relay2/out"]
        assert len(got) == FRAMES, f"lockstep lost messages: {len(got)} of {FRAMES}"
        # Lockstep keeps the recorded capture stamps: outputs depend on the recording only.
        assert [m.stamp_ns for m in got] == [m.stamp_ns for m in originals[::2]]
        digest = hashlib.sha256()
        for message in got:
            digest.update(b"".join(bytes(f) for f in wire.encode(message.restamped(trace=[]))))
        digests.append(digest.hexdigest())
    assert digests[0] == digests[1]


def test_replay_params_are_checked_before_anything_starts(
    tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, _ = recording
    base = "name: bad\nnodes:\n  - id: probe\n    uses: replay\n"
    with pytest.raises(GraphError) as missing:
        parse_graph(base + f"    params: {{path: {tmp_path / 'nope.mcap'}}}\n", "bad.yaml")
    assert "bad.yaml:3:" in str(missing.value) and "nope.mcap: cannot read" in str(missing.value)
    with pytest.raises(GraphError, match="no topic matching"):
        parse_graph(base + f"    params: {{path: {path}, topics: ['xray/*']}}\n", "bad.yaml")
    graph = parse_graph(base + f"    params: {{path: {path}}}\n", "ok.yaml")
    assert set(graph.node("probe").outputs) == {"image", "pose", "status"}


def test_cli_replay_inspect_and_recover(
    tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, _ = recording
    out = tmp_path / "cli.mcap"
    done = igtflow("replay", str(path), "--alone", "--lockstep", "--record", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(igtflow("inspect", str(out), "--json").stdout)
    assert summary["closed"] and summary["topics"]["probe/image"]["messages"] == FRAMES
    assert summary["topics"]["probe/image"]["shape"] == "128×160 uint8"
    assert summary["topics"]["probe/pose"]["missing_seq"] == 0

    cut = tmp_path / "cut.mcap"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    damaged = json.loads(igtflow("inspect", str(cut), "--json").stdout)
    assert not damaged["closed"] and damaged["problems"]
    fixed = tmp_path / "fixed.mcap"
    recovered = igtflow("recover", str(cut), str(fixed), "--json")
    assert recovered.returncode == 3, recovered.stderr  # the half chunk cut off is lost
    assert json.loads(recovered.stdout)["messages"] == damaged["messages"] > 0
    assert json.loads(igtflow("inspect", str(fixed), "--json").stdout)["closed"]

    bad = igtflow("inspect", str(tmp_path / "missing.mcap"))
    assert bad.returncode == 2 and "missing.mcap: cannot read" in bad.stderr


def test_every_message_kind_round_trips_through_a_lockstep_replay(tmp_path: Path) -> None:

    source = tmp_path / "kinds.mcap"
    originals = sample_messages()
    with RecordingWriter(source, "", {}) as writer:
        for message in originals:
            writer.write(message)
    out = tmp_path / "kinds-again.mcap"
    args = ("--alone", "--lockstep", "--topics", "*", "--record", str(out), "--json")
    done = igtflow("replay", str(source), *args)
    assert done.returncode == 0, done.stderr
    replayed = {m.KIND + m.topic.split("/")[-1]: m for _, _, m in read_messages(out)}
    assert len(replayed) == len(originals)
    for want in originals:
        got = replayed[want.KIND + want.topic.replace("/", ".")]
        assert content(got) == content(want), f"{want.KIND} on {want.topic} changed"
        assert got.stamp_ns == want.stamp_ns


def test_paused_sources_send_nothing_until_resumed(
    start_graph: Callable[..., GraphRun], tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, _ = recording
    out = tmp_path / "paused.jsonl"
    run = start_graph(f"""
name: pause
nodes:
  - id: probe
    uses: replay
    params: {{path: "{path}", rate: 0.5}}
  - id: sink
    uses: tests.nodes.sinks:Recorder
    inputs: {{in: probe/pose}}
    params: {{out: "{out}"}}
""")

    run.wait(lambda: len(read_jsonl(out)) >= 3, 10, "the first poses")
    run.supervisor.pause(True)
    run.run_for(0.3)
    held = len(read_jsonl(out))
    run.run_for(1.0)
    assert len(read_jsonl(out)) == held, "a paused replay kept sending"
    run.supervisor.pause(False)
    run.wait(lambda: len(read_jsonl(out)) >= held + 3, 10, "poses after resume")
    seqs = [r["seq"] for r in read_jsonl(out)]
    assert seqs == list(range(len(seqs))), "pausing must not skip messages"


def test_cli_replay_stops_at_the_end_beside_a_source_that_never_ends(
    tmp_path: Path, recording: tuple[Path, list[Message]]
) -> None:
    path, _ = recording
    graph = tmp_path / "beside.yaml"
    graph.write_text("""name: beside
nodes:
  - id: endless
    uses: synthetic-image
    params: {rate_hz: 10, width: 32, height: 32}
  - id: stats
    uses: stats
    inputs: {"*": {from: "*", policy: queue}}
""")
    done = igtflow("replay", str(path), "--graph", str(graph), "--rate", "4", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["node"]: row for row in json.loads(done.stdout)["nodes"]}
    assert rows["probe"]["sent"] == 2 * FRAMES and rows["endless"]["sent"] > 0


def test_live_replay_keeps_the_lag_of_a_layer_behind_its_frame(
    start_graph: Callable[..., GraphRun], tmp_path: Path
) -> None:
    """A label that reached the recorder 300 ms after its frame must stay 300 ms behind it."""
    source = tmp_path / "lagging.mcap"
    with RecordingWriter(source, "", {}) as writer:
        for i in range(15):
            stamp = 1_700_000_000_000_000_000 + i * 50_000_000
            pixels = np.zeros((8, 8), np.uint8)
            frame = Image(topic="probe/image", seq=i, stamp_ns=stamp, data=pixels)
            writer.write(frame, log_time_ns=stamp + 1_000_000)
            if i >= 6:  # the label of frame i - 6 arrives with frame i
                label_stamp = stamp - 6 * 50_000_000
                labels = Image(topic="seg/labels", seq=i - 6, stamp_ns=label_stamp, data=frame.data)
                writer.write(labels, log_time_ns=stamp + 2_000_000)
    out = tmp_path / "lagging-again.mcap"
    text, _ = replay_graph(str(source), None, ["probe/image", "seg/labels"], ["*"])
    started = time.monotonic()
    run_until_drained(start_graph(with_recorder(text, str(out))))
    assert time.monotonic() - started < 10, "replay took far longer than the recording"
    got = [m for _, _, m in read_messages(out)]
    frames = {m.meta.get("i", m.seq): m.stamp_ns for m in got if m.topic.endswith("probe.image")}
    labels = [m for m in got if m.topic.endswith("seg.labels")]
    assert len(frames) == 15 and len(labels) == 9
    for label in labels:
        lag_ms = (frames[label.seq + 6] - label.stamp_ns) / 1e6
        assert abs(lag_ms - 300) < 1, f"label {label.seq} lags its frame by {lag_ms:.1f} ms"


def test_a_replay_replaces_the_sources_not_a_ticking_node_that_happens_to_have_no_inputs() -> None:
    stored = """name: case
nodes:
  - id: probe
    uses: synthetic-image
  - id: ov
    uses: overlay
  - id: seg
    uses: tests.nodes.sources:Numbered
"""
    recorded = ["probe/image", "ov/overlay", "ov/status", "seg/number"]
    # overlay ticks but makes nothing on its own; a type the stored graph names by module path
    # is not imported from it, and is judged by its wiring
    assert source_topics(stored, recorded) == ["probe/image", "seg/number"]
