"""One damaged field never costs more than the bytes it spoils, and never goes unreported.

Each test damages a copy of a sample recording the way a disk or a copy does (one flipped bit,
one byte cut, garbage appended) and checks that our readers (``scan``, ``inspect``, ``recover``,
``replay``) keep at least what the stock ``mcap`` reader keeps, say what is wrong, and exit 3
(``DAMAGED``) when something is.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from mcap.reader import make_reader

from igtflow.launch.inspect_recording import inspect_recording
from igtflow.stream.recording import read_info, read_messages, recover
from igtflow.stream.recording_scan import ScanReport, scan
from tests.helpers.cli import igtflow

SAMPLES = Path(__file__).resolve().parent.parent / "recordings"
US_MESSAGES = 216
GRAPH_LENGTH_BYTE = 50  # inside the length field of the graph.yaml attachment record
GRAPH_DATA_BYTE = 150  # inside the graph.yaml text
FIRST_CHUNK = 347  # offset of the first chunk record
DAMAGED = 3


def damaged_copy(tmp_path: Path, flip: tuple[int, int] | None = None, name: str = "us") -> Path:
    """A copy of the ultrasound sample, with bit ``flip[1]`` of byte ``flip[0]`` flipped."""
    path = tmp_path / f"{name}.mcap"
    shutil.copyfile(SAMPLES / "phantom-us.mcap", path)
    if flip is not None:
        data = bytearray(path.read_bytes())
        data[flip[0]] ^= 1 << flip[1]
        path.write_bytes(bytes(data))
    return path


def stock_count(path: Path) -> int:
    """Messages the ``mcap`` package's own reader yields before it gives up."""
    count = 0
    try:
        for _ in make_reader(io.BytesIO(path.read_bytes())).iter_messages():
            count += 1
    except Exception:  # the stock reader raises many types on damaged files
        pass
    return count


def test_the_sample_layout_is_what_these_tests_damage(tmp_path: Path) -> None:
    data = damaged_copy(tmp_path).read_bytes()
    assert data[45] == 0x09 and data[FIRST_CHUNK] == 0x06  # attachment, then the first chunk
    assert stock_count(damaged_copy(tmp_path)) == US_MESSAGES


@pytest.mark.parametrize("bit", [0, 4, 7])
def test_a_flipped_bit_in_the_graph_attachment_length_loses_nothing(
    tmp_path: Path, bit: int
) -> None:
    path = damaged_copy(tmp_path, (GRAPH_LENGTH_BYTE, bit))
    assert stock_count(path) == US_MESSAGES
    report = ScanReport(str(path))
    assert sum(1 for _ in scan(path, report=report)) == US_MESSAGES
    assert report.complete and not report.lost_anything
    assert any("byte 45" in p and "damaged header" in p for p in report.problems)
    assert read_info(path).graph_yaml is not None, "the attachment is read by its contents"

    fixed = tmp_path / "fixed.mcap"
    assert recover(path, fixed).messages == US_MESSAGES
    assert sum(1 for _ in read_messages(fixed)) == US_MESSAGES
    assert inspect_recording(path)["messages"] == US_MESSAGES


@pytest.mark.parametrize("byte", range(FIRST_CHUNK + 1, FIRST_CHUNK + 9))
def test_a_flipped_bit_in_the_first_chunk_length_loses_nothing(tmp_path: Path, byte: int) -> None:
    path = damaged_copy(tmp_path, (byte, 0))
    report = ScanReport(str(path))
    got = list(scan(path, report=report))
    assert len(got) >= stock_count(path)
    assert len(got) == US_MESSAGES and all(raw.verified for raw in got)
    assert not report.lost_anything, report.problems


