"""``igtflow bench …``: each bench measures igtflow against its baseline in the same run.

A command here only parses options and hands the report to ``igtflow.report.deliver`` (table,
``--json``, ``--output``); the bench itself lives beside the code it measures. To add one, write
``run_<name>_bench`` and its printer there and register a command on ``bench_app`` below.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from igtflow.launch.commands.options import ForceOpt, JsonOpt, MarkdownOpt, OutputOpt
from igtflow.launch.commands.terminal import err, out, print_error
from igtflow.report import check_output, deliver, read_json

bench_app = typer.Typer(
    help="Measure igtflow against its baselines; prints p50/p99/max and ratios."
)


def _check_output(output: Path | None, force: bool) -> None:
    """Refuse an output file before a long run, not after it."""
    from igtflow.stream.atomic_file import OutputError

    try:
        check_output(output, force)
    except OutputError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


@bench_app.command("transport")
def bench_transport(
    duration: Annotated[float, typer.Option(help="seconds per paced case")] = 10.0,
    saturated_s: Annotated[float, typer.Option(help="seconds per saturated case")] = 5.0,
    quick: Annotated[
        bool, typer.Option(help="64 KiB and 2 MiB only, 1 hop, short runs (smoke test)")
    ] = False,
    rehearsal: Annotated[
        bool,
        typer.Option(
            help="let igtflow nodes rehearse their message path before a frame is due "
            "(--no-rehearsal shows what that buys)"
        ),
    ] = True,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
    markdown: MarkdownOpt = None,
) -> None:
    """igtflow vs raw pyzmq over the same chains: per-hop p50/p99/max latency, msgs/s, ratio."""
    from igtflow.launch.bench.transport import markdown_table, print_table, run_transport_bench

    if markdown is not None:
        sys.stdout.write(markdown_table(read_json(markdown)))
        return

    _check_output(output, force)
    report = run_transport_bench(
        duration_s=duration, saturated_s=saturated_s, quick=quick, progress=err, rehearsal=rehearsal
    )
    deliver(report, json_=json_, printer=print_table, console=out, output=output, force=force)


@bench_app.command("record")
def bench_record(
    duration: Annotated[float, typer.Option(help="seconds per paced case")] = 60.0,
    saturated_s: Annotated[float, typer.Option(help="seconds per saturated case")] = 10.0,
    recording: Annotated[
        Path | None, typer.Option(help="recording for the lockstep replay (default: US sample)")
    ] = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Recorder headroom and loss at 30/60 fps, bytes per frame, lockstep replay speed-up."""
    from igtflow.launch.bench.record import print_report, run_record_bench

    _check_output(output, force)
    report = run_record_bench(duration, saturated_s, recording, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("igtl")
def bench_igtl(
    quick: Annotated[bool, typer.Option(help="0.5 s per case (smoke test)")] = False,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """OpenIGTLink: igtl-server vs pyigtl's server, rate and send→receive p50/p99/max, stalls."""
    from igtflow.render.igtl.bench import print_table, run_igtl_bench

    _check_output(output, force)
    report = run_igtl_bench(quick=quick, progress=err)
    deliver(report, json_=json_, printer=print_table, console=out, output=output, force=force)


@bench_app.command("frozen")
def bench_frozen(
    rounds: Annotated[int, typer.Option(min=10, help="frames timed per size")] = 2000,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Frozen-source watchdog: its per-frame fingerprint vs a whole-frame CRC, p50/p99/max."""
    from igtflow.launch.bench.frozen import print_report, run_frozen_bench

    _check_output(output, force)
    report = run_frozen_bench(rounds)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("phantom")
def bench_phantom(
    duration: Annotated[float, typer.Option(help="seconds per renderer")] = 3.0,
    seed: Annotated[int, typer.Option(help="phantom seed")] = 0,
    truth_seed: Annotated[
        list[int] | None, typer.Option(help="held-out seed for truth consistency (repeatable)")
    ] = None,
    truth_frames: Annotated[int, typer.Option(help="frames per seed for truth consistency")] = 12,
    json_: JsonOpt = False,
) -> None:
    """Phantom frames/s on one core (US 256x256 linear and convex, fluoro 512x512) and truth
    consistency."""
    from rich.progress import Progress

    from igtflow.stream.phantom import bench

    seeds = tuple(truth_seed or bench.TRUTH_SEEDS)
    frames = bench.truth_frames(truth_frames)
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("fps, then truth consistency", total=len(seeds) * len(frames))
        report = bench.run_phantom_bench(
            duration, seed, seeds, frames, lambda n, _: bar.update(task, completed=n)
        )
    deliver(report, json_=json_, printer=bench.print_report, console=out)


@bench_app.command("perception")
def bench_perception(
    frames: Annotated[int, typer.Option(help="timed frames per network and runtime")] = 200,
    json_: JsonOpt = False,
    markdown: Annotated[bool, typer.Option(help="print the README's Markdown table")] = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Segmentation and tracking latency per runtime (TorchScript, ONNX Runtime), beside MONAI's
    UNet and OpenCV's DIS on the same frames: p50/p99/max and ratios."""
    from igtflow.perception.commands_bench import bench_perception as run

    _check_output(output, force)
    run(json=json_, markdown=markdown, frames=frames, output=output, force=force)


@bench_app.command("registration")
def bench_registration(
    points: Annotated[int, typer.Option(min=100, help="points registered per run")] = 10000,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per method")] = 60,
    seed: Annotated[int, typer.Option(help="phantom seed of the organ model")] = 1001,
    json_: JsonOpt = False,
    markdown: Annotated[bool, typer.Option(help="print the README's Markdown table")] = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Rigid ICP of points onto the phantom organ, ours beside Open3D's point-to-plane ICP on the
    same points, one thread each: p50/p99/max, the speed ratio and the target error of both,
    clean and with a fifth of the points as outliers. Keys: icp_ms, icp_open3d_ms."""
    from igtflow.registration.commands_bench import bench_registration as run

    _check_output(output, force)
    run(
        json=json_,
        markdown=markdown,
        points=points,
        repeats=repeats,
        seed=seed,
        output=output,
        force=force,
    )


@bench_app.command("e2e")
def bench_e2e(
    seconds: Annotated[float, typer.Option(min=2, help="steady-state seconds per case")] = 60.0,
    case: Annotated[
        list[str] | None,
        typer.Option(
            help="run only this case (repeatable): us, floor_us, overload_us, fluoro, floor_fluoro"
        ),
    ] = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Each guidance graph (us-guidance, fluoro-guidance) at its native rate, beside the same
    graph without networks and registration (the floor) and a 2x overload: capture → sent to an
    OpenIGTLink client p50/p99/max, source drops, CPU ms per frame per node, memory growth.
    Keys: us_p50_ms, us_p99_ms, us_source_drops, fluoro_p99_ms, overload_p99_ms,
    floor_us_p99_ms, rss_growth_mb."""
    from igtflow.launch.bench.e2e import CASES, print_report, run_e2e_bench

    unknown = sorted(set(case or ()) - {c.name for c in CASES})
    if unknown:
        err.print(
            f"[red]unknown case {', '.join(unknown)}[/]: choose from "
            + ", ".join(c.name for c in CASES)
        )
        raise typer.Exit(2)
    _check_output(output, force)
    report = run_e2e_bench(seconds, only=case, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("soak")
def bench_soak(
    minutes: Annotated[float, typer.Option(min=0.2, help="how long the graph runs")] = 10.0,
    seed: Annotated[int, typer.Option(help="seed of the fault schedule")] = 0,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """The US guidance graph for MINUTES with faults injected at random (node kills, a hung
    node, a stalled and a malformed OpenIGTLink client): restarts, recovery times, frames lost
    outside fault windows, p99 outside faults against the fault-free first fifth, RSS growth.
    Keys: restarts, max_recovery_ms, frames_lost_outside_faults, rss_growth_mb, hung_detect_ms."""
    from igtflow.launch.bench.soak import print_report, run_soak

    _check_output(output, force)
    report = run_soak(minutes, seed, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("web")
def bench_web(
    seconds: Annotated[
        float, typer.Option(min=2, help="seconds measured per phase, over all rounds")
    ] = 30.0,
    browsers: Annotated[int, typer.Option(min=2, help="browsers in the last phase")] = 5,
    rounds: Annotated[
        int, typer.Option(min=1, help="rounds of none → one → BROWSERS browsers, interleaved")
    ] = 3,
    screenshot: Annotated[
        Path | None, typer.Option(help="save a screenshot of the page (PNG) while one is open")
    ] = None,
    browser_nice: Annotated[
        int,
        typer.Option(
            min=0,
            max=19,
            help="how much lower the browsers run in OS priority than the graph (they stand "
            "for other machines in the room; 0: level with the graph)",
        ),
    ] = 10,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
    markdown: MarkdownOpt = None,
) -> None:
    """The web-view graph at 30 fps seen by Debian's headless Chromium (Playwright): capture →
    painted p50/p99/max with no, one and BROWSERS browsers (in turn, over ROUNDS rounds), and
    the source's rate beside each (a browser must not slow the graph). Keys: web_p50_ms,
    web_p99_ms, web_p99_ms_5_clients, source_rate_ratio."""
    from igtflow.launch.bench.browser import BrowserMissing
    from igtflow.launch.bench.web import markdown_table, print_report, run_web_bench

    if markdown is not None:
        sys.stdout.write(markdown_table(read_json(markdown)))
        return
    _check_output(output, force)
    try:
        report = run_web_bench(seconds, browsers, screenshot, browser_nice, rounds, progress=err)
    except BrowserMissing as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("eval-scale")
def bench_eval_scale(
    recordings: Annotated[
        Path | None,
        typer.Option(
            help="score the recordings (*.mcap) in this folder (default: copies of the US sample)",
            show_default=False,
        ),
    ] = None,
    copies: Annotated[
        int, typer.Option(min=2, help="without --recordings: how many copies of the US sample")
    ] = 4,
    frames: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="without --recordings: frames per copy (default: the sample's 36; a longer "
            "replay spends less of its time starting its nodes)",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """`igtflow eval replay --recordings` with 1 worker, then with 2, on the same recordings in
    the same run, each on its own local Ray instance: Ray's start-up, the replays' wall time,
    seconds per recording p50/p99/max, and the speed-up (1 worker's time over 2 workers').
    Keys: speedup, speedup_with_start, passes."""
    from igtflow.launch.bench.eval_scale import print_report, run_eval_scale_bench
    from igtflow.launch.bulk_eval import find_recordings

    found = None
    if recordings is not None:
        try:
            found = find_recordings(recordings)
        except (OSError, ValueError) as exc:
            print_error(exc)
            raise typer.Exit(2) from None
    _check_output(output, force)
    report = run_eval_scale_bench(found, copies, frames, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)


@bench_app.command("fuzz")
def bench_fuzz(
    cases: Annotated[int, typer.Option(min=1, help="damaged inputs per reader")] = 10000,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="fuzz only this reader (repeatable): graph-yaml, mcap, plus-nrrd, plus-mha, "
            "dicom, model-card, wire, igtl"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="hypothesis seed: the same seed, the same cases")] = 0,
    json_: JsonOpt = False,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Feed every reader of outside bytes CASES damaged inputs (hypothesis: bit flips, cuts,
    inserted bytes, numbers swapped for extreme ones) and count what each does: read, refused
    with its own clear error, or crashed. The undamaged seed file, read the same way, is the
    baseline of the time ratio. Keys: fuzz_cases, fuzz_crashes (in total and per target); a
    crash comes with its damages and traceback. Exit code 1 when anything crashed."""
    from igtflow.launch.bench.fuzz import print_report, run_fuzz
    from igtflow.launch.bench.fuzz_targets import targets

    names = [t.name for t in targets()]
    unknown = [name for name in target or [] if name not in names]
    if unknown:
        print_error(f"no fuzz target {', '.join(unknown)}; the targets are {', '.join(names)}")
        raise typer.Exit(2)
    _check_output(output, force)
    report = run_fuzz(cases, seed, target, progress=err)
    deliver(report, json_=json_, printer=print_report, console=out, output=output, force=force)
    if report["fuzz_crashes"]:
        raise typer.Exit(1)
