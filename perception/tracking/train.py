"""Training the tracking network on phantom pairs made on the fly (seeds below 1000 only).

Loss: end-point error (px) of the full-size field plus the 1/8 and 1/16 levels (a multi-scale
loss makes the coarse cost volume learn the large motion first), weighted 1 inside the field of
view and 0.1 outside a curvilinear sector (black there: the flow is a guess). The confidence
head learns, by binary cross-entropy, whether its pixel's error is below ``GOOD_PX``; a few pairs
get a noise frame as the current frame so that "nothing to track" is seen and scored 0.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from igtflow.perception.card import (
    Confidence,
    InputSpec,
    ModelCard,
    Normalisation,
    Training,
    card_path_for,
    sha256_of,
    write_card,
)
from igtflow.perception.tracking.network import ARCHITECTURE, TrackNet, parameter_count
from igtflow.perception.tracking.pairs import MEAN, SIZE, STD, PairStream

GOOD_PX = 1.0  # the confidence head predicts P(end-point error < GOOD_PX)
LEVEL_WEIGHTS = (0.25, 0.5)  # 1/16, 1/8; the full-size field weighs 1
CONFIDENCE_WEIGHT = 0.2
NOISE_FRACTION = 0.06  # pairs whose current frame is noise: confidence 0, no flow loss
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "tracker.pt"


def augment(
    images: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 pairs → normalised inputs with gain, gamma and noise per frame, left-right flips,
    and some noise frames; returns inputs, flow, flow weight and a per-pair 'trackable' flag."""
    n = images.shape[0]
    x = images.float() / 255.0
    gain = torch.from_numpy(rng.uniform(0.7, 1.3, (n, 2, 1, 1)).astype(np.float32))
    gamma = torch.from_numpy(rng.uniform(0.7, 1.4, (n, 2, 1, 1)).astype(np.float32))
    x = (x.clamp_min(1e-4) ** gamma * gain).clamp(0, 1)
    sigma = torch.from_numpy(rng.uniform(0.0, 0.06, (n, 1, 1, 1)).astype(np.float32))
    x = x + torch.randn_like(x) * sigma
    flip = torch.from_numpy(rng.random(n) < 0.5)
    if bool(flip.any()):
        x[flip] = x[flip].flip(-1)
        flow[flip] = flow[flip].flip(-1)
        flow[flip, 0] = -flow[flip, 0]
        weight[flip] = weight[flip].flip(-1)
    trackable = torch.ones(n)
    noise = rng.random(n) < NOISE_FRACTION
    for i in np.nonzero(noise)[0]:
        x[i, 1] = torch.rand_like(x[i, 1])
        trackable[i] = 0.0
    return (x - MEAN) / STD, flow, weight, trackable


def pooled_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """The true flow at 1/``factor`` size, in that level's pixels."""
    return F.avg_pool2d(flow, factor) / factor


