"""A small coarse-to-fine deformation-tracking network, sized for one CPU thread.

Input N×2×H×W float32 (key frame, current frame, normalised); output N×3×H×W: (dx, dy) in
pixels, key grid → current frame (the phantom's flow convention), and a confidence logit (does
this pixel's flow miss the truth by less than about a pixel?).

Why this shape: a PWC-style net with full-resolution decoders ran ~25 ms per 256² pair in one
thread, slower than OpenCV's DIS. Here one light encoder (shared by both frames) makes features
at 1/4, 1/8 and 1/16 of the size; a cost volume at 1/16 (radius 3: ±48 px; the phantom moves
≤ 35 px between key frames) finds the large motion, local cost volumes on warped features at
1/8 and 1/4 refine it, and the 1/4 field is upsampled ×4 bilinearly (tissue motion is smooth;
speckle-scale detail is not tracked anyway). Cost volumes are a loop of shifted products:
``unfold`` (one op) ran 5 ms per volume, the loop well under one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "tracknet-c2f"  # the name the model card records


def _conv(cin: int, cout: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1)]
    if act:
        layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


def _separable(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3×3 then pointwise 1×1: a 3×3 receptive field at a ninth of the cost."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, dilation, dilation=dilation, groups=cin),
        nn.Conv2d(cin, cout, 1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class Encoder(nn.Module):
    """Features of one frame at 1/4, 1/8 and 1/16 of its size."""

    def __init__(self, widths: tuple[int, int, int, int] = (12, 24, 32, 48)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.to_half = _conv(1, w0, 2)
        self.quarter = nn.Sequential(_conv(w0, w1, 2), _separable(w1, w1))
        self.eighth = nn.Sequential(_conv(w1, w2, 2), _separable(w2, w2))
        self.sixteenth = nn.Sequential(_conv(w2, w3, 2), _separable(w3, w3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.quarter(self.to_half(x))
        f8 = self.eighth(f4)
        f16 = self.sixteenth(f8)
        return f4, f8, f16


def cost_volume(key: torch.Tensor, current: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarity of key and current features at every shift within ``radius``:
    N×(2r+1)²×H×W. Unit-length features keep the costs in [-1, 1] from the first step."""
    h, w = key.shape[2], key.shape[3]
    # Centred per channel first: ReLU features share a large positive mean that would make every
    # shift look alike.
    key = F.normalize(key - key.mean((2, 3), keepdim=True), dim=1)
    current = F.normalize(current - current.mean((2, 3), keepdim=True), dim=1)
    padded = F.pad(current, [radius, radius, radius, radius])
    costs: list[torch.Tensor] = []
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            costs.append((key * padded[:, :, dy : dy + h, dx : dx + w]).sum(1, keepdim=True))
    return torch.cat(costs, 1)


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` at (pixel + flow): the current frame seen on the key grid."""
    n, _, h, w = features.shape
    ys = torch.linspace(-1.0, 1.0, h, dtype=flow.dtype, device=flow.device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=flow.dtype, device=flow.device)
    base_y = ys.view(1, h, 1).expand(n, h, w)
    base_x = xs.view(1, 1, w).expand(n, h, w)
    gx = base_x + flow[:, 0] * (2.0 / max(w - 1, 1))
    gy = base_y + flow[:, 1] * (2.0 / max(h - 1, 1))
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=True)


def soft_argmax(cost: torch.Tensor, radius: int, sharpness: torch.Tensor) -> torch.Tensor:
    """Expected shift (dx, dy) under softmax(sharpness × cost) over the (2r+1)² shifts: block
    matching that is differentiable, so the net tracks speckle before it has learned much."""
    size = 2 * radius + 1
    offsets = torch.arange(size, dtype=cost.dtype, device=cost.device) - float(radius)
    n, _, h, w = cost.shape
    weights = torch.softmax(cost * sharpness, dim=1).view(n, size, size, h, w)
    dy = (weights.sum(2) * offsets.view(1, size, 1, 1)).sum(1)
    dx = (weights.sum(1) * offsets.view(1, size, 1, 1)).sum(1)
    return torch.stack([dx, dy], 1)


class Estimator(nn.Module):
    """(cost, key features, current flow) → flow update and confidence logit at one level.

    The update is the soft-argmax of the cost volume plus a learned correction (zero at the
    start). Dilated layers and a whole-image context vector let a pixel with nothing to match
    (speckle gone out of plane, the middle of a smooth organ) take its motion from structures
    that do match (lesion, vessels, organ tip): breathing moves the tissue nearly as one.
    """

    def __init__(self, radius: int, cin: int, hidden: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.radius = radius
        self.sharpness = nn.Parameter(torch.tensor(20.0))
        cin = cin + (2 * radius + 1) ** 2 + 2
        layers: list[nn.Module] = [nn.Conv2d(cin, hidden, 1), nn.LeakyReLU(0.1, inplace=True)]
        layers += [_separable(hidden, hidden, d) for d in dilations]
        self.body = nn.Sequential(*layers)
        self.context = nn.Conv2d(hidden, hidden, 1)
        self.head = nn.Conv2d(hidden, 3, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, cost: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        match = soft_argmax(cost, self.radius, self.sharpness)
        hidden = self.body(torch.cat([cost, rest, match], 1))
        hidden = hidden + self.context(hidden.mean((2, 3), keepdim=True))
        out = self.head(F.leaky_relu(hidden, 0.1))
        return torch.cat([out[:, :2] + match, out[:, 2:3]], 1)


class TrackNet(nn.Module):
    """Key + current frame → flow (px, key grid → current) and a confidence logit, N×3×H×W."""

    def __init__(self, widths: tuple[int, int, int, int] = (12, 24, 32, 48)) -> None:
        super().__init__()
        _, w4, w8, w16 = widths
        self.encoder = Encoder(widths)
        self.coarse = Estimator(3, w16, 64, (1, 2, 4, 8))
        self.middle = Estimator(3, w8 + 3, 48, (1, 2, 4))
        self.fine = Estimator(2, w4 + 3, 32, (1, 2))

    def forward_levels(self, pair: torch.Tensor) -> list[torch.Tensor]:
        """Outputs at 1/16, 1/8 and 1/4 (flow in pixels of that level), coarse first."""
        n = pair.shape[0]
        frames = torch.cat([pair[:, 0:1], pair[:, 1:2]], dim=0)
        f4, f8, f16 = self.encoder(frames)
        key16, cur16 = f16[:n], f16[n:]
        out16 = self.coarse(cost_volume(key16, cur16, 3), key16)

        up = F.interpolate(out16, scale_factor=2.0, mode="bilinear", align_corners=False)
        flow8 = up[:, :2] * 2.0
        key8, cur8 = f8[:n], f8[n:]
        cost8 = cost_volume(key8, warp(cur8, flow8), 3)
        out8 = self.middle(cost8, torch.cat([key8, flow8, up[:, 2:3]], 1))
        out8 = torch.cat([out8[:, :2] + flow8, out8[:, 2:3]], 1)

        up = F.interpolate(out8, scale_factor=2.0, mode="bilinear", align_corners=False)
        flow4 = up[:, :2] * 2.0
        key4, cur4 = f4[:n], f4[n:]
        cost4 = cost_volume(key4, warp(cur4, flow4), 2)
        out4 = self.fine(cost4, torch.cat([key4, flow4, up[:, 2:3]], 1))
        out4 = torch.cat([out4[:, :2] + flow4, out4[:, 2:3]], 1)
        return [out16, out8, out4]

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        out4 = self.forward_levels(pair)[-1]
        full = F.interpolate(out4, scale_factor=4.0, mode="bilinear", align_corners=False)
        return torch.cat([full[:, :2] * 4.0, full[:, 2:3]], 1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
