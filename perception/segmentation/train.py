"""Training a segmentation network on the phantom (and a user's pairs), then shipping it.

One recipe for both architectures, so the baseline comparison is fair: MONAI's DiceCELoss (Dice
over the batch, cross-entropy weighted towards thin and rare classes), crops of the frame with a
bias towards the rare class, gain/gamma/blur/noise/flip augmentation, and one garbage frame in ten
(noise, black, textures) trained towards a flat softmax so such frames come out low-confidence.
AdamW with a one-cycle schedule. Afterwards a temperature is fitted on held-out seeds, the net is
scored, traced to TorchScript on the CPU and written with its model card.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igtflow.perception.card import (
    Confidence,
    InputSpec,
    ModelCard,
    Normalisation,
    Training,
    load_card,
    sha256_of,
    write_card,
)
from igtflow.perception.segmentation.data import (
    HELD_OUT_SEEDS,
    TRAIN_SEED_LIMIT,
    FrameSet,
    augment,
    crop_pair,
    out_of_distribution,
    parse_seeds,
    phantom_frames,
    task_spec,
)
from igtflow.perception.segmentation.evaluate import fit_temperature, predict_logits, score_frames
from igtflow.perception.segmentation.nets import (
    FlatFrameGate,
    build_net,
    describe,
    parameter_count,
)
from igtflow.perception.segmentation.user_data import user_frames

NORMALISATION = Normalisation(scale=255.0, mean=0.5, std=0.25)
GARBAGE_SHARE = 0.1
GARBAGE_WEIGHT = 0.5
MAX_WEIGHTS_BYTES = 5 * 1024 * 1024
RECIPE = (
    "DiceCELoss(batch Dice + class-weighted CE), AdamW lr 4e-3 one-cycle, crops with rare-class "
    "focus, gain/gamma/blur/noise/flip, 10% garbage frames to a flat softmax"
)


def default_name(task: str, arch: str) -> str:
    return {"fast": task, "fast-lite": f"{task}-lite"}.get(arch, f"{task}-monai")


class Recipe:
    """The loss and the batches, shared by both architectures (the baseline is trained alike)."""

    def __init__(
        self,
        task: str,
        seed: int,
        crop: int | None = None,
        batch: int | None = None,
        garbage_share: float = GARBAGE_SHARE,
    ):
        from monai.losses import DiceCELoss

        spec = task_spec(task)
        self.spec = replace(spec, crop=crop or spec.crop, batch=batch or spec.batch)
        self.rng = np.random.default_rng([seed, 0x7EA])
        self.garbage_share = garbage_share
        weights = torch.tensor(self.spec.class_weights, dtype=torch.float32)
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, batch=True, weight=weights)
        self.focus = (3,) if task == "fluoro-seg" else (2, 3)

    def batch(
        self, pools: list[FrameSet], shares: list[float]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x N×1×C×C normalised, y N×1×C×C classes, garbage N bool) for one step."""
        spec, rng = self.spec, self.rng
        images, targets, garbage = [], [], []
        for _ in range(spec.batch):
            if rng.random() < self.garbage_share:
                images.append(out_of_distribution(rng, spec.crop))
                targets.append(np.zeros((spec.crop, spec.crop), np.uint8))
                garbage.append(True)
                continue
            pool = pools[rng.choice(len(pools), p=shares)]
            i = rng.integers(len(pool))
            focus = self.focus[rng.integers(len(self.focus))]
            image, target = crop_pair(pool.images[i], pool.targets[i], spec.crop, rng, focus)
            image = augment(image, rng)
            if rng.random() < 0.5:
                image, target = image[:, ::-1], target[:, ::-1]
            images.append(np.ascontiguousarray(image))
            targets.append(np.ascontiguousarray(target))
            garbage.append(False)
        x = torch.from_numpy(np.stack(images)).float().unsqueeze(1)
        x = (x / NORMALISATION.scale - NORMALISATION.mean) / NORMALISATION.std
        y = torch.from_numpy(np.stack(targets).astype(np.int64)).unsqueeze(1)
        return x, y, torch.tensor(garbage)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, garbage: torch.Tensor) -> torch.Tensor:
        """DiceCE on real crops + cross-entropy to the uniform distribution on garbage crops."""
        total = logits.new_zeros(())
        if (~garbage).any():
            total = total + self.dice_ce(logits[~garbage], y[~garbage])
        if garbage.any():
            flat = -torch.log_softmax(logits[garbage], dim=1).mean()
            total = total + GARBAGE_WEIGHT * flat
        return total


