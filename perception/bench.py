"""``igtflow bench perception``: network latency per model, size and runtime, beside its baselines.

Every network runs batch 1 on one thread, on the same held-out phantom frames (seed 1001), under
each runtime it can run in (TorchScript, ONNX Runtime); the baselines run in the same process
right after: MONAI's ``UNet(spatial_dims=2, channels=(16, 32, 64, 128), strides=(2, 2, 2))`` for
segmentation (random weights are enough for latency) and OpenCV's DIS optical flow (presets
fast and medium, one thread) for tracking. All are timed frame by frame in turn, so the drifting
load of a shared machine falls on each alike. Our figures are the runtime the node runs (its
card's; ``auto``: the faster as the node times it); the baseline gets its faster runtime. Shipped
weights are used where present, otherwise untrained stand-ins of the same architecture (the
report says which). Ratios in one run are the headline; absolute times come with the machine
calibration.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from igtflow.perception.card import (
    Confidence,
    InputSpec,
    ModelCard,
    Normalisation,
    sha256_of,
    write_card,
)
from igtflow.perception.frames import network_input
from igtflow.perception.inference import Predictor, card_path, set_thread_budget
from igtflow.perception.outputs import field_maps, segmentation_maps
from igtflow.stream.allocator import keep_freed_memory

SEED = 1001  # held-out: training uses seeds below 1000
DISTINCT_FRAMES = 24  # rendered once, cycled: the phantom is not what is timed
US_LABELS = {0: "background", 1: "organ", 2: "vessel", 3: "lesion"}
FLUORO_LABELS = {0: "background", 1: "organ", 2: "vessel", 3: "device"}
RUNTIMES = ("torchscript", "onnx")
KEY_EVERY = 10  # the bench's tracker takes a new key frame this often
Runner = Callable[[int], Any]


class KeyedRun:
    """A tracker's frame as the ``track`` node runs it: the current frame against a kept key.

    A new key (every ``KEY_EVERY`` frames) is set in :meth:`prepare`, before the clock starts:
    the node encodes a key after that frame's output has gone, so it is not in any frame's
    latency (the bench times it on its own, as ``key_encode``). With ``images`` the frame is
    also normalised inside the clock, as the node's whole step is."""

    def __init__(
        self,
        predictor: Predictor,
        planes: list[np.ndarray],
        key_index: Callable[[int], int],
        run: Callable[[Predictor, np.ndarray], Any],
        images: list[np.ndarray] | None = None,
        spec: Any = None,
        norm: Any = None,
    ) -> None:
        self.predictor, self.planes, self.key_index, self.run = predictor, planes, key_index, run
        self.images, self.spec, self.norm = images, spec, norm
        self.key: int | None = None

    def prepare(self, index: int) -> None:
        if (key := self.key_index(index)) != self.key:
            self.predictor.set_key(self.planes[key])
            self.key = key

    def __call__(self, index: int) -> None:
        if self.images is None:
            plane = self.planes[index % len(self.planes)]
        else:
            plane = network_input(self.images[index % len(self.images)], self.spec, self.norm)
        self.run(self.predictor, plane)


