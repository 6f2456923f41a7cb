"""Frames into network input: other dtypes and colour converted, another size resized or
refused, frames no network can take refused with a code, blank frames told apart."""

from __future__ import annotations

import numpy as np
import pytest

from igtflow.perception.card import InputSpec, Normalisation
from igtflow.perception.frames import FrameRefused, is_blank, network_input, to_grey_uint8_range
from tests.helpers.perception_models import ramp

SPEC = InputSpec(modality="US", height=64, width=64)
NORM = Normalisation(scale=255.0)


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