def _load_init(net: nn.Module, init: Path) -> None:
    """Start from shipped or earlier weights (a TorchScript file or its card)."""
    init = Path(init)
    if init.name.endswith(".card.yaml"):
        _, init = load_card(init)
    state = torch.jit.load(str(init), map_location="cpu").state_dict()
    net.load_state_dict({key.removeprefix("net."): value for key, value in state.items()})


def _arch_of(init: Path) -> str | None:
    init = Path(init)
    card_file = init if init.name.endswith(".card.yaml") else None
    if card_file is None:
        candidate = init.with_name(init.name.split(".")[0] + ".card.yaml")
        card_file = candidate if candidate.is_file() else None
    if card_file is None:
        return None
    card, _ = load_card(card_file, check_weights=False)
    if card.architecture.startswith("monai"):
        return "monai-unet"
    return "fast-lite" if card.architecture.startswith("FastSeg-lite") else "fast"


def train_segmentation(
    task: str,
    arch: str = "fast",
    steps: int = 3000,
    out_dir: Path = Path("perception/weights"),
    seed: int = 0,
    progress: bool = True,
    init: Path | None = None,
    user_data: Path | None = None,
    *,
    name: str | None = None,
    train_seeds: str | None = None,
    frames_per_seed: int = 24,
    eval_seeds: str = HELD_OUT_SEEDS,
    eval_frames_per_seed: int = 6,
    crop: int | None = None,
    batch: int | None = None,
    lr: float | None = None,
    garbage_share: float = GARBAGE_SHARE,
    image_topic: str | None = None,
    label_topic: str | None = None,
) -> tuple[Path, dict[str, float]]:
    """Train (or fine-tune from ``init``), calibrate, score, and write ``<name>.pt`` + card.

    With ``user_data`` (a folder of ``NAME_image.png``/``NAME_label.png`` pairs, or a recording
    with an image and a label topic: see ``user_data``) half of every batch comes from the
    user's training frames and half from the phantom; the temperature is fitted and the metrics
    reported on the user's held-out frames (a fixed fifth: by name, or the last in time).
    Returns the card's path and the metrics.
    """
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = task_spec(task)
    if init is not None:
        arch = _arch_of(init) or arch
    name = name or default_name(task, arch)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if train_seeds is None:
        last = int(np.clip(steps // 150, 1, 24)) - 1
        train_seeds = f"{seed * 24 % 900}-{seed * 24 % 900 + last}"
    seeds = parse_seeds(train_seeds)
    if max(seeds) >= TRAIN_SEED_LIMIT:
        raise ValueError(f"training seeds must be below {TRAIN_SEED_LIMIT}, got {train_seeds}")

    with _Progress(progress) as bar:
        render = bar.task("rendering phantom frames", len(seeds))
        pool = phantom_frames(task, seeds, frames_per_seed, False, lambda i, n: bar.set(render, i))
        pools, shares = [pool], [1.0]
        held_user = None
        if user_data is not None:
            train_user, held_user = user_frames(task, Path(user_data), image_topic, label_topic)
            pools, shares = [pool, train_user], [0.5, 0.5]

        net = build_net(arch, len(spec.classes))
        if init is not None:
            _load_init(net, init)
        net = net.to(memory_format=torch.channels_last)
        lr = lr or (1e-3 if init is not None else 4e-3)
        optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser,
            max_lr=lr,
            total_steps=max(steps, 10),
            pct_start=0.05 if steps >= 100 else 0.3,
        )
        recipe = Recipe(task, seed, crop, batch, garbage_share)
        step_task = bar.task(f"training {name} ({arch})", steps)
        smooth = None
        started = time.perf_counter()
        net.train()
        for step in range(steps):
            x, y, garbage = recipe.batch(pools, shares)
            loss = recipe.loss(net(x.to(memory_format=torch.channels_last)), y, garbage)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
            bar.set(step_task, step + 1, f"loss {smooth:.4f}")
        seconds_per_step = (time.perf_counter() - started) / max(steps, 1)
        net.eval()

        bar.note("calibrating and scoring")
        if held_user is not None:
            calibrate, score = held_user, held_user
        else:
            calibrate, score = held_out_split(task, eval_seeds, eval_frames_per_seed)
        note = f"batch {recipe.spec.batch}x{recipe.spec.crop}^2, lr {lr:g}"
        if garbage_share != GARBAGE_SHARE:
            note += f", {garbage_share:.0%} garbage frames"
        if init is not None:
            note += f", from {Path(init).name}"
        card = _card(name, task, arch, net, seeds, steps, user_data, seconds_per_step, note)
        return calibrate_and_ship(net, card, calibrate, score, out_dir)


def held_out_split(task: str, seeds: str, frames_per_seed: int) -> tuple[FrameSet, FrameSet]:
    """(frames of the first half of the held-out seeds, to fit the temperature; all of them, to
    score): the ECE in the card then comes mostly from seeds the temperature never saw."""
    held = phantom_frames(task, parse_seeds(seeds), frames_per_seed, True)
    first = np.unique(held.seeds)[: max(len(np.unique(held.seeds)) // 2, 1)]
    return _subset(held, np.isin(held.seeds, first)), held


def calibrate_and_ship(
    net: nn.Module, card: ModelCard, calibrate: FrameSet, score: FrameSet, out_dir: Path
) -> tuple[Path, dict[str, float]]:
    """Fit the temperature, score, trace (CPU, with the flat-frame gate), write weights + card."""
    net = net.to(memory_format=torch.contiguous_format).eval()
    gated = FlatFrameGate(net).eval()
    logits = predict_logits(gated, calibrate.images, card)
    temperature, _ = fit_temperature(logits, calibrate.targets)
    card = card.model_copy(update={"confidence": Confidence(temperature=temperature)})
    metrics = score_frames(gated, card, score)
    weights = Path(out_dir) / f"{card.name}.pt"
    with torch.no_grad():
        traced = torch.jit.trace(gated, torch.zeros(1, 1, card.input.height, card.input.width))
    traced.save(str(weights))
    if weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ValueError(f"{weights}: {weights.stat().st_size} bytes, over the 5 MB limit")
    card = card.model_copy(
        update={
            "sha256": sha256_of(weights),
            "metrics": {k: round(v, 4) for k, v in metrics.items()},
            "confidence": Confidence(
                temperature=round(temperature, 4),
                calibration_error=round(metrics["calibration_error"], 4),
            ),
        }
    )
    card_file = Path(out_dir) / f"{card.name}.card.yaml"
    write_card(card, card_file)
    return card_file, metrics


def _subset(frames: FrameSet, keep: np.ndarray) -> FrameSet:
    return FrameSet(
        frames.images[keep], frames.targets[keep], frames.seeds[keep],
        frames.entry[keep], frames.tip[keep], frames.spacing_mm,
    )  # fmt: skip


def _card(
    name: str,
    task: str,
    arch: str,
    net: nn.Module,
    seeds: list[int],
    steps: int,
    user_data: Path | None,
    seconds_per_step: float,
    recipe_note: str,
) -> ModelCard:
    spec = task_spec(task)
    data = "phantom" if user_data is None else f"phantom + user frames from {Path(user_data).name}"
    return ModelCard(
        name=name,
        task="segmentation",
        architecture=describe(arch),
        runtime="auto",  # TorchScript weights; the node tries ONNX Runtime too, keeps the faster
        weights=f"{name}.pt",
        sha256="0" * 64,
        input=InputSpec(modality=spec.modality, height=spec.size, width=spec.size),
        normalisation=NORMALISATION,
        labels=dict(enumerate(spec.classes)),
        training=Training(
            data=data,
            seeds=f"{min(seeds)}-{max(seeds)}" if len(seeds) > 1 else str(seeds[0]),
            steps=steps,
            recipe=f"{RECIPE}; {recipe_note}; {seconds_per_step:.2f} s/step",
        ),
        parameters=parameter_count(net),
        notes=(
            "confidence = softmax margin at the fitted temperature (first half of the held-out "
            "seeds); metrics on held-out data "
            "(Dice: MONAI; HD95 in px, MONAI's definition; catheter tip: median error at the "
            "detector, mm; garbage_confidence: mean margin on noise/black/texture frames)"
        ),
    )


class _Progress:
    """A rich progress bar with the live loss, or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def task(self, description: str, total: int):
        return None if self.bar is None else self.bar.add_task(description, total=total, status="")

    def set(self, task, completed: int, status: str | None = None) -> None:
        if self.bar is not None and task is not None:
            fields = {} if status is None else {"status": status}
            self.bar.update(task, completed=completed, **fields)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.log(text)
