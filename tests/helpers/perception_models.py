"""Small stand-in models with cards, written to a folder: TorchScript and ONNX user models that
follow the perception I/O contract, with outputs a test can predict.

``IntensitySegmenter`` labels each pixel by the nearest of a few grey levels (the margin to the
next level is its confidence: low between levels, 0 everywhere with ``sharpness=0``);
``ShiftTracker`` says every pixel moved by a fixed (dx, dy), with a confidence logit that falls
as the two frames differ more.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igtflow.perception.card import (
    Confidence,
    InputSpec,
    ModelCard,
    Normalisation,
    write_card,
)

US_LABELS = {0: "background", 1: "organ", 2: "vessel", 3: "lesion"}


def ramp(size: int = 64) -> np.ndarray:
    """A left-to-right ramp, black to white: every class of the intensity segmenter."""
    return np.tile(np.linspace(0, 255, size), (size, 1)).astype(np.uint8)


class IntensitySegmenter(nn.Module):
    """Class k where the 0..1 intensity is nearest to level k: logits -(x - level)² · sharpness."""

    def __init__(self, classes: int = 4, sharpness: float = 60.0) -> None:
        super().__init__()
        levels = torch.linspace(0.0, 1.0, classes).reshape(1, classes, 1, 1)
        self.register_buffer("levels", levels)
        self.sharpness = float(sharpness)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x - self.levels) ** 2) * self.sharpness


class ShiftTracker(nn.Module):
    """Every key pixel moved by (dx, dy); confidence logit ``bias - 10·|current - key|``."""

    def __init__(self, dx: float = 1.5, dy: float = -0.5, bias: float = 4.0) -> None:
        super().__init__()
        self.dx, self.dy, self.bias = float(dx), float(dy), float(bias)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        key, current = pair[:, 0:1], pair[:, 1:2]
        zero = torch.zeros_like(key)
        confidence = self.bias - 10.0 * torch.abs(current - key)
        return torch.cat([zero + self.dx, zero + self.dy, confidence], dim=1)


def write_model(
    folder: Path,
    net: nn.Module,
    *,
    name: str,
    task: str,
    size: tuple[int, int] = (64, 64),
    modality: str = "US",
    runtime: str = "torchscript",
    labels: dict[int, str] | None = None,
    threshold: float = 0.5,
) -> Path:
    """``net`` saved as TorchScript (``.pt``) or ONNX (``.onnx``) with its card; the card's path."""
    folder.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    channels = 2 if task == "tracking" else 1
    example = torch.zeros(1, channels, *size)
    if runtime == "onnx":
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), buffer, dynamo=False, opset_version=17)
        data, weights = buffer.getvalue(), folder / f"{name}.onnx"
        weights.write_bytes(data)
    else:
        weights = folder / f"{name}.pt"
        with warnings.catch_warnings():  # TorchScript is deprecated; it is still the format
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.script(net), str(weights))
        data = weights.read_bytes()
    card = ModelCard(
        name=name,
        task=task,
        architecture=type(net).__name__,
        runtime=runtime,
        weights=weights.name,
        sha256=hashlib.sha256(data).hexdigest(),
        input=InputSpec(modality=modality, height=size[0], width=size[1]),
        normalisation=Normalisation(scale=255.0),
        labels=(US_LABELS if labels is None else labels) if task == "segmentation" else {},
        confidence=Confidence(
            method="softmax-margin" if task == "segmentation" else "forward-backward",
            threshold=threshold,
        ),
    )
    path = folder / f"{name}.card.yaml"
    write_card(card, path)
    return path


def segmenter(folder: Path, runtime: str = "torchscript", **kwargs: object) -> Path:
    """An ``IntensitySegmenter`` user model (US, 64×64 unless told otherwise)."""
    sharpness = float(kwargs.pop("sharpness", 60.0))  # type: ignore[arg-type]
    return write_model(
        folder,
        IntensitySegmenter(sharpness=sharpness),
        name=str(kwargs.pop("name", f"seg-{runtime}")),
        task="segmentation",
        runtime=runtime,
        **kwargs,  # type: ignore[arg-type]
    )


def tracker(folder: Path, runtime: str = "torchscript", **kwargs: object) -> Path:
    """A ``ShiftTracker`` user model (US, 64×64 unless told otherwise)."""
    shift = kwargs.pop("shift", (1.5, -0.5))
    bias = float(kwargs.pop("bias", 4.0))  # type: ignore[arg-type]
    return write_model(
        folder,
        ShiftTracker(*shift, bias=bias),  # type: ignore[misc]
        name=str(kwargs.pop("name", f"track-{runtime}")),
        task="tracking",
        runtime=runtime,
        **kwargs,  # type: ignore[arg-type]
    )
