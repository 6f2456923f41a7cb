"""A user's own labelled frames for fine-tuning: a folder of image/label pairs, or a recording.

A phantom is not a patient, so ``igtflow train … --data`` fine-tunes on frames the user labelled:

- a folder of ``NAME_image.png`` + ``NAME_label.png`` pairs (or ``.nrrd``), the label image
  holding the phantom's label ids (0 background, 1 organ, 2 vessel, 3 lesion, 4 device); a fixed
  fifth of the names (by hash, so the split never changes) is held out to score on;
- a recording (``.mcap``) with an image topic and a label topic (an ``Image`` of modality
  ``LABELS``, e.g. labels drawn in Slicer and sent back, or the phantom's ``truth_labels``),
  paired by stamp. Neighbouring frames of a recording look alike, so a random split would score
  on frames the net has all but seen: the last fifth of the pairs in time is held out instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from igtflow.perception.segmentation.data import FrameSet, task_spec, to_classes

MAX_RECORDED_PAIRS = 2000  # evenly thinned beyond this: the pool is held in memory
HELD_OUT_SHARE = 0.2
Sample = tuple[np.ndarray, np.ndarray]  # (image, label ids), both H×W


def read_gray(path: Path) -> np.ndarray:
    """A 2D image from PNG (or any format OpenCV reads) or NRRD, as rows × columns."""
    if path.suffix.lower() == ".nrrd":
        import nrrd

        data, _ = nrrd.read(str(path))
        data = np.squeeze(np.asarray(data))
        if data.ndim != 2:
            raise ValueError(f"{path}: a 2D image is expected, got shape {data.shape}")
        return data.T  # NRRD is stored x-fastest: (x, y) → rows, columns
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def user_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image, label)`` for each ``NAME_image.{png,nrrd}`` with its ``NAME_label.*``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of NAME_image.png / NAME_label.png pairs")
    pairs = []
    for image in sorted(folder.iterdir()):
        stem, suffix = image.stem, image.suffix.lower()
        if not stem.endswith("_image") or suffix not in (".png", ".nrrd"):
            continue
        name = stem[: -len("_image")]
        label = next(
            (folder / f"{name}_label{ext}" for ext in (".png", ".nrrd")
             if (folder / f"{name}_label{ext}").is_file()),
            None,
        )  # fmt: skip
        if label is None:
            raise ValueError(f"{image}: no {name}_label.png or {name}_label.nrrd beside it")
        pairs.append((name, image, label))
    if len(pairs) < 2:
        raise ValueError(f"{folder}: needs at least 2 NAME_image.png + NAME_label.png pairs")
    return pairs


def is_held_out(name: str) -> bool:
    """A fixed fifth of the user's pairs, chosen by name, so the split never changes."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % 5 == 0


def folder_samples(folder: Path) -> tuple[list[Sample], list[bool]]:
    """The folder's pairs read, and which of them are held out."""
    pairs = user_pairs(folder)
    held = [is_held_out(name) for name, _, _ in pairs]
    if not any(held):  # a small folder still keeps one pair back to score on
        held[-1] = True
    if all(held):
        held[0] = False
    return [(read_gray(image), read_gray(label)) for _, image, label in pairs], held


def _image_topics(path: Path) -> Iterator[tuple[str, object]]:
    from igtflow.stream.messages import Image
    from igtflow.stream.recording import read_messages

    for topic, _, message in read_messages(path):
        if isinstance(message, Image) and message.data.ndim == 2:
            yield topic, message


def recording_samples(
    path: Path,
    modality: str,
    image_topic: str | None = None,
    label_topic: str | None = None,
) -> tuple[list[Sample], list[bool]]:
    """Image and label frames of a recording paired by stamp, and which are held out (the
    last fifth in time). Topics are found by modality when not given: the one image topic of
    ``modality`` and the one ``LABELS`` topic; ValueError naming the choices otherwise."""
    images: dict[str, dict[int, np.ndarray]] = {}
    modalities: dict[str, str] = {}
    for topic, message in _image_topics(path):
        images.setdefault(topic, {})[message.stamp_ns] = message.data  # type: ignore[attr-defined]
        modalities[topic] = message.modality  # type: ignore[attr-defined]
    image_topic = image_topic or _only(path, modalities, modality, "image", "--image-topic")
    label_topic = label_topic or _only(path, modalities, "LABELS", "label", "--label-topic")
    for topic in (image_topic, label_topic):
        if topic not in images:
            known = ", ".join(sorted(images)) or "none"
            raise ValueError(f"{path}: no 2D image topic {topic!r} (image topics: {known})")
    stamps = sorted(set(images[image_topic]) & set(images[label_topic]))
    if len(stamps) < 2:
        raise ValueError(
            f"{path}: {len(stamps)} frame(s) of {image_topic} have a label on {label_topic} "
            "with the same stamp; fine-tuning needs at least 2"
        )
    if len(stamps) > MAX_RECORDED_PAIRS:
        keep = np.linspace(0, len(stamps) - 1, MAX_RECORDED_PAIRS).round().astype(int)
        stamps = [stamps[i] for i in np.unique(keep)]
    first_held = min(len(stamps) - 1, round(len(stamps) * (1 - HELD_OUT_SHARE)))
    samples = [(images[image_topic][s], images[label_topic][s]) for s in stamps]
    return samples, [i >= first_held for i in range(len(stamps))]


def _only(path: Path, modalities: dict[str, str], modality: str, what: str, option: str) -> str:
    found = sorted(t for t, m in modalities.items() if m == modality)
    if len(found) == 1:
        return found[0]
    listed = ", ".join(f"{t} ({m})" for t, m in sorted(modalities.items())) or "none"
    many = "more than one" if found else "no"
    raise ValueError(
        f"{path}: {many} {modality} {what} topic; name it with {option} (image topics: {listed})"
    )


def user_frames(
    task: str, source: Path, image_topic: str | None = None, label_topic: str | None = None
) -> tuple[FrameSet, FrameSet]:
    """The user's labelled frames (a folder of pairs or a ``.mcap`` recording) resized to the
    task's frame, split into (training, held-out)."""
    spec = task_spec(task)
    source = Path(source)
    if source.suffix.lower() == ".mcap":
        samples, held = recording_samples(source, spec.modality, image_topic, label_topic)
    elif image_topic or label_topic:
        raise ValueError("--image-topic and --label-topic name topics of a recording (.mcap)")
    else:
        samples, held = folder_samples(source)
    sets = []
    size = (spec.size, spec.size)
    for want in (False, True):
        images, targets = [], []
        for (image, labels), h in zip(samples, held, strict=True):
            if h != want:
                continue
            if image.dtype != np.uint8:
                image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX)
                image = image.astype(np.uint8)
            images.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
            labels = cv2.resize(labels.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
            targets.append(to_classes(task, labels))
        n = len(images)
        sets.append(
            FrameSet(
                np.stack(images),
                np.stack(targets),
                np.full(n, -1),
                np.full((n, 2), np.nan),
                np.full((n, 2), np.nan),
            )
        )
    return sets[0], sets[1]
