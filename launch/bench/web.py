"""``igtflow bench web``: capture → painted in a real headless Chromium, with one and five browsers.

The shipped ``web-view`` graph (phantom ultrasound → overlay → web view) runs as real node
processes at 30 fps. Each page records, in the animation frame that draws a frame, the server
clock (its own clock plus the offset it estimated over the WebSocket) minus the frame's capture
stamp: capture → painted. Three phases, in one run of the graph, taken in turn over several
rounds (none → one → five, again and again) so that the machine's drift falls on each alike:

1. no browser: the source's rate, the baseline (and the web view's own input age, the floor of
   what any browser can see);
2. one browser: capture → painted p50/p99/max, source rate;
3. five browsers (each in its own browser context, as five screens would be): the same over
   all five pages.

The headline ratio is the source's rate with five browsers over its rate with none: a browser
must never slow the graph (1.0). The browsers stand for the screens in the room, which are other
machines; here they share the graph's cores, so they run ``BROWSER_NICE`` lower in OS priority
(``--browser-nice 0`` puts them level with the graph): the CPU they take is then only what the
graph leaves, as it would be on their own machines, and their own delays still count in the
figures.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from igtflow.launch.bench.browser import launch_chromium, require_chromium
from igtflow.launch.bench.e2e import percentiles
from igtflow.launch.graph_reader import parse_graph
from igtflow.launch.supervisor import Supervisor
from igtflow.machine import describe, machine_info
from igtflow.ports import free_port

GRAPH = "web-view.yaml"
SOURCE = "probe"
VIEW = "web"
OVERLAY = "overlay"
RATE_HZ = 30.0
WARMUP_S = 3.0
BROWSER_NICE = 10
TARGETS = {"web_p99_ms": 60.0, "web_p99_ms_5_clients": 80.0, "source_rate_ratio": 1.0}
LIVE = "() => { const v = window.igtflowView; return v && v.shown() && !v.state.stale; }"


class _Run:
    """The graph's supervisor, kept polling while the bench waits."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.supervisor.poll(min(0.1, left))

    def wait_page(self, page: Any, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not page.evaluate(LIVE):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page showed no live frame within {timeout_s:.0f} s")
            self.supervisor.poll(0.05)

    def sent(self) -> tuple[float, int]:
        """Frames the source has sent on its image output (what the overlay took or skipped),
        and when: taken as a fresh heartbeat arrives, so the count and the time agree."""
        node = self.supervisor.nodes[OVERLAY]
        before = node.stats
        deadline = time.monotonic() + 5.0
        while node.stats is before and time.monotonic() < deadline:
            self.supervisor.poll(0.005)
        stats = node.stats.get("inputs", {}).get("image", {})
        frames = sum(int(stats.get(key, 0)) for key in ("received", "skipped", "lost"))
        return time.monotonic(), frames

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds so far of each node process and of all the browsers' processes."""
        used = {
            node_id: _cpu_s([psutil.Process(node.pid)]) if node.pid else 0.0
            for node_id, node in self.supervisor.nodes.items()
        }
        for child in psutil.Process().children(recursive=True):
            if _is_browser(child):  # per process: browsers come and go between phases
                used[f"browser-{child.pid}"] = _cpu_s([child])
        return used


def _is_browser(process: psutil.Process) -> bool:
    try:
        return "chrom" in process.name()
    except psutil.Error:
        return False


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@dataclass
class _Tally:
    """What one phase (a number of browsers) measured, summed over its rounds."""

    browsers: int
    seconds: float = 0.0
    frames: int = 0
    painted: list[float] = field(default_factory=list)
    fps_per_page: list[float] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "browsers": self.browsers,
            "seconds": round(self.seconds, 1),
            "source_rate_hz": round(self.frames / self.seconds, 2) if self.seconds else None,
            "painted": percentiles(self.painted) if self.browsers else None,
            "painted_fps_per_page": [round(f, 1) for f in self.fps_per_page],
            "cpu_percent": {
                k: round(100 * v / self.seconds, 1) if self.seconds else 0.0
                for k, v in self.cpu_s.items()
            },
        }


