"""The journal, followed once and fanned out to every subscribed client.

One `Feed` task reads the rows committed since its last look (in a worker thread, a
bounded batch at a time: the trio loop never waits on SQLite), turns each into its
``message`` frame once (the words of `autonoma.words.describe` with it), and offers the
frames to every live subscriber's `Outbox`. An outbox is bounded: a subscriber whose
outbox is full is dropped with a reason at once, and neither the feed nor the others
wait for it (nor does the run, which never waits for a reader of the journal).

A subscription first catches up from its own ``from_seq`` (its own bounded reads, paced
by its own client), then joins the live set in the same step of the trio loop in which
it saw that it had read everything the feed has sent: no row is missed, none is sent
twice.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Callable
from pathlib import Path

import apsw
import msgspec
import trio

from autonoma.desktop.frames import Dropped, Live, encode, message_frame
from autonoma.journal import reader
from autonoma.journal.fold import Row
from autonoma.journal.schema import open_read
from autonoma.protocol import decode_message
from autonoma.words import describe

BATCH = 500
"""Rows read (and encoded) in one worker-thread call, at most."""

INTERVAL = 0.05
"""Seconds between two looks at the journal when nothing new was found."""

OUTBOX_FRAMES = 10_000
"""Frames waiting for one client, at most: past it the client is dropped. Cheap: a frame
is one string shared by every outbox it waits in (an outbox holds references)."""

STALL = 30.0
"""Seconds a catching-up client's full outbox may stay full before it is dropped."""

Item = tuple[int, str]
"""A frame to send: the seq it carries (0 for none) and its JSON text."""


def frames_of(rows: list[Row]) -> list[Item]:
    """The ``message`` frames of journal rows, with their seqs. Pure (CPU only)."""
    out: list[Item] = []
    for row in rows:
        try:
            said = describe(decode_message(row[6]))
        except (msgspec.DecodeError, ValueError):
            said = None  # a type this version does not know: sent without words
        out.append((row[0], message_frame(row, said)))
    return out


def read_frames(db: Path | apsw.Connection, after: int, until: int | None) -> list[Item]:
    """The frames of rows ``after`` < seq <= ``until``, at most `BATCH` of them.

    Blocks on SQLite: call it in a worker thread.
    """
    end = after + BATCH if until is None else min(until, after + BATCH)
    return frames_of(list(reader.rows(db, after_seq=after, until_seq=end)))


class Outbox:
    """The frames waiting to be sent to one client, at most ``limit`` (a trio object)."""

    def __init__(self, limit: int = OUTBOX_FRAMES) -> None:
        self.limit = limit
        self._items: collections.deque[Item] = collections.deque()
        self._wakeup = trio.lowlevel.ParkingLot()
        self.closed_reason: str | None = None
        """Why no more frames are taken (the client was dropped); None while open."""
        self.floor = 0
        """Frames of a seq at or below this are not wanted (the subscription's from_seq)."""

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Item) -> bool:
        """Add ``item`` unless the outbox is full (False: the caller drops the client)."""
        if 0 < item[0] <= self.floor:
            return True
        if self.closed_reason is not None or len(self._items) >= self.limit:
            return False
        self._items.append(item)
        self._wakeup.unpark_all()
        return True

    def force(self, item: Item) -> None:
        """Add ``item`` even past the limit (by one frame: the ``live`` mark)."""
        self._items.append(item)
        self._wakeup.unpark_all()

    async def put(self, item: Item, stall: float = math.inf) -> bool:
        """Add ``item``, waiting while the outbox is full (the client's own pace); False
        if it stayed full ``stall`` seconds (the client does not read) or was closed."""
        with trio.move_on_after(stall):
            while len(self._items) >= self.limit and self.closed_reason is None:
                await self._wakeup.park()
            if self.closed_reason is not None:
                return False
            self._items.append(item)
            self._wakeup.unpark_all()
            return True
        return False

    async def drain(self, below: int, stall: float = math.inf) -> bool:
        """Wait until fewer than ``below`` frames wait; False if that took longer than
        ``stall`` seconds (the client does not read) or the outbox was closed."""
        with trio.move_on_after(stall):
            while len(self._items) >= below and self.closed_reason is None:
                await self._wakeup.park()
            return self.closed_reason is None
        return False

    async def get(self) -> Item | None:
        """The next frame to send; None once the outbox is closed (the rest is dropped)."""
        while not self._items and self.closed_reason is None:
            await self._wakeup.park()
        if self.closed_reason is not None:
            return None
        item = self._items.popleft()
        self._wakeup.unpark_all()
        return item

    def close(self, reason: str) -> None:
        """Take no more frames; `get` returns None from now on."""
        if self.closed_reason is None:
            self.closed_reason = reason
            self._items.clear()
        self._wakeup.unpark_all()


