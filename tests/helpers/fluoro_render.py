"""Noiseless fluoroscopy label maps of a preoperative case at a known pose (for registration
tests): every triangle projected and filled, organ 1, vessels and lesion 2, at 4× the detector's
resolution and cut at half cover, so edges lie where the surface projects to (OpenCV's fill
takes in its boundary pixels: a bias of half a fine pixel, an eighth of a detector pixel)."""

from __future__ import annotations

import cv2
import numpy as np

from igtflow.registration.case import PreopCase
from igtflow.stream.phantom.carm import CArmGeometry

SHIFT = 4  # sub-pixel bits of the filled polygons
FINE = 8  # fine pixels per detector pixel


def render_labels(case: PreopCase, pose: np.ndarray, geometry: CArmGeometry) -> np.ndarray:
    """H×W uint8 label map of ``case`` moved by ``pose`` (ModelToReference) under ``geometry``."""
    labels = np.zeros((geometry.height, geometry.width), np.uint8)
    for names, value in ((("organ",), 1), (("vessel", "lesion"), 2)):
        fine = np.zeros((geometry.height * FINE, geometry.width * FINE), np.uint8)
        for name in names:
            if name not in case.structures:
                continue
            surface = case.structures[name]
            moved = surface.vertices @ pose[:3, :3].T + pose[:3, 3]
            # Detector pixel u covers fine pixels FINE*u .. FINE*u + FINE-1 (centres).
            uv = geometry.project(moved) * FINE + 0.5 * (FINE - 1)
            pixels = np.round(uv * (1 << SHIFT)).astype(np.int32)
            for triangle in pixels[surface.faces]:
                cv2.fillConvexPoly(fine, triangle, 255, cv2.LINE_8, SHIFT)
        cover = cv2.resize(fine, (geometry.width, geometry.height), interpolation=cv2.INTER_AREA)
        labels[cover >= 128] = value
    return labels
