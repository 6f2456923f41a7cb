"""Drawing on an RGB frame with OpenCV: contours, markers, mesh cuts, silhouettes, the HUD.

Every function draws in place on an H×W×3 uint8 RGB array and costs well under a millisecond
on 512×512, so a frame can be composed in a few; the expensive parts (finding contours,
rasterising a silhouette) return values that callers cache per input message.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

RGB = tuple[int, int, int]

# Label values of the phantom's label maps: 1 organ, 2 vessel, 3 lesion/target, 4 device.
LABEL_COLOURS: dict[int, RGB] = {
    1: (40, 220, 60),
    2: (60, 140, 255),
    3: (255, 220, 0),
    4: (0, 240, 240),
}
TARGET_COLOUR: RGB = (255, 0, 255)
MODEL_COLOUR: RGB = (255, 150, 0)
STALE_RED: RGB = (220, 0, 0)
UNTRUSTED_GREY: RGB = (150, 150, 150)  # model and targets of a registration not to be trusted
TEXT_COLOUR: RGB = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_colour(value: int) -> RGB:
    """A fixed colour per label value; values beyond the known four get a stable hashed hue."""
    if value in LABEL_COLOURS:
        return LABEL_COLOURS[value]
    hue = np.uint8([[[(value * 37) % 180, 220, 255]]])
    r, g, b = cv2.cvtColor(hue, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def font_scale(height: int) -> float:
    """Text size that stays readable from 256 to 1024-pixel frames."""
    return max(0.4, height / 1000.0)


def to_rgb(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Write a grey (any dtype, windowed to its range) or RGB frame into ``out`` as RGB uint8."""
    if data.ndim == 3 and data.shape[2] == 3:
        np.copyto(out, data if data.dtype == np.uint8 else _to_uint8(data))
        return out
    grey = data[..., 0] if data.ndim == 3 else data
    if grey.dtype != np.uint8:
        grey = _to_uint8(grey)
    cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB, dst=out)
    return out


def _to_uint8(data: np.ndarray) -> np.ndarray:
    """Window a uint16/float frame to its own min..max (no fixed window fits all scanners)."""
    return cv2.normalize(data, None, 0, 255, cv2.NORM_MINMAX, dtype=cv2.CV_8U)


def label_contours(labels: np.ndarray) -> dict[int, list[np.ndarray]]:
    """Outer contours (lists of K×1×2 int32 pixel arrays) of every label value > 0."""
    grid = labels[..., 0] if labels.ndim == 3 else labels
    if grid.dtype != np.uint8:
        grid = np.clip(grid, 0, 255).astype(np.uint8)
    present = np.flatnonzero(np.bincount(grid.ravel(), minlength=256))
    contours: dict[int, list[np.ndarray]] = {}
    for value in present:
        if value == 0:
            continue
        mask = (grid == value).view(np.uint8)
        found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        contours[int(value)] = list(found)
    return contours


def draw_contours(
    rgb: np.ndarray, contours: dict[int, list[np.ndarray]], thickness: int = 2
) -> None:
    for value, found in contours.items():
        cv2.polylines(rgb, found, True, label_colour(value), thickness, cv2.LINE_AA)


def draw_segments(rgb: np.ndarray, segments: np.ndarray, colour: RGB, thickness: int = 2) -> None:
    """Line segments (K×2×2 pixel coordinates), e.g. a mesh cut by the image plane."""
    if len(segments) == 0:
        return
    finite = np.all(np.isfinite(segments.reshape(len(segments), -1)), axis=1)
    pts = np.round(segments[finite]).astype(np.int32)
    cv2.polylines(rgb, list(pts), False, colour, thickness, cv2.LINE_AA)


