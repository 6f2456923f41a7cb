"""The browser live view's server: an aiohttp app on its own thread, latest-only per browser.

The node's input loop only ever calls :meth:`WebServer.publish_frame` and
:meth:`WebServer.publish_stats`, which store the newest item and wake the server thread; nothing
there waits on the network. Each browser has one sender task that, when woken, sends the newest
frame it has not sent yet: while a slow tablet is still taking one JPEG, the frames that come in
meanwhile replace one another and only the last is sent, so a slow browser skips frames and never
slows the graph or the other browsers.

Protocol (one WebSocket, ``/ws``):

- server → browser, binary: ``[u32 header length][JSON header][JPEG]`` for a frame, the header
  holding ``view``, ``seq``, ``stamp_ns`` (capture), ``stale`` (the overlay's own verdict) and
  ``sent_ms`` (server clock);
- server → browser, text: ``{"type": "stats", ...}`` (status table, plot series, limits);
- browser → server, text: ``{"type": "ping", "t0": ms}``, answered at once with
  ``{"type": "pong", "t0": ms, "server_ms": ms}``: the browser keeps the offset of the exchange
  with the shortest round trip as its estimate of the server clock (NTP's rule).

A ``token`` protects everything (page, script and socket) when the view is bound beyond
loopback: requests without it get 401 and no frame.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

PAGE_PACKAGE = "igtflow.render"
PAGE_FOLDER = "web_page"
PAGE_FILES = {"/": ("index.html", "text/html"), "/view.js": ("view.js", "text/javascript")}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
START_TIMEOUT_S = 10.0


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (no token needed there)."""
    return host in LOOPBACK or host.startswith("127.")


class BindError(OSError):
    """The view cannot listen where it was told to; the text names the address and the fix."""


@dataclass
class Frame:
    """One encoded frame, as every browser gets it."""

    version: int
    payload: bytes


@dataclass(eq=False)  # one per connection, kept in a set by identity
class _Client:
    """One connected browser: woken on new data, remembers what it was sent."""

    ws: web.WebSocketResponse
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent_frames: dict[str, int] = field(default_factory=dict)
    sent_stats: int = 0
    frames: int = 0
    remote: str = ""
    sending_since: float | None = None  # monotonic time a send began that has not finished


