"""The segmentation networks: ``FastSeg`` (ours, for a 2-core CPU) and MONAI's U-Net baseline.

FastSeg spends its compute where a CPU is cheap: the frame is folded 4×4 into 16 channels, so no
layer runs above quarter resolution; plain strided then depthwise-separable blocks go down to 1/32
(dilated there, for an organ-sized receptive field at almost no cost); a light additive decoder
comes back to 1/4, and a sub-pixel head unfolds 16 logits per cell so a 2-pixel catheter keeps its
edges. A depthwise layer at full resolution, tried first, cost more on one CPU thread than the
whole MONAI U-Net: memory traffic, not multiply-adds, is what a CPU pays for.
Both nets map N×1×H×W → N×K×H×W logits for any H, W divisible by 32, so training can use crops
and inference the whole frame.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

ARCHS = ("fast", "fast-lite", "monai-unet")


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
    )


class SeparableBlock(nn.Sequential):
    """Depthwise 3×3 (strided or dilated) then pointwise 1×1, each with BatchNorm and ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, stride, dilation, dilation, groups=c_in, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(True),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(True),
        )


class FastSeg(nn.Module):
    """A small U-Net-style net (≈100k parameters) built for one CPU thread at batch 1.

    Full resolution is never convolved: the frame is folded ``fold``×``fold`` into channels on
    the way in (``pixel_unshuffle``) and the logits unfolded on the way out (``pixel_shuffle``),
    so every layer runs at 1/fold resolution or less and a 2-pixel catheter still gets
    per-pixel logits.
    """

    def __init__(
        self,
        classes: int,
        fold: int = 4,
        widths: tuple[int, int, int, int] = (32, 40, 56, 72),
        head_kernel: int = 3,
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.classes = classes
        self.fold = fold
        self.stem = _conv_bn(fold * fold, w0)  # 1/fold (folded input)
        self.enc1 = nn.Sequential(_conv_bn(w0, w1, stride=2), SeparableBlock(w1, w1))  # 1/4
        self.enc2 = nn.Sequential(SeparableBlock(w1, w2, stride=2), SeparableBlock(w2, w2))  # 1/8
        self.enc3 = nn.Sequential(  # 1/16, dilated for an organ-sized receptive field
            SeparableBlock(w2, w3, stride=2),
            SeparableBlock(w3, w3, dilation=2),
            SeparableBlock(w3, w3, dilation=4),
        )
        self.lat3 = nn.Conv2d(w3, w2, 1)
        self.dec2 = SeparableBlock(w2, w2)
        self.lat2 = nn.Conv2d(w2, w1, 1)
        self.dec1 = SeparableBlock(w1, w1)
        self.lat1 = nn.Conv2d(w1, w0, 1)
        self.dec0 = SeparableBlock(w0, w0)
        # sub-pixel logits per cell; at fold 8 a dense 3×3 head is the costliest layer of all,
        # so there it is separable: a depthwise 3×3 (the neighbouring cells) then pointwise
        logits = classes * fold * fold
        self.head: nn.Module = (
            nn.Conv2d(w0, logits, 3, 1, 1)
            if head_kernel == 3
            else nn.Sequential(nn.Conv2d(w0, w0, 3, 1, 1, groups=w0), nn.Conv2d(w0, logits, 1))
        )

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = self.stem(F.pixel_unshuffle(x, self.fold))
        s1 = self.enc1(s0)
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        d2 = self.dec2(s2 + self._up(self.lat3(s3), s2))
        d1 = self.dec1(s1 + self._up(self.lat2(d2), s1))
        d0 = self.dec0(s0 + self._up(self.lat1(d1), s0))
        return F.pixel_shuffle(self.head(d0), self.fold)


class FlatFrameGate(nn.Module):
    """Scales the logits down on a frame with (almost) no contrast, so it comes out unsure.

    A black or flat grey frame carries no information, yet to a fully convolutional net it looks
    like the black outside a collimator or a sector, which it rightly calls background with
    confidence. Garbage frames in training teach the net to be unsure of noise and textures; this
    gate covers the flat ones, whose only tell is frame-wide: logits × min(1, std / ``floor``)
    (normalised units; 0.1 ≈ 6 grey levels, while scans have 40 or more).
    """

    def __init__(self, net: nn.Module, floor: float = 0.1) -> None:
        super().__init__()
        self.net = net
        self.floor = floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.flatten(1).std(dim=1).clamp(max=self.floor) / self.floor
        return self.net(x) * spread[:, None, None, None]


def build_net(arch: str, classes: int) -> nn.Module:
    """``fast`` (FastSeg), ``fast-lite`` (folded 8×8 with a separable head, for 512² frames)
    or ``monai-unet`` (the baseline), untrained."""
    if arch == "fast":
        return FastSeg(classes)
    if arch == "fast-lite":  # 512² frames at about 1.7× the cost of a 256² frame at fold 4
        return FastSeg(classes, fold=8, head_kernel=1)
    if arch == "monai-unet":
        from monai.networks.nets import UNet

        return UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=classes,
            channels=(16, 32, 64, 128),
            strides=(2, 2, 2),
        )
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def describe(arch: str) -> str:
    """The architecture as the model card states it."""
    if arch == "fast":
        return "FastSeg: separable U-Net on a 4x4-folded frame, widths 32-40-56-72, sub-pixel head"
    if arch == "fast-lite":
        return (
            "FastSeg-lite: separable U-Net on an 8x8-folded frame, widths 32-40-56-72, "
            "separable sub-pixel head"
        )
    return "monai.networks.nets.UNet(spatial_dims=2, channels=(16, 32, 64, 128), strides=(2, 2, 2))"


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