def silhouette_mask(shape: tuple[int, int], pixels: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Union of projected triangles as a uint8 mask (the model's shadow on the detector)."""
    mask = np.zeros(shape, np.uint8)
    tris = pixels[faces]
    ok = np.all(np.isfinite(tris.reshape(len(tris), -1)), axis=1)
    # fillPoly fills overlapping polygons even-odd (holes); one convex fill per triangle unions.
    for tri in np.round(tris[ok]).astype(np.int32):
        cv2.fillConvexPoly(mask, tri, 255)
    return mask


def mask_outline(mask: np.ndarray) -> list[np.ndarray]:
    found, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return list(found)


def draw_silhouette(
    rgb: np.ndarray,
    mask: np.ndarray,
    outline: list[np.ndarray],
    colour: RGB,
    alpha: float = 0.25,
    box: tuple[int, int, int, int] | None = None,
) -> None:
    """Translucent fill inside ``mask`` (only within ``box`` x, y, w, h) plus its outline."""
    x, y, w, h = box if box is not None else (0, 0, rgb.shape[1], rgb.shape[0])
    if w > 0 and h > 0 and alpha > 0:
        roi = rgb[y : y + h, x : x + w]
        tinted = cv2.addWeighted(roi, 1 - alpha, np.full_like(roi, colour), alpha, 0)
        cv2.copyTo(tinted, mask[y : y + h, x : x + w], roi)
    cv2.polylines(rgb, outline, True, colour, 2, cv2.LINE_AA)


def draw_target(
    rgb: np.ndarray,
    uv: Sequence[float],
    off_plane_mm: float | None,
    name: str,
    near_mm: float,
    colour: RGB = TARGET_COLOUR,
) -> None:
    """A cross-hair; filled when the target lies within ``near_mm`` of the image plane.

    Off-plane targets are drawn hollow with their signed distance, so a target seen "through"
    the slice is never mistaken for one in it.
    """
    h = rgb.shape[0]
    u, v = round(uv[0]), round(uv[1])
    r = max(6, h // 60)
    in_plane = off_plane_mm is None or abs(off_plane_mm) <= near_mm
    cv2.line(rgb, (u - 2 * r, v), (u - r // 2, v), colour, 2, cv2.LINE_AA)
    cv2.line(rgb, (u + r // 2, v), (u + 2 * r, v), colour, 2, cv2.LINE_AA)
    cv2.line(rgb, (u, v - 2 * r), (u, v - r // 2), colour, 2, cv2.LINE_AA)
    cv2.line(rgb, (u, v + r // 2), (u, v + 2 * r), colour, 2, cv2.LINE_AA)
    cv2.circle(rgb, (u, v), r, colour, -1 if in_plane else 2, cv2.LINE_AA)
    text = name if off_plane_mm is None or in_plane else f"{name} {off_plane_mm:+.0f} mm"
    if text:
        put_text(rgb, text, (u + 2 * r + 2, v - r), colour, font_scale(h) * 0.9)


def put_text(
    rgb: np.ndarray, text: str, org: tuple[int, int], colour: RGB, scale: float, thick: int = 1
) -> None:
    """Text on a darkened box: readable on bright speckle and on a dark background alike.

    (An outline drawn as thicker black text does not work: OpenCV 5 widens thick glyphs.)
    """
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x, y = org
    y0, y1 = max(0, y - th - 3), min(rgb.shape[0], y + base + 2)
    x0, x1 = max(0, x - 3), min(rgb.shape[1], x + tw + 3)
    if y1 > y0 and x1 > x0:
        rgb[y0:y1, x0:x1] //= 3
    cv2.putText(rgb, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def draw_hud(rgb: np.ndarray, lines: Sequence[tuple[str, RGB]], top: int) -> tuple[int, int]:
    """Lines of text in a dark box at the top left, starting at row ``top``; the box's (w, h)."""
    scale = font_scale(rgb.shape[0])
    line_h = int(22 * scale / 0.5)
    widths = [cv2.getTextSize(text, FONT, scale, 1)[0][0] for text, _ in lines]
    box_w = (max(widths) if widths else 0) + 12
    box_h = line_h * len(lines) + 8
    roi = rgb[top : top + box_h, 0:box_w]
    roi //= 3  # darken behind the text: 1/3 brightness keeps the image visible
    for n, (text, colour) in enumerate(lines):
        cv2.putText(rgb, text, (6, top + line_h * (n + 1) - 4), FONT, scale, colour, 1, cv2.LINE_AA)
    return box_w, box_h


def banner_height(height: int) -> int:
    return int(34 * font_scale(height) / 0.5)


def draw_stale_banner(rgb: np.ndarray, text: str) -> None:
    """A full-width red band at the top: what a surgeon must not miss."""
    h = banner_height(rgb.shape[0])
    rgb[:h] = STALE_RED
    scale = font_scale(rgb.shape[0]) * 1.4
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, 2)
    org = (max(4, (rgb.shape[1] - tw) // 2), (h + th) // 2)
    cv2.putText(rgb, text, org, FONT, scale, TEXT_COLOUR, 2, cv2.LINE_AA)


def draw_registration_banner(rgb: np.ndarray, text: str) -> None:
    """A full-width red band at the bottom: the registration drawn above must not be trusted
    (the top is the stale banner's, so both can show at once)."""
    h = banner_height(rgb.shape[0])
    rgb[-h:] = STALE_RED
    scale = font_scale(rgb.shape[0]) * 1.4
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, 2)
    org = (max(4, (rgb.shape[1] - tw) // 2), rgb.shape[0] - h + (h + th) // 2)
    cv2.putText(rgb, text, org, FONT, scale, TEXT_COLOUR, 2, cv2.LINE_AA)


def desaturate(rgb: np.ndarray, keep: float = 0.15, dim: float = 0.8) -> None:
    """Grey out a frame in place: mostly luminance, a little colour left, a little darker."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey3 = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    cv2.addWeighted(rgb, keep * dim, grey3, (1 - keep) * dim, 0, dst=rgb)


def confidence_colour(value: float, low: float, is_low: bool | None = None) -> RGB:
    if value < low if is_low is None else is_low:
        return (230, 30, 30)
    if value < (1 + low) / 2:
        return (255, 170, 0)
    return (40, 220, 60)


def draw_confidence(
    rgb: np.ndarray, value: float, low: float, top: int, is_low: bool | None = None
) -> None:
    """A vertical bar at the right edge (full = 1.0) and a warning under it when low: below
    ``low``, or as ``is_low`` says when the producing node judged it with its own threshold."""
    is_low = value < low if is_low is None else is_low
    h, w = rgb.shape[:2]
    scale = font_scale(h)
    bar_w = max(10, w // 40)
    x0, x1 = w - bar_w - 8, w - 8
    y0, y1 = top + 8, top + 8 + h // 3
    colour = confidence_colour(value, low, is_low)
    cv2.rectangle(rgb, (x0, y0), (x1, y1), (0, 0, 0), -1)
    fill = round((y1 - y0) * float(np.clip(value, 0.0, 1.0)))
    if fill > 0:
        cv2.rectangle(rgb, (x0, y1 - fill), (x1, y1), colour, -1)
    cv2.rectangle(rgb, (x0, y0), (x1, y1), TEXT_COLOUR, 1)
    label = f"{value * 100:.0f}%"
    (tw, _), _ = cv2.getTextSize(label, FONT, scale, 1)
    put_text(rgb, label, (x1 - tw, y1 + int(20 * scale / 0.5)), colour, scale)
    if is_low:
        warn = "LOW CONFIDENCE"
        (tw, _), _ = cv2.getTextSize(warn, FONT, scale, 2)
        put_text(rgb, warn, (x0 - tw - 8, y0 + int(16 * scale / 0.5)), colour, scale, 2)
