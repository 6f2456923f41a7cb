"""The graph's security settings: CURVE keys for tcp edges, and the refusal of plain tcp.

Two top-level keys of a graph file::

    curve:                        # every tcp edge encrypted and authenticated (ZeroMQ CURVE)
      hosts:                      # each node host: its key pair from `igtflow keygen NAME`
        10.0.0.1: keys/theatre    #   keys/theatre.key (public) and keys/theatre.key_secret
        10.0.0.2: keys/gpu-box
      allow: [keys/theatre.key, keys/gpu-box.key]   # clients let in; default: the hosts' keys
    insecure: true                # or: plain tcp on a non-loopback address, on a trusted network

The producer of a tcp edge is the CURVE server (its host's secret key); each reader is a client
(its own host's secret key, the producer host's public key) and is let in only when its public key
is on ``allow``. Without ``curve:``, an edge bound to a non-loopback address is refused unless
the graph says ``insecure: true``: a hospital network must not be able to read or inject frames.
Paths are relative to the graph file. Only public keys are checked here; a host's secret key is
read where that host's nodes start.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from igtflow.launch.graph import CurveSpec
from igtflow.launch.graph_draft import NodeDraft
from igtflow.launch.graph_issues import Report
from igtflow.launch.graph_yaml import key_line, unknown_keys, yaml_type
from igtflow.launch.safe_yaml import quote
from igtflow.stream.curve import KeyFileError, KeyPair, load_public

CURVE_KEYS = ("hosts", "allow")
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so treat it as the network


def read_insecure(report: Report, doc: CommentedMap) -> bool:
    value = doc.get("insecure", False)
    if isinstance(value, bool):
        return value
    report(key_line(doc, "insecure"), f"'insecure' must be true or false, got {quote(value)}")
    return False


def read_curve(report: Report, doc: CommentedMap, graph_path: str) -> CurveSpec | None:
    """The ``curve:`` section, its key files checked; None when absent or wrong (reported)."""
    if "curve" not in doc:
        return None
    section = doc["curve"]
    line = key_line(doc, "curve")
    if not isinstance(section, CommentedMap):
        report(
            line, f"'curve' must be a mapping with 'hosts' (and 'allow'), got {yaml_type(section)}"
        )
        return None
    unknown_keys(report, section, CURVE_KEYS, "in 'curve'")
    folder = Path(graph_path).parent if graph_path != "<string>" else Path.cwd()
    hosts = _read_hosts(report, section, line, folder)
    allow = _read_allow(report, section, folder)
    if hosts is None:
        return None
    if allow is None:
        allow = tuple(str(KeyPair.at(base).public) for base in hosts.values())
    return CurveSpec(hosts, allow)


def _read_hosts(
    report: Report, section: CommentedMap, line: int, folder: Path
) -> dict[str, str] | None:
    entries = section.get("hosts")
    if not isinstance(entries, CommentedMap) or not entries:
        report(
            key_line(section, "hosts") if "hosts" in section else line,
            "'curve' needs 'hosts': a mapping of each node host to its key pair, e.g. "
            "{10.0.0.1: keys/theatre} for the files `igtflow keygen theatre --dir keys` writes",
        )
        return None
    hosts: dict[str, str] = {}
    for host, base in entries.items():
        where = key_line(entries, host)
        if not isinstance(base, str) or not base:
            report(
                where, f"curve host {quote(host)} needs the path of its key pair, got {quote(base)}"
            )
            continue
        pair = KeyPair.at(_resolve(folder, base))
        if _check_public(report, where, pair.public, f"the public key of host {quote(host)}"):
            hosts[str(host)] = str(pair.public.with_suffix(""))
    return hosts if len(hosts) == len(entries) else None


def _read_allow(report: Report, section: CommentedMap, folder: Path) -> tuple[str, ...] | None:
    if "allow" not in section:
        return None
    entries = section["allow"]
    line = key_line(section, "allow")
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        report(line, "'curve.allow' must be a list of public key files ('NAME.key')")
        return ()
    allow: list[str] = []
    for index, entry in enumerate(entries):
        where = entries.lc.item(index)[0] + 1 if hasattr(entries, "lc") else line
        path = _resolve(folder, entry)
        if path.name.endswith(".key_secret"):
            report(
                where,
                f"curve.allow lists the secret key {quote(entry)}; list the public '.key' file "
                "(a secret key never leaves its host)",
            )
        elif _check_public(report, where, path, "an allowed client key"):
            allow.append(str(path))
    return tuple(allow)


def _check_public(report: Report, line: int, path: Path, what: str) -> bool:
    try:
        load_public(path)
    except KeyFileError as exc:
        report(line, f"{what}: {exc}")
        return False
    return True


def _resolve(folder: Path, text: str) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (folder / path).resolve()


def check_tcp_edges(
    report: Report,
    nodes: dict[str, NodeDraft],
    curve: CurveSpec | None,
    insecure: bool,
    curve_given: bool,
) -> None:
    """Every output read across hosts: under ``curve`` both ends need a host key; without it,
    a non-loopback address needs ``insecure: true``."""
    flagged: set[str] = set()
    for producer in nodes.values():
        if producer.id is None:
            continue
        for output in producer.outputs:
            readers = [
                d
                for d in nodes.values()
                if any(w.node == producer.id and w.output == output for w in d.inputs)
            ]
            if {producer.host, *(r.host for r in readers)} == {None}:
                continue  # one host: a unix socket, never the network
            ref = f"{producer.id}/{output}"
            if curve_given:
                if curve is not None:
                    for end in (producer, *readers):
                        _check_keyed(report, end, ref, curve, flagged)
                continue
            bind = producer.host or "127.0.0.1"
            if insecure or is_loopback(bind) or producer.label in flagged:
                continue
            flagged.add(producer.label)
            report(
                producer.host_line or producer.line,
                f"node {producer.label} sends {quote(ref)} over plain tcp on {bind}, where "
                "anyone on that network can read or inject it; add a top-level 'curve:' section "
                "(keys from `igtflow keygen`) or, only on a network you trust, 'insecure: true'",
            )


def _check_keyed(
    report: Report, end: NodeDraft, ref: str, curve: CurveSpec, flagged: set[str]
) -> None:
    if end.label in flagged or (end.host is not None and end.host in curve.hosts):
        return
    flagged.add(end.label)
    known = ", ".join(quote(h) for h in curve.hosts)
    if end.host is None:
        why = "has no 'host:'; name the host it runs on"
    else:
        why = f"runs on host {quote(end.host)}, which curve.hosts does not list (it lists {known})"
    report(
        end.host_line or end.line,
        f"node {end.label} is at one end of the tcp edge {quote(ref)}, encrypted with CURVE, but "
        f"{why}; every such host needs a key pair from `igtflow keygen` in curve.hosts",
    )