def run_perception_bench(
    frames: int = 200, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Latency p50/p99/max of each network and baseline; the JSON ``igtflow bench`` prints."""
    from igtflow.machine import machine_info

    say = progress or (lambda _text: None)
    set_thread_budget(1)
    keep_freed_memory()  # as the perception nodes run; the baselines share the process
    frames = max(3, int(frames))
    say("rendering held-out phantom frames")
    us, fluoro = _us_frames(), _fluoro_frames()
    report: dict[str, Any] = {"frames": frames, "seed": SEED, "threads": 1, "networks": {}}
    with tempfile.TemporaryDirectory(prefix="igtflow-bench-perception-") as tmp:
        folder = Path(tmp)
        models = {
            "us_seg": _model("us-seg", folder, "segmentation", "US", 256, US_LABELS),
            "monai_unet": _model("us-seg-monai", folder, "monai", "US", 256, US_LABELS),
            "fluoro_seg": _model("fluoro-seg", folder, "segmentation", "XA", 512, FLUORO_LABELS),
            # the denser fluoro net (4×4 fold): more accurate, slower; shown beside, not headlined
            "fluoro_seg_dense": _model(
                "fluoro-seg-dense", folder, "segmentation", "XA", 512, FLUORO_LABELS
            ),
            "track": _model("tracker", folder, "tracking", "US", 256, {}),
        }
        runners: dict[tuple[str, str], Runner] = {}
        chosen: dict[str, str] = {}
        for key, (card, source) in models.items():
            say(f"{key}: {source}")
            images = fluoro if key.startswith("fluoro") else us
            entry, timed_ways, node_runtime = _prepare_network(card, source, images)
            report["networks"][key] = entry
            chosen[key] = node_runtime
            runners.update({(key, way): run for way, run in timed_ways.items()})
        for preset in ("fast", "medium"):
            entry, run = _prepare_dis(preset, us)
            report["networks"][f"dis_{preset}"] = entry
            runners[(f"dis_{preset}", "opencv")] = run
        say(f"timing {len(runners)} ways, interleaved, {frames} frames each")
        stats = _interleaved(runners, frames)
        for (key, way), figures in stats.items():
            entry = report["networks"][key]
            if way == "opencv":
                entry.update(figures)
            elif way in ("node_step", "key_encode"):
                entry[way] = figures
            else:
                entry["runtimes"][way] = figures
        for key, node_runtime in chosen.items():
            entry = report["networks"][key]
            timed = {k: v for k, v in entry["runtimes"].items() if "p99_ms" in v}
            # the baseline gets its faster runtime whatever its card; ours what the node runs
            pick = (
                min(timed, key=lambda k: timed[k]["p99_ms"])
                if key == "monai_unet"
                else node_runtime
            )
            entry["runtime"] = pick
            entry.update(timed.get(pick, {}))
        report["gpu"] = _time_gpu(models, us, fluoro, frames, say)
    report.update(_headline(report["networks"]))
    for key in ("us_seg", "fluoro_seg", "track", "monai_unet"):
        report[f"gpu_{key}_p99_ms"] = report["gpu"].get("networks", {}).get(key, {}).get("p99_ms")
    report["machine"] = machine_info()
    return report


# -- models: shipped, or stand-ins written with a card ------------------------------------------


def _model(
    name: str, folder: Path, kind: str, modality: str, size: int, labels: dict[int, str]
) -> tuple[Path, str]:
    """The shipped card of ``name`` if there is one, else a stand-in's; and which it is."""
    shipped = card_path(name)
    if shipped.is_file():
        return shipped, f"shipped {name}"
    task = "tracking" if kind == "tracking" else "segmentation"
    net, what = _stand_in(kind, len(labels))
    try:
        return _write(folder, name, net, task, modality, size, labels), f"stand-in: {what}"
    except Exception:  # an architecture that does not trace: the small net still times the path
        net = _small_net(2 if task == "tracking" else 1, 3 if task == "tracking" else len(labels))
        what = "a small strided conv net (the trained architecture did not trace)"
        return _write(folder, name, net, task, modality, size, labels), f"stand-in: {what}"


def _stand_in(kind: str, classes: int) -> tuple[Any, str]:
    """An untrained net of the architecture the shipped one has, where its code is here."""
    import torch

    torch.manual_seed(0)
    if kind == "monai":
        from monai.networks.nets import UNet

        net = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=classes,
            channels=(16, 32, 64, 128),
            strides=(2, 2, 2),
        )
        return net, "MONAI UNet(16, 32, 64, 128), random weights"
    try:
        if kind == "tracking":
            from igtflow.perception.tracking.network import TrackNet  # type: ignore

            return TrackNet(), "TrackNet, untrained"
        from igtflow.perception.segmentation.nets import build_net  # type: ignore

        return build_net("fast", classes), "FastSeg, untrained"
    except Exception:  # the training code is not on this installation: a small U-Net-ish net
        return _small_net(2 if kind == "tracking" else 1, 3 if kind == "tracking" else classes), (
            "a small strided conv net (no trained architecture installed)"
        )


def _small_net(c_in: int, c_out: int) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(c_in, 16, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(32, c_out, 3, 1, 1),
        nn.Upsample(scale_factor=4, mode="bilinear"),
    )


