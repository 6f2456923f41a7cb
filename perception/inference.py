"""Running a model from its card: one frame at a time, on the CPU or a CUDA GPU.

A :class:`Predictor` is made from a shipped name (``us-seg`` → the card
``perception/weights/us-seg.card.yaml``) or a card path, loads the weights with the runtime the
card names and runs batch 1 with the thread budget it is given (one intra-op thread per network:
a graph on 2 cores runs two networks and a source without oversubscribing).

Runtimes. ``torchscript`` runs the weights with PyTorch (frozen: BatchNorm folded into the
convolutions); ``onnx`` with ONNX Runtime; ``auto`` (TorchScript weights) exports them to ONNX in
memory, checks that both agree, times both on the card's frame size and keeps the faster.
Why measured rather than fixed: on the 2-core VM, one thread, batch 1, p50/p99 in ms —

    FastSeg 256² (depthwise, ~100k weights)  TorchScript 8.5/11.2   ONNX Runtime 4.1/5.9
    FastSeg 512²                             TorchScript 57/67      ONNX Runtime 25/35
    MONAI UNet 256² (dense)                  TorchScript 14.1/21.5  ONNX Runtime 13.6/20.8
    (TorchScript frozen; MONAI's U-Net unfrozen: 27.9/42.6)

ONNX Runtime wins clearly on small depthwise nets (PyTorch's per-op dispatch costs as much as
the tiny convolutions there) and ties on a dense one, and some models do not export (the
scripted tracker: ``interpolate`` by a scale factor in TorchScript) and stay in PyTorch; so
each model is timed on the machine that runs it (``Predictor.timings``) and
``igtflow bench perception`` shows both. A tracker whose TorchScript exports ``key_features``
and ``track`` runs keyed: the key frame is encoded once (:meth:`Predictor.set_key`), each frame
after it alone (:meth:`Predictor.track`). OpenVINO was not tried:
it is not a locked dependency. On CUDA the TorchScript weights run in fp16 (the ONNX Runtime
here is the CPU build).
"""

from __future__ import annotations

