"""The rows of ``eval replay --recordings`` without Ray: which files count, what a failure says,
and a worker that died under its task (Ray itself starts once, in ``test_bulk_eval.py``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from igtflow.launch.bulk_eval import _collect, _work_names, evaluate_recording, find_recordings


def test_only_the_recordings_directly_in_the_folder_count(tmp_path: Path) -> None:
    for name in ("b.mcap", "a.mcap", "notes.txt", "sub/c.mcap"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_recordings(tmp_path)] == ["a.mcap", "b.mcap"]
    with pytest.raises(NotADirectoryError, match=r"a\.mcap: not a folder; score one recording"):
        find_recordings(tmp_path / "a.mcap")


def test_recordings_that_share_a_name_get_their_own_log_folders() -> None:
    paths = [Path("x/case.mcap"), Path("y/case.mcap"), Path("y/other.mcap")]
    assert _work_names(paths) == ["case", "case-2", "other"]


def test_an_unreadable_recording_is_a_failed_row_not_an_exception(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mcap"
    bogus.write_text("not a recording")
    row = evaluate_recording(str(bogus), str(tmp_path / "logs"), None)
    assert row["ok"] is False and row["frames"] is None
    assert row["reason"].startswith(f"{bogus}: not an MCAP recording")


def test_a_worker_that_died_under_its_task_is_a_failed_row() -> None:
    class RayError(Exception):
        pass

    def get(_ref: object) -> None:
        raise RayError("The worker died unexpectedly while executing this task.\nmore")

    ray = SimpleNamespace(get=get, exceptions=SimpleNamespace(RayError=RayError))
    row = _collect(ray, object(), "/data/case.mcap")
    assert row["ok"] is False and row["recording"] == "/data/case.mcap"
    assert row["reason"] == (
        "the worker running it failed: The worker died unexpectedly while executing this task."
    )
