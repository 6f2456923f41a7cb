"""``igtflow convert``: files written by other tools into MCAP, and MCAP out to PLUS sequences.

Inputs are written by independent writers (hand-built MetaIO as PLUS lays it out, pydicom);
the exported ``.seq.nrrd`` is read back with pynrrd, not with our reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import nrrd
import numpy as np

from igtflow.stream.messages import Image, Transform
from igtflow.stream.recording import read_info, read_messages
from tests.helpers import frame_files as ff
from tests.helpers.cli import igtflow


def test_plus_sequence_to_mcap_and_back_to_seq_nrrd(tmp_path: Path) -> None:
    content = ff.tracked_content()
    source = ff.write_mha(tmp_path / "case.seq.mha", content, compressed=True)
    recording = tmp_path / "case.mcap"
    done = igtflow("convert", str(source), str(recording), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["messages"] == {"probe/image": 5, "probe/transforms": 12}

    messages = [m for _, _, m in read_messages(recording)]
    images = [m for m in messages if isinstance(m, Image)]
    ok = content["image_ok"]
    assert [m.meta["frame_index"] for m in images] == [i for i in range(6) if ok[i]]
    for image in images:
        index = image.meta["frame_index"]
        assert np.array_equal(image.data, content["frames"][index])
        assert image.stamp_ns == round(content["timestamps"][index] * 1e9)
        assert image.spacing == (0.25, 0.5)
    poses = [m for m in messages if isinstance(m, Transform)]
    probe = [m for m in poses if m.from_frame == "Probe"]
    assert np.array_equal(probe[4].matrix, content["transforms"]["ProbeToTracker"][0][4])
    stylus_valid = [m.valid for m in poses if m.from_frame == "Stylus"]
    assert stylus_valid == list(content["transforms"]["StylusToReference"][1])
    info = read_info(recording)
    assert "uses: plus-sequence" in (info.graph_yaml or "")

    exported = tmp_path / "case.seq.nrrd"
    done = igtflow("convert", str(recording), str(exported), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["frames"] == 5
    assert result["transforms"] == ["ProbeToTracker", "StylusToReference"]
    data, header = nrrd.read(str(exported), index_order="C")
    assert data.shape == (5, 1, 8, 10)
    assert np.array_equal(data[:, 0], content["frames"][ok])
    kept = [i for i in range(6) if ok[i]]
    for n, index in enumerate(kept):
        field = header[f"Seq_Frame{n:04d}_ProbeToTrackerTransform"]
        matrix = np.array(field.split(), float).reshape(4, 4)
        assert np.allclose(matrix, content["transforms"]["ProbeToTracker"][0][index])
        stylus_ok = content["transforms"]["StylusToReference"][1][index]
        status = header[f"Seq_Frame{n:04d}_StylusToReferenceTransformStatus"]
        assert status == ("OK" if stylus_ok else "INVALID")
    times = np.array(header["axis 3 index values"].split(), float)
    assert np.allclose(times, content["timestamps"][ok] - content["timestamps"][0])


def test_dicom_cine_to_mcap_keeps_no_patient_data(tmp_path: Path) -> None:
    frames = ff.xa_frames()
    source = ff.write_xa_cine(tmp_path / "run.dcm", frames, [0, 66.7, 66.7, 66.7, 66.7])
    recording = tmp_path / "run.mcap"
    done = igtflow("convert", str(source), str(recording), "--node-id", "carm", "--json")
    assert done.returncode == 0, done.stderr
    images = [m for _, _, m in read_messages(recording)]
    assert [m.topic for m in images] == ["carm/image"] * 5
    assert np.array_equal(np.stack([m.data for m in images]), frames)
    assert all(ff.PATIENT not in json.dumps(m.meta, default=str) for m in images)
    info = read_info(recording)  # the path may name the patient: only a hash is kept
    assert "run.dcm" not in (info.graph_yaml or "") and "run.dcm" not in str(info.metadata)
    assert info.metadata["converted_from"].startswith("sha256:")
    steps = np.diff([m.stamp_ns for m in images]) / 1e6
    assert np.allclose(steps, 66.7, atol=0.01)


def test_convert_errors_name_the_file_and_the_fault(tmp_path: Path) -> None:
    missing = igtflow("convert", str(tmp_path / "nope.seq.mha"), str(tmp_path / "x.mcap"))
    assert missing.returncode == 2 and "nope.seq.mha: no such file" in missing.stderr

    content = ff.tracked_content()
    broken = ff.write_mha(tmp_path / "cut.seq.mha", content)
    broken.write_bytes(broken.read_bytes()[:500])  # cut inside the header
    cut = igtflow("convert", str(broken), str(tmp_path / "cut.mcap"))
    assert cut.returncode == 2 and "cut.seq.mha" in cut.stderr
    assert "Traceback" not in cut.stderr and not (tmp_path / "cut.mcap").exists()

    no_images = tmp_path / "poses.mcap"
    from igtflow.stream.recording import RecordingWriter

    with RecordingWriter(no_images, "", {}) as writer:
        writer.write(Transform(topic="probe/pose"))
    empty = igtflow("convert", str(no_images), str(tmp_path / "poses.seq.nrrd"))
    assert empty.returncode == 2 and "no Image topic" in empty.stderr


def test_truncated_sequence_converts_its_whole_frames_and_says_where_it_stops(
    tmp_path: Path,
) -> None:
    content = ff.tracked_content()
    source = ff.write_mha(tmp_path / "cut.seq.mha", content)
    source.write_bytes(source.read_bytes()[:-100])
    recording = tmp_path / "cut.mcap"
    done = igtflow("convert", str(source), str(recording), "--json")
    assert done.returncode == 0, done.stderr
    assert "warning: " in done.stderr and "kept frames 0-3 of 6" in done.stderr
    result = json.loads(done.stdout)
    assert result["damage"]["frames_kept"] == 4 and result["damage"]["stops_at_frame"] == 4
    assert (
        result["damage"]["byte_offset"] == source.stat().st_size - 60
    )  # 4 whole frames of 80 bytes
    images = [m for _, _, m in read_messages(recording) if isinstance(m, Image)]
    assert [m.meta["frame_index"] for m in images] == [0, 1, 3]  # frame 2 is INVALID
    for image in images:
        assert np.array_equal(image.data, content["frames"][image.meta["frame_index"]])
