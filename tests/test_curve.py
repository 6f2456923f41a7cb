"""CURVE on tcp edges: keys from `igtflow keygen`, encrypted edges, the allow-list, and the
refusal of plain tcp on the network."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import zmq

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from igtflow.stream.curve import load_public, load_secret, write_keypair
from tests.helpers.graph_runs import GraphRun, read_jsonl

IGTFLOW = Path(sys.executable).parent / "igtflow"


def split_graph(keys: Path, out: Path, allow: str = "") -> str:
    """A source on 127.0.0.1 and a recorder "on" 127.0.0.2: one tcp edge between two hosts."""
    return f"""
name: split
curve:
  hosts:
    127.0.0.1: {keys}/theatre
    127.0.0.2: {keys}/gpu
{allow}
nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    host: 127.0.0.1
    params: {{rate_hz: 50}}
  - id: remote
    uses: tests.nodes.sinks:Recorder
    host: 127.0.0.2
    inputs: {{in: src/image}}
    params: {{out: "{out}"}}
"""


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("theatre", "gpu", "intruder"):
        write_keypair(folder, name)
    return folder


def test_keygen_writes_a_public_key_and_a_private_secret_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(IGTFLOW), "keygen", "theatre", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    public, secret = tmp_path / "theatre.key", tmp_path / "theatre.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert load_secret(secret)[0] == load_public(public)
    assert "secret" not in public.read_text().split("curve", 1)[1]

    again = subprocess.run(
        [str(IGTFLOW), "keygen", "theatre", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2 and "--force" in again.stderr, "a key pair is never overwritten"


def test_a_curve_edge_carries_messages_encrypted(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, keys: Path
) -> None:
    out = tmp_path / "remote.jsonl"
    run = start_graph(split_graph(keys, out))
    (image,) = [o for o in run.nodes["src"].config.outputs if o.name == "image"]
    assert image.endpoint.startswith("tcp://127.0.0.1:")
    assert image.curve_secret == f"{keys}/theatre.key_secret"
    assert run.nodes["remote"].config.inputs[0].curve_server == f"{keys}/theatre.key"

    records = run.wait(lambda: len(r := read_jsonl(out)) >= 5 and r, 15, "frames over CURVE")
    assert all(r["intact"] for r in records)

    # A plain (no CURVE) subscriber on the same port never completes a handshake.
    ctx = zmq.Context.instance()
    plain = ctx.socket(zmq.SUB)
    plain.setsockopt(zmq.SUBSCRIBE, b"")
    plain.connect(image.endpoint)
    try:
        assert not plain.poll(500), "a client without CURVE received data"
    finally:
        plain.close(linger=0)


def test_a_client_not_on_the_allow_list_gets_nothing_and_the_producer_logs_it(
    start_graph: Callable[[str], GraphRun], tmp_path: Path, keys: Path
) -> None:
    out = tmp_path / "remote.jsonl"
    # The recorder's host key (gpu) is left off the allow-list.
    run = start_graph(split_graph(keys, out, allow=f"  allow: [{keys}/theatre.key]"))
    run.wait(lambda: run.stats("src").get("curve_refused", 0) >= 1, 15, "a refused handshake")
    run.wait(lambda: run.stats("src").get("sent", {}), 15, "the source sending")
    gpu = load_public(keys / "gpu.key").decode()
    run.wait(
        lambda: any(f"refused a tcp client with CURVE key {gpu}" in line for line in run.log_lines),
        15,
        "the refusal, naming the refused key, in the graph's log",
    )
    run.run_for(0.5)
    assert read_jsonl(out) == [], "a refused client received frames"


def test_a_client_with_a_wrong_key_gets_nothing(keys: Path) -> None:
    """Straight on the sockets: a SUB that knows the server key but holds an unlisted key."""
    import logging

    from igtflow.stream.curve import Gatekeeper, make_client, make_server

    ctx = zmq.Context()
    log = logging.getLogger("test.curve")
    gate = Gatekeeper(ctx, [keys / "gpu.key"], log)
    server = ctx.socket(zmq.PUB)
    make_server(server, keys / "theatre.key_secret")
    port = server.bind_to_random_port("tcp://127.0.0.1")
    good, bad = ctx.socket(zmq.SUB), ctx.socket(zmq.SUB)
    make_client(good, keys / "gpu.key_secret", keys / "theatre.key")
    make_client(bad, keys / "intruder.key_secret", keys / "theatre.key")
    for sock in (good, bad):
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(f"tcp://127.0.0.1:{port}")
    try:
        for _ in range(200):
            server.send(b"frame")
            if good.poll(20):
                break
        assert good.recv() == b"frame"
        for _ in range(20):
            server.send(b"frame")
        assert not bad.poll(300), "the unlisted client received data"
        assert gate.refused >= 1
    finally:
        for sock in (server, good, bad):
            sock.close(linger=0)
        gate.close()
        ctx.term()


def issues(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "graph.yaml"
    path.write_text(text)
    with pytest.raises(GraphError) as caught:
        parse_graph(text, str(path))
    return [str(issue) for issue in caught.value.issues]


PLAIN = """name: plain
{top}nodes:
  - id: src
    uses: tests.nodes.sources:Numbered
    host: {host}
  - id: remote
    uses: tests.nodes.sinks:Recorder
    host: {remote}
    inputs: {{in: src/image}}
    params: {{out: x.jsonl}}
