"""Frames into network input: size, dtype and normalisation as the model card says.

A network sees only what it was trained on: a grey uint8-range frame of the card's size,
normalised by the card's rule. Anything else that arrives (another size, uint16, float, colour,
NaN) is converted where the conversion is unambiguous, or refused with a :class:`FrameRefused`
whose ``code`` the node counts; nothing here raises anything else on a bad frame.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from igtflow.perception.card import InputSpec, Normalisation

OtherSize = Literal["resize", "refuse"]
IMAGE_MODALITIES = ("US", "XA", "RF")  # LABELS and FIELD images are not frames to look at


class FrameRefused(ValueError):
    """A frame the network cannot be given; ``code`` names the kind of problem for counting."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def to_grey_uint8_range(data: np.ndarray) -> np.ndarray:
    """``data`` as one grey float32 channel on the 0..255 scale the cards normalise from.

    uint16 spans its full range (a detector's counts, not a window); float32 in 0..1 is taken
    as a fraction, other floats as 0..255 values and clipped. Colour (3 or 4 channels) is made
    grey. A frame with non-finite pixels or another channel count is refused.
    """
    if data.ndim == 3:
        channels = data.shape[2]
        if channels == 1:
            data = data[:, :, 0]
        elif channels in (3, 4):
            data = np.asarray(data[:, :, :3], dtype=np.float32).mean(axis=2)
        else:
            raise FrameRefused("channels", f"a frame of {channels} channels is not grey or colour")
    elif data.ndim != 2:
        raise FrameRefused("shape", f"a frame of shape {data.shape} is not an image")
    if data.dtype == np.uint8:
        return data.astype(np.float32)
    if data.dtype == np.uint16:
        return data.astype(np.float32) * np.float32(255.0 / 65535.0)
    if data.dtype.kind == "f":
        values = np.asarray(data, dtype=np.float32)
        if not np.isfinite(values).all():
            raise FrameRefused("non-finite", "the frame has NaN or infinite pixels")
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            return values * np.float32(255.0)
        return np.clip(values, 0.0, 255.0)
    raise FrameRefused("dtype", f"pixels of dtype {data.dtype} are not uint8, uint16 or float")


def network_input(
    data: np.ndarray, spec: InputSpec, norm: Normalisation, other_size: OtherSize = "resize"
) -> np.ndarray:
    """``data`` (H×W or H×W×C) as a float32 ``spec.height×spec.width`` normalised plane.

    A frame of another size is resized (area when shrinking, linear when enlarging) or, with
    ``other_size='refuse'``, refused with code ``size``.
    """
    grey = to_grey_uint8_range(data)
    height, width = grey.shape
    if height < 2 or width < 2:
        raise FrameRefused("size", f"a {height}×{width} frame is too small to look at")
    if (height, width) != (spec.height, spec.width):
        if other_size == "refuse":
            raise FrameRefused(
                "size",
                f"a {height}×{width} frame, the model takes {spec.height}×{spec.width} "
                "(other_size: resize to accept it)",
            )
        shrinking = height * width > spec.height * spec.width
        grey = cv2.resize(
            grey,
            (spec.width, spec.height),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
    scale = np.float32(1.0 / (norm.scale * norm.std))
    shift = np.float32(norm.mean / norm.std)
    return grey * scale - shift


def check_modality(modality: str, spec: InputSpec) -> None:
    """Refuse a label map or field fed as a frame; another imaging modality is only counted."""
    if modality not in IMAGE_MODALITIES:
        raise FrameRefused(
            "modality",
            f"a {modality} image is not a frame to look at (the model takes {spec.modality})",
        )


def is_blank(plane: np.ndarray, norm: Normalisation, grey_levels: float = 1.0) -> bool:
    """A normalised ``plane`` whose pixels spread less than ``grey_levels`` (of 255): an all
    black or all grey frame, in which nothing can be found with any confidence."""
    return float(plane.std()) * norm.scale * norm.std < grey_levels
