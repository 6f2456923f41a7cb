"""What ``segment`` and ``track`` share: a model loaded and warmed up from its card, frames made
into its input or refused (counted), and the card checked against the wiring by ``validate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np

from igtflow.perception.card import CardError, ModelCard
from igtflow.perception.frames import FrameRefused, check_modality, is_blank, network_input
from igtflow.perception.inference import DeviceError, Predictor
from igtflow.perception.nodes.health import FrameHealth
from igtflow.perception.wiring import model_problems
from igtflow.stream.allocator import keep_freed_memory
from igtflow.stream.messages import Image
from igtflow.stream.node import ImageSpec, Node, PermanentError
from igtflow.stream.threads import thread_budget

Device = Literal["auto", "cpu", "cuda"]
Result = TypeVar("Result")


class ModelNode(Node):
    """A node that runs one network from a model card on each ``image``."""

    task: ClassVar[str] = ""
    other_size: str = "resize"

    @classmethod
    def check_upstream(
        cls, params: dict[str, Any], upstream: dict[str, ImageSpec | None]
    ) -> list[tuple[str, str]]:
        return model_problems(params, upstream.get("image"), cls.task)

    def load(self, model: str, device: str) -> Predictor:
        """The model, warmed up here in ``setup`` so the first frame after the sources start is
        not the slow one; a model that cannot run is a PermanentError (no restart fixes it)."""
        keep_freed_memory()  # a network's per-frame arrays reuse pages, not fault in new ones
        try:
            predictor = Predictor(model, device, threads=thread_budget(), timed=not self.lockstep)
            if predictor.card.task != self.task:
                raise CardError(
                    f"model {model!r} is a {predictor.card.task} model; this node runs "
                    f"{self.task} models"
                )
            if predictor.card.input.channels != 1:
                raise CardError(f"model {model!r} does not take grey frames (input.channels 1)")
            predictor.warm_up()
        except (CardError, DeviceError) as exc:
            raise PermanentError(f"node {self.id!r}: {exc}") from None
        self.health = FrameHealth(self)
        self.log.info(
            "model %s (%s) on %s with %s%s",
            predictor.card.name,
            predictor.card.sha256[:12],
            predictor.device,
            predictor.runtime,
            f", timed {predictor.timings} ms" if predictor.timings else "",
        )
        return predictor

    @property
    def card(self) -> ModelCard:
        return self.predictor.card

    def plane(self, image: Image) -> tuple[np.ndarray, bool] | None:
        """The frame as the network's normalised input plane and whether it is blank, or None
        when it is refused. Both refused and blank frames are counted and said on ``status``."""
        card = self.card
        try:
            check_modality(image.modality, card.input)
            plane = network_input(image.data, card.input, card.normalisation, self.other_size)
        except FrameRefused as problem:
            self.health.bad_frame(problem)
            return None
        blank = is_blank(plane, card.normalisation)
        if blank:
            self.health.bad_frame(
                FrameRefused("blank", "no contrast (all black or one grey): confidence 0")
            )
        return plane, blank

    def infer(self, batch: np.ndarray) -> np.ndarray | None:
        """The network's output, or None (counted) if it fails on this input: never a crash."""
        return self.guarded(lambda: self.predictor(batch))

    def guarded(self, run: Callable[[], Result]) -> Result | None:
        """``run()``'s output, or None (counted) if the model fails: never a crash."""
        try:
            return run()
        except Exception as exc:
            self.health.bad_frame(FrameRefused("model-error", f"the model failed: {exc}"))
            return None

    def out_frame(self, output: str, data: np.ndarray) -> np.ndarray:
        """``data`` copied into a frame of ``output`` (shared memory when large)."""
        frame = self.new_frame(output, data.shape, data.dtype)
        frame[...] = data
        return frame
