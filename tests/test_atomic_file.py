"""``atomic_output``: a target appears whole or not at all, and is replaced only with force."""

from __future__ import annotations

from pathlib import Path

import pytest

from igtflow.stream.atomic_file import OutputError, atomic_output


def test_interrupted_write_leaves_the_target_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "case.seq.nrrd"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target, force=True) as partial:
        assert partial.parent == tmp_path and partial.name.endswith(".seq.nrrd")
        partial.write_bytes(b"half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["case.seq.nrrd"]
    assert target.read_bytes() == b"old"


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out.mcap"
    with pytest.raises(OutputError, match="already exists"), atomic_output(target) as partial:
        partial.write_bytes(b"new")
        target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mcap"]


def test_success_moves_the_whole_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "out.mcap"
    with atomic_output(target) as partial:
        partial.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mcap"]
