"""Helpers of the gateway tests: a project with a recorded journal, a writer replaying
real protocol messages into it through the real journal writer, websocket clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from autonoma.config import Settings
from autonoma.desktop.gateway import Gateway, GatewayThread
from autonoma.desktop.info import GatewayInfo
from autonoma.journal import reader
from autonoma.journal.writer import Journal
from autonoma.project import Project
from autonoma.protocol import Envelope

DATA = Path(__file__).parent.parent / "tui" / "data"
DEMO = DATA / "demo.db"
"""A recorded ``autonoma demo`` run: 456 rows, six tasks merged."""
ESCALATED = DATA / "escalated.db"
"""A recorded run whose task t2 ended escalated."""


def make_project(parent: Path, journal: Path | None = None) -> Project:
    """A git repository with ``.autonoma/`` (and a copy of ``journal`` as its journal)."""
    root = parent / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / ".autonoma").mkdir()
    if journal is not None:
        shutil.copy(journal, root / ".autonoma" / "state.db")
    return Project(root)


def recorded(source: Path = DEMO) -> list[Envelope]:
    """The envelopes of a recorded journal."""
    return list(reader.read(source))


class Writer(threading.Thread):
    """Writes real envelopes into ``db`` through the real journal writer, in bursts of
    ``burst`` with ``pause`` seconds between them; ``rate`` is rows per second committed."""

    def __init__(
        self,
        db: Path,
        envelopes: list[Envelope],
        *,
        burst: int = 20,
        pause: float = 0.005,
    ) -> None:
        super().__init__(name="test-writer", daemon=True)
        self.db = db
        self.envelopes = envelopes
        self.burst = burst
        self.pause = pause
        self.last_seq = 0
        self.rate = 0.0
        self.error: BaseException | None = None
        self.started_writing = threading.Event()

    def run(self) -> None:
        try:
            client = Journal.open(self.db)
            try:
                began = time.perf_counter()
                self.started_writing.set()
                for index, old in enumerate(self.envelopes, 1):
                    envelope = Envelope(
                        seq=0,
                        ts=time.time(),
                        run_id=old.run_id,
                        sender=old.sender,
                        recipient=old.recipient,
                        message=old.message,
                    )
                    if index == len(self.envelopes):
                        self.last_seq = client.append_durable(envelope, timeout=60)
                    else:
                        client.append(envelope)
                    if index % self.burst == 0 and self.pause:
                        time.sleep(self.pause)
                self.rate = len(self.envelopes) / (time.perf_counter() - began)
            finally:
                client.stop()
        except BaseException as err:
            self.error = err
            raise

    def finish(self, timeout: float = 120) -> int:
        """Wait for the last row to be committed; its seq."""
        self.join(timeout)
        assert not self.is_alive(), "the writer did not finish"
        assert self.error is None, self.error
        return self.last_seq


@contextmanager
def gateway_thread(project: Project, **options: Any) -> Iterator[GatewayThread]:
    """The real gateway of ``project`` in a thread of its own, stopped after."""
    thread = GatewayThread(Gateway(project, Settings(), **options))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@asynccontextmanager
async def running_gateway(project: Project, **options: Any) -> AsyncIterator[GatewayThread]:
    """`gateway_thread`, for a trio test (started and stopped from a worker thread)."""
    thread = GatewayThread(Gateway(project, Settings(), **options))
    await trio.to_thread.run_sync(thread.start)
    try:
        yield thread
    finally:
        await trio.to_thread.run_sync(thread.stop)


def ws_url(info: GatewayInfo, token: str | None = None) -> str:
    """The websocket URL with the token as its query parameter."""
    return f"{info.url}?token={info.token if token is None else token}"


@asynccontextmanager
async def client(info: GatewayInfo) -> AsyncIterator[WebSocketConnection]:
    """A websocket client of the gateway; its hello frame already read."""
    async with open_websocket_url(ws_url(info), max_message_size=64 * 1024 * 1024) as ws:
        hello = json.loads(await ws.get_message())
        assert hello["type"] == "hello" and hello["protocol"] == 1
        yield ws


async def receive(ws: WebSocketConnection, timeout: float = 30.0) -> dict[str, Any]:
    """The next frame, decoded."""
    with trio.fail_after(timeout):
        frame: dict[str, Any] = json.loads(await ws.get_message())
        return frame


async def request(
    ws: WebSocketConnection, frame: dict[str, Any], skipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Send ``frame``; the next frame that is not a ``message``/``live`` one. Those it
    passes over are appended to ``skipped`` if given (the feed may send what a command
    journaled before the command's answer)."""
    await ws.send_message(json.dumps(frame))
    while True:
        answer = await receive(ws)
        if answer["type"] not in ("message", "live"):
            return answer
        if skipped is not None:
            skipped.append(answer)


async def collect_until(
    ws: WebSocketConnection, last_seq: int, frames: list[dict[str, Any]], timeout: float = 60
) -> None:
    """Append every frame received to ``frames`` until a message of ``last_seq`` arrives
    (at once if ``frames`` already holds it)."""
    if any(f["type"] == "message" and f["seq"] >= last_seq for f in frames):
        return
    with trio.fail_after(timeout):
        while True:
            frame = json.loads(await ws.get_message())
            frames.append(frame)
            if frame["type"] == "message" and frame["seq"] >= last_seq:
                return


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    """The seqs of the ``message`` frames, in the order received."""
    return [f["seq"] for f in frames if f["type"] == "message"]


def journal_seqs(db: Path) -> list[int]:
    """Every seq of the journal, in order."""
    return [row[0] for row in reader.rows(db)]
