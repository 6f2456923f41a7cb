"""Property: whatever happens to a small ``.seq.mha`` (cut anywhere, garbage appended, one bit
flipped), ``igtflow convert`` ends cleanly — exit 0, or one ``error:`` line and exit 2 — never
harms the file it was told to replace, and keeps every frame that lay wholly before the damage.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from igtflow.launch.cli import app
from igtflow.stream.messages import Image
from igtflow.stream.recording import read_messages
from tests.helpers import frame_files as ff

CONTENT = ff.tracked_content()
FRAME_BYTES = CONTENT["frames"][0].nbytes
OLD_TARGET = b"an existing recording the user keeps"


def _original(compressed: bool) -> tuple[bytes, int]:
    """The file's bytes and where its pixel data starts."""
    with tempfile.TemporaryDirectory() as folder:
        path = ff.write_mha(Path(folder) / "s.seq.mha", CONTENT, compressed=compressed)
        data = path.read_bytes()
    return data, data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")


FILES = {compressed: _original(compressed) for compressed in (False, True)}

damage = st.one_of(
    st.tuples(st.just("cut"), st.booleans(), st.floats(0, 1)),
    st.tuples(st.just("append"), st.booleans(), st.binary(min_size=1, max_size=300)),
    st.tuples(st.just("flip"), st.just(False), st.floats(0, 1), st.integers(0, 7)),
)


def _damaged(kind: tuple) -> tuple[bytes, int | None, int]:
    """The damaged bytes, the offset the damage starts at (None: nothing is lost) and where the
    pixel data starts."""
    data, start = FILES[kind[1]]
    if kind[0] == "cut":
        at = int(kind[2] * len(data))
        return data[:at], at, start
    if kind[0] == "append":
        return data + kind[2], None, start
    at = min(int(kind[2] * len(data)), len(data) - 1)
    flipped = bytearray(data)
    flipped[at] ^= 1 << kind[3]
    return bytes(flipped), at, start


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=damage)
@example(kind=("cut", False, 0.90625))  # one whole frame left: no timing, and none needed
def test_convert_of_a_damaged_sequence_never_crashes_or_loses_a_whole_frame(kind: tuple) -> None:
    data, damaged_at, start = _damaged(kind)
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "case.seq.mha", Path(folder) / "case.mcap"
        source.write_bytes(data)
        target.write_bytes(OLD_TARGET)
        result = CliRunner().invoke(app, ["convert", str(source), str(target), "--force"])
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
        if result.exit_code != 0:
            assert result.exit_code == 2
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
            assert target.read_bytes() == OLD_TARGET
            assert sorted(p.name for p in Path(folder).iterdir()) == ["case.mcap", "case.seq.mha"]
        # Frames wholly before the damage in uncompressed data must come through unchanged.
        compressed = kind[1]
        if damaged_at is None:
            whole_before = len(CONTENT["frames"])
        elif compressed or damaged_at < start:
            return  # damage in the header or in a compressed stream: failing cleanly is enough
        else:
            whole_before = min((damaged_at - start) // FRAME_BYTES, len(CONTENT["frames"]))
        if whole_before == 0:
            return
        assert result.exit_code == 0, result.stderr
        images = {
            m.meta["frame_index"]: m.data
            for _, _, m in read_messages(target)
            if isinstance(m, Image)
        }
        for index in range(whole_before):
            if CONTENT["image_ok"][index]:
                assert np.array_equal(images[index], CONTENT["frames"][index])
