"""Running user models from their cards: TorchScript and ONNX alike, the faster of the two
under ``auto``, one thread, the CPU unless a GPU is there, and a model that does not fit its card
refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from igtflow.perception.card import CardError, Confidence, InputSpec, Normalisation
from igtflow.perception.frames import network_input
from igtflow.perception.inference import DeviceError, Predictor, card_path, resolve_device
from igtflow.perception.outputs import (
    segmentation_maps,
)
from igtflow.stream.threads import thread_budget
from tests.helpers.perception_models import ramp, segmenter, tracker

SPEC = InputSpec(modality="US", height=64, width=64)
NORM = Normalisation(scale=255.0)


def test_torchscript_and_onnx_user_models_give_the_same_output(tmp_path: Path) -> None:
    batch = network_input(ramp(), SPEC, NORM)[None, None]
    outputs = {}
    for runtime in ("torchscript", "onnx"):
        predictor = Predictor(segmenter(tmp_path, runtime), device="cpu")
        assert predictor.runtime == runtime and predictor.device == "cpu"
        assert predictor.warm_up().shape == (1, 4, 64, 64)
        outputs[runtime] = predictor(batch)
    np.testing.assert_allclose(outputs["torchscript"], outputs["onnx"], rtol=1e-4, atol=1e-4)
    labels, _ = segmentation_maps(outputs["onnx"][0], [0, 1, 2, 3], Confidence())
    assert labels[0, 0] == 0 and labels[0, -1] == 3  # black is background, white the last class


def test_auto_runtime_times_both_runtimes_and_keeps_the_faster(tmp_path: Path) -> None:
    predictor = Predictor(segmenter(tmp_path), device="cpu", runtime="auto")
    assert set(predictor.timings) == {"torchscript", "onnx"}
    assert predictor.runtime == min(predictor.timings, key=predictor.timings.__getitem__)
    tracking = Predictor(tracker(tmp_path), device="cpu", runtime="auto")
    assert tracking.warm_up().shape == (1, 3, 64, 64)
    # In a lockstep replay the choice must not hang on a timing: TorchScript, untimed.
    replaying = Predictor(segmenter(tmp_path), device="cpu", runtime="auto", timed=False)
    assert replaying.runtime == "torchscript" and not replaying.timings


def test_the_thread_budget_is_the_nodes_and_one_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as the supervisor sets a node's `threads: 2`
    assert thread_budget() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert thread_budget() == 1
    Predictor(segmenter(tmp_path), device="cpu", threads=thread_budget())
    assert torch.get_num_threads() == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_refused_and_auto_falls_back_to_the_cpu(tmp_path: Path) -> None:
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="no CUDA GPU; use device: auto or cpu"):
        Predictor(segmenter(tmp_path), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runs_the_model_in_fp16(tmp_path: Path) -> None:
    predictor = Predictor(segmenter(tmp_path), device="cuda")
    assert predictor.fp16 and predictor.runtime == "torchscript"
    assert predictor.warm_up().dtype == np.float32


def test_a_model_whose_output_does_not_fit_its_card_is_refused(tmp_path: Path) -> None:
    card = segmenter(tmp_path, labels={0: "background", 1: "organ", 2: "vessel"})
    with pytest.raises(
        CardError, match=r"gives \(1, 4, 64, 64\), its card promises \(1, 3, 64, 64\)"
    ):
        Predictor(card, device="cpu").warm_up()


def test_an_unknown_shipped_name_says_what_ships(tmp_path: Path) -> None:
    assert card_path("us-seg").name == "us-seg.card.yaml"
    assert card_path(str(tmp_path / "m.card.yaml")) == tmp_path / "m.card.yaml"
    with pytest.raises(CardError, match=r"no shipped model 'nope' \(shipped: .*\)"):
        Predictor("nope", device="cpu")


def test_the_shipped_tracker_encodes_its_key_once_and_tracks_as_the_pair_does() -> None:
    rng = np.random.default_rng(5)
    key, current = rng.standard_normal((2, 256, 256), dtype=np.float32)
    pair = np.stack([key, current])[None]
    keyed = Predictor("tracker", device="cpu", runtime="torchscript")
    assert keyed.keyed
    keyed.warm_up()
    keyed.set_key(key)
    expected = keyed(pair)
    np.testing.assert_allclose(keyed.track(current), expected, atol=1e-4)
    auto = Predictor("tracker", device="cpu", runtime="auto")  # timed per frame, key kept
    assert auto.runtime == "torchscript" and auto.keyed


def test_a_tracker_that_takes_only_the_pair_tracks_through_it(tmp_path: Path) -> None:
    predictor = Predictor(tracker(tmp_path), device="cpu")
    assert not predictor.keyed
    with pytest.raises(RuntimeError, match="set_key"):
        predictor.track(np.zeros((64, 64), np.float32))
    key, current = np.random.default_rng(6).standard_normal((2, 64, 64), dtype=np.float32)
    predictor.set_key(key)
    pair = np.stack([key, current])[None]
    np.testing.assert_array_equal(predictor.track(current), predictor(pair))
