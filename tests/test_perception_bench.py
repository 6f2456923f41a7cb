"""``igtflow bench perception``: every network, runtime and baseline timed on the same frames,
with the JSON keys the README quotes and a markdown table (a quick run, generous bounds)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from igtflow.perception.bench import markdown_table
from igtflow.perception.commands_bench import bench_perception
from tests.helpers.calibration import assert_calibrated


def test_bench_reports_each_network_beside_its_baselines(capsys: pytest.CaptureFixture) -> None:
    report = bench_perception(json=True, frames=5)
    printed = json.loads(capsys.readouterr().out)
    assert printed["us_seg_p99_ms"] == report["us_seg_p99_ms"]
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
    assert report["us_seg_vs_monai_unet_p99"] == pytest.approx(
        report["us_seg_p99_ms"] / report["monai_unet_p99_ms"], rel=1e-2
    )
    assert report["gpu"]["available"] == torch.cuda.is_available()  # figures only with a GPU
    assert_calibrated(report["machine"])
    table = markdown_table(report)
    assert "| MONAI UNet baseline | 256x256 |" in table and "DIS medium" in table
    assert "US segmentation p99 vs MONAI UNet p99" in table
