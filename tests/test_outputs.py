"""Network output into messages' pixels: label ids and confidence from logits (as a plain
softmax gives them), displacement fields put on another grid with their pixels rescaled."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.perception.card import Confidence
from igtflow.perception.outputs import (
    confidence_pixels,
    field_on,
    sample_field,
    segmentation_maps,
    target_confidence,
)


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
