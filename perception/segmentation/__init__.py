"""Segmentation networks for ultrasound and fluoroscopy: nets, phantom data, training, scoring."""

from igtflow.perception.segmentation.evaluate import evaluate_segmentation, softmax_margin
from igtflow.perception.segmentation.train import train_segmentation

__all__ = ["evaluate_segmentation", "softmax_margin", "train_segmentation"]