def _measure(run: _Run, tally: _Tally, pages: list[Any], seconds: float) -> None:
    """Add ``seconds`` with ``pages`` open to ``tally``: source frames, painted, CPU."""
    for page in pages:
        page.evaluate("() => window.igtflowView.takePainted()")
    t0, n0 = run.sent()
    cpu0 = run.cpu_s()
    run.run_for(seconds)
    t1, n1 = run.sent()
    cpu1 = run.cpu_s()
    tally.seconds += t1 - t0
    tally.frames += n1 - n0
    for key, value in cpu1.items():
        name = "browsers" if key.startswith("browser-") else key
        tally.cpu_s[name] = tally.cpu_s.get(name, 0.0) + value - cpu0.get(key, 0.0)
    tally.cpu_s.setdefault("browsers", 0.0)
    for page in pages:
        samples = [ms for _, ms in page.evaluate("() => window.igtflowView.takePainted()")]
        tally.painted += samples
        tally.fps_per_page.append(len(samples) / (t1 - t0))


def _open_page(run: _Run, browser: Any, url: str) -> Any:
    """A page in a context of its own (as another screen would be), showing live frames."""
    page = browser.new_context().new_page()
    page.goto(url)
    run.wait_page(page)
    return page


def run_web_bench(
    seconds: float = 30.0,
    browsers: int = 5,
    screenshot: Path | None = None,
    browser_nice: int = BROWSER_NICE,
    rounds: int = 3,
    progress: Console | None = None,
) -> dict[str, Any]:
    """The three phases, interleaved over ``rounds`` on one run of the shipped web-view graph
    (``seconds`` per phase in all); the report with its headline keys."""

    def say(text: str) -> None:
        if progress is not None:
            progress.print(f"web: {text}")

    chromium = require_chromium()
    port = free_port()
    text = resources.files("igtflow.launch").joinpath(f"graphs/{GRAPH}").read_text()
    graph = parse_graph(
        text, f"graphs/{GRAPH}", [f"{SOURCE}.rate_hz={RATE_HZ}", f"{VIEW}.port={port}"]
    )
    work_dir = Path(tempfile.mkdtemp(prefix="igtflow-web-"))
    supervisor = Supervisor(graph, work_dir / "logs")
    tallies = {"none": _Tally(0), "one": _Tally(1), "many": _Tally(browsers)}
    segment = seconds / rounds
    floor: dict[str, Any] = {}
    try:
        supervisor.start()
        run = _Run(supervisor)
        run.run_for(WARMUP_S)
        url = f"http://127.0.0.1:{port}/"
        with launch_chromium(chromium, nice=browser_nice) as browser:
            # Rounds of none → one → many: the machine's drift falls on every phase alike.
            for n in range(rounds):
                say(f"round {n + 1}/{rounds}: 0, 1, {browsers} browsers, {segment:g} s each …")
                _measure(run, tallies["none"], [], segment)
                if not floor:
                    stats = supervisor.nodes[VIEW].stats
                    floor = {"p50_ms": stats.get("age_p50_ms"), "p99_ms": stats.get("age_p99_ms")}
                pages = [_open_page(run, browser, url)]
                run.run_for(1.0)  # a few clock pings: the offset settles
                if screenshot is not None and n == 0:
                    screenshot.parent.mkdir(parents=True, exist_ok=True)
                    pages[0].screenshot(path=str(screenshot))
                _measure(run, tallies["one"], pages, segment)
                pages += [_open_page(run, browser, url) for _ in range(browsers - 1)]
                run.run_for(1.0)
                _measure(run, tallies["many"], pages, segment)
                for page in pages:
                    page.context.close()
    finally:
        supervisor.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
    phases = {name: tally.report() for name, tally in tallies.items()}
    phases["none"]["view_input_age"] = floor
    base = phases["none"]["source_rate_hz"]

    def ratio(name: str) -> float | None:
        rate = phases[name]["source_rate_hz"]
        return round(rate / base, 3) if base and rate else None

    return {
        "graph": GRAPH,
        "rate_hz": RATE_HZ,
        "seconds": seconds,
        "rounds": rounds,
        "browser_nice": browser_nice,
        "phases": phases,
        "web_p50_ms": phases["one"]["painted"]["p50_ms"],
        "web_p99_ms": phases["one"]["painted"]["p99_ms"],
        "web_p99_ms_5_clients": phases["many"]["painted"]["p99_ms"],
        "source_rate_ratio": ratio("many"),
        "source_rate_ratio_1_client": ratio("one"),
        "machine": machine_info(),
    }


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"Web view: capture → painted in headless Chromium, {report['rate_hz']:g} fps"
    )
    for column in ("browsers", "p50 ms", "p99 ms", "max ms", "painted fps/page", "source Hz"):
        table.add_column(column, justify="right")
    for phase in report["phases"].values():
        painted = phase.get("painted") or {}
        fps = phase.get("painted_fps_per_page")
        table.add_row(
            str(phase["browsers"]),
            _ms(painted.get("p50_ms")),
            _ms(painted.get("p99_ms")),
            _ms(painted.get("max_ms")),
            f"{min(fps):.1f}–{max(fps):.1f}" if fps else "–",
            f"{phase['source_rate_hz']:.2f}",
        )
    console.print(table)
    cpu = Table(title="CPU % (100 = one core) while measuring")
    cpu.add_column("browsers", justify="right")
    names = list(next(iter(report["phases"].values()))["cpu_percent"])
    for name in names:
        cpu.add_column(name, justify="right")
    for phase in report["phases"].values():
        cpu.add_row(
            str(phase["browsers"]), *(f"{phase['cpu_percent'].get(n, 0):.0f}" for n in names)
        )
    console.print(cpu)
    floor = report["phases"]["none"]["view_input_age"]
    console.print(
        f"p99 {_ms(report['web_p99_ms'])} ms with one browser (target ≤ "
        f"{TARGETS['web_p99_ms']:.0f}), {_ms(report['web_p99_ms_5_clients'])} ms with five "
        f"(target ≤ {TARGETS['web_p99_ms_5_clients']:.0f}); source rate with five browsers / "
        f"without: {report['source_rate_ratio']} (one: {report['source_rate_ratio_1_client']}); "
        f"capture → web-view node p50 {_ms(floor['p50_ms'])} / p99 {_ms(floor['p99_ms'])} ms",
        highlight=False,
    )
    console.print(describe(report["machine"]), highlight=False)


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, for pasting into the README as it is."""
    lines = [
        "| browsers | capture → painted p50 / p99 / max ms | painted fps per page | source fps "
        "| source rate ratio | CPU % web node / browsers |",
        "|---|---|---|---|---|---|",
    ]
    base = report["phases"]["none"]["source_rate_hz"]
    for phase in report["phases"].values():
        painted = phase.get("painted")
        fps = phase.get("painted_fps_per_page")
        cpu = phase["cpu_percent"]
        three = (
            f"{_ms(painted['p50_ms'])} / {_ms(painted['p99_ms'])} / {_ms(painted['max_ms'])}"
            if painted
            else "– (baseline)"
        )
        lines.append(
            f"| {phase['browsers']} | {three} "
            f"| {f'{min(fps):.1f}–{max(fps):.1f}' if fps else '–'} "
            f"| {phase['source_rate_hz']:.2f} | {phase['source_rate_hz'] / base:.3f} "
            f"| {cpu.get(VIEW, 0):.0f} / {cpu.get('browsers', 0):.0f} |"
        )
    floor = report["phases"]["none"]["view_input_age"]
    lines += [
        "",
        f"Capture → web-view node (no browser): p50 {_ms(floor['p50_ms'])} / p99 "
        f"{_ms(floor['p99_ms'])} ms. {report['rounds']} rounds of "
        f"{report['seconds'] / report['rounds']:g} s per phase; browsers at nice "
        f"{report['browser_nice']}. " + describe(report["machine"]) + ".",
    ]
    return "\n".join(lines) + "\n"
