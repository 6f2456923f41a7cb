"""Running user models from their cards, and the pure maths around them: frames into network
input (converted or refused), network output into labels, confidence and fields on the frame's
own grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from igtflow.perception.card import CardError, Confidence, InputSpec, Normalisation
from igtflow.perception.frames import FrameRefused, is_blank, network_input, to_grey_uint8_range
from igtflow.perception.inference import DeviceError, Predictor, card_path, resolve_device
from igtflow.perception.outputs import (
    confidence_pixels,
    field_on,
    sample_field,
    segmentation_maps,
    target_confidence,
)
from igtflow.stream.threads import thread_budget
from tests.helpers.perception_models import segmenter, tracker

SPEC = InputSpec(modality="US", height=64, width=64)
NORM = Normalisation(scale=255.0)


def ramp() -> np.ndarray:
    """A 64×64 left-to-right ramp, black to white: every class of the intensity segmenter."""
    return np.tile(np.linspace(0, 255, 64), (64, 1)).astype(np.uint8)


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


def test_other_dtypes_and_colour_become_grey_on_the_uint8_scale() -> None:
    grey = ramp()
    for frame in (
        grey.astype(np.uint16) * 257,  # full-range uint16
        grey.astype(np.float32) / 255.0,  # 0..1 float
        grey.astype(np.float32),  # 0..255 float
        np.repeat(grey[..., None], 3, axis=2),  # colour
    ):
        np.testing.assert_allclose(to_grey_uint8_range(frame), grey, atol=0.01)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (np.full((64, 64), np.nan, np.float32), "non-finite"),
        (np.zeros((64, 64, 2), np.uint8), "channels"),
        (np.zeros((1, 64), np.uint8), "size"),
    ],
)
def test_frames_no_network_can_take_are_refused_with_a_code(frame: np.ndarray, code: str) -> None:
    with pytest.raises(FrameRefused) as refused:
        network_input(frame, SPEC, NORM)
    assert refused.value.code == code


def test_another_size_is_resized_or_refused_as_asked() -> None:
    frame = np.tile(ramp(), (2, 2))  # 128×128
    assert network_input(frame, SPEC, NORM).shape == (64, 64)
    with pytest.raises(FrameRefused, match="128×128 frame, the model takes 64×64"):
        network_input(frame, SPEC, NORM, other_size="refuse")


def test_blank_frames_are_told_from_frames_with_content() -> None:
    assert is_blank(network_input(np.zeros((64, 64), np.uint8), SPEC, NORM), NORM)
    assert is_blank(network_input(np.full((64, 64), 200, np.uint8), SPEC, NORM), NORM)
    assert not is_blank(network_input(ramp(), SPEC, NORM), NORM)


def test_softmax_margin_is_zero_where_two_classes_tie_and_high_where_one_wins() -> None:
    logits = np.zeros((3, 1, 2), np.float32)
    logits[1, 0, 1] = 10.0  # pixel 1: class 1 wins clearly; pixel 0: all tie
    labels, conf = segmentation_maps(logits, [0, 2, 3], Confidence())
    assert labels.dtype == np.uint8 and labels[0, 1] == 2
    assert conf[0, 0] == pytest.approx(0.0, abs=1e-6) and conf[0, 1] > 0.99
    assert target_confidence(conf, labels, [2]) > 0.99
    assert target_confidence(conf, labels, [3]) == pytest.approx(conf.mean())  # none found
    assert confidence_pixels(conf, "uint8").max() == 255


@pytest.mark.parametrize("method", ["softmax-margin", "softmax-max"])
def test_label_and_confidence_match_a_plain_softmax(method: str) -> None:
    logits = np.random.default_rng(3).normal(0, 3, (5, 32, 48)).astype(np.float32)
    labels, conf = segmentation_maps(
        logits, [0, 4, 1, 2, 3], Confidence(method=method, temperature=1.7)
    )
    scaled = logits / 1.7
    probs = np.exp(scaled - scaled.max(0)) / np.exp(scaled - scaled.max(0)).sum(0)
    ordered = np.sort(probs, axis=0)
    expected = ordered[-1] - ordered[-2] if method == "softmax-margin" else ordered[-1]
    np.testing.assert_array_equal(labels, np.array([0, 4, 1, 2, 3])[probs.argmax(0)])
    np.testing.assert_allclose(conf, expected, atol=1e-6)


def test_a_field_put_on_another_grid_is_rescaled_with_it() -> None:
    field = np.zeros((64, 64, 2), np.float32)
    field[..., 0], field[..., 1] = 2.0, -1.0  # 2 px right, 1 px up on the 64² grid
    big = field_on(field, (128, 256))
    assert big.shape == (128, 256, 2)
    np.testing.assert_allclose(big[..., 0], 8.0)  # 4× wider
    np.testing.assert_allclose(big[..., 1], -2.0)  # 2× taller
    ramp_field = np.zeros((4, 4, 2), np.float32)
    ramp_field[..., 0] = np.arange(4)[None, :]
    assert sample_field(ramp_field, np.array([[1.5, 2.0]]))[0, 0] == pytest.approx(1.5)
