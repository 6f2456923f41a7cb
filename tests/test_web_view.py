"""The ``web-view`` node in real graphs, seen by a headless Chromium (Debian's) and raw clients.

Browser tests are skipped, saying why, where Chromium is absent; the others always run.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.ports import free_port
from tests.helpers.graph_runs import GraphRun

RATE_HZ = 10.0


def web_graph(tmp_path: Path, port: int, web_params: str = "", src_params: str = "") -> str:
    """A source that stops when ``tmp_path/stop`` exists, shown directly by a web view."""
    return f"""
name: web
nodes:
  - id: src
    uses: tests.nodes.web:UntilStopped
    params: {{rate_hz: {RATE_HZ}, stop_file: "{tmp_path / "stop"}"{src_params}}}
  - id: web
    uses: web-view
    inputs: {{overlay: src/image, "*": {{from: "*"}}}}
    params: {{port: {port}{web_params}}}
"""


def in_thread(coroutine: Any) -> Any:
    """Run an asyncio client on a thread of its own: Playwright's sync API keeps a loop running
    on this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_page(run: GraphRun, page: Any, script: str, timeout_s: float, what: str) -> Any:
    """Poll ``script`` in the page (keeping the graph's supervisor going) until it is truthy."""
    return run.wait(lambda: page.evaluate(script), timeout_s, what)


LIVE = "() => { const v = window.igtflowView; return v && v.shown() && !v.state.stale; }"


def test_page_shows_the_overlay_frame_the_overlay_node_drew(start_graph, tmp_path, chromium):
    port = free_port()
    snaps = tmp_path / "snaps"
    run = start_graph(
        f"""
name: web-overlay
nodes:
  - id: src
    uses: tests.nodes.web:UntilStopped
    params: {{rate_hz: 20, stop_file: "{tmp_path / "stop"}"}}
  - id: overlay
    uses: overlay
    inputs: {{image: src/image}}
    # a slow watchdog tick: a frame is drawn again (with a new age) only if the feed stalls
    params: {{show: false, rate_hz: 1, stale_ms: 2000, snapshot_dir: "{snaps}",
              snapshot_every_s: 0.001}}
  - id: web
    uses: web-view
    inputs: {{overlay: overlay/overlay}}
    params: {{port: {port}, quality: 95, stale_ms: 2000}}
"""
    )
    page = chromium.new_page()
    try:
        page.goto(f"http://127.0.0.1:{port}/")
        # Held only while live: a page judged stale (greyed) between two calls is not the frame.
        shown = wait_page(
            run,
            page,
            "() => { const v = window.igtflowView; return v && v.shown() && !v.state.stale"
            " ? v.hold() : null; }",
            20,
            "the page to show a live frame",
        )
        picture = page.locator("#view-overlay canvas").screenshot()
        png = snaps / f"overlay-{shown['stamp_ns']}.png"
        run.wait(png.exists, 10, f"the overlay's own PNG of the frame shown ({png.name})")
        seen = cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR)
        drawn = cv2.imread(str(png), cv2.IMREAD_COLOR)
        assert seen.shape == drawn.shape
        same = np.abs(seen.astype(int) - drawn.astype(int)).mean()
        others = [p for p in snaps.glob("overlay-1*.png") if p != png]
        other = cv2.imread(str(others[0]), cv2.IMREAD_COLOR)
        different = np.abs(seen.astype(int) - other.astype(int)).mean()
        # JPEG at quality 95 moves a pixel by a level or two; another frame moves the bar.
        assert same < 3.0, f"the page's picture differs from the overlay's by {same:.1f} levels"
        assert different > 2 * same
    finally:
        page.close()


def test_age_moves_and_every_page_turns_stale_within_two_frame_periods(
    start_graph, tmp_path, chromium
):
    port = free_port()
    run = start_graph(web_graph(tmp_path, port))
    pages = [chromium.new_page() for _ in range(2)]
    try:
        for page in pages:
            page.goto(f"http://127.0.0.1:{port}/")
            wait_page(run, page, LIVE, 20, "the page to show live frames")
        for page in pages:
            wait_page(run, page, "() => window.igtflowView.period()", 10, "a frame period")
        (tmp_path / "stop").touch()
        for page in pages:
            wait_page(run, page, "() => window.igtflowView.state.stale", 10, "the STALE banner")
            state = page.evaluate(
                """() => { const v = window.igtflowView; return {
                    since: v.state.staleSinceLocal, last: v.lastArrival(), period: v.period(),
                    banner: document.getElementById('banner').textContent,
                    grey: document.body.classList.contains('stale')}; }"""
            )
            assert state["grey"] and state["banner"].startswith("STALE")
            assert page.locator("#banner").is_visible()
            assert state["period"] == pytest.approx(1000 / RATE_HZ, rel=0.5)
            # Two periods after the last frame, plus one animation frame of the page's check.
            assert state["since"] - state["last"] <= 2 * state["period"] + 50, state
            # The age keeps counting while the feed is frozen.
            first = _age_ms(page)
            run.wait(
                lambda page=page, first=first: _age_ms(page) > first + 100,
                5,
                "the age label to grow",
            )
    finally:
        for page in pages:
            page.close()


