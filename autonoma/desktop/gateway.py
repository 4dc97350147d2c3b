"""The gateway: one port on 127.0.0.1 for the web view's files and the live websocket feed.

Protocol version 1, described in ``docs/gateway.md``. Every connection's request head is
read with h11 (`autonoma.desktop.web`): a websocket upgrade to ``/ws`` goes to
trio-websocket (token checked before the handshake is accepted: 403 otherwise, no data
sent); anything else gets a static file. A client then sends JSON requests
(`autonoma.desktop.frames`) and gets frames back through its own bounded `Outbox`: the
journal is read by one `Feed` for all, snapshots come from checkpointed timelines
(`autonoma.desktop.snapshots`), commands go through `autonoma.workflow.human`. SQLite
reads, the fold, and commands run in worker threads: the trio loop never waits on them.

`Gateway.serve` is the async entry; `serve_forever` runs it in this thread (``autonoma
serve``), `GatewayThread` in a thread of its own (the run's ``gateway`` child, tests).
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import signal
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from autonoma.config import Settings
from autonoma.desktop import commands, files, info, web
from autonoma.desktop.feed import BATCH, INTERVAL, OUTBOX_FRAMES, STALL, Feed, Outbox, dropped_frame
from autonoma.desktop.frames import (
    CLOSE_DROPPED,
    CLOSE_GOING_AWAY,
    MAX_FRAME,
    Ack,
    CommandRequest,
    Error,
    FrameError,
    Hello,
    Listing,
    ListRequest,
    Request,
    SnapshotRequest,
    Subscribe,
    decode_request,
    encode,
)
from autonoma.desktop.snapshots import NoRun, Snapshots
from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.project import Project, active_run

logger = logging.getLogger("autonoma.desktop")

MAX_CLIENTS = 256
"""Websocket clients at once, at most: one more is refused with 503."""

DROP_GRACE = 2.0
"""Seconds a dropped client has to take its ``dropped`` frame before its socket is cut."""

CLOSE_TIMEOUT = 1.0
"""Seconds the closing handshake of a websocket may take."""

DB_THREADS = 4
"""Worker threads reading the journal at once (the feed, catch-ups, snapshots)."""

COMMAND_THREADS = 4
"""Commands being carried out at once (a start waits up to a minute)."""


@dataclass(eq=False)
class _Client:
    """One websocket client."""

    ws: WebSocketConnection
    outbox: Outbox
    peer: str
    scope: trio.CancelScope | None = None
    nursery: trio.Nursery | None = None
    subscribed: bool = False
    last_seq: int = 0
    """The seq of the last ``message`` frame handed to the socket."""
    extra: dict[str, Any] = field(default_factory=dict)


class Gateway:
    """The gateway of ``project`` (not started: see `serve`)."""

    def __init__(
        self,
        project: Project,
        settings: Settings,
        *,
        port: int = 0,
        token: str | None = None,
        write_info: bool = True,
        outbox_frames: int = OUTBOX_FRAMES,
        interval: float = INTERVAL,
        max_clients: int = MAX_CLIENTS,
        drop_grace: float = DROP_GRACE,
        stall: float = STALL,
    ) -> None:
        if outbox_frames < 2 * BATCH:
            # One look at the journal offers up to BATCH frames at once.
            raise ValueError(f"outbox_frames must be at least {2 * BATCH}, not {outbox_frames}")
        self.project = project
        self.settings = settings
        self.port = port
        self.token = token if token is not None else info.new_token()
        self.write_info = write_info
        self.outbox_frames = outbox_frames
        self.max_clients = max_clients
        self.drop_grace = drop_grace
        self.info: info.GatewayInfo | None = None
        self.info_path = info.path_in(project.dir)
        self.db_limiter = trio.CapacityLimiter(DB_THREADS)
        self.command_limiter = trio.CapacityLimiter(COMMAND_THREADS)
        self.feed = Feed(project.state_db, interval=interval, limiter=self.db_limiter, stall=stall)
        self.feed.on_drop = self._dropped
        self.snapshots = Snapshots(
            project.state_db, settings, alive=lambda: active_run(project) is not None
        )
        self.clients: dict[Outbox, _Client] = {}
        self.failures = 0
        """Connections ended by an error of their own (logged at debug level)."""
        self.rejected = 0
        """Websocket handshakes refused (no token, a wrong one, too many clients)."""

    # --- the server -------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, write ``gateway.json``, serve until cancelled, then remove the file.

        ``task_status.started`` gets the `GatewayInfo` once clients can connect. Raises
        OSError if the port cannot be listened on, `JournalError` for a broken journal.
        """
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        try:
            port = listeners[0].socket.getsockname()[1]
            self.info = info.make(port, self.token)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.feed.run)
                await nursery.start(trio.serve_listeners, self._connection, listeners)
                if self.write_info:
                    await trio.to_thread.run_sync(info.write, self.info_path, self.info)
                task_status.started(self.info)
        finally:
            if self.write_info:
                info.remove(self.info_path, self.token)
            self.snapshots.close()
            for listener in listeners:
                with contextlib.suppress(Exception):
                    listener.socket.close()

    async def drain(self, timeout: float = 1.0) -> None:
        """Wait, at most ``timeout`` seconds, until every row committed now was offered to
        the live clients and their outboxes are empty (before a stop: the run's last rows
        reach the web view)."""
        with trio.move_on_after(timeout):
            last = await trio.to_thread.run_sync(
                reader.last_seq, self.project.state_db, limiter=self.db_limiter
            )
            while self.feed.cursor < last or any(len(c.outbox) for c in self.clients.values()):
                await trio.sleep(0.02)

    async def _connection(self, stream: trio.SocketStream) -> None:
        """One TCP connection: an HTTP request, or a websocket."""
        try:
            peer = "{}:{}".format(*stream.socket.getpeername()[:2])
        except OSError:
            peer = "?"
        try:
            try:
                with trio.fail_after(web.HEAD_TIMEOUT):
                    conn, request, raw = await web.read_head(stream)
            except web.BadHead as err:
                if err.status:
                    await web.refuse(stream, err.status, str(err))
                return
            except trio.TooSlowError:
                return
            if web.is_websocket(request):
                await self._websocket(stream, request, raw, peer)
            else:
                port = self.info.port if self.info is not None else 0
                await web.serve_static(stream, conn, request, port)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass  # the client went away: nothing to tell it
        except Exception:
            # One connection's failure (a journal that cannot be read for its catch-up,
            # a bug) ends that connection only, never the gateway and its other clients.
            self.failures += 1
            logger.debug("gateway connection from %s failed", peer, exc_info=True)
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.aclose()

    def _authorized(self, request: h11.Request) -> bool:
        """Whether the upgrade request carries this gateway's token."""
        expected = self.token.encode()
        _, query = web.split_target(request.target)
        for value in urllib.parse.parse_qs(query).get("token", []):
            if hmac.compare_digest(value.encode(), expected):
                return True
        authorization = web.header(request, b"authorization")
        if authorization is not None:
            scheme, _, given = authorization.strip().partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), expected):
                return True
        return False

    async def _websocket(
        self, stream: trio.SocketStream, request: h11.Request, raw: bytes, peer: str
    ) -> None:
        path, _ = web.split_target(request.target)
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(web.HEAD_TIMEOUT):
                    handshake = await wrap_server_stream(
                        nursery,
                        web.Replay(stream, raw),
                        message_queue_size=4,
                        max_message_size=MAX_FRAME,
                    )
                if path != "/ws":
                    await handshake.reject(404, body=b"the websocket is at /ws\n")
                    return
                if not self._authorized(request):
                    self.rejected += 1
                    await handshake.reject(403, body=b"no token, or a wrong one\n")
                    return
                if len(self.clients) >= self.max_clients:
                    self.rejected += 1
                    await handshake.reject(503, body=b"too many clients\n")
                    return
                ws = await handshake.accept()
                try:
                    await self._client(ws, peer)
                finally:
                    with trio.move_on_after(CLOSE_TIMEOUT) as closing:
                        closing.shield = True
                        await ws.aclose(CLOSE_GOING_AWAY)
            except (trio.TooSlowError, ConnectionClosed):
                pass
            finally:
                nursery.cancel_scope.cancel()

    # --- one client -------------------------------------------------------------------

    async def _client(self, ws: WebSocketConnection, peer: str) -> None:
        client = _Client(ws=ws, outbox=Outbox(self.outbox_frames), peer=peer)
        self.clients[client.outbox] = client
        try:
            hello = await trio.to_thread.run_sync(self._hello, limiter=self.db_limiter)
            client.outbox.force((0, hello))
            async with trio.open_nursery() as nursery:
                client.nursery = nursery
                client.scope = nursery.cancel_scope
                nursery.start_soon(self._sender, client)
                nursery.start_soon(self._receiver, client)
        finally:
            self.feed.leave(client.outbox)
            self.clients.pop(client.outbox, None)

    def _hello(self) -> str:
        db = self.project.state_db
        return encode(
            Hello(
                project=str(self.project.root),
                run_id=reader.latest_run(db),
                head=reader.last_seq(db),
            )
        )

    async def _sender(self, client: _Client) -> None:
        """Send the client's frames in order; after a drop, the ``dropped`` frame and 4000."""
        assert client.scope is not None
        try:
            while True:
                item = await client.outbox.get()
                if item is None:
                    break
                await client.ws.send_message(item[1])
                if item[0]:
                    client.last_seq = item[0]
            reason = client.outbox.closed_reason or "dropped"
            await client.ws.send_message(dropped_frame(reason, client.last_seq))
            await client.ws.aclose(CLOSE_DROPPED, reason[:120])
        except ConnectionClosed:
            pass
        client.scope.cancel()

    def _dropped(self, outbox: Outbox, reason: str) -> None:
        """The feed dropped a client: cut it off if it does not take its last frame soon."""
        client = self.clients.get(outbox)
        if client is not None and client.nursery is not None:
            client.nursery.start_soon(self._cut_off, client)

    async def _cut_off(self, client: _Client) -> None:
        await trio.sleep(self.drop_grace)
        if client.scope is not None:
            client.scope.cancel()

    async def _receiver(self, client: _Client) -> None:
        """Read the client's requests one by one and answer each."""
        assert client.scope is not None
        while True:
            try:
                text = await client.ws.get_message()
            except ConnectionClosed:
                break
            try:
                request = decode_request(text)
            except FrameError as err:
                await client.outbox.put((0, encode(Error(id=err.id, error=str(err)))))
                continue
            answer = await self._answer(client, request)
            if answer is not None:
                await client.outbox.put((0, answer))
        client.scope.cancel()

    async def _answer(self, client: _Client, request: Request) -> str | None:
        """The frame answering ``request`` (None: a subscription, answered by its feed)."""
        if isinstance(request, Subscribe):
            if client.subscribed:
                return _error(request.id, "already subscribed: open another connection")
            client.subscribed = True
            assert client.nursery is not None
            client.nursery.start_soon(self.feed.subscribe, client.outbox, request.from_seq)
            return None
        if isinstance(request, SnapshotRequest):
            try:
                return await trio.to_thread.run_sync(
                    self._snapshot, request, limiter=self.db_limiter
                )
            except (NoRun, JournalError) as err:
                return _error(request.id, str(err))
        if isinstance(request, CommandRequest):
            try:
                text = await trio.to_thread.run_sync(
                    commands.run_command,
                    self.project,
                    request,
                    client.peer,
                    limiter=self.command_limiter,
                )
            except commands.Refused as err:
                return _error(request.id, str(err))
            return encode(Ack(id=request.id, text=text))
        if isinstance(request, ListRequest):
            try:
                entries, truncated = await trio.to_thread.run_sync(
                    files.listing, self.project.root, request.path
                )
            except (files.OutsideProject, OSError) as err:
                return _error(request.id, str(err))
            return encode(
                Listing(id=request.id, path=request.path, entries=entries, truncated=truncated)
            )
        return _error(None, f"unknown request {type(request).__name__}")

    def _snapshot(self, request: SnapshotRequest) -> str:
        return encode(self.snapshots.take(request.at_seq, request.run_id, request.id))


