"""A model card against the graph it is wired into: what ``igtflow validate`` says before a run.

A card that does not parse, weights that are missing or changed, a model of the wrong task, a
device this machine lacks, or frames that the model cannot take (another modality, a size it
would refuse, an aspect it would distort) are each reported at the line of the parameter at
fault, so a graph with a wrong model never starts. Cheap by design: the card is read and the
weights hashed, nothing is loaded (torch is imported only to ask for a GPU).
"""

from __future__ import annotations

from typing import Any

from igtflow.perception.card import CardError
from igtflow.perception.inference import device_problem, load_model_card, onnx_runs_on_cuda
from igtflow.stream.node import ImageSpec

# A frame whose aspect differs from the model's by more than this would be visibly distorted.
ASPECT_TOLERANCE = 0.05


def model_problems(
    params: dict[str, Any], image: ImageSpec | None, task: str
) -> list[tuple[str, str]]:
    """``(parameter, problem)`` for a node running a ``task`` model with ``params`` on frames
    described by ``image`` (None: not known before the run)."""
    problems: list[tuple[str, str]] = []
    device = str(params.get("device", "auto"))
    if (problem := device_problem(device)) is not None:
        problems.append(("device", problem))
    model = str(params.get("model", ""))
    try:
        card, _ = load_model_card(model)
    except CardError as exc:
        return [*problems, ("model", f"model {model!r}: {exc}")]
    if card.task != task:
        problems.append(
            ("model", f"model {model!r} is a {card.task} model; this node runs {task} models")
        )
        return problems
    if task == "segmentation" and len(card.labels) < 2:
        problems.append(
            (
                "model",
                f"model {model!r}: its card names {len(card.labels)} output class(es); a "
                "segmentation card maps every class (background included) to a phantom label",
            )
        )
    if card.input.channels != 1:
        problems.append(
            (
                "model",
                f"model {model!r} takes {card.input.channels}-channel frames; this node "
                "gives its model grey frames (input.channels: 1)",
            )
        )
    if card.runtime == "onnx" and device == "cuda" and not problems and not onnx_runs_on_cuda():
        problems.append(
            (
                "device",
                "device is cuda, but this ONNX Runtime has no CUDA provider for the "
                f"ONNX model {model!r}; use device: cpu",
            )
        )
    if image is not None:
        problems += _frame_problems(model, card.input, image, params.get("other_size", "resize"))
    return problems


def _frame_problems(
    model: str, spec: Any, image: ImageSpec, other_size: str
) -> list[tuple[str, str]]:
    size = f"{spec.height}×{spec.width}"
    frames = f"{image.height}×{image.width} {image.modality}"
    if image.modality != spec.modality:
        return [
            (
                "model",
                f"model {model!r} takes {size} {spec.modality} frames, but input 'image' "
                f"carries {frames} frames; wire it to a {spec.modality} source or use a model "
                f"for {image.modality} frames",
            )
        ]
    if (image.height, image.width) == (spec.height, spec.width):
        return []
    if other_size == "refuse":
        return [
            (
                "other_size",
                f"model {model!r} takes {size} frames and other_size is refuse, but "
                f"input 'image' carries {frames} frames: every frame would be refused; set "
                "other_size: resize or give the source the model's size",
            )
        ]
    aspect = (image.width / image.height) / (spec.width / spec.height)
    if abs(aspect - 1.0) > ASPECT_TOLERANCE:
        return [
            (
                "model",
                f"model {model!r} takes {size} frames; input 'image' carries {frames} "
                "frames, whose aspect resizing would distort; give the source the model's aspect",
            )
        ]
    return []