def _age_ms(page: Any) -> float:
    return float(page.locator("#view-overlay .age").inner_text().split()[0])


TOKEN = "s3cret-token"


def test_a_client_without_the_token_gets_nothing(start_graph, tmp_path, chromium, monkeypatch):
    port = free_port()
    # From the environment, as an operator keeps it out of the graph file and the recordings.
    monkeypatch.setenv("IGTFLOW_TEST_WEB_TOKEN", TOKEN)
    run = start_graph(web_graph(tmp_path, port, ", token: env:IGTFLOW_TEST_WEB_TOKEN"))
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/view.js", f"/?token=wrong-{TOKEN}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=5)
        assert refused.value.code == 401
    assert in_thread(_socket_frames(f"ws://127.0.0.1:{port}/ws")) == 401
    assert in_thread(_socket_frames(f"ws://127.0.0.1:{port}/ws?token={TOKEN}")) == "overlay"

    page = chromium.new_page()
    try:
        response = page.goto(base + "/")
        assert response is not None and response.status == 401
        assert page.locator("canvas").count() == 0
        page.goto(f"{base}/?token={TOKEN}")
        wait_page(run, page, LIVE, 20, "the page with the token to show live frames")
    finally:
        page.close()


async def _socket_frames(url: str) -> int | str:
    """The HTTP status a refused WebSocket got, or the view of the first frame it received."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        async with ws:
            while True:
                message = await asyncio.wait_for(ws.receive(), 10)
                if message.type == aiohttp.WSMsgType.BINARY:
                    return _frame_header(message.data)["view"]


def _frame_header(payload: bytes) -> dict[str, Any]:
    size = int.from_bytes(payload[:4], "little")
    return json.loads(payload[4 : 4 + size])


def test_a_stalled_browser_never_slows_the_graph_or_the_others(start_graph, tmp_path):
    port = free_port()
    run = start_graph(
        web_graph(tmp_path, port, ", quality: 100", ", width: 640, height: 480, noise: true")
    )
    stuck = _stalled_socket(port)
    try:
        seqs, browsers = in_thread(_watch(port, frames=int(3 * RATE_HZ)))
        # Stalled for over a second when the watch began, and still stalled at its end.
        assert any(b["stalled_ms"] > 1000 for b in browsers), browsers
        # The watcher saw (nearly) every frame the source sent meanwhile, in order.
        span = seqs[-1] - seqs[0] + 1
        assert len(seqs) >= 0.9 * span and seqs == sorted(seqs), seqs
        assert run.stats("src")["send_drops"] == 0  # nothing held the source back
    finally:
        stuck.close()


def _stalled_socket(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(b"0123456789abcdef").decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


async def _watch(port: int, frames: int) -> tuple[list[int], list[dict[str, Any]]]:
    """Once another browser has been stalled for a second, the seqs of the next ``frames``
    frames this one receives, and the browsers the view listed last."""
    import aiohttp

    seqs: list[int] = []
    browsers: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws,
    ):
        while len(seqs) < frames:
            assert time.monotonic() < deadline, f"only {len(seqs)} frames; browsers {browsers}"
            message = await asyncio.wait_for(ws.receive(), 10)
            if message.type == aiohttp.WSMsgType.TEXT:
                stats = json.loads(message.data)
                if stats.get("type") == "stats":
                    browsers = stats["browsers"]
            elif message.type == aiohttp.WSMsgType.BINARY:
                if any(b["stalled_ms"] > 1000 for b in browsers):
                    seqs.append(_frame_header(message.data)["seq"])
            else:
                pytest.fail(f"the view closed the socket: {message}")
    return seqs, browsers


def test_a_view_bound_beyond_loopback_without_a_token_is_refused_at_its_host_line():
    text = """name: open
nodes:
  - id: src
    uses: synthetic-image
  - id: web
    uses: web-view
    inputs: {overlay: src/image}
    params:
      host: 0.0.0.0
"""
    with pytest.raises(GraphError) as caught:
        parse_graph(text, "graph.yaml")
    [issue] = caught.value.issues
    assert (issue.path, issue.line) == ("graph.yaml", 9)
    assert "needs a token" in issue.message and "127.0.0.1" in issue.message
    parse_graph(text + "      token: a-long-secret\n", "graph.yaml")


def test_a_web_view_on_a_taken_port_fails_once_naming_the_port(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    run = GraphRun(web_graph(tmp_path, port) + "    restart: never\n", tmp_path)
    try:
        run.supervisor.start()
        run.wait(lambda: run.nodes["web"].state == "failed", 30, "the web view to fail")
        log = (tmp_path / "logs" / "web.log").read_text()
        assert f"port {port} on 127.0.0.1 is already in use" in log
        assert "give this node another port" in log and "Traceback" not in log
    finally:
        run.stop()
        blocker.close()
