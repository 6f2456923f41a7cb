"""A model card: what a network expects and promises, in YAML beside its weights.

The card is the contract between a trained network and the graph that runs it: the node reads
the input size, normalisation and labels from it, ``igtflow validate`` checks it against the
wiring, and a recording stores the weights' SHA-256 so a replay knows which model produced what.
Shipped models and user models (TorchScript or ONNX) use the same card. A card that does not
parse or lies about its weights fails at ``card.yaml:LINE`` with what to fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from igtflow.stream import safe_yaml
from igtflow.stream.phantom.anatomy import LABEL_NAMES

PHANTOM_LABELS = {0: "background", **LABEL_NAMES}
CARD_SUFFIX = ".card.yaml"


class CardError(ValueError):
    """A card that cannot be used; the message starts with ``file:line:``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    """One grey frame of a fixed size, as the network was trained on (a tracker takes two)."""

    modality: Literal["US", "XA", "RF"]
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    channels: int = Field(default=1, ge=1, le=4)
    dtype: Literal["uint8"] = "uint8"


class Normalisation(_Strict):
    """``x = (pixel / scale - mean) / std``, applied before the network."""

    scale: float = Field(default=255.0, gt=0)
    mean: float = 0.0
    std: float = Field(default=1.0, gt=0)


class Confidence(_Strict):
    """How per-pixel confidence is made and when it is too low to trust."""

    # sigmoid: the network's own confidence logit (the tracker: P(flow error < 1 px))
    method: Literal["softmax-margin", "softmax-max", "forward-backward", "sigmoid"] = (
        "softmax-margin"
    )
    temperature: float = Field(default=1.0, gt=0)  # fitted on held-out seeds
    threshold: float = Field(default=0.5, ge=0, le=1)  # below: the node raises a Status
    calibration_error: float | None = None  # expected calibration error on held-out seeds


class Training(_Strict):
    """Where the weights came from, so a result can be traced and repeated."""

    data: str = "phantom"
    seeds: str = ""  # e.g. "0-799"; phantom training seeds are below 1000
    steps: int = 0
    recipe: str = ""


class ModelCard(_Strict):
    """Everything a node, the validator and a reader of the README need to know about a model."""

    name: str
    task: Literal["segmentation", "tracking"]
    architecture: str
    # auto: TorchScript weights, run by whichever of PyTorch and ONNX Runtime is faster here
    runtime: Literal["torchscript", "onnx", "auto"]
    weights: str  # file name, relative to the card
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: InputSpec
    normalisation: Normalisation = Normalisation()
    labels: dict[int, str] = {}  # output class → phantom label name (segmentation)
    confidence: Confidence = Confidence()
    training: Training = Training()
    metrics: dict[str, float] = {}
    parameters: int | None = None
    notes: str = ""

    @field_validator("labels")
    @classmethod
    def _labels_are_phantom_names(cls, labels: dict[int, str]) -> dict[int, str]:
        known = set(PHANTOM_LABELS.values())
        for index, name in labels.items():
            if name not in known:
                raise ValueError(
                    f"class {index} is {name!r}, not a phantom label ({', '.join(sorted(known))})"
                )
        return labels

    def label_ids(self) -> list[int]:
        """Phantom label id of each output class, in class order."""
        by_name = {name: label for label, name in PHANTOM_LABELS.items()}
        return [by_name[self.labels[index]] for index in sorted(self.labels)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def card_path_for(weights: Path) -> Path:
    """``us-seg.pt`` → ``us-seg.card.yaml``."""
    return weights.with_name(weights.name.split(".")[0] + CARD_SUFFIX)


def load_card(path: Path, check_weights: bool = True) -> tuple[ModelCard, Path]:
    """The card at ``path`` and the absolute path of its weights; CardError at ``file:line``."""
    try:
        # Bounded (size, nesting, aliases): a card comes with a model, maybe from anyone.
        tree = safe_yaml.load(safe_yaml.read_text(path))
    except OSError as exc:
        raise CardError(f"{path}: cannot read the model card ({exc.strerror})") from None
    except safe_yaml.YamlLimitError as exc:
        raise CardError(f"{path}:{exc.line}: {exc.problem}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise CardError(f"{path}:{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(tree, dict):
        raise CardError(f"{path}:1: a model card is a mapping (name:, task:, weights:, …)")
    try:
        card = ModelCard.model_validate(_plain(tree))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CardError(f"{path}:{_line_of(tree, first['loc'])}: {where}: {first['msg']}") from None
    weights = (path.parent / card.weights).resolve()
    if check_weights:
        if not weights.is_file():
            raise CardError(
                f"{path}:{_line_of(tree, ('weights',))}: weights {card.weights!r} not found "
                f"beside the card (looked for {weights})"
            )
        actual = sha256_of(weights)
        if actual != card.sha256:
            raise CardError(
                f"{path}:{_line_of(tree, ('sha256',))}: the weights' SHA-256 is {actual}, the card "
                "says another: the file changed after the card was written; retrain or fix the card"
            )
    return card, weights


def write_card(card: ModelCard, path: Path) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as stream:
        yaml.dump(card.model_dump(), stream)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _line_of(tree: Any, loc: tuple[Any, ...]) -> int:
    """1-based line of the deepest key of ``loc`` found in the round-trip tree."""
    line = 1
    node = tree
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line
