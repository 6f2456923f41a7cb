"""Key frames: a few pictures spread over the procedure, as the clinician saw them.

The overlay node's own frames when they were recorded (what was on screen); else the raw frames
with the recorded label map's contours drawn on them. Candidates are kept while reading in a
bounded, evenly thinned set, so a long recording never holds more than ``CANDIDATES`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from igtflow.render.overlay_draw import draw_contours, label_contours, to_rgb
from igtflow.stream.messages import Image

CANDIDATES = 48
MAX_SIDE = 320  # pixels: enough to see the anatomy, small enough for a page
MAX_PNG_BYTES = 60_000
RAW_MODALITIES = ("US", "XA", "RF")


class _Thinned:
    """Every ``stride``-th frame offered, at most ``limit`` of them, spread evenly over time:
    when the set is full every other one is dropped and the stride doubles."""

    def __init__(self, limit: int = CANDIDATES) -> None:
        self.limit = limit
        self.frames: dict[int, np.ndarray] = {}  # stamp_ns → frame, in arrival order
        self.offered = 0
        self.stride = 1

    def wants(self) -> bool:
        """Whether the next frame offered is kept (call once per frame)."""
        self.offered += 1
        return (self.offered - 1) % self.stride == 0

    def keep(self, stamp_ns: int, frame: np.ndarray) -> list[int]:
        """Keep ``frame``; the stamps dropped to make room."""
        self.frames[stamp_ns] = frame
        if len(self.frames) <= self.limit:
            return []
        stamps = list(self.frames)
        dropped = stamps[1::2]
        for stamp in dropped:
            del self.frames[stamp]
        self.stride *= 2
        return dropped


def _small(data: np.ndarray, nearest: bool = False) -> np.ndarray:
    height, width = data.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale >= 1:
        return data.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(data, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def _is_overlay(image: Image) -> bool:
    """A frame the overlay node drew: RGB, with the ages of what it drew in its meta."""
    data = image.data
    rgb = data.ndim == 3 and data.shape[2] == 3 and data.dtype == np.uint8
    return rgb and "ages_ms" in image.meta


def _is_raw(image: Image) -> bool:
    """A frame as captured: grey or RGB (video), not a map a network derived from one (a
    confidence map keeps its frame's modality; its meta says what it is)."""
    derived = "map" in image.meta or "confidence" in image.meta
    channels = 1 if image.data.ndim == 2 else image.data.shape[2]
    return image.modality in RAW_MODALITIES and channels in (1, 3) and not derived


@dataclass
class Snapshot:
    stamp_ns: int
    topic: str
    what: str  # "overlay" or the labels topic drawn (or "no labels")
    png: bytes


@dataclass
class KeyFrames:
    """Offered every recorded Image; ``pick`` chooses and draws a few."""

    overlay_topic: str | None = None
    image_topic: str | None = None
    labels_topic: str | None = None
    overlays: _Thinned = field(default_factory=_Thinned)
    images: _Thinned = field(default_factory=_Thinned)
    labels: dict[int, np.ndarray] = field(default_factory=dict)  # of kept images, by stamp
    pending: dict[int, np.ndarray] = field(default_factory=dict)  # labels before their image

    def offer(self, topic: str, image: Image) -> None:
        if image.modality == "LABELS":
            self._labels(topic, image)
        elif _is_overlay(image) and self.overlay_topic in (None, topic):
            self.overlay_topic = topic
            if self.overlays.wants():
                self.overlays.keep(image.stamp_ns, _small(image.data))
        elif _is_raw(image) and self.image_topic in (None, topic):
            self.image_topic = topic
            if self.images.wants():
                for stamp in self.images.keep(image.stamp_ns, _small(image.data)):
                    self.labels.pop(stamp, None)
                if (labels := self.pending.pop(image.stamp_ns, None)) is not None:
                    self.labels[image.stamp_ns] = labels

    def _labels(self, topic: str, image: Image) -> None:
        if self.labels_topic != topic:
            # a network's labels are what the clinician saw; the phantom's truth only stands in
            if self.labels_topic is not None and (
                "truth" not in self.labels_topic or "truth" in topic
            ):
                return
            self.labels_topic = topic
            self.labels.clear()
            self.pending.clear()
        small = _small(image.data, nearest=True)
        if image.stamp_ns in self.images.frames:
            self.labels[image.stamp_ns] = small
        else:  # its image may come later in the file: hold a few
            self.pending[image.stamp_ns] = small
            while len(self.pending) > 16:
                del self.pending[next(iter(self.pending))]

    def pick(self, count: int = 4) -> list[Snapshot]:
        """Up to ``count`` frames evenly spread over the recording, drawn as small PNGs."""
        if self.overlays.frames:
            stamps = _spread(sorted(self.overlays.frames), count)
            return [
                Snapshot(s, self.overlay_topic or "", "overlay", _png(self.overlays.frames[s]))
                for s in stamps
            ]
        stamps = sorted(self.labels) or sorted(self.images.frames)
        snapshots = []
        for stamp in _spread(stamps, count):
            frame = self.images.frames[stamp]
            rgb = to_rgb(frame, np.empty((*frame.shape[:2], 3), np.uint8))
            labels = self.labels.get(stamp)
            if labels is not None and labels.shape[:2] == rgb.shape[:2]:
                draw_contours(rgb, label_contours(labels), thickness=1)
            what = self.labels_topic if labels is not None else "no labels recorded"
            snapshots.append(Snapshot(stamp, self.image_topic or "", what or "", _png(rgb)))
        return snapshots


def _spread(stamps: list[int], count: int) -> list[int]:
    if len(stamps) <= count:
        return stamps
    return [stamps[round(i * (len(stamps) - 1) / (count - 1))] for i in range(count)]


def _png(rgb: np.ndarray) -> bytes:
    """PNG of ``rgb``, downscaled until it fits ``MAX_PNG_BYTES`` (speckle compresses badly)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    while True:
        ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise ValueError("OpenCV could not encode a key frame as PNG")
        if encoded.nbytes <= MAX_PNG_BYTES or min(bgr.shape[:2]) < 64:
            return encoded.tobytes()
        bgr = cv2.resize(bgr, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