class WebServer:
    """Serves the page and streams frames and stats to every browser, from its own thread."""

    def __init__(self, host: str, port: int, token: str, log: logging.Logger) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.log = log
        self._lock = threading.Lock()
        self._frames: dict[str, Frame] = {}
        self._stats: tuple[int, str] = (0, "")
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="web-view", daemon=True)
        self.frames_sent = 0
        self.refused = 0

    # -- called from the node's thread ------------------------------------------------------

    def start(self) -> None:
        """Listen, or raise :class:`BindError` naming the address and what to do."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise BindError(f"the web view did not start listening on {self.host}:{self.port}")
        if self._error is not None:
            raise self._error

    @property
    def clients(self) -> int:
        return len(self._clients)

    def browsers(self) -> list[dict[str, Any]]:
        """Each connected browser: frames sent, and how long its current send has waited (a
        stalled tablet shows here while the others go on)."""
        now = time.monotonic()
        return [
            {
                "remote": client.remote,
                "frames": client.frames,
                "stalled_ms": round((now - since) * 1e3) if (since := client.sending_since) else 0,
            }
            for client in list(self._clients)
        ]

    def publish_frame(self, view: str, header: dict[str, Any], jpeg: bytes) -> None:
        """Make this the frame every browser gets next on ``view``; returns at once."""
        head = json.dumps({"view": view, **header}).encode()
        payload = struct.pack("<I", len(head)) + head + jpeg
        with self._lock:
            old = self._frames.get(view)
            self._frames[view] = Frame((old.version + 1) if old else 1, payload)
        self._wake_all()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Make this the status every browser gets next; returns at once."""
        text = json.dumps({"type": "stats", **stats})
        with self._lock:
            self._stats = (self._stats[0] + 1, text)
        self._wake_all()

    def stop(self) -> None:
        loop = self._loop
        if loop is None or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        self._thread.join(timeout=2.0)

    def _wake_all(self) -> None:
        loop = self._loop
        if loop is not None and self._clients:
            loop.call_soon_threadsafe(self._wake_clients)

    # -- the server thread -----------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._socket)
        for path in PAGE_FILES:
            app.router.add_get(path, self._page)
        app.router.add_get("/favicon.ico", _no_icon)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=0.5)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise _bind_error(exc, self.host, self.port) from None
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]  # the port the system picked for port 0

    async def _shutdown(self) -> None:
        for client in list(self._clients):
            await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        asyncio.get_running_loop().stop()

    def _wake_clients(self) -> None:
        for client in self._clients:
            client.wake.set()

    def _allowed(self, request: web.Request) -> bool:
        if not self.token:
            return True
        given = request.query.get("token", "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        self.refused += 1
        return False

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.Response(status=401, text="401: this view needs its token (?token=...)\n")
        name, content_type = PAGE_FILES[request.path]
        body = resources.files(PAGE_PACKAGE).joinpath(PAGE_FOLDER, name).read_bytes()
        return web.Response(body=body, content_type=content_type, headers=_NO_CACHE)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.Response(status=401, text="401: this view needs its token (?token=...)\n")
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        client = _Client(ws, remote=request.remote or "")
        self._clients.add(client)
        self.log.info("browser connected from %s (%d now)", request.remote, len(self._clients))
        sender = asyncio.create_task(self._send_loop(client))
        client.wake.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._answer(ws, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._clients.discard(client)
            sender.cancel()
            self.log.info("browser left after %d frames (%d now)", client.frames, self.clients)
        return ws

    async def _answer(self, ws: web.WebSocketResponse, text: str) -> None:
        """Answer a clock ping at once; ignore anything else a browser sends."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("type") == "ping":
            reply = {"type": "pong", "t0": message.get("t0"), "server_ms": time.time_ns() / 1e6}
            await ws.send_str(json.dumps(reply))

    async def _send_loop(self, client: _Client) -> None:
        """Send the newest frame of each view and the newest stats this browser lacks."""
        try:
            while not client.ws.closed:
                await client.wake.wait()
                client.wake.clear()
                with self._lock:
                    stats = self._stats
                    frames = [
                        (view, frame)
                        for view, frame in self._frames.items()
                        if frame.version != client.sent_frames.get(view)
                    ]
                if stats[0] != client.sent_stats:
                    client.sent_stats = stats[0]
                    await client.ws.send_str(stats[1])
                for view, frame in frames:
                    client.sent_frames[view] = frame.version
                    # Awaits this browser's socket only: frames published meanwhile replace
                    # each other and the next round sends the newest.
                    client.sending_since = time.monotonic()
                    await client.ws.send_bytes(frame.payload)
                    client.sending_since = None
                    client.frames += 1
                    self.frames_sent += 1
        except (ConnectionError, RuntimeError) as exc:
            self.log.info("browser dropped: %s", exc)


_NO_CACHE = {"Cache-Control": "no-store"}


async def _no_icon(request: web.Request) -> web.Response:
    """Browsers ask for an icon; an empty answer keeps a 404 out of their consoles."""
    return web.Response(status=204)


def _bind_error(exc: OSError, host: str, port: int) -> BindError:
    if exc.errno == errno.EADDRINUSE:
        text = f"port {port} on {host} is already in use; give this node another port"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        text = f"no permission to listen on {host}:{port}; use a port above 1023"
    elif exc.errno == errno.EADDRNOTAVAIL:
        text = f"{host} is not an address of this machine; use 127.0.0.1 or one of its addresses"
    else:
        text = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return BindError(exc.errno or 0, text)