class Feed:
    """Follows the journal ``db`` and fans its rows out to live subscribers (trio).

    ``limiter`` bounds the worker threads reading the journal at once (the feed's and
    the subscriptions' catch-up reads). `run` goes on until cancelled.
    """

    def __init__(
        self,
        db: Path,
        *,
        interval: float = INTERVAL,
        limiter: trio.CapacityLimiter | None = None,
        stall: float = STALL,
    ) -> None:
        self.db = db
        self.stall = stall
        self.interval = interval
        self.limiter = limiter if limiter is not None else trio.CapacityLimiter(4)
        self.cursor = 0
        """Every row with seq <= cursor has been offered to the live subscribers."""
        self.live: set[Outbox] = set()
        self.started = trio.Event()
        """Set once `cursor` is the journal's head as found at start."""
        self.frames_sent = 0
        self.dropped = 0
        self.on_drop: Callable[[Outbox, str], None] | None = None

    async def run(self) -> None:
        """Follow the journal until cancelled. Raises `JournalError` for a broken journal."""
        self.cursor = await trio.to_thread.run_sync(reader.last_seq, self.db, limiter=self.limiter)
        self.started.set()
        conn: apsw.Connection | None = None
        try:
            while True:
                if conn is None:
                    conn = await trio.to_thread.run_sync(self._open, limiter=self.limiter)
                items = (
                    []
                    if conn is None
                    else await trio.to_thread.run_sync(
                        read_frames, conn, self.cursor, None, limiter=self.limiter
                    )
                )
                if items:
                    self._broadcast(items)
                if len(items) < BATCH:
                    await trio.sleep(self.interval)
        finally:
            if conn is not None:
                conn.close()

    def _open(self) -> apsw.Connection | None:
        return open_read(self.db) if os.path.exists(self.db) else None

    def _broadcast(self, items: list[Item]) -> None:
        # One step of the loop, no await: a subscription joining sees cursor and the
        # frames offered so far as one.
        for outbox in list(self.live):
            for item in items:
                if not outbox.offer(item):
                    self.drop(outbox, f"fell behind: more than {outbox.limit} frames waiting")
                    break
        self.frames_sent += len(items) * len(self.live)
        self.cursor = items[-1][0]

    def drop(self, outbox: Outbox, reason: str) -> None:
        """Stop feeding ``outbox`` and close it with ``reason``."""
        self.live.discard(outbox)
        if outbox.closed_reason is None:
            self.dropped += 1
            outbox.close(reason)
            if self.on_drop is not None:
                self.on_drop(outbox, reason)

    def _drop_stalled(self, outbox: Outbox) -> None:
        self.drop(outbox, f"not reading: {outbox.limit} frames waited {self.stall:g} s")

    def leave(self, outbox: Outbox) -> None:
        """The client went away: stop feeding it."""
        self.live.discard(outbox)

    async def subscribe(self, outbox: Outbox, from_seq: int) -> None:
        """Catch ``outbox`` up from ``from_seq``, send ``live``, then feed it live.

        Returns once it is live (the feed goes on feeding it). Paced by the client: it
        waits while the outbox is full.
        """
        await self.started.wait()
        outbox.floor = position = from_seq
        while True:
            target = self.cursor
            if position >= target and len(outbox) > outbox.limit // 2:
                # Caught up at the client's pace, the outbox is full: joining now, the
                # run's next burst would overflow it. Join once half of it is sent,
                # catching up whatever came meanwhile.
                if not await outbox.drain(outbox.limit // 2, self.stall):
                    self._drop_stalled(outbox)
                    return
                continue
            if position >= target:
                # Nothing the feed sent is unread: join now, in this same step.
                outbox.force((0, encode(Live(seq=target))))
                self.live.add(outbox)
                return
            items = await trio.to_thread.run_sync(
                read_frames, self.db, position, target, limiter=self.limiter
            )
            if not items:
                position = min(target, position + BATCH)  # a gap in the seqs: step over it
                continue
            for item in items:
                if not await outbox.put(item, self.stall):
                    self._drop_stalled(outbox)
                    return
            position = items[-1][0]


def dropped_frame(reason: str, last_seq: int) -> str:
    """The ``dropped`` frame sent before closing with 4000."""
    return encode(Dropped(reason=reason, last_seq=last_seq))