def _error(request_id: str | int | None, text: str) -> str:
    return encode(Error(id=request_id, error=" ".join(text.split())))


def serve_forever(
    gateway: Gateway, ready: Callable[[info.GatewayInfo], None] | None = None
) -> None:
    """Run ``gateway`` in this thread until Ctrl-C (KeyboardInterrupt is raised) or SIGTERM
    or SIGHUP (it returns); ``gateway.json`` is removed either way. ``ready`` is called
    once it listens. Raises OSError (cannot listen), `JournalError` (a broken journal).
    """

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            found = await nursery.start(gateway.serve)
            if ready is not None:
                ready(found)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP) as signals:
                async for _ in signals:
                    break
            with trio.move_on_after(2.0):
                await gateway.drain()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        raise _first(group) from None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error in ``group`` that is not a cancellation (what to tell the user)."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first(error)
        if not isinstance(error, trio.Cancelled):
            return error
    return group


class GatewayThread:
    """A gateway running in a thread of its own (its own trio loop)."""

    def __init__(self, gateway: Gateway, on_crash: Callable[[BaseException], None] | None = None):
        self.gateway = gateway
        self.on_crash = on_crash
        self.error: BaseException | None = None
        self.info: info.GatewayInfo | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._stopping = False
        self.thread = threading.Thread(target=self._main, name="gateway", daemon=True)

    def start(self, timeout: float = 30.0) -> info.GatewayInfo:
        """Start it; returns once it listens. Raises what made it fail to start."""
        self.thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the gateway did not start within {timeout:.0f} s")
        if self.info is None:
            raise self.error or RuntimeError("the gateway did not start")
        if self.error is not None:
            raise self.error
        return self.info

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    self.info = await nursery.start(self.gateway.serve)
                    self._ready.set()

        try:
            trio.run(main)
        except BaseException as err:
            self.error = _first(err) if isinstance(err, BaseExceptionGroup) else err
            if self._ready.is_set() and not self._stopping and self.on_crash is not None:
                self.on_crash(err)
        finally:
            self._ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it (clients are closed, ``gateway.json`` removed); waits up to ``timeout``."""
        self._stopping = True
        token, scope = self._token, self._scope
        if token is not None and scope is not None:
            with contextlib.suppress(trio.RunFinishedError, trio.Cancelled, JournalError):
                trio.from_thread.run(self.gateway.drain, trio_token=token)
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(scope.cancel, trio_token=token)
        if self.thread.is_alive():
            self.thread.join(timeout)
