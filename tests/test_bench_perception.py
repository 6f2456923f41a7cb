"""``igtflow bench perception``: every network, runtime and baseline timed on the same frames,
with the JSON keys the README quotes and a markdown table (a quick run, generous bounds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from igtflow.perception.bench import markdown_table
from tests.helpers.calibration import assert_calibrated
from tests.helpers.cli import igtflow


def test_bench_reports_each_network_beside_its_baselines(tmp_path: Path) -> None:
    saved = tmp_path / "perception.json"
    done = igtflow("bench", "perception", "--frames", "5", "--json", "--output", str(saved))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert json.loads(saved.read_text()) == report
    for key in (
        "us_seg_p99_ms",
        "monai_unet_p99_ms",
        "track_p99_ms",
        "dis_medium_p99_ms",
        "fluoro_seg_p99_ms",
    ):
        assert math.isfinite(report[key]) and 0 < report[key] < 10_000, key
    for key in ("us_seg", "monai_unet", "fluoro_seg", "track"):
        entry = report["networks"][key]
        assert entry["model"].startswith(("shipped", "stand-in"))
        assert entry["runtime"] in ("torchscript", "onnx")
        assert "p99_ms" in entry["runtimes"]["torchscript"]
        assert entry["node_step"]["p50_ms"] <= entry["node_step"]["max_ms"]
    assert "p99_ms" in report["networks"]["us_seg"]["runtimes"]["onnx"]
    track = report["networks"]["track"]  # per frame against a kept key; the key's cost apart
    assert track["keyed"] and 0 < track["key_encode"]["p50_ms"] < 10_000
    assert report["us_seg_vs_monai_unet_p99"] == pytest.approx(
        report["us_seg_p99_ms"] / report["monai_unet_p99_ms"], rel=1e-2
    )
    assert report["gpu"]["available"] == torch.cuda.is_available()  # figures only with a GPU
    assert_calibrated(report["machine"])
    table = markdown_table(report)
    assert "| MONAI UNet baseline | 256x256 |" in table and "DIS medium" in table
    assert "US segmentation p99 vs MONAI UNet p99" in table
    assert "encoding a new key" in table


def test_markdown_table_is_printed_from_a_report(capsys: pytest.CaptureFixture) -> None:
    from igtflow.perception import bench

    report = {"frames": 5, "networks": {}, "gpu": {"available": False, "note": "no GPU"}}
    report.update(bench._headline({"us_seg": {"p99_ms": 4.0}, "monai_unet": {"p99_ms": 10.0}}))
    report["machine"] = {"cpu_model": "test CPU", "cores": 2}
    table = markdown_table(report)
    assert "US segmentation p99 vs MONAI UNet p99: 0.40× (target ≤ 0.5×, met)" in table
    assert "tracking p99 vs DIS medium p99: n/a" in table and "GPU: no GPU" in table
