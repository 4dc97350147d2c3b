"""A filtering HTTP CONNECT proxy on a unix socket: the only way out of a set-up's sandbox.

A confined set-up runs with no network of its own (``bwrap --unshare-net``: loopback
only). Its package manager reaches the registries through ``socat`` inside the sandbox,
which relays a loopback port to the unix socket this proxy listens on (the socket's
folder is bound into the sandbox). The proxy allows ``CONNECT host:port`` to the
package registries and the user's named extras only, answers everything else with
``403``, and chains to the machine's own egress proxy when the set-up's environment
names one (``https_proxy``/``HTTPS_PROXY``/``http_proxy``/``HTTP_PROXY``).

`allowed` and `upstream_of` are pure (table-tested); `RegistryProxy` runs one thread
accepting connections and one thread per tunnel, all daemons, all ended by `close`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from autonoma.agents.sandbox import REGISTRY_DOMAINS

REGISTRIES: tuple[str, ...] = REGISTRY_DOMAINS
"""Where pip and npm fetch packages from: what a set-up may reach by default."""

REGISTRY_PORTS: tuple[int, ...] = (443,)
"""The ports a bare host name in the allow-list may be reached on (HTTPS only)."""

# A request head longer than this is not a package manager's CONNECT.
_HEAD_LIMIT = 8192
# How long a client (or the upstream proxy) may take to send its request (answer) head.
_HEAD_TIMEOUT = 15.0
_CONNECT_TIMEOUT = 15.0
_CHUNK = 65536


def allowed(host: str, port: int, allow: Collection[str]) -> bool:
    """Whether ``CONNECT host:port`` may pass: the pure decision, no I/O.

    An entry ``name`` allows ``name`` and its subdomains on `REGISTRY_PORTS`; an entry
    ``name:port`` allows exactly that host and port. Names compare case-insensitively,
    a trailing dot ignored. Never raises.
    """
    host = host.lower().rstrip(".")
    if not host:
        return False
    for entry in allow:
        name, _, port_text = entry.lower().rpartition(":")
        if name and port_text.isdigit():
            if host == name.rstrip(".") and port == int(port_text):
                return True
            continue
        name = entry.lower().rstrip(".")
        if name and (host == name or host.endswith("." + name)) and port in REGISTRY_PORTS:
            return True
    return False


def parse_connect(head: bytes) -> tuple[str, int] | None:
    """The ``(host, port)`` of a ``CONNECT host:port HTTP/1.x`` request head; None otherwise."""
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = line.split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        return None
    host, _, port_text = parts[1].rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def upstream_of(env: Mapping[str, str]) -> tuple[str, int] | None:
    """The egress proxy the environment names for HTTPS (host, port); None: connect directly.

    Reads ``https_proxy``, ``HTTPS_PROXY``, ``http_proxy``, ``HTTP_PROXY`` in that order;
    only ``http://`` proxies (or a bare ``host:port``) can carry a CONNECT. Never raises.
    """
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        value = env.get(name, "").strip()
        if not value:
            continue
        if "://" not in value:
            value = "http://" + value
        try:
            parts = urlsplit(value)
            port = parts.port or 80
        except ValueError:
            continue
        if parts.scheme == "http" and parts.hostname:
            return parts.hostname, port
    return None


def _read_head(conn: socket.socket) -> bytes | None:
    # Byte by byte up to the blank line: what follows it belongs to the tunnel.
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        if len(head) >= _HEAD_LIMIT:
            return None
        byte = conn.recv(1)
        if not byte:
            return None
        head += byte
    return bytes(head)


def _answer(conn: socket.socket, status: str, why: str) -> None:
    body = (why + "\n").encode()
    with contextlib.suppress(OSError):
        conn.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )


def _pump(a: socket.socket, b: socket.socket) -> None:
    # Both ways until either side closes: a tunnel carries TLS the proxy never reads.
    peers = {a: b, b: a}
    while True:
        ready, _, _ = select.select(list(peers), [], [], 300.0)
        if not ready:
            return
        for sock in ready:
            try:
                chunk = sock.recv(_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            try:
                peers[sock].sendall(chunk)
            except OSError:
                return


class RegistryProxy:
    """A CONNECT proxy listening on the unix socket ``path`` (see the module docstring).

    `start` binds the socket (raises OSError if it cannot) and returns at once; `close`
    stops accepting and cuts every tunnel. Use it as a context manager.
    """

    def __init__(
        self,
        path: Path,
        allow: Collection[str],
        upstream: tuple[str, int] | None = None,
    ) -> None:
        self.path = path
        self.allow = tuple(allow)
        self.upstream = upstream
        self.denied: list[str] = []
        """Every ``host:port`` refused, in order (for the set-up's output and tests)."""
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: socket.socket | None = None
        self._closed = False

    def start(self) -> RegistryProxy:
        """Listen on ``path`` and accept in a daemon thread (never blocks); raises OSError."""
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, name="registry-proxy", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop accepting and close every connection (from any thread); idempotent."""
        with self._lock:
            self._closed = True
            sockets = list(self._open)
            self._open.clear()
            server, self._server = self._server, None
        if server is not None:
            # shutdown wakes the accept() blocked in the other thread.
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def __enter__(self) -> RegistryProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                sock.close()
                return False
            self._open.add(sock)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        server = self._server
        while server is not None:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if not self._track(conn):
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        remote: socket.socket | None = None
        try:
            conn.settimeout(_HEAD_TIMEOUT)
            head = _read_head(conn)
            if head is None:
                return
            target = parse_connect(head)
            if target is None:
                _answer(conn, "405 Method Not Allowed", "autonoma: only CONNECT is proxied")
                return
            host, port = target
            if not allowed(host, port, self.allow):
                with self._lock:
                    self.denied.append(f"{host}:{port}")
                _answer(
                    conn,
                    "403 Forbidden",
                    f"autonoma: {host}:{port} is not a package registry; set-up commands "
                    "reach only the registries",
                )
                return
            remote = self._open_tunnel(conn, host, port)
            if remote is None:
                return
            conn.settimeout(None)
            remote.settimeout(None)
            _pump(conn, remote)
        except OSError:
            return
        finally:
            self._forget(conn, *([remote] if remote is not None else []))

    def _open_tunnel(self, conn: socket.socket, host: str, port: int) -> socket.socket | None:
        """The connection to ``host:port`` (via the upstream proxy if any), 200 sent; or None."""
        where = self.upstream or (host, port)
        try:
            remote = socket.create_connection(where, timeout=_CONNECT_TIMEOUT)
        except OSError as error:
            _answer(conn, "502 Bad Gateway", f"autonoma: cannot reach {host}:{port}: {error}")
            return None
        if not self._track(remote):
            return None
        if self.upstream is not None:
            ask = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
            remote.sendall(ask.encode())
            reply = _read_head(remote)
            status = reply.split(b" ", 2)[1] if reply and reply.count(b" ") >= 1 else b""
            if reply is None or status != b"200":
                # The upstream's refusal goes back as it is: it says why.
                with contextlib.suppress(OSError):
                    conn.sendall(reply or b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                self._forget(remote)
                return None
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return remote


__all__ = ["REGISTRIES", "RegistryProxy", "allowed", "parse_connect", "upstream_of"]