import io
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from igtflow.perception.card import CARD_SUFFIX, CardError, ModelCard, load_card

Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["torchscript", "onnx", "auto"]
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Outputs of the two runtimes must agree this closely (relative to the output's range) before
# the faster one is trusted with the frames.
AGREEMENT = 1e-3
# A tracker exporting these encodes its key frame once and then each frame alone.
KEYED_METHODS = ("key_features", "track")


class DeviceError(ValueError):
    """A device that this machine does not have (``device: cuda`` without a GPU)."""


def card_path(model: str | Path) -> Path:
    """Where the card of ``model`` is: a bare name is shipped, anything else is a path."""
    text = str(model)
    if isinstance(model, str) and "/" not in text and os.sep not in text and "." not in text:
        return WEIGHTS_DIR / f"{text}{CARD_SUFFIX}"
    return Path(text).expanduser()


def shipped_models() -> list[str]:
    """Names of the models whose cards ship in ``perception/weights``."""
    return sorted(p.name[: -len(CARD_SUFFIX)] for p in WEIGHTS_DIR.glob(f"*{CARD_SUFFIX}"))


def load_model_card(model: str | Path, check_weights: bool = True) -> tuple[ModelCard, Path]:
    """The card of ``model`` (name or path) and its weights' path; CardError naming the fix."""
    path = card_path(model)
    if not path.is_file() and path.parent == WEIGHTS_DIR:
        shipped = ", ".join(shipped_models()) or "none yet"
        raise CardError(
            f"no shipped model {str(model)!r} (shipped: {shipped}); "
            "give a shipped name or the path of a model card (.card.yaml)"
        )
    return load_card(path, check_weights=check_weights)


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine, or None (imports torch only for cuda)."""
    if device != "cuda":
        return None
    import torch

    if not torch.cuda.is_available():
        return "device is cuda, but this machine has no CUDA GPU; use device: auto or cpu"
    return None


def resolve_device(device: str) -> str:
    """``auto`` → cuda when a GPU is there, else cpu; ``cuda`` without one → DeviceError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if (problem := device_problem(device)) is not None:
        raise DeviceError(problem)
    if device not in ("cpu", "cuda"):
        raise DeviceError(f"device {device!r} is not auto, cpu or cuda")
    return device


def onnx_runs_on_cuda() -> bool:
    """Whether this ONNX Runtime build can run a model on a CUDA GPU."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def set_thread_budget(threads: int) -> None:
    """Torch's pools to ``threads`` intra-op and one inter-op thread (once per process)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already ran: keep what is there
        pass


def input_channels(card: ModelCard) -> int:
    """Channels of the network input: a frame, or key frame and current frame for a tracker."""
    return card.input.channels * (2 if card.task == "tracking" else 1)


class Predictor:
    """A model ready to run: ``predictor(batch)`` maps float32 1×C×H×W to the network output.

    ``runtime`` overrides the card's (the bench tries each); ``threads`` is the intra-op budget.
    ``timed=False`` makes ``auto`` keep TorchScript without timing: what runs must not depend on
    the machine's speed in a lockstep replay, which gives the same result every time.
    After construction, ``runtime`` and ``device`` say what actually runs and ``timings`` the
    median milliseconds of each runtime tried (``auto`` only).
    """

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        threads: int = 1,
        runtime: Runtime | None = None,
        timed: bool = True,
    ) -> None:
        self.card, self.weights = load_model_card(model)
        self.device = resolve_device(device)
        if device == "auto" and self.card.runtime == "onnx" and not onnx_runs_on_cuda():
            self.device = "cpu"  # an ONNX model on a GPU machine whose ONNX Runtime is CPU-only
        self.threads = max(1, int(threads))
        set_thread_budget(self.threads)
        self.shape = (1, input_channels(self.card), self.card.input.height, self.card.input.width)
        self.timings: dict[str, float] = {}
        self.fp16 = False
        self.log_note = ""  # why auto kept TorchScript without timing ONNX Runtime
        self._keyed: Any = None  # a TorchScript tracker with key_features() and track()
        self._key_plane: np.ndarray | None = None
        self._key_features: Any = None
        wanted = runtime or self.card.runtime
        self._run: Any
        if self.card.runtime == "onnx":
            if wanted == "torchscript":
                raise CardError(f"{self.weights}: an ONNX model cannot run as TorchScript")
            self._run, self.runtime = self._onnx_runner(self.weights.read_bytes()), "onnx"
        elif wanted == "torchscript" or (wanted == "auto" and (self.device == "cuda" or not timed)):
            self._run, self.runtime = self._torchscript_runner(), "torchscript"
        elif wanted == "onnx":  # TorchScript weights exported for ONNX Runtime
            self._run, self.runtime = self._exported_onnx_runner(), "onnx"
        else:
            self._pick_faster()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(batch, dtype=np.float32))

    def warm_up(self, runs: int = 3) -> np.ndarray:
        """Run a few frames so the first real one is not the slow one; returns the last output
        after checking its shape against the card (a model that does not fit it is refused)."""
        rng = np.random.default_rng(0)
        out = None
        for _ in range(max(1, runs)):
            out = self(rng.standard_normal(self.shape, dtype=np.float32))
        assert out is not None
        self._check_output(out)
        if self.keyed:  # the two halves a tracker runs apart, warmed up too
            self.set_key(rng.standard_normal(self.shape[2:], dtype=np.float32))
            self.track(rng.standard_normal(self.shape[2:], dtype=np.float32))
            self._key_plane = self._key_features = None
        return out

    # -- a tracker's key frame, encoded once ----------------------------------------------------

    @property
    def keyed(self) -> bool:
        """Whether a key frame is encoded once (:meth:`set_key`) and each later frame alone
        (:meth:`track`): a TorchScript tracker exporting ``key_features`` and ``track``. A
        tracker holds one key for many frames, so this halves its encoder's work per frame."""
        return self._keyed is not None and self.runtime == "torchscript"

    def set_key(self, plane: np.ndarray) -> None:
        """Make ``plane`` (normalised H×W) the key frame that :meth:`track` compares with."""
        self._key_plane = np.ascontiguousarray(plane, dtype=np.float32)
        self._key_features = None
        if self.keyed:
            import torch

            with torch.inference_mode():
                self._key_features = self._keyed.key_features(self._tensor(self._key_plane))

    def track(self, plane: np.ndarray) -> np.ndarray:
        """The tracker's 1×3×H×W output from the key frame to ``plane`` (normalised H×W)."""
        if self._key_plane is None:
            raise RuntimeError("track() before set_key(): there is no key frame")
        if self._key_features is None:  # a model that takes the pair only
            return self(np.stack([self._key_plane, plane])[None])
        import torch

        with torch.inference_mode():
            out = self._keyed.track(self._key_features, self._tensor(plane))
        out = out.float().cpu().numpy() if self.device == "cuda" else out.numpy()
        return full_size(out, self.shape[2], self.shape[3])

    def _tensor(self, plane: np.ndarray) -> Any:
        """A normalised H×W plane as the 1×1×H×W tensor the TorchScript module takes."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32)[None, None])
        return x.to("cuda", non_blocking=True).half() if self.device == "cuda" else x

    # -- runtimes -----------------------------------------------------------------------------

    def _torchscript_module(self, freeze: bool = True) -> Any:
        import torch

        try:
            with warnings.catch_warnings():  # TorchScript is deprecated; it is still our format
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(str(self.weights), map_location=self.device)
        except Exception as exc:  # a corrupt or non-TorchScript file: say which and why
            raise CardError(
                f"{self.weights}: not a TorchScript model the card can run ({exc}); "
                "save it with torch.jit.save, or set runtime: onnx for an ONNX file"
            ) from None
        module = module.eval()
        if self.device == "cuda":
            module = module.half()
            self.fp16 = True
        if freeze:
            try:  # folds BatchNorm and constants: MONAI's U-Net runs 2× faster frozen
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    keep = [name for name in KEYED_METHODS if hasattr(module, name)]
                    module = torch.jit.freeze(module, preserved_attrs=keep)
            except Exception:  # a module freezing cannot handle still runs as it is
                pass
        return module

    def _torchscript_runner(self) -> Any:
        import torch

        module = self._torchscript_module()
        if self.card.task == "tracking" and all(hasattr(module, name) for name in KEYED_METHODS):
            self._keyed = module
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True  # one frame size: pick the fastest kernels once

            def run_cuda(batch: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    x = torch.from_numpy(batch).to("cuda", non_blocking=True).half()
                    return module(x).float().cpu().numpy()

            return run_cuda

        def run_cpu(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(batch)).numpy()

        return run_cpu

    def _onnx_runner(self, model_bytes: bytes) -> Any:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if self.device == "cuda":
            if not onnx_runs_on_cuda():
                raise DeviceError(
                    "device is cuda, but this ONNX Runtime has no CUDA provider; use device: cpu, "
                    "or a TorchScript model (runtime: torchscript) for the GPU"
                )
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(model_bytes, options, providers=providers)
        except Exception as exc:
            raise CardError(
                f"{self.weights}: not an ONNX model ONNX Runtime can load ({exc})"
            ) from None
        name = session.get_inputs()[0].name

        def run(batch: np.ndarray) -> np.ndarray:
            return session.run(None, {name: batch})[0]

        return run

    def _exported_onnx_runner(self) -> Any:
        """The TorchScript weights exported to ONNX in memory, run by ONNX Runtime after their
        output is checked against TorchScript's; CardError when an op cannot be exported or the
        two disagree."""
        import torch

        module = self._torchscript_module(freeze=False)
        if self.fp16:
            module = module.float()
        example = torch.from_numpy(np.random.default_rng(1).standard_normal(self.shape, np.float32))
        buffer = io.BytesIO()
        try:
            # no_grad: a module that ran under inference_mode holds inference tensors, which
            # an export that records autograd refuses
            with warnings.catch_warnings(), _quiet_stdout(), torch.no_grad():
                warnings.simplefilter("ignore")  # the exporter's deprecation notices
                torch.onnx.export(
                    module,
                    (example,),
                    buffer,
                    input_names=["image"],
                    output_names=["output"],
                    dynamo=False,
                    opset_version=17,
                )
            run = self._onnx_runner(buffer.getvalue())
            candidate = run(example.numpy())
        except Exception as exc:
            # The exporter's message carries the whole IR graph: its first line says the why.
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CardError(
                f"{self.weights}: no ONNX Runtime version of this model ({why})"
            ) from None
        with torch.inference_mode():
            reference = module(example).numpy()
        scale = 1.0 + float(np.abs(reference).max())
        if (
            reference.shape != candidate.shape
            or np.abs(reference - candidate).max() > AGREEMENT * scale
        ):
            raise CardError(f"{self.weights}: its ONNX export disagrees with TorchScript")
        return run

    def _pick_faster(self) -> None:
        """``auto``: TorchScript and its in-memory ONNX export, the faster kept; TorchScript
        alone where the export fails or disagrees (an op ONNX Runtime lacks)."""
        torchscript = self._torchscript_runner()
        self._run, self.runtime = torchscript, "torchscript"
        try:
            onnx = self._exported_onnx_runner()
        except CardError as exc:
            self.log_note = str(exc)
            return
        batch = np.random.default_rng(2).standard_normal(self.shape, np.float32)
        if self.keyed:  # what a tracker runs per frame: the current frame against a kept key
            self.set_key(batch[0, 0])
            torchscript = lambda pair: self.track(pair[0, 1])  # noqa: E731
        self.timings = {
            "torchscript": median_ms(torchscript, batch),
            "onnx": median_ms(onnx, batch),
        }
        self._key_plane = self._key_features = None
        if self.timings["onnx"] < self.timings["torchscript"]:
            self._run, self.runtime = onnx, "onnx"

    def _check_output(self, out: np.ndarray) -> None:
        height, width = self.card.input.height, self.card.input.width
        classes = len(self.card.labels) if self.card.task == "segmentation" else 3
        expected = (1, classes, height, width)
        if tuple(out.shape) != expected:
            what = (
                f"{classes} classes" if self.card.task == "segmentation" else "dx, dy, confidence"
            )
            raise CardError(
                f"{self.weights}: the network gives {tuple(out.shape)}, its card promises "
                f"{expected} ({what} at the input size); fix the card or the model"
            )


def full_size(output: np.ndarray, height: int, width: int) -> np.ndarray:
    """A tracker's 1×3×h×w output (dx, dy in pixels of h×w; confidence logit) brought to
    height×width, bilinear with half-pixel centres as ``interpolate(align_corners=False)``, the
    displacements scaled to the new pixels."""
    import cv2

    h, w = output.shape[2], output.shape[3]
    if (h, w) == (height, width):
        return output
    planes = cv2.resize(
        np.ascontiguousarray(output[0].transpose(1, 2, 0)),
        (width, height),
        interpolation=cv2.INTER_LINEAR,
    )
    planes[..., 0] *= width / w
    planes[..., 1] *= height / h
    return planes.transpose(2, 0, 1)[None]


def median_ms(run: Any, batch: np.ndarray, runs: int = 15) -> float:
    """Median wall time of ``run(batch)`` in ms, after two warm-up calls."""
    for _ in range(2):
        run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Standard output silenced at the file-descriptor level: when an op cannot be exported the
    ONNX exporter prints the whole IR graph there (from C++), which would corrupt ``--json``."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
