"""Commands that write files never destroy or fake a target, and every failure is one line.

A failed ``convert`` or ``recover`` leaves the folder as it was: no empty MCAP, no half-written
sequence, an existing file untouched unless ``--force`` is given. Every fault in a file the user
gave ends in ``error: <file>: <what happened>; <what to do>`` and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mcap.reader import make_reader

from igtflow.stream.recording import read_info
from tests.helpers import frame_files as ff
from tests.helpers.cli import igtflow

SAMPLE = Path(__file__).resolve().parent.parent / "recordings" / "phantom-us.mcap"


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """The failure's stderr, checked: non-zero exit, one ``error:`` line, no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def files_in(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"/" for p in sorted(folder.iterdir())}


def test_failed_convert_keeps_an_existing_target_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "existing.mcap"
    shutil.copy(SAMPLE, target)
    source = tmp_path / "not-a-dicom.dcm"
    source.write_text("not a DICOM file\n" * 20)
    before = files_in(tmp_path)
    done = igtflow("convert", str(source), str(target), "--force")
    one_line_error(done, "not-a-dicom.dcm", "not a DICOM file")
    assert files_in(tmp_path) == before


def test_failed_convert_leaves_no_file_behind(tmp_path: Path) -> None:
    source = ff.write_mha(tmp_path / "bad.seq.mha", ff.tracked_content(), element_type="MET_X")
    before = files_in(tmp_path)
    done = igtflow("convert", str(source), str(tmp_path / "bad.mcap"))
    one_line_error(done, "bad.seq.mha", "ElementType")
    assert files_in(tmp_path) == before


def test_convert_never_replaces_a_file_without_force(tmp_path: Path) -> None:
    source = ff.write_mha(tmp_path / "case.seq.mha", ff.tracked_content())
    target = tmp_path / "case.mcap"
    target.write_bytes(b"my notes, not a recording")
    done = igtflow("convert", str(source), str(target))
    one_line_error(done, "case.mcap", "already exists", "--force")
    assert target.read_bytes() == b"my notes, not a recording"

    forced = igtflow("convert", str(source), str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert read_info(target).message_counts["probe/image"] == 5


@pytest.mark.parametrize(
    ("source_name", "target_name", "words"),
    [
        ("case.seq.mha", "out.xyz", ["out.xyz", ".mcap"]),
        ("case.mcap", "out.png", ["out.png", ".seq.nrrd", ".seq.mha"]),
        ("case.txt", "out.mcap", ["case.txt", ".seq.mha", ".dcm", ".mp4"]),
    ],
)
def test_convert_refuses_unknown_extensions_and_lists_the_supported_ones(
    tmp_path: Path, source_name: str, target_name: str, words: list[str]
) -> None:
    source = tmp_path / source_name
    if source_name.endswith(".seq.mha"):
        ff.write_mha(source, ff.tracked_content())
    elif source_name.endswith(".mcap"):
        shutil.copy(SAMPLE, source)
    else:
        source.write_text("hello\n")
    before = files_in(tmp_path)
    one_line_error(igtflow("convert", str(source), str(tmp_path / target_name)), *words)
    assert files_in(tmp_path) == before


def test_convert_into_a_missing_folder_says_so(tmp_path: Path) -> None:
    source = ff.write_mha(tmp_path / "case.seq.mha", ff.tracked_content())
    done = igtflow("convert", str(source), str(tmp_path / "nowhere" / "case.mcap"))
    one_line_error(done, "nowhere", "does not exist")


@pytest.mark.parametrize("kind", ["empty-nrrd", "empty-mha", "folder", "empty-dcm"])
def test_unreadable_inputs_are_one_line_errors(tmp_path: Path, kind: str) -> None:
    if kind == "folder":
        source = tmp_path / "frames.seq.mha"
        source.mkdir()
        words = ["frames.seq.mha", "folder"]
    else:
        source = tmp_path / {"empty-nrrd": "e.nrrd", "empty-mha": "e.seq.mha"}.get(kind, "e.dcm")
        source.write_bytes(b"")
        words = [source.name, "empty"]
    before = files_in(tmp_path)
    one_line_error(igtflow("convert", str(source), str(tmp_path / "out.mcap")), *words)
    assert files_in(tmp_path) == before


def test_recover_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "fixed.mcap"
    target.write_bytes(b"keep me")
    done = igtflow("recover", str(SAMPLE), str(target))
    one_line_error(done, "fixed.mcap", "already exists", "--force")
    assert target.read_bytes() == b"keep me"
    forced = igtflow("recover", str(SAMPLE), str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    with target.open("rb") as file:
        assert make_reader(file).get_summary() is not None


def test_replay_of_a_damaged_stored_graph_is_one_line(tmp_path: Path) -> None:
    from igtflow.stream.messages import Transform
    from igtflow.stream.recording import RecordingWriter

    recording = tmp_path / "damaged.mcap"
    with RecordingWriter(recording, "name: x\nnodes: [\n  - {id: a\n\t: : ]", {}) as writer:
        writer.write(Transform(topic="probe/pose"))
    done = igtflow("replay", str(recording), "--duration", "1")
    one_line_error(done, "damaged.mcap", "--alone")


def test_a_missing_graph_file_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-graph.yaml"
    done = igtflow("replay", str(SAMPLE), "--graph", str(missing), "--duration", "1")
    one_line_error(done, "no-graph.yaml", "no such file", "check the path")


def test_unexpected_failure_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    import os

    report = tmp_path / "not-a-report.json"
    report.write_text("not json")
    done = igtflow("bench", "transport", "--markdown", str(report))
    one_line_error(done, "unexpected", "IGTFLOW_DEBUG=1")
    debug = igtflow(
        "bench",
        "transport",
        "--markdown",
        str(report),
        env={**os.environ, "IGTFLOW_DEBUG": "1"},
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_bench_refuses_an_existing_report_before_it_runs(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"kept": true}')
    done = igtflow("bench", "igtl", "--quick", "--output", str(report))
    one_line_error(done, "report.json", "already exists", "--force")
    assert report.read_text() == '{"kept": true}'


def test_phantom_export_keeps_files_already_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "truth.json").write_text("mine")
    done = igtflow("phantom", "export", str(tmp_path))
    one_line_error(done, "truth.json", "already exists", "--force")
    assert files_in(tmp_path) == {"truth.json": b"mine"}
