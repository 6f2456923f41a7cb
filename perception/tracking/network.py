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


def unit_features(features: torch.Tensor) -> torch.Tensor:
    """Features centred per channel and scaled to unit length per pixel, for cosine costs.

    Centred first: ReLU features share a large positive mean that would make every shift look
    alike. ``rsqrt`` of the summed squares rather than ``F.normalize``: the vector-norm kernel
    over the channel axis cost about five times as much here."""
    centred = features - features.mean((2, 3), keepdim=True)
    return centred * torch.rsqrt((centred * centred).sum(1, keepdim=True).clamp_min(1e-24))


def cost_volume(key_unit: torch.Tensor, current: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarity of key and current features at every shift within ``radius``:
    N×(2r+1)²×H×W. ``key_unit`` is already :func:`unit_features` (a key frame's are computed
    once); unit-length features keep the costs in [-1, 1] from the first step."""
    padded = F.pad(unit_features(current), [radius, radius, radius, radius])
    if key_unit.shape[3] <= 32:
        return _row_products(key_unit, padded, radius)
    return _shifted_products(key_unit, padded, radius)


def _shifted_products(key: torch.Tensor, padded: torch.Tensor, radius: int) -> torch.Tensor:
    """One product and channel sum per shift: cheapest for wide rows."""
    h, w = key.shape[2], key.shape[3]
    costs: list[torch.Tensor] = []
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            costs.append((key * padded[:, :, dy : dy + h, dx : dx + w]).sum(1, keepdim=True))
    return torch.cat(costs, 1)


def _row_products(key: torch.Tensor, padded: torch.Tensor, radius: int) -> torch.Tensor:
    """Per vertical shift, every key pixel of a row against every current pixel of the shifted
    row in one batched matrix product, the 2r+1 horizontal shifts then read off its band. For
    short rows (≤ 32 at 1/8 and 1/16 of 256²) the product wastes little and ran 2–3× faster
    than a product and sum per shift, whose cost is the number of small ops."""
    n, c, h, w = key.shape
    size = 2 * radius + 1
    wide = w + 2 * radius
    rows = key.permute(0, 2, 3, 1).reshape(n * h, w, c)
    bands: list[torch.Tensor] = []
    for dy in range(size):
        shifted = padded[:, :, dy : dy + h, :].permute(0, 2, 1, 3).reshape(n * h, c, wide)
        full = torch.bmm(rows, shifted)  # (n·h) × w × (w + 2r): pixel x against x' = x + dx
        bands.append(full.as_strided((n * h, w, size), (w * wide, wide + 1, 1)))
    costs = torch.stack(bands, 2)  # (n·h) × w × dy × dx
    return costs.reshape(n, h, w, size * size).permute(0, 3, 1, 2).contiguous()


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` at (pixel + flow): the current frame seen on the key grid."""
    h, w = features.shape[2], features.shape[3]
    # arange(...).type_as, not linspace(dtype=...): the ONNX exporter cannot follow a dtype
    # taken from a tensor in TorchScript (linspace's came out float64)
    sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    xs = torch.arange(w, device=flow.device).type_as(flow) * sx - 1.0
    ys = torch.arange(h, device=flow.device).type_as(flow) * sy - 1.0
    gx = xs.view(1, 1, w) + flow[:, 0] * sx
    gy = ys.view(1, h, 1) + flow[:, 1] * sy
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


def few_output_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1)`` for a 3×3 kernel with few output channels, as one
    1×1 convolution to every (tap, output) pair and nine shifted sums: the same numbers, but
    the 1×1 is one matrix product where oneDNN's 3×3 with three outputs ran at a tenth of its
    speed (0.38 against 0.20 ms at 32×64², one thread)."""
    outputs, h, w = weight.shape[0], x.shape[2], x.shape[3]
    taps = F.conv2d(x, weight.permute(2, 3, 0, 1).reshape(9 * outputs, weight.shape[1], 1, 1))
    taps = F.pad(taps, [1, 1, 1, 1])
    out = bias.view(1, outputs, 1, 1) + taps[:, 0:outputs, 0:h, 0:w]
    for tap in range(1, 9):
        dy, dx = tap // 3, tap % 3
        out = out + taps[:, tap * outputs : (tap + 1) * outputs, dy : dy + h, dx : dx + w]
    return out


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
        bias = self.head.bias
        assert bias is not None  # for TorchScript: the head is made with a bias
        out = few_output_conv3x3(F.leaky_relu(hidden, 0.1), self.head.weight, bias)
        return torch.cat([out[:, :2] + match, out[:, 2:3]], 1)


class TrackNet(nn.Module):
    """Key + current frame → flow (px, key grid → current) and a confidence logit, N×3×H×W.

    A tracker holds one key frame for many frames, so the key's features can be made once
    (:meth:`key_features`) and each frame pays for its own encoding and the matching only
    (:meth:`track`, at a quarter of the size); ``forward`` on the stacked pair is the same
    computation in one call, brought to full size.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (12, 24, 32, 48)) -> None:
        super().__init__()
        _, w4, w8, w16 = widths
        self.encoder = Encoder(widths)
        self.coarse = Estimator(3, w16, 64, (1, 2, 4, 8))
        self.middle = Estimator(3, w8 + 3, 48, (1, 2, 4))
        self.fine = Estimator(2, w4 + 3, 32, (1, 2))

    @torch.jit.export
    def key_features(self, key: torch.Tensor) -> list[torch.Tensor]:
        """A key frame (N×1×H×W) encoded once: features at 1/4, 1/8, 1/16 and their unit
        versions for the cost volumes."""
        f4, f8, f16 = self.encoder(key)
        return [f4, f8, f16, unit_features(f4), unit_features(f8), unit_features(f16)]

    def levels(self, key: list[torch.Tensor], current: torch.Tensor) -> list[torch.Tensor]:
        """Outputs at 1/16, 1/8 and 1/4 (flow in pixels of that level), coarse first."""
        key4, key8, key16, unit4, unit8, unit16 = key[0], key[1], key[2], key[3], key[4], key[5]
        cur4, cur8, cur16 = self.encoder(current)
        out16 = self.coarse(cost_volume(unit16, cur16, 3), key16)

        up = F.interpolate(out16, scale_factor=2.0, mode="bilinear", align_corners=False)
        flow8 = up[:, :2] * 2.0
        cost8 = cost_volume(unit8, warp(cur8, flow8), 3)
        out8 = self.middle(cost8, torch.cat([key8, flow8, up[:, 2:3]], 1))
        out8 = torch.cat([out8[:, :2] + flow8, out8[:, 2:3]], 1)

        up = F.interpolate(out8, scale_factor=2.0, mode="bilinear", align_corners=False)
        flow4 = up[:, :2] * 2.0
        cost4 = cost_volume(unit4, warp(cur4, flow4), 2)
        out4 = self.fine(cost4, torch.cat([key4, flow4, up[:, 2:3]], 1))
        out4 = torch.cat([out4[:, :2] + flow4, out4[:, 2:3]], 1)
        return [out16, out8, out4]

    def forward_levels(self, pair: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`levels` of a stacked pair (N×2×H×W: key, current), as training sees it."""
        return self.levels(self.key_features(pair[:, 0:1]), pair[:, 1:2])

    @torch.jit.export
    def track(self, key: list[torch.Tensor], current: torch.Tensor) -> torch.Tensor:
        """The output for ``current`` (N×1×H×W) against encoded key features, at a quarter of
        the frame's size (flow in pixels of that size): the caller brings it to full size,
        which OpenCV does about 20× faster than ``interpolate`` here."""
        return self.levels(key, current)[-1]

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        out4 = self.track(self.key_features(pair[:, 0:1]), pair[:, 1:2])
        full = F.interpolate(out4, scale_factor=4.0, mode="bilinear", align_corners=False)
        return torch.cat([full[:, :2] * 4.0, full[:, 2:3]], 1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
