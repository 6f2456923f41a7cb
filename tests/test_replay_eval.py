"""``igtflow eval replay``: the sample recording through the networks in lockstep, scored on the
truth it carries, gives the same numbers twice (real processes, a real recording each time)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import igtflow

SAMPLE = Path(__file__).parents[1] / "recordings" / "phantom-us.mcap"


def test_replay_eval_scores_the_sample_the_same_twice(tmp_path: Path) -> None:
    runs = []
    for n in (1, 2):
        done = igtflow(
            "eval", "replay", str(SAMPLE), "--json", "--log-dir", str(tmp_path / f"run{n}"),
            timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout))
    first, second = runs
    assert first["dice"] == second["dice"]
    assert first["target_error_mm"] == second["target_error_mm"]
    dice = first["dice"]["seg/labels"]
    assert set(dice) == {"organ", "vessel", "lesion"} and min(dice.values()) > 0.8, dice
    assert first["target_error_mm"]["track/targets"]["count"] > 30
    assert (tmp_path / "run1" / "replay-eval.mcap").is_file()


def test_replay_eval_refuses_a_file_that_is_not_a_recording(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.mcap"
    bogus.write_text("not a recording")
    done = igtflow("eval", "replay", str(bogus))
    assert done.returncode == 2
    assert "notes.mcap" in done.stderr