"""


def test_plain_tcp_on_a_network_address_is_refused_at_its_host_line(tmp_path: Path) -> None:
    src, remote = issues(PLAIN.format(top="", host="10.0.0.8", remote="10.0.0.9"), tmp_path)
    assert src.startswith(f"{tmp_path / 'graph.yaml'}:5: node 'src' sends 'src/image' over")
    assert "plain tcp on 10.0.0.8" in src and "insecure: true" in src and "curve" in src
    # A node on a host binds its outputs there, read or not.
    assert remote.startswith(f"{tmp_path / 'graph.yaml'}:8: node 'remote' sends 'remote/status'")


def test_plain_tcp_is_allowed_on_loopback_or_when_marked_insecure(tmp_path: Path) -> None:
    parse_graph(
        PLAIN.format(top="", host="127.0.0.1", remote="127.0.0.2"), str(tmp_path / "graph.yaml")
    )
    graph = parse_graph(
        PLAIN.format(top="insecure: true\n", host="10.0.0.8", remote="10.0.0.9"),
        str(tmp_path / "graph.yaml"),
    )
    assert graph.insecure and graph.curve is None


def test_curve_needs_a_key_for_every_host_of_a_tcp_edge(tmp_path: Path, keys: Path) -> None:
    top = f"curve:\n  hosts: {{10.0.0.8: {keys}/theatre}}\n"
    (issue,) = issues(PLAIN.format(top=top, host="10.0.0.8", remote="10.0.0.9"), tmp_path)
    assert ":10: node 'remote' is at one end of the tcp edge 'src/" in issue
    assert "'10.0.0.9', which curve.hosts does not list" in issue


def test_curve_key_files_are_checked_with_their_line(tmp_path: Path, keys: Path) -> None:
    top = (
        f"curve:\n  hosts:\n    10.0.0.8: {keys}/theatre\n    10.0.0.9: {keys}/missing\n"
        f"  allow: [{keys}/theatre.key_secret]\n"
    )
    found = issues(PLAIN.format(top=top, host="10.0.0.8", remote="10.0.0.9"), tmp_path)
    assert any(":5: the public key of host '10.0.0.9': no key file" in i for i in found)
    assert any(":6: curve.allow lists the secret key" in i for i in found)


def test_relative_key_paths_are_read_from_the_graph_files_folder(
    tmp_path: Path, keys: Path
) -> None:
    top = "curve:\n  hosts: {10.0.0.8: keys/theatre, 10.0.0.9: keys/gpu}\n"
    graph = parse_graph(
        PLAIN.format(top=top, host="10.0.0.8", remote="10.0.0.9"), str(tmp_path / "graph.yaml")
    )
    assert graph.curve is not None
    assert graph.curve.public_file("10.0.0.9") == str(keys / "gpu.key")
    assert sorted(graph.curve.allow) == [str(keys / "gpu.key"), str(keys / "theatre.key")]


def test_a_missing_secret_key_stops_the_node_for_good_with_the_fix(tmp_path: Path) -> None:
    from igtflow.stream.curve import KeyFileError, make_server
    from igtflow.stream.node import PermanentError

    write_keypair(tmp_path, "theatre")
    (tmp_path / "theatre.key_secret").unlink()  # copied the public half only
    sock = zmq.Context.instance().socket(zmq.XPUB)
    try:
        with pytest.raises(KeyFileError, match="igtflow keygen") as caught:
            make_server(sock, tmp_path / "theatre.key_secret")
        assert isinstance(caught.value, PermanentError), "no restart loop over a missing key"
        with pytest.raises(KeyFileError, match="holds no secret key"):
            make_server(sock, tmp_path / "theatre.key")
    finally:
        sock.close(linger=0)


def test_validate_says_how_tcp_edges_are_protected(tmp_path: Path, keys: Path) -> None:
    top = "curve:\n  hosts: {10.0.0.8: keys/theatre, 10.0.0.9: keys/gpu}\n"
    path = tmp_path / "graph.yaml"
    path.write_text(PLAIN.format(top=top, host="10.0.0.8", remote="10.0.0.9"))
    done = subprocess.run(
        [str(IGTFLOW), "validate", str(path), "--json"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["security"] == {
        "curve_hosts": ["10.0.0.8", "10.0.0.9"],
        "curve_allowed_keys": 2,
        "insecure": False,
    }
