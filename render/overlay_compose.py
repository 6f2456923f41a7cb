"""Compose one overlay frame: the live image, its layers, their ages and the stale verdict.

The composer keeps what is costly to derive per *layer message* (label contours, a fluoroscopy
silhouette) and redoes per *frame* only what moves with the frame (projecting a few points,
cutting a mesh by the current US plane), so a 512×512 frame composes in a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from igtflow.render import overlay_draw as draw
from igtflow.render.freshness import FRAME, Freshness, assess
from igtflow.render.image_geometry import (
    Geometry,
    GeometryError,
    PlaneGeometry,
    ProjectionGeometry,
    frame_geometry,
)
from igtflow.stream.frozen_watch import FROZEN_META
from igtflow.stream.messages import Image, Mesh, Message, Points, Transform

LAYERS = ("labels", "targets", "model", "confidence", "transform")


@dataclass
class _Labels:
    """Contours of one label message, in its own pixel grid, and where that grid sits."""

    stamp_ns: int
    contours: dict[int, list[np.ndarray]]
    ijk_to_ras: np.ndarray
    shape: tuple[int, int]
    mapped: dict[bytes, dict[int, list[np.ndarray]]] = field(default_factory=dict)


@dataclass
class _Silhouette:
    key: bytes
    mask: np.ndarray
    outline: list[np.ndarray]
    box: tuple[int, int, int, int]


def node_verdict(message: Message) -> bool | None:
    """The producing node's own low-confidence flag (meta ``low_confidence``), judged with its
    threshold (the model card's or the node's), or None when the message carries none."""
    flag = message.meta.get("low_confidence")
    return flag if isinstance(flag, bool) else None


def registration_problem(messages: Iterable[Message | None]) -> str:
    """The banner for a registration not to be trusted ('' when it may be): the first of
    ``messages`` that says (a Transform's ``valid``, else a meta ``valid``) decides; a
    registration node's meta ``stale`` makes it STALE rather than INVALID."""
    for message in messages:
        if message is None:
            continue
        valid = message.valid if isinstance(message, Transform) else message.meta.get("valid")
        if valid is False:
            return "REGISTRATION STALE" if message.meta.get("stale") else "REGISTRATION INVALID"
        if valid is True:
            return ""
    return ""


def confidence_value(message: Message) -> float | None:
    """A 0..1 confidence from a confidence map (mean) or a message's meta ``confidence``."""
    if "confidence" in message.meta:
        try:
            return float(message.meta["confidence"])
        except (TypeError, ValueError):
            return None
    if isinstance(message, Image) and message.data.size:
        return float(np.mean(message.data, dtype=np.float64))
    return None


class OverlayComposer:
    """Holds the latest layers and draws them on each frame it is given."""

    def __init__(
        self,
        stale_ms: float = 250.0,
        static: Iterable[str] = (),
        near_mm: float = 2.0,
        low_confidence: float = 0.5,
        fill_alpha: float = 0.25,
    ) -> None:
        self.stale_ms = stale_ms
        self.static = tuple(static)
        self.near_mm = near_mm
        self.low_confidence = low_confidence
        self.fill_alpha = fill_alpha
        self.stamps: dict[str, int] = {}
        self.labels: _Labels | None = None
        self.targets: Points | None = None
        self.model: Mesh | None = None
        self.confidence: float | None = None
        self.confidence_low: bool | None = None  # the producer's verdict, over our threshold
        self.silhouette: _Silhouette | None = None
        self.transform: Transform | None = None
        self.problems: dict[str, str] = {}

    # -- layer updates (once per layer message) ---------------------------------------------

    def set_labels(self, labels: Image) -> None:
        grid = labels.data
        self.labels = _Labels(
            labels.stamp_ns, draw.label_contours(grid), labels.ijk_to_ras, grid.shape[:2]
        )
        self.stamps["labels"] = labels.stamp_ns
        if "confidence" not in self.stamps:  # no confidence input: the labels' own, or none
            value = labels.meta.get("confidence")
            self.confidence = float(value) if isinstance(value, int | float) else None
            self.confidence_low = node_verdict(labels)

    def set_targets(self, targets: Points) -> None:
        self.targets = targets
        self.stamps["targets"] = targets.stamp_ns

    def set_model(self, model: Mesh) -> None:
        self.model = model
        self.silhouette = None
        self.stamps["model"] = model.stamp_ns

    def set_transform(self, transform: Transform) -> None:
        """The registration's latest transform: whether its model and targets may be shown."""
        self.transform = transform
        self.stamps["transform"] = transform.stamp_ns
        reason = transform.meta.get("reason") if not transform.valid else None
        if reason:
            self.problems["registration"] = f"registration: {reason}"
        else:
            self.problems.pop("registration", None)

    def set_confidence(self, message: Message) -> None:
        value = confidence_value(message)
        if value is not None:
            self.confidence = value
            self.confidence_low = node_verdict(message)
            self.stamps["confidence"] = message.stamp_ns

    # -- per frame ----------------------------------------------------------------------------

    def compose(self, frame: Image, out: np.ndarray, now_ns: int) -> Freshness:
        """Draw ``frame`` and every layer into ``out`` (H×W×3 RGB uint8); the ages drawn."""
        draw.to_rgb(frame.data, out)
        geometry = self._geometry(frame)
        untrusted = registration_problem((self.transform, self.targets, self.model))
        if self.model is not None and geometry is not None:
            self._draw_model(out, frame, geometry, bool(untrusted))
        if self.labels is not None:
            self._draw_labels(out, frame, geometry)
        if self.targets is not None and len(self.targets.points):
            self._draw_targets(out, frame, geometry, bool(untrusted))
        frozen = str(frame.meta.get(FROZEN_META) or "")
        freshness = assess(
            frame.stamp_ns, self.stamps, now_ns, self.stale_ms, self.static, frozen=frozen
        )
        if freshness.stale:
            draw.desaturate(out)
        top = draw.banner_height(out.shape[0]) if freshness.stale else 0
        draw.draw_hud(out, self._hud_lines(frame, freshness), top)
        if self.confidence is not None:
            low = self.confidence_low
            if low is None:
                low = self.confidence < self.low_confidence
            draw.draw_confidence(out, self.confidence, self.low_confidence, top, low)
        if freshness.stale:
            draw.draw_stale_banner(out, freshness.banner())
        if untrusted:
            draw.draw_registration_banner(out, untrusted)
        return freshness

    def _geometry(self, frame: Image) -> Geometry | None:
        try:
            geometry = frame_geometry(frame)
        except GeometryError as exc:
            self.problems["geometry"] = str(exc)
            return None
        self.problems.pop("geometry", None)
        return geometry

    def _draw_labels(self, out: np.ndarray, frame: Image, geometry: Geometry | None) -> None:
        labels = self.labels
        assert labels is not None
        same_grid = labels.shape == frame.data.shape[:2]
        if same_grid and (
            frame.modality == "XA" or np.allclose(labels.ijk_to_ras, frame.ijk_to_ras, atol=1e-6)
        ):
            draw.draw_contours(out, labels.contours)
            return
        key = frame.ijk_to_ras.tobytes() + bytes(str(frame.data.shape[:2]), "ascii")
        mapped = labels.mapped.get(key)
        if mapped is None:
            mapped = self._map_contours(labels, frame, geometry)
            labels.mapped = {key: mapped}  # one frame geometry at a time: the current one
        draw.draw_contours(out, mapped)

    @staticmethod
    def _map_contours(
        labels: _Labels, frame: Image, geometry: Geometry | None
    ) -> dict[int, list[np.ndarray]]:
        """Contours of another grid moved onto this frame (through RAS for a US plane)."""
        mapped: dict[int, list[np.ndarray]] = {}
        for value, found in labels.contours.items():
            moved = []
            for contour in found:
                ij = contour.reshape(-1, 2).astype(np.float64)
                if isinstance(geometry, PlaneGeometry):
                    ijk1 = np.column_stack([ij, np.zeros(len(ij)), np.ones(len(ij))])
                    ras = (ijk1 @ labels.ijk_to_ras.T)[:, :3]
                    uv, _ = geometry.to_pixels(ras)
                else:
                    scale = np.array(frame.data.shape[1::-1], float) / labels.shape[::-1]
                    uv = ij * scale
                moved.append(np.round(uv).astype(np.int32).reshape(-1, 1, 2))
            mapped[value] = moved
        return mapped

    def _draw_targets(
        self, out: np.ndarray, frame: Image, geometry: Geometry | None, grey: bool = False
    ) -> None:
        targets = self.targets
        assert targets is not None
        names = targets.labels or [str(n + 1) for n in range(len(targets.points))]
        if geometry is not None:
            uv, depth = geometry.to_pixels(targets.points)
            off: list[float | None] = (
                [float(d) for d in depth]
                if isinstance(geometry, PlaneGeometry)
                else [None] * len(depth)
            )
        elif "pixels" in targets.meta:
            uv = np.asarray(targets.meta["pixels"], dtype=np.float64).reshape(-1, 2)
            off = [None] * len(uv)
        else:
            return
        h, w = out.shape[:2]
        for (u, v), d, name in zip(uv, off, names, strict=False):
            if np.isfinite(u) and np.isfinite(v) and -w < u < 2 * w and -h < v < 2 * h:
                colour = draw.UNTRUSTED_GREY if grey else draw.TARGET_COLOUR
                draw.draw_target(out, (u, v), d, name, self.near_mm, colour)

    def _draw_model(
        self, out: np.ndarray, frame: Image, geometry: Geometry, grey: bool = False
    ) -> None:
        """The model: cut by the US plane, or its silhouette on fluoroscopy; grey (no fill)
        when the registration that placed it is not to be trusted."""
        model = self.model
        assert model is not None
        colour = draw.UNTRUSTED_GREY if grey else draw.MODEL_COLOUR
        if isinstance(geometry, PlaneGeometry):
            segments = geometry.cut_mesh(model.vertices, model.faces)
            # One pixel wide: a 20k-triangle model cuts a slice in ~500 segments, which cost
            # 0.5 ms antialiased at width 2 against 0.14 ms at width 1 (overlay_bench).
            draw.draw_segments(out, segments, colour, thickness=1)
            return
        sil = self._silhouette(frame, geometry)
        alpha = 0.0 if grey else self.fill_alpha
        draw.draw_silhouette(out, sil.mask, sil.outline, colour, alpha, sil.box)

    def _silhouette(self, frame: Image, geometry: ProjectionGeometry) -> _Silhouette:
        """The model's projected shadow, recomputed only when the model or the C-arm moved."""
        shape = frame.data.shape[:2]
        key = geometry.projection.tobytes() + bytes(str(shape), "ascii")
        if self.silhouette is not None and self.silhouette.key == key:
            return self.silhouette
        model = self.model
        assert model is not None
        uv, _ = geometry.to_pixels(model.vertices)
        mask = draw.silhouette_mask(shape, uv, model.faces)
        outline = draw.mask_outline(mask)
        box = _bounding_box(outline)
        self.silhouette = _Silhouette(key, mask, outline, box)
        return self.silhouette

    def _hud_lines(self, frame: Image, freshness: Freshness) -> list[tuple[str, Any]]:
        lines = []
        for layer in freshness.layers:
            colour = (255, 80, 80) if layer.stale(self.stale_ms) else draw.TEXT_COLOUR
            if layer.name == FRAME:
                text = f"{frame.modality} #{frame.seq}  age {layer.age_ms:.0f} ms"
            else:
                text = f"{layer.name}  age {layer.age_ms:.0f} ms"
                if layer.lag_ms >= 1:
                    text += f" (-{layer.lag_ms:.0f})"
                if layer.static:
                    text += " static"
            lines.append((text, colour))
        for problem in self.problems.values():
            lines.append((problem[:60], (255, 170, 0)))
        return lines


def _bounding_box(outline: list[np.ndarray]) -> tuple[int, int, int, int]:
    if not outline:
        return (0, 0, 0, 0)
    x, y, w, h = cv2.boundingRect(np.concatenate(outline))
    return int(x), int(y), int(w), int(h)