def _write(
    folder: Path,
    name: str,
    net: Any,
    task: str,
    modality: str,
    size: int,
    labels: dict[int, str],
) -> Path:
    import torch

    net = net.eval()
    channels = 2 if task == "tracking" else 1
    weights = folder / f"{name}.pt"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, torch.zeros(1, channels, size, size))
        torch.jit.save(traced, str(weights))
    card = ModelCard(
        name=name,
        task=task,  # type: ignore[arg-type]
        architecture=type(net).__name__,
        runtime="auto",
        weights=weights.name,
        sha256=sha256_of(weights),
        input=InputSpec(modality=modality, height=size, width=size),  # type: ignore[arg-type]
        normalisation=Normalisation(scale=255.0, mean=0.5, std=0.25),
        labels=labels,
        confidence=Confidence(),
        notes="untrained stand-in for latency only",
    )
    path = folder / f"{name}.card.yaml"
    write_card(card, path)
    return path


# -- timing --------------------------------------------------------------------------------------


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    values = np.asarray(times_ms)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "max_ms": round(float(values.max()), 3),
    }


def _interleaved(
    runners: dict[tuple[str, str], Runner], frames: int, warm_up: int = 5
) -> dict[tuple[str, str], dict[str, float]]:
    """p50/p99/max of each runner, timed frame by frame in turn: on a shared machine whose
    load drifts, every network and baseline then sees the same drift and the ratios hold."""
    for run in runners.values():
        for index in range(warm_up):
            _prepare(run, index)
            run(index)
    times: dict[tuple[str, str], list[float]] = {name: [] for name in runners}
    for index in range(frames):
        for name, run in runners.items():
            _prepare(run, index)
            start = time.perf_counter()
            run(index)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: _percentiles(values) for name, values in times.items()}


def _prepare(run: Runner, index: int) -> None:
    """What a runner sets up for frame ``index`` outside the clock (a tracker's new key)."""
    if (prepare := getattr(run, "prepare", None)) is not None:
        prepare(index)


def _timed(run: Runner, frames: int, warm_up: int = 5) -> dict[str, float]:
    return _interleaved({("", ""): run}, frames, warm_up)[("", "")]


def _prepare_network(
    card: Path, source: str, images: list[np.ndarray]
) -> tuple[dict[str, Any], dict[str, Runner], str]:
    """The network under each runtime it can run in, and the node's whole step (frame in,
    labels or field out) as the node runs it; the report entry, the runners and the runtime
    the node picks (``auto``: the faster, timed as the node times it)."""
    node = Predictor(card, device="cpu", threads=1)
    spec, norm = node.card.input, node.card.normalisation
    entry: dict[str, Any] = {
        "model": source,
        "size": f"{spec.height}x{spec.width}",
        "card_runtime": node.card.runtime,
        "node_runtime": node.runtime,
        "runtimes": {},
    }
    tracking = node.card.task == "tracking"
    planes = [network_input(image, spec, norm) for image in images]

    def key_index(index: int) -> int:  # a key frame every 10 frames, as a tracker holds
        return index // KEY_EVERY * KEY_EVERY % len(planes)

    batches = [
        np.stack([planes[key_index(i)], planes[i % len(planes)]])[None]
        if tracking
        else planes[i % len(planes)][None, None]
        for i in range(len(planes) * 2)
    ]
    runners: dict[str, Runner] = {}
    for runtime in RUNTIMES:
        try:
            predictor = Predictor(card, device="cpu", threads=1, runtime=runtime)  # type: ignore[arg-type]
        except Exception as exc:  # e.g. an op ONNX Runtime lacks: say so, keep going
            entry["runtimes"][runtime] = {"error": str(exc).split("\n")[0][:200]}
            continue
        if predictor.keyed:
            runners[runtime] = KeyedRun(predictor, planes, key_index, Predictor.track)
            entry["keyed"] = True
            runners["key_encode"] = lambda i, p=predictor: p.set_key(planes[key_index(i)])
        else:
            runners[runtime] = lambda i, p=predictor: p(batches[i % len(batches)])
    ids = node.card.label_ids() if not tracking else []

    def track_step(predictor: Predictor, plane: np.ndarray) -> None:
        field_maps(predictor.track(plane)[0], predictor.card.confidence)

    def step(index: int) -> None:
        plane = network_input(images[index % len(images)], spec, norm)
        segmentation_maps(node(plane[None, None])[0], ids, node.card.confidence)

    if tracking:
        step = KeyedRun(node, planes, key_index, track_step, images, spec, norm)  # type: ignore[assignment]
    runners["node_step"] = step
    return entry, runners, node.runtime