def tracking_loss(
    levels: list[torch.Tensor],
    full: torch.Tensor,
    flow: torch.Tensor,
    weight: torch.Tensor,
    trackable: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Multi-scale end-point error plus the confidence BCE; also the figures for the bar."""
    mask = weight * trackable.view(-1, 1, 1, 1)
    epe = torch.linalg.vector_norm(full[:, :2] - flow, dim=1, keepdim=True)
    loss = (epe * mask).sum() / mask.sum().clamp_min(1.0)
    for out, factor, w in zip(levels[:2], (16, 8), LEVEL_WEIGHTS, strict=True):
        truth = pooled_flow(flow, factor)
        level_mask = F.avg_pool2d(mask, factor)
        level_epe = torch.linalg.vector_norm(out[:, :2] - truth, dim=1, keepdim=True) * factor
        loss = loss + w * (level_epe * level_mask).sum() / level_mask.sum().clamp_min(1.0)
    good = (epe.detach() < GOOD_PX).float() * trackable.view(-1, 1, 1, 1)
    bce = F.binary_cross_entropy_with_logits(full[:, 2:3], good, weight=weight)
    total = loss + CONFIDENCE_WEIGHT * bce
    flow_epe = float((epe.detach() * mask).sum() / mask.sum().clamp_min(1.0))
    return total, {"epe": flow_epe, "bce": float(bce.detach())}


def train_tracker(
    steps: int,
    out_dir: Path | str,
    seed: int = 0,
    progress: bool = True,
    batch: int = 8,
    lr: float = 2e-3,
    resume: Path | str | None = None,
    save_every: int = 250,
) -> Path:
    """Train for ``steps`` batches; writes ``tracker.pt`` (TorchScript) and its card into
    ``out_dir`` (every ``save_every`` steps too, so a long run can be stopped) and returns the
    weights' path."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = TrackNet()
    if resume is not None:
        model.load_state_dict(torch.load(resume, map_location="cpu", weights_only=True))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lr, total_steps=max(steps, 1), pct_start=0.05 if resume is None else 0.01
    )
    stream = PairStream(seed)
    rng = np.random.default_rng([seed, 0xA06])
    weights_path = out / "tracker.pt"
    smooth: dict[str, float] = {}
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]train tracker"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("train", total=steps, status="")
        for step in range(1, steps + 1):
            images, flow, weight = (torch.from_numpy(a) for a in stream.batch(batch))
            x, flow, weight, trackable = augment(images, flow.float(), weight, rng)
            model.train()
            levels = model.forward_levels(x)
            full = F.interpolate(levels[-1], scale_factor=4.0, mode="bilinear", align_corners=False)
            full = torch.cat([full[:, :2] * 4.0, full[:, 2:3]], 1)
            loss, figures = tracking_loss(levels, full, flow, weight, trackable)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            schedule.step()
            figures["loss"] = float(loss.detach())
            for name, value in figures.items():
                smooth[name] = value if name not in smooth else 0.95 * smooth[name] + 0.05 * value
            status = " ".join(f"{k} {v:.3f}" for k, v in smooth.items())
            bar.update(task, advance=1, status=status)
            if not progress and step % 25 == 0:
                elapsed = time.perf_counter() - started
                print(f"step {step}/{steps} {status} {elapsed / step:.2f} s/step", flush=True)
            if step % save_every == 0 or step == steps:
                torch.save(model.state_dict(), out / "tracker.state.pt")
                figures = {"train_epe_px": smooth["epe"]}
                export(model, weights_path, steps=step, seed=seed, metrics=figures)
    return weights_path


def export(
    model: TrackNet,
    weights_path: Path,
    steps: int,
    seed: int,
    metrics: dict[str, float] | None = None,
    threshold: float = 0.5,
) -> Path:
    """Write ``model`` as frozen TorchScript and its model card beside it; returns the card."""
    model = model.eval()
    # key_features and track stay callable: the node encodes a key frame once, not per frame
    scripted = torch.jit.freeze(torch.jit.script(model), preserved_attrs=["key_features", "track"])
    tmp = weights_path.with_suffix(".tmp")
    scripted.save(str(tmp))
    tmp.replace(weights_path)
    card = ModelCard(
        name=weights_path.name.split(".")[0],
        task="tracking",
        architecture=ARCHITECTURE,
        runtime="auto",  # TorchScript weights; the node tries ONNX Runtime too, keeps the faster
        weights=weights_path.name,
        sha256=sha256_of(weights_path),
        input=InputSpec(modality="US", height=SIZE, width=SIZE),  # per frame; the pair is stacked
        normalisation=Normalisation(scale=255.0, mean=MEAN, std=STD),
        confidence=Confidence(method="sigmoid", threshold=threshold),
        training=Training(
            data="phantom US pairs (key, key + 0..30 frames; probe static 4/5, sweeping 1/5)",
            seeds="0-999",
            steps=steps,
            recipe=f"AdamW one-cycle, batch 8, multi-scale EPE + confidence BCE, last seed {seed}",
        ),
        metrics=metrics or {},
        parameters=parameter_count(model),
        notes="output N×3×H×W: dx, dy (px, key grid → current frame), confidence logit "
        f"(sigmoid = P(error < {GOOD_PX:g} px))",
    )
    path = card_path_for(weights_path)
    write_card(card, path)
    return path
