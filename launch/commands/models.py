"""``igtflow train …`` and ``igtflow eval …``: make the networks, and score them on held-out seeds.

The work is done in ``igtflow.perception`` (segmentation and tracking); these commands only parse
options, refuse what cannot work before anything starts, and print the figures.
"""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from igtflow.launch.commands.options import JsonOpt
from igtflow.launch.commands.terminal import out, print_error
from igtflow.report import print_json

HELD_OUT = "1001-1010"

SeedsOpt = Annotated[
    str, typer.Option(help="held-out phantom seeds, A-B (training uses seeds below 1000)")
]

eval_app = typer.Typer(help="Score the networks and registration on held-out phantom seeds.")


class Task(str, Enum):
    us_seg = "us-seg"
    fluoro_seg = "fluoro-seg"
    tracker = "tracker"


class Arch(str, Enum):
    fast = "fast"
    fast_lite = "fast-lite"
    monai_unet = "monai-unet"


def train(
    task: Annotated[Task, typer.Argument(help="which network", show_default=False)],
    arch: Annotated[
        Arch,
        typer.Option(
            help="fast (ours), fast-lite (ours, for 512² fluoro) or monai-unet "
            "(the baseline, same recipe)"
        ),
    ] = Arch.fast,
    steps: Annotated[int | None, typer.Option(min=1, help="training steps (batches)")] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="folder for NAME.pt and NAME.card.yaml")
    ] = Path("models"),
    data: Annotated[
        Path | None,
        typer.Option(
            help="fine-tune on your labelled frames: a folder of NAME_image.png + NAME_label.png "
            "pairs (or .nrrd), or a recording (.mcap) with an image and a label topic; labels "
            "in the phantom's ids; phantom frames are mixed in"
        ),
    ] = None,
    image_topic: Annotated[
        str | None,
        typer.Option(help="with a recording: the image topic (default: the one of the modality)"),
    ] = None,
    label_topic: Annotated[
        str | None,
        typer.Option(help="with a recording: the label topic (default: the one LABELS topic)"),
    ] = None,
    init: Annotated[Path | None, typer.Option(help="start from this model card's weights")] = None,
    seed: Annotated[int, typer.Option(help="training seed (phantom seeds stay below 1000)")] = 0,
) -> None:
    """Train a network on the phantom (seeds below 1000) and write its weights and model card.

    With --data, fine-tune a segmentation network on your own labelled frames and report the
    same metrics on their held-out fifth. A progress bar shows the live loss; the card records
    the recipe, seeds, metrics and the weights' SHA-256.
    """
    recording = data is not None and data.suffix.lower() == ".mcap"
    if data is not None and not (data.is_dir() or (recording and data.is_file())):
        print_error(
            f"{data}: not a folder of NAME_image.png + NAME_label.png pairs nor a recording (.mcap)"
        )
        raise typer.Exit(2)
    if (image_topic or label_topic) and not recording:
        print_error("--image-topic and --label-topic name topics of a recording given as --data")
        raise typer.Exit(2)
    if init is not None and not init.is_file():
        print_error(f"{init}: no such model card")
        raise typer.Exit(2)
    try:
        if task is Task.tracker:
            if arch is not Arch.fast or data is not None or init is not None:
                print_error("tracker: --arch, --data and --init apply to segmentation only")
                raise typer.Exit(2)
            from igtflow.perception.tracking.commands import train as train_tracker

            kwargs: dict[str, Any] = {"out": out_dir, "seed": seed}
            weights = train_tracker(steps=steps, **kwargs) if steps else train_tracker(**kwargs)
            out.print(f"wrote {weights} and its card", highlight=False)
            return
        from igtflow.perception.commands import train as train_segmentation

        kwargs = {"arch": arch.value, "out": out_dir, "data": data, "init": init, "seed": seed}
        kwargs.update(image_topic=image_topic, label_topic=label_topic)
        if steps:
            kwargs["steps"] = steps
        train_segmentation(task.value, **kwargs)
    except (OSError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(1) from None


@eval_app.command("perception")
def eval_perception(
    seeds: SeedsOpt = HELD_OUT,
    frames_per_seed: Annotated[int, typer.Option(min=1, help="segmentation frames per seed")] = 6,
    json_: JsonOpt = False,
) -> None:
    """Score the shipped networks on held-out seeds: Dice and HD95 per label, catheter tip error,
    tracking target error beside OpenCV DIS on the same frames, and the confidence's calibration
    error. Keys: us_dice, lesion_dice, monai_unet_dice, catheter_dice, catheter_tip_mm,
    track_median_mm, dis_median_mm, calibration_error."""
    _check_held_out(seeds)
    from igtflow.perception.commands import eval_segmentation
    from igtflow.perception.tracking.commands import eval_tracking

    segmentation = eval_segmentation(seeds, frames_per_seed, quiet=json_)
    tracking = eval_tracking(seeds=seeds, quiet=json_)
    result = {
        **{key: value for key, value in segmentation.items() if key != "networks"},
        "track_median_mm": tracking.get("track_median_mm", math.nan),
        "dis_median_mm": tracking.get("dis_median_mm", math.nan),
        "segmentation": segmentation.get("networks", {}),
        "tracking": tracking,
    }
    if json_:
        print_json(result)


@eval_app.command("registration")
def eval_registration(
    seeds: SeedsOpt = HELD_OUT,
    frames: Annotated[
        int, typer.Option(min=10, help="frames per seed (ultrasound sweep, fluoroscopy run)")
    ] = 120,
    fluoro: Annotated[
        bool, typer.Option(help="also score fluoroscopy 2D/3D registration (about 15 s a seed)")
    ] = True,
    json_: JsonOpt = False,
) -> None:
    """Score registration on held-out seeds. Ultrasound: a probe sweeps the breathing,
    deforming phantom; its segmented contours are lifted to 3D and registered to the undeformed
    preoperative organ and vessels from a 10 mm / 10° misalignment, rigidly, then bent by the
    deformable update (both scored in the same run). Fluoroscopy: the model's
    outlines are fitted to the silhouette and vessels of each frame under the C-arm geometry,
    tracked from the same misalignment. Prints target registration error (median, 95th
    percentile), the capture range, the share of updates valid on good input, the rate of
    hopeless inputs (hundreds: no contour, noise, shuffled labels, another patient) called valid
    and the time per update. Keys: us_tre_median_mm, us_tre_p95_mm (deformable),
    us_rigid_tre_median_mm, us_rigid_tre_p95_mm, deform_ms, capture_range_mm, valid_fraction,
    valid_after_first_fraction, false_valid_rate, update_ms;
    fluoro_projected_mm, fluoro_tre_mm, fluoro_out_of_plane_mm, fluoro_out_of_plane_sd_mm,
    fluoro_hz, fluoro_valid_fraction, fluoro_capture_mm, fluoro_false_valid_rate."""
    _check_held_out(seeds)
    from igtflow.registration.evaluate import eval_registration as run

    result = run(seeds=seeds, frames=frames)
    if fluoro:
        from igtflow.registration.evaluate_fluoro import eval_fluoro, eval_fluoro_network

        result.update(eval_fluoro(seeds=seeds, frames=frames))
        result.update(eval_fluoro_network(seeds=seeds, frames=frames))
    if json_:
        print_json(result)
        return
    for key, value in result.items():
        if not isinstance(value, dict | list):
            out.print(f"{key}: {value}", highlight=False)


def _check_held_out(seeds: str) -> None:
    """Exit 2 on a range that is not one or that reaches into the training seeds."""
    first, _ = _seed_range(seeds)
    if first < 1000:
        print_error(f"--seeds {seeds}: seeds below 1000 are training seeds; score on 1000 and up")
        raise typer.Exit(2)


def _seed_range(text: str) -> tuple[int, int]:
    try:
        first, _, last = text.partition("-")
        lo, hi = int(first), int(last or first)
    except ValueError:
        print_error(f"--seeds {text!r}: give a range A-B of integers, e.g. {HELD_OUT}")
        raise typer.Exit(2) from None
    if hi < lo:
        print_error(f"--seeds {text!r}: the range is empty ({hi} < {lo})")
        raise typer.Exit(2)
    return lo, hi


@eval_app.command("replay")
def eval_replay(
    recording: Annotated[
        Path | None,
        typer.Argument(help="recording with truth (default: the US sample)", show_default=False),
    ] = None,
    recordings: Annotated[
        Path | None,
        typer.Option(
            help="score every recording (*.mcap) in this folder instead, in parallel on Ray, "
            "into one table",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="with --recordings: replays at once on a local Ray instance, one core and one "
            "thread per library each  [default: the CPU count]",
            show_default=False,
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="with --recordings: run on this Ray cluster instead of a local instance: its "
            "head's HOST:6379, or auto on one of its nodes; its CPUs decide how many run at once, "
            "and every node needs igtflow installed and the recordings at the same path",
            show_default=False,
        ),
    ] = None,
    graph: Annotated[
        Path | None,
        typer.Option(help="graph whose nodes run downstream (default: launch/graphs/replay-eval)"),
    ] = None,
    log_dir: Annotated[
        Path | None,
        typer.Option(
            help="folder for the logs and the scored recording (with --recordings, one "
            "subfolder per recording)"
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Play a recording through the networks in lockstep and score what they made against the
    truth it carries: Dice per label, tracked target error, valid fraction of estimates. Two runs
    give the same numbers (keys: dice, target_error_mm, valid_fraction).

    With --recordings DIR, every recording in DIR is scored the same way, one Ray task each,
    --workers at once: a progress bar while they run, then one table row per recording with the
    same scores it gets alone. A recording that cannot be scored (damaged, not one the graph
    fits, a node that failed) is a failed row with its reason; the others go on, and the exit
    code is 1. Ctrl-C stops the replays still running and prints the rows already in (exit
    130). JSON keys: recordings, ok, failed, workers, ray_start_s, eval_s, interrupted, rows
    (each: recording, ok, reason, frames, dice, target_error_mm, valid_fraction, seconds,
    log_dir).
    Example: `igtflow eval replay --recordings cases/ --workers 4 --json > scores.json`"""
    import tempfile

    from igtflow.launch.replay_eval import replay_eval
    from igtflow.stream.recording_scan import RecordingError

    try:
        text = graph.read_text() if graph is not None else None
    except OSError as exc:
        print_error(f"{graph}: cannot read the graph: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    if recordings is not None:
        if recording is not None:
            print_error(
                f"give one recording ({recording}) or a folder (--recordings {recordings}), "
                "not both"
            )
            raise typer.Exit(2)
        where = str(graph or "replay-eval.yaml")
        _eval_many(recordings, workers, address, text, where, log_dir, json_)
        return
    if workers is not None or address is not None:
        print_error("--workers and --address apply to --recordings DIR (many recordings at once)")
        raise typer.Exit(2)
    recording = recording or Path("recordings/phantom-us.mcap")
    work = log_dir or Path(tempfile.mkdtemp(prefix="igtflow-replay-eval-"))
    try:
        result = replay_eval(recording, work, text, str(graph or "replay-eval.yaml"))
    except RecordingError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    except ValueError as exc:
        print_error(str(exc))
        raise typer.Exit(2) from None
    if json_:
        print_json({k: v for k, v in result.items() if k != "summary"})
    else:
        for topic, scores in result["dice"].items():
            text = ", ".join(f"{name} {value:.3f}" for name, value in scores.items())
            out.print(f"Dice {topic}: {text}", highlight=False)
        for topic, error in result["target_error_mm"].items():
            out.print(
                f"target error {topic}: median {error['median']:.2f} mm, "
                f"p95 {error['p95']:.2f} mm ({error['count']} targets)",
                highlight=False,
            )
        out.print(f"logs and the scored recording: {work}", highlight=False)
    raise typer.Exit(result["exit_code"])


def _eval_many(
    folder: Path,
    workers: int | None,
    address: str | None,
    graph_text: str | None,
    where: str,
    log_dir: Path | None,
    json_: bool,
) -> None:
    """``eval replay --recordings``: refuse what cannot work, run on Ray, print, exit 1 on any
    failed row."""
    import os

    from igtflow.launch.bulk_eval import default_log_dir, find_recordings, run_bulk
    from igtflow.launch.bulk_eval_table import print_table, progress_bar, report
    from igtflow.launch.commands.terminal import err

    if address and workers is not None:
        print_error(
            f"--workers sets the CPUs of a local Ray instance; the cluster at --address {address} "
            "runs as many replays at once as its CPUs allow: leave out one of them"
        )
        raise typer.Exit(2)
    try:
        found = find_recordings(folder)
    except (OSError, ValueError) as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    workers = workers or os.cpu_count() or 1
    made_log_dir = log_dir is None
    log_dir = log_dir or default_log_dir()
    try:
        with progress_bar(err, len(found)) as advance:
            result = run_bulk(found, log_dir, workers, address, graph_text, where, advance)
    except (KeyboardInterrupt, ConnectionError) as exc:
        if made_log_dir and not any(log_dir.iterdir()):
            log_dir.rmdir()  # nothing ran: leave no empty folder behind
        if isinstance(exc, KeyboardInterrupt):
            print_error("interrupted while Ray was starting: nothing was scored")
            raise typer.Exit(130) from None
        print_error(
            f"--address {address}: no Ray cluster there ({exc}); start one with `ray start "
            "--head` on its head node and give its HOST:6379, or leave out --address to run on "
            "this machine"
        )
        raise typer.Exit(2) from None
    summary = report(result, address, log_dir)
    if json_:
        print_json(summary)
    else:
        print_table(summary, out)
    if result.interrupted:
        print_error("interrupted: the rows above that say so were not scored")
        raise typer.Exit(130)
    if summary["failed"]:
        raise typer.Exit(1)