def _prepare_dis(preset: str, images: list[np.ndarray]) -> tuple[dict[str, Any], Runner]:
    import cv2

    cv2.setNumThreads(1)
    flow = cv2.DISOpticalFlow_create(
        cv2.DISOPTICAL_FLOW_PRESET_FAST if preset == "fast" else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    )

    def run(index: int) -> None:
        key = images[index // KEY_EVERY * KEY_EVERY % len(images)]
        flow.calc(key, images[index % len(images)], None)

    entry = {
        "model": f"OpenCV {cv2.__version__} DIS preset {preset}",
        "size": "x".join(map(str, images[0].shape)),
        "runtime": "opencv",
    }
    return entry, run


def _headline(networks: dict[str, Any]) -> dict[str, Any]:
    """The JSON keys the README quotes, and the ratios the targets are set on."""
    p99 = {key: networks[key].get("p99_ms") for key in networks}
    keys = {
        f"{key}_p99_ms": p99.get(key)
        for key in ("us_seg", "monai_unet", "track", "dis_fast", "dis_medium", "fluoro_seg")
    }

    def ratio(a: str, b: str) -> float | None:
        return round(p99[a] / p99[b], 3) if p99.get(a) and p99.get(b) else None

    keys["us_seg_vs_monai_unet_p99"] = ratio("us_seg", "monai_unet")  # target <= 0.5
    keys["track_vs_dis_medium_p99"] = ratio("track", "dis_medium")  # target <= 1.5
    keys["fluoro_seg_vs_us_seg_p99"] = ratio("fluoro_seg", "us_seg")  # target <= 2
    keys["targets_met"] = {
        "us_seg_vs_monai_unet_p99": _met(keys["us_seg_vs_monai_unet_p99"], 0.5),
        "track_vs_dis_medium_p99": _met(keys["track_vs_dis_medium_p99"], 1.5),
        "fluoro_seg_vs_us_seg_p99": _met(keys["fluoro_seg_vs_us_seg_p99"], 2.0),
    }
    return keys


def _met(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _time_gpu(
    models: dict[str, tuple[Path, str]],
    us: list[np.ndarray],
    fluoro: list[np.ndarray],
    frames: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Each network on the GPU in fp16 (TorchScript), copies to and from the host included."""
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "note": "no CUDA GPU on this machine: GPU figures not run"}
    gpu: dict[str, Any] = {"available": True, "name": torch.cuda.get_device_name(0)}
    gpu["networks"] = {}
    for key, (card, _source) in models.items():
        say(f"{key}: CUDA fp16")
        predictor = Predictor(card, device="cuda", threads=1, runtime="torchscript")
        spec, norm = predictor.card.input, predictor.card.normalisation
        frames = fluoro if key.startswith("fluoro") else us
        planes = [network_input(f, spec, norm) for f in frames]
        if predictor.card.task == "tracking":
            batches = [np.stack([planes[0], p])[None] for p in planes]
        else:
            batches = [p[None, None] for p in planes]
        timed = _timed(lambda i, p=predictor, b=batches: p(b[i % len(b)]), frames, warm_up=20)
        gpu["networks"][key] = {"size": f"{spec.height}x{spec.width}", "fp16": True, **timed}
    return gpu


# -- frames -------------------------------------------------------------------------------------


def _us_frames() -> list[np.ndarray]:
    from igtflow.stream.phantom.ultrasound import UltrasoundConfig, UltrasoundSim

    sim = UltrasoundSim(SEED, UltrasoundConfig())
    return [sim.render(i, truth=False).image.copy() for i in range(DISTINCT_FRAMES)]


def _fluoro_frames() -> list[np.ndarray]:
    from igtflow.stream.phantom.fluoro import FluoroSim

    sim = FluoroSim(SEED)
    return [sim.render(i, truth=False).image.copy() for i in range(DISTINCT_FRAMES // 2)]


# -- output ---------------------------------------------------------------------------------------

ROWS = (
    ("us_seg", "ours: US segmentation"),
    ("monai_unet", "MONAI UNet baseline"),
    ("fluoro_seg", "ours: fluoro segmentation"),
    ("fluoro_seg_dense", "ours: fluoro, dense (more accurate)"),
    ("track", "ours: tracking"),
    ("dis_fast", "DIS fast baseline"),
    ("dis_medium", "DIS medium baseline"),
)


def _cells(entry: dict[str, Any]) -> list[str]:
    def three(t: dict[str, Any]) -> str:
        if "error" in t:
            return "n/a"
        return f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f} / {t['max_ms']:.2f}"

    runtimes = entry.get("runtimes", {})
    return [
        entry.get("size", ""),
        three(runtimes["torchscript"]) if "torchscript" in runtimes else "",
        three(runtimes["onnx"]) if "onnx" in runtimes else "",
        three(entry) if "p99_ms" in entry and not runtimes else "",
        entry.get("runtime", ""),
        three(entry["node_step"]) if "node_step" in entry else "",
        entry.get("model", ""),
    ]


HEADER = (
    "network",
    "size",
    "TorchScript p50/p99/max ms",
    "ONNX Runtime p50/p99/max ms",
    "OpenCV p50/p99/max ms",
    "used",
    "node step p50/p99/max ms",
    "weights",
)


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    met = report["targets_met"]

    def line(key: str, what: str, limit: float) -> str:
        value = report[key]
        verdict = {True: "met", False: "NOT met", None: "not measured"}[met[key]]
        shown = "n/a" if value is None else f"{value:.2f}×"
        return f"{what}: {shown} (target ≤ {limit}×, {verdict})"

    lines = [
        line("us_seg_vs_monai_unet_p99", "US segmentation p99 vs MONAI UNet p99", 0.5),
        line("track_vs_dis_medium_p99", "tracking p99 vs DIS medium p99", 1.5),
        line("fluoro_seg_vs_us_seg_p99", "fluoro segmentation 512² p99 vs US 256² p99", 2.0),
    ]
    track = report["networks"].get("track", {})
    if track.get("keyed") and "key_encode" in track:
        encode = track["key_encode"]
        lines.append(
            f"tracking runs each frame against a kept key frame (a new key every {KEY_EVERY} "
            "frames here, as DIS gets it); encoding a new key, done after that frame's output "
            f"has gone: p50/p99 {encode['p50_ms']:.2f}/{encode['p99_ms']:.2f} ms"
        )
    return lines


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table: one row per network, each runtime's p50/p99/max, then the ratios."""
    from igtflow.machine import describe

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for key, name in ROWS:
        if key in report["networks"]:
            lines.append("| " + " | ".join([name, *_cells(report["networks"][key])]) + " |")
    lines.append("")
    lines += [f"- {text}" for text in _ratio_lines(report)]
    lines.append(f"- {report['frames']} frames, batch 1, one thread; {describe(report['machine'])}")
    lines.append(f"- GPU: {_gpu_line(report['gpu'])}")
    return "\n".join(lines)


def print_report(report: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from igtflow.machine import describe

    table = Table(title="igtflow bench perception", title_justify="left")
    for column in HEADER:
        table.add_column(column, justify="left" if column in ("network", "weights") else "right")
    for key, name in ROWS:
        if key in report["networks"]:
            table.add_row(name, *_cells(report["networks"][key]))
    console.print(table)
    for text in _ratio_lines(report):
        console.print(text, highlight=False)
    console.print(f"GPU: {_gpu_line(report['gpu'])}", highlight=False)
    console.print(describe(report["machine"]), highlight=False)


def _gpu_line(gpu: dict[str, Any]) -> str:
    if not gpu.get("available"):
        return str(gpu.get("note", "not run"))
    timed = ", ".join(
        f"{key} {entry['size']} p50/p99/max {entry['p50_ms']:.2f}/{entry['p99_ms']:.2f}/"
        f"{entry['max_ms']:.2f} ms"
        for key, entry in gpu.get("networks", {}).items()
    )
    return f"{gpu['name']}, fp16 TorchScript, batch 1: {timed}"
