"""The ``web-view`` node: the live overlay, the status table and plots in any browser in the room.

Frames are JPEG-encoded once (OpenCV) and handed to :class:`~igtflow.render.web_server.WebServer`,
whose own thread sends each browser the newest frame it lacks: a slow tablet skips frames, the
graph and the other browsers never wait for it. Nothing is encoded while no browser is connected.
The page shows each frame's age since capture on the server's clock (the browser estimates its
offset over the WebSocket) and greys out under a STALE banner by the overlay's rule: anything
older than ``stale_ms`` is stale; so is a view whose frames stopped for two frame periods.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import cv2
import numpy as np
from pydantic import Field

from igtflow.render.overlay_compose import confidence_value
from igtflow.render.web_server import BindError, WebServer, is_loopback
from igtflow.render.web_stats import LiveStats
from igtflow.stream.messages import Image, Message, Status
from igtflow.stream.node import WILDCARD, ImageSpec, PermanentError, PortOrAny, Positive, Ticking

DEFAULT_PORT = 8080
ENV_PREFIX = "env:"
MAIN_VIEW = "overlay"


class WebView(Ticking):
    """Serves the live overlay, status table and latency/confidence plots to browsers."""

    inputs = {
        "overlay": Image,
        "image": Image,
        "confidence": Message,
        WILDCARD: Status,  # '*': '*' shows every node's Status in the table
    }
    outputs = {}
    rate_hz = 2.0
    rate_hz_doc = "status table and plot refreshes per second"

    def setup(
        self,
        host: str = "127.0.0.1",
        port: PortOrAny = DEFAULT_PORT,
        token: str = "",
        stale_ms: Positive = 250.0,
        quality: Annotated[int, Field(ge=10, le=100)] = 80,
        title: str = "igtflow live view",
    ) -> None:
        """
        host: address to listen on; anything but loopback (127.0.0.1) requires a token
        port: TCP port of the page (0 = let the system pick one)
        token: secret every browser must give (http://HOST:PORT/?token=...); required off
            loopback. 'env:NAME' reads it from environment variable NAME, so that it stays out
            of the graph file and of the recordings that store the graph
        stale_ms: a frame older than this since capture is shown greyed under a STALE banner
        quality: JPEG quality of the frames sent (higher: sharper, more bytes per frame)
        title: heading of the page (e.g. the theatre or the case)
        """
        problem = host_problem(host, token)
        if problem:
            raise PermanentError(problem)
        self.server = WebServer(host, port, resolve_token(token), self.log)
        try:
            self.server.start()
        except BindError as exc:
            raise PermanentError(exc.strerror or str(exc)) from None
        self.stats = LiveStats()
        self.encode_ms: list[float] = []
        shown = f"http://{host}:{self.server.port}/" + ("?token=..." if token else "")
        self.log.info("web view on %s", shown)

    @classmethod
    def check_upstream(
        cls, params: dict[str, Any], upstream: dict[str, ImageSpec | None]
    ) -> list[tuple[str, str]]:
        problem = host_problem(str(params.get("host", "")), str(params.get("token", "")))
        return [("host", problem)] if problem else []

    def on_overlay(self, image: Image) -> None:
        self._show(MAIN_VIEW, image)

    def on_image(self, image: Image) -> None:
        self._show("image", image)

    def on_confidence(self, message: Message) -> None:
        value = confidence_value(message)
        if value is not None:
            self.stats.confidence_value(value, time.time_ns())

    def on_message(self, input_name: str, message: Message) -> None:
        if isinstance(message, Status):
            node = message.frame or input_name.partition("/")[0]
            self.stats.status(node, message.level, message.code, message.text)

    def _show(self, view: str, image: Image) -> None:
        if view == MAIN_VIEW:
            self.stats.main_view = MAIN_VIEW
        self.stats.frame(view, image.seq, image.stamp_ns, image.trace, time.time_ns())
        if not self.server.clients:
            return  # nobody watching: no encoding cost for the graph
        t0 = time.perf_counter()
        ok, jpeg = cv2.imencode(
            ".jpg", display_bgr(image), [cv2.IMWRITE_JPEG_QUALITY, int(self.quality)]
        )
        self.encode_ms.append((time.perf_counter() - t0) * 1e3)
        if len(self.encode_ms) > 1000:
            del self.encode_ms[:500]
        if not ok:
            self.log.warning("could not encode frame %d of %s as JPEG", image.seq, view)
            return
        header = {
            "seq": image.seq,
            "stamp_ns": str(image.stamp_ns),  # exact: a JS number holds only 53 bits
            "stamp_ms": image.stamp_ns / 1e6,
            "stale": bool(image.meta.get("stale", False)),
            "sent_ms": time.time_ns() / 1e6,
        }
        self.server.publish_frame(view, header, jpeg.tobytes())

    def tick(self) -> None:
        if self.server.clients:
            snapshot = self.stats.snapshot(time.time_ns())
            snapshot.update(
                title=self.title, stale_ms=self.stale_ms, browsers=self.server.browsers()
            )
            self.server.publish_stats(snapshot)

    def teardown(self) -> None:
        self.server.stop()
        if self.encode_ms:
            p50, p99 = np.percentile(self.encode_ms, [50, 99])
            self.log.info(
                "JPEG encode p50 %.2f ms, p99 %.2f ms; %d frames sent, %d requests refused",
                p50,
                p99,
                self.server.frames_sent,
                self.server.refused,
            )


def host_problem(host: str, token: str) -> str:
    """Why this bind is refused ('' when it is fine): off loopback, the page needs a token."""
    if is_loopback(host) or token:
        return ""
    return (
        f"host {host!r} lets other machines see the live view, so it needs a token: add "
        "'token: <a long random string>' to params (browsers then open "
        "http://HOST:PORT/?token=...), or keep host: 127.0.0.1"
    )


def resolve_token(token: str) -> str:
    """The secret itself: ``token``, or the variable an ``env:NAME`` token names."""
    if not token.startswith(ENV_PREFIX):
        return token
    name = token[len(ENV_PREFIX) :]
    value = os.environ.get(name, "")
    if not value:
        raise PermanentError(
            f"token {token!r} names environment variable {name}, which is not set or empty; "
            f"export {name}=<a long random string> before igtflow run"
        )
    return value


def display_bgr(image: Image) -> np.ndarray:
    """The frame as 8-bit BGR for the JPEG encoder: RGB swapped, other depths stretched."""
    data = np.asarray(image.data)
    if data.dtype != np.uint8:
        finite = np.nan_to_num(data.astype(np.float32))
        low, high = float(finite.min(initial=0.0)), float(finite.max(initial=0.0))
        scale = 255.0 / (high - low) if high > low else 0.0
        data = ((finite - low) * scale).astype(np.uint8)
    elif image.modality == "LABELS" and data.size and data.max() > 0:
        data = (data.astype(np.uint16) * (255 // int(data.max()))).astype(np.uint8)
    if data.ndim == 3 and data.shape[2] == 3:
        return cv2.cvtColor(data, cv2.COLOR_RGB2BGR)
    if data.ndim == 3:
        data = data[..., 0]
    return data
