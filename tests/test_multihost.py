"""A graph split over two hosts: two network namespaces joined by a veth pair, one `igtflow run
--host` in each, CURVE on. The frames arrive whole and in order; the link drops for 5 s, the edge
reconnects by itself and the gap shows in the seq of what the reader received.

Needs root and `ip` (namespaces and links are made and removed by the test); skipped otherwise.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from igtflow.stream.curve import write_keypair
from tests.helpers.graph_runs import read_jsonl, wait_until

ROOT = Path(__file__).resolve().parents[1]
IGTFLOW = Path(sys.executable).parent / "igtflow"
SUFFIX = f"{os.getpid() % 100000}"
NS = (f"igtfA{SUFFIX}", f"igtfB{SUFFIX}")
LINK = (f"igA{SUFFIX}", f"igB{SUFFIX}")
ADDRESS = ("10.231.0.1", "10.231.0.2")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def _cannot_make_namespaces() -> str:
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"igtfP{SUFFIX}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return ""


@pytest.fixture
def two_hosts() -> Iterator[None]:
    """Namespaces A and B, ADDRESS[0] and ADDRESS[1] on the two ends of one veth pair."""
    why = _cannot_make_namespaces()
    if why:
        pytest.skip(why)
    try:
        for ns in NS:
            assert _ip("netns", "add", ns).returncode == 0
            _ip("-n", ns, "link", "set", "lo", "up")
        made = _ip("link", "add", LINK[0], "netns", NS[0], "type", "veth", "peer", "name", LINK[1],
                   "netns", NS[1])  # fmt: skip
        assert made.returncode == 0, made.stderr
        for ns, link, address in zip(NS, LINK, ADDRESS, strict=True):
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
        yield
    finally:
        for ns in NS:
            _ip("netns", "del", ns)  # takes its end of the veth pair with it


def launch(ns: str, graph: Path, host: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = str(log.parent / f"logs-{host}")
    command = ["ip", "netns", "exec", ns, str(IGTFLOW), "run", str(graph), "--host", host,
               "--port-base", "47300", "--json", "--log-dir", logs]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True
    )


def test_a_graph_split_over_two_hosts_survives_the_link_dropping(
    two_hosts: None, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    write_keypair(keys, "a")
    write_keypair(keys, "b")
    out = tmp_path / "remote.jsonl"
    graph = tmp_path / "split.yaml"
    graph.write_text(
        f"""name: split
curve:
  hosts: {{{ADDRESS[0]}: keys/a, {ADDRESS[1]}: keys/b}}
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    host: {ADDRESS[0]}
    params: {{rate_hz: 20, width: 256, height: 256}}
  - id: remote
    uses: tests.nodes.sinks:Recorder
    host: {ADDRESS[1]}
    inputs: {{in: src/image}}
    params: {{out: "{out}"}}
"""
    )
    runs = [
        launch(ns, graph, host, tmp_path / f"{host}.log")
        for ns, host in zip(NS, ADDRESS, strict=True)
    ]
    try:

        def logs() -> str:
            return "\n".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))

        try:
            before = wait_until(lambda: len(r := read_jsonl(out)) >= 20 and r, 60, "frames")
        except BaseException:
            print(logs())
            raise
        seqs = [r["seq"] for r in before]
        # A `latest` input may skip a frame while its node is busy (counted as skipped, not
        # lost); what arrives is in order and is the frame that was sent.
        assert seqs == sorted(set(seqs))
        assert all(r["intact"] and r["n"] == r["seq"] for r in before), "the same frames"

        assert _ip("-n", NS[0], "link", "set", LINK[0], "down").returncode == 0
        time.sleep(5.0)  # the outage itself is what is tested: 5 s without a link
        cut = read_jsonl(out)[-1]["seq"]
        assert _ip("-n", NS[0], "link", "set", LINK[0], "up").returncode == 0
        link_up = time.monotonic()
        # 20 Hz for 5 s: a frame 80 past the last one before the outage was made after it.
        wait_until(
            lambda: any(r["seq"] > cut + 80 for r in read_jsonl(out)),
            30,
            "live frames after the link came back",
        )
        print(f"live again {time.monotonic() - link_up:.1f} s after the link came back")
        # Two more seconds of frames: the reader's heartbeats (every 0.5 s) carry its count of
        # what it lost to its launcher before the launchers are stopped.
        wait_until(
            lambda: any(r["seq"] > cut + 120 for r in read_jsonl(out)), 30, "two more seconds"
        )
    finally:
        for run in runs:
            run.send_signal(signal.SIGTERM)
        results = [run.communicate(timeout=30)[0] for run in runs]
    rows = {row["node"]: row for text in results for row in json.loads(text)["nodes"]}
    assert set(rows) == {"src", "remote"}, "each host ran its own node"
    # 128 KiB frames: 5 s of them overflow the send queue and the socket buffers, so the
    # producer drops what the link could not carry and the reader sees the gap in seq.
    seqs = [r["seq"] for r in read_jsonl(out)]
    assert max(b - a for a, b in itertools.pairwise(seqs)) > 50, "the gap shows in seq"
    assert rows["remote"]["restarts"] == 0 and rows["src"]["restarts"] == 0
