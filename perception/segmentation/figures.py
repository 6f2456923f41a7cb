"""Pictures of a network at work: frame, truth, prediction and confidence side by side.

``python -m igtflow.perception.segmentation.figures [WEIGHTS_DIR] [OUT_DIR]`` writes
``us_seg_prediction.png`` and ``fluoro_seg_prediction.png`` (held-out seed 1001, plus a garbage
frame per network) for the README; look at them after training.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from igtflow.perception.card import load_card
from igtflow.perception.segmentation.data import out_of_distribution, phantom_frames
from igtflow.perception.segmentation.evaluate import catheter_tip, predict_logits, softmax_margin

# BGR per class index: organ amber, vessel red / blue, lesion or device green.
COLOURS = np.array([[0, 0, 0], [40, 170, 230], [60, 60, 230], [80, 220, 80]], np.uint8)


def _overlay(image: np.ndarray, classes: np.ndarray) -> np.ndarray:
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    colour = COLOURS[classes]
    mask = classes > 0
    bgr[mask] = (0.45 * bgr[mask] + 0.55 * colour[mask]).astype(np.uint8)
    return bgr


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(panel, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return panel


def prediction_figure(task: str, card_file: Path, out: Path, seed: int = 1001) -> None:
    """Rows: two held-out frames and one garbage frame; columns: frame, truth, net, confidence."""
    torch.set_num_threads(1)
    card, weights = load_card(card_file)
    model = torch.jit.load(str(weights)).eval()
    frames = phantom_frames(task, [seed], 4, held_out=True)
    size = frames.images.shape[1]
    garbage = out_of_distribution(np.random.default_rng(3), size)
    images = np.concatenate([frames.images[[1, 2]], garbage[None]])
    truths = np.concatenate([frames.targets[[1, 2]], np.zeros((1, size, size), np.uint8)])
    logits = predict_logits(model, images, card)
    preds = logits.argmax(1).numpy().astype(np.uint8)
    confidence = softmax_margin(logits, card.confidence.temperature).numpy()
    rows = []
    for i in range(3):
        conf = cv2.applyColorMap((confidence[i] * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
        pred = _overlay(images[i], preds[i])
        if task == "fluoro-seg" and i < 2:
            tip = catheter_tip(preds[i] == 3, frames.entry[i + 1])
            true_tip = frames.tip[i + 1]
            cv2.circle(pred, tuple(int(v) for v in true_tip), 6, (255, 255, 255), 1)
            if tip is not None:
                at = tuple(int(v) for v in tip)
                cv2.drawMarker(pred, at, (255, 0, 255), cv2.MARKER_CROSS, 10)
        name = "garbage" if i == 2 else f"seed {seed}"
        rows.append(
            np.hstack(
                [
                    _label(cv2.cvtColor(images[i], cv2.COLOR_GRAY2BGR), name),
                    _label(_overlay(images[i], truths[i]), "truth"),
                    _label(pred, card.name),
                    _label(conf, f"confidence (mean {confidence[i].mean():.2f})"),
                ]
            )
        )
    figure = np.vstack(rows)
    if size > 256:
        figure = cv2.resize(figure, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), figure)


def main(argv: list[str]) -> None:
    weights = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "weights"
    out = Path(argv[1]) if len(argv) > 1 else Path("docs/images")
    for task, stem in (("us-seg", "us_seg"), ("fluoro-seg", "fluoro_seg")):
        card = weights / f"{task}.card.yaml"
        if card.is_file():
            prediction_figure(task, card, out / f"{stem}_prediction.png")
            print(out / f"{stem}_prediction.png")


if __name__ == "__main__":
    main(sys.argv[1:])