def test_cli_recover_and_inspect_of_a_flipped_length_keep_every_message(tmp_path: Path) -> None:
    path = damaged_copy(tmp_path, (GRAPH_LENGTH_BYTE, 0))
    fixed = tmp_path / "fixed.mcap"
    done = igtflow("recover", str(path), str(fixed), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["messages"] == US_MESSAGES
    shown = igtflow("inspect", str(path), "--json")
    assert shown.returncode == DAMAGED, "a damaged header is a problem even when nothing is lost"
    assert json.loads(shown.stdout)["messages"] == US_MESSAGES


def test_inspect_reports_a_file_cut_by_one_byte(tmp_path: Path) -> None:
    path = damaged_copy(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    done = igtflow("inspect", str(path), "--json")
    assert done.returncode == DAMAGED
    summary = json.loads(done.stdout)
    assert not summary["closed"] and any("cut" in p for p in summary["problems"])
    assert summary["messages"] == US_MESSAGES
    table = igtflow("inspect", str(path))
    assert table.returncode == DAMAGED and "no problems" not in table.stdout
    assert "closing magic" in table.stdout


def test_inspect_reports_garbage_appended_after_the_end(tmp_path: Path) -> None:
    path = damaged_copy(tmp_path)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + bytes(range(256)) * 4)
    done = igtflow("inspect", str(path), "--json")
    assert done.returncode == DAMAGED
    summary = json.loads(done.stdout)
    assert summary["messages"] == US_MESSAGES
    assert {"start": size, "end": size + 1024}.items() <= summary["losses"][0].items()
    assert any("1024 bytes of garbage" in p for p in summary["problems"])
    fixed = tmp_path / "fixed.mcap"
    assert igtflow("recover", str(path), str(fixed)).returncode == 0, "garbage costs nothing"


def test_an_undamaged_sample_inspects_clean_and_exits_0(tmp_path: Path) -> None:
    done = igtflow("inspect", str(damaged_copy(tmp_path)))
    assert done.returncode == 0, done.stdout
    assert "closed, no problems" in done.stdout


def test_a_destroyed_chunk_is_counted_by_topic_and_recover_exits_damaged(tmp_path: Path) -> None:
    path = damaged_copy(tmp_path)
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[FIRST_CHUNK + 1 : FIRST_CHUNK + 9], "little")
    end = FIRST_CHUNK + 9 + length
    data[end - 1000 : end] = bytes(1000)  # the tail of its compressed data: it cannot decompress
    path.write_bytes(bytes(data))

    report = ScanReport(str(path))
    got = list(scan(path, report=report))
    assert len(got) >= stock_count(path)
    lost = US_MESSAGES - len(got)
    assert lost > 0 and report.lost_messages == lost
    [loss] = report.losses
    assert (loss.start, loss.end, loss.messages) == (FIRST_CHUNK, end, lost)
    assert "probe/image" in loss.topics
    fixed = tmp_path / "fixed.mcap"
    done = igtflow("recover", str(path), str(fixed), "--json")
    assert done.returncode == DAMAGED, done.stderr
    result = json.loads(done.stdout)
    assert result["messages"] == len(got) and result["lost_messages"] == lost
    assert result["losses"][0]["start"] == FIRST_CHUNK
    recorded = inspect_recording(fixed)["recovery"]["recovery_losses"]
    assert recorded[0]["messages"] == lost, "the recovered file says what it lacks"


def test_a_damaged_graph_attachment_is_reported_and_replay_plays_on(tmp_path: Path) -> None:
    path = damaged_copy(tmp_path, (GRAPH_DATA_BYTE, 3))
    info = read_info(path)
    assert info.graph_yaml is None and "graph.yaml" in (info.graph_problem or "")
    assert sum(info.message_counts.values()) == US_MESSAGES

    out = tmp_path / "replayed.mcap"
    done = igtflow(
        "replay", str(path), "--lockstep", "--topics", "*", "--record", str(out), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert "graph.yaml" in done.stderr and "alone" in done.stderr
    assert sum(1 for _ in read_messages(out)) == US_MESSAGES

    shown = igtflow("inspect", str(path), "--json")
    assert shown.returncode == DAMAGED
    assert json.loads(shown.stdout)["damaged_attachments"] == ["graph.yaml"]
