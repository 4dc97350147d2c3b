"""The HTTP side of the gateway's port: reading a request's head, serving the static files.

h11 parses every connection's request head (at most `MAX_HEAD` bytes, within
`HEAD_TIMEOUT` seconds). A websocket upgrade is handed, with the bytes read so far
(`Replay`), to trio-websocket, which does the handshake itself; any other request is
answered here: ``GET``/``HEAD`` of the web view's files from the package folder
``autonoma/desktop/static/`` (no token: they hold no data), 404, 405 or 400 otherwise.
One request per connection (``Connection: close``).
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from importlib.abc import Traversable

import h11
import trio

MAX_HEAD = 16 * 1024
"""A request head larger than this is refused (431)."""

HEAD_TIMEOUT = 10.0
"""Seconds a client has to send its request head."""

STATIC_PACKAGE = "autonoma.desktop"
STATIC_FOLDER = "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
}


class BadHead(Exception):
    """The connection sent no valid request head in time; ``status`` to answer (0: none)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class Replay(trio.abc.Stream):
    """``stream``, with ``prefix`` (bytes already read from it) read again first."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The replayed bytes first, then the stream's."""
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send to the stream."""
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the stream."""
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        """Close the stream."""
        await self.stream.aclose()


async def read_head(stream: trio.abc.Stream) -> tuple[h11.Connection, h11.Request, bytes]:
    """The request head on ``stream``, its h11 connection, and every byte read so far.

    Raises `BadHead` for a malformed or oversized head, or a connection closed before
    one. Does not time out: the caller bounds it (`HEAD_TIMEOUT`).
    """
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    read = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as err:
            status = err.error_status_hint
            raise BadHead(status, str(err)) from None
        if isinstance(event, h11.Request):
            return conn, event, bytes(read)
        if event is h11.NEED_DATA:
            data = await stream.receive_some(4096)
            read += data
            conn.receive_data(bytes(data))
            if not data:
                raise BadHead(0, "closed before a request")
            continue
        raise BadHead(400, f"unexpected {type(event).__name__}")


def header(request: h11.Request, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case), the first one; None when absent."""
    for key, value in request.headers:
        if key == name:
            return bytes(value)
    return None


def is_websocket(request: h11.Request) -> bool:
    """Whether the request asks for a websocket upgrade."""
    upgrade = header(request, b"upgrade")
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def split_target(target: bytes) -> tuple[str, str]:
    """The path and the query string of a request target."""
    text = target.decode("ascii", "replace")
    path, _, query = text.partition("?")
    return path, query


def static_root() -> Traversable:
    """The web view's files, inside the installed package."""
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_FOLDER)


def find_static(path: str) -> Traversable | None:
    """The static file a URL path names (``/`` is ``index.html``); None if there is none.

    Only plain names: no ``..``, no dot-files, no backslashes.
    """
    parts = [part for part in path.split("/") if part]
    if not parts:
        parts = ["index.html"]
    for part in parts:
        if part.startswith(".") or "\\" in part or "%" in part or "\x00" in part:
            return None
    item = static_root().joinpath(*parts)
    if item.is_dir():
        item = item.joinpath("index.html")
    return item if item.is_file() else None


def content_type(name: str) -> str:
    """The Content-Type of a static file."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def security_headers(port: int) -> list[tuple[bytes, bytes]]:
    """What every answer carries: nothing cached, nothing from elsewhere, no framing."""
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"img-src 'self' data:; connect-src 'self' ws://127.0.0.1:{port}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", policy.encode()),
    ]


async def respond(
    stream: trio.abc.Stream,
    conn: h11.Connection,
    status: int,
    body: bytes,
    kind: str = "text/plain; charset=utf-8",
    *,
    port: int = 0,
    head_only: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send one whole response and end the connection's HTTP side."""
    headers = [
        (b"content-type", kind.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *security_headers(port),
        *(extra or []),
    ]
    data = conn.send(h11.Response(status_code=status, headers=headers))
    if data:
        await stream.send_all(data)
    if body and not head_only:
        data = conn.send(h11.Data(data=body))
        if data:
            await stream.send_all(data)
    data = conn.send(h11.EndOfMessage())
    if data:
        await stream.send_all(data)


async def serve_static(
    stream: trio.abc.Stream, conn: h11.Connection, request: h11.Request, port: int
) -> int:
    """Answer a plain HTTP request with a static file, 404 or 405; the status sent."""
    method = request.method.upper()
    if method not in (b"GET", b"HEAD"):
        await respond(
            stream, conn, 405, b"only GET and HEAD\n", port=port, extra=[(b"allow", b"GET, HEAD")]
        )
        return 405
    path, _ = split_target(request.target)
    item = find_static(path)
    if item is None:
        await respond(stream, conn, 404, b"not found\n", port=port, head_only=method == b"HEAD")
        return 404
    body = item.read_bytes()
    await respond(
        stream, conn, 200, body, content_type(item.name), port=port, head_only=method == b"HEAD"
    )
    return 200


async def refuse(stream: trio.abc.Stream, status: int, text: str) -> None:
    """Answer a connection whose head could not be read (a fresh h11 state)."""
    conn = h11.Connection(h11.SERVER)
    # h11 answers only after a request: a minimal one, never sent, puts it there.
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    await respond(stream, conn, status, (text + "\n").encode())
