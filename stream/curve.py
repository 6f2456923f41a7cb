"""ZeroMQ CURVE on the tcp edges of a graph: key files, server and client sockets, the allow-list.

A tcp edge crosses a host, so anyone on that network could read it or inject into it. With CURVE
the producer's XPUB is the server (it proves itself with its host's secret key) and every reader's
SUB is a client (it knows the server's public key and proves itself with its own host's key);
traffic is encrypted and a client whose public key is not on the allow-list is refused during the
handshake, so it gets nothing. The allow-list is enforced by pyzmq's own ZAP authenticator
(:class:`zmq.auth.thread.ThreadAuthenticator`), not by code of ours; we only hand it a callback
that says yes or no per key, and count and log every no.

Key files are ZeroMQ's certificate format (:func:`zmq.auth.create_certificates`): ``NAME.key``
holds the public key (safe to copy to every host), ``NAME.key_secret`` both halves (mode 0600,
never leaves its host). ``igtflow keygen NAME`` writes such a pair.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import zmq

from igtflow.stream.node import PermanentError

# zmq.auth is imported where it is used: it pulls in asyncio (0.3 s on a busy machine), which
# every node process would pay at each (re)start, CURVE or not.

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
REFUSAL_LOG_S = 5.0  # a refused client retries every 100 ms: one log line per key this often


class KeyFileError(PermanentError, ValueError):
    """A key file that is missing, unreadable or not a ZeroMQ certificate; says which and why.

    Permanent: a node whose key is missing on its host is not restarted in a loop."""


@dataclass(frozen=True)
class KeyPair:
    """The two files of one key pair, as ``igtflow keygen`` writes them."""

    public: Path
    secret: Path

    @classmethod
    def at(cls, base: str | Path) -> KeyPair:
        """The pair named by its path without suffix: ``keys/theatre`` → ``keys/theatre.key``."""
        base = Path(base)
        name = base.name.removesuffix(SECRET_SUFFIX).removesuffix(PUBLIC_SUFFIX)
        return cls(base.with_name(name + PUBLIC_SUFFIX), base.with_name(name + SECRET_SUFFIX))


def write_keypair(directory: str | Path, name: str, overwrite: bool = False) -> KeyPair:
    """Write a new CURVE key pair ``directory/name.key`` (public) and ``.key_secret`` (0600)."""
    directory = Path(directory)
    pair = KeyPair.at(directory / name)
    if not overwrite:
        for path in (pair.public, pair.secret):
            if path.exists():
                raise FileExistsError(
                    f"{path} already exists; pick another name, or pass --force to replace it "
                    "(every host and allow-list that holds the old public key must then be updated)"
                )
    directory.mkdir(parents=True, exist_ok=True)
    # Created private from the start, so the secret is never readable by others, even briefly.
    import zmq.auth

    old = os.umask(0o077)
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old)
    pair.secret.chmod(0o600)
    pair.public.chmod(0o644)
    return pair


def load_public(path: str | Path) -> bytes:
    """The z85 public key in a ``.key`` (or ``.key_secret``) file."""
    public, _ = _load(path)
    return public


def load_secret(path: str | Path) -> tuple[bytes, bytes]:
    """The (public, secret) z85 keys of a ``.key_secret`` file."""
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(
            f"{path} holds no secret key; name the '{SECRET_SUFFIX}' file that "
            "`igtflow keygen` wrote on this host"
        )
    return public, secret


def _load(path: str | Path) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not Path(path).is_file():
        raise KeyFileError(f"no key file {path}; write one with `igtflow keygen NAME`")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeyFileError(
            f"cannot read key file {path}: {exc.strerror or exc}; write one with "
            "`igtflow keygen NAME`"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path} is not a ZeroMQ key file ({exc})") from None
    if public is None or len(public) != 40:
        raise KeyFileError(f"{path} holds no public key; write one with `igtflow keygen NAME`")
    return public, secret


def make_server(sock: zmq.Socket, secret_file: str | Path) -> None:
    """Make ``sock`` (before bind) a CURVE server proving itself with ``secret_file``."""
    public, secret = load_secret(secret_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_server = True


def make_client(sock: zmq.Socket, secret_file: str | Path, server_public_file: str | Path) -> None:
    """Make ``sock`` (before connect) a CURVE client of the server whose public key is given."""
    public, secret = load_secret(secret_file)
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    sock.curve_serverkey = load_public(server_public_file)


class Gatekeeper:
    """The allow-list of one node process: a ZAP authenticator that accepts the listed keys.

    ZeroMQ asks it during every CURVE handshake on this process's server sockets; a refused key
    is counted in :attr:`refused` and logged (one line per key every few seconds: the client
    keeps retrying).
    """

    def __init__(
        self, ctx: zmq.Context, allowed_files: Iterable[str | Path], log: logging.Logger
    ) -> None:
        self.log = log
        self.allowed = {load_public(path) for path in allowed_files}
        self.refused = 0
        self._last_logged: dict[bytes, float] = {}
        self._lock = threading.Lock()
        from zmq.auth.thread import ThreadAuthenticator

        self.auth = ThreadAuthenticator(ctx, log=logging.getLogger("igtflow.zap"))
        self.auth.start()
        self.auth.configure_curve_callback("*", credentials_provider=self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """ZAP's question: may the client with this z85 public key in?"""
        if client_key in self.allowed:
            return True
        with self._lock:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_logged.get(client_key, -REFUSAL_LOG_S) >= REFUSAL_LOG_S:
                self._last_logged[client_key] = now
                self.log.warning(
                    "refused a tcp client with CURVE key %s: not on the graph's allow-list "
                    "(curve.allow); it gets nothing (%d refusals so far)",
                    client_key.decode("ascii", "replace"),
                    self.refused,
                )
        return False

    def close(self) -> None:
        self.auth.stop()
