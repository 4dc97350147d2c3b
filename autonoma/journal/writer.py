"""The journal actor: appends every envelope to SQLite, committing in groups.

Two parts:

- `Journal`, an actor (`autonoma.runtime.actor.Actor`, so a supervisor can run it)
  that owns the write connection. It numbers envelopes
  (``seq``, gap-free, continuing from the file's last one), and commits them in batches:
  a batch is committed when it reaches ``batch_size`` rows or ``batch_ms`` milliseconds
  after its first row, whichever comes first.
- `JournalClient`, the thread-safe handle publishers use (the bus's ``Store``). It
  outlives the actor: a supervisor can restart the journal with the same client, and
  envelopes queued meanwhile are written by the new actor.

An envelope is durable only once its batch is committed. `JournalClient.append_durable`
waits for that and returns the envelope's ``seq``; `JournalClient.append` does not wait.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pykka

from autonoma.journal.schema import JournalError, journal_error, open_write
from autonoma.protocol import Envelope, encode_message
from autonoma.runtime.actor import Actor

DEFAULT_BATCH_SIZE = 256
"""Rows per batch: a batch is committed as soon as it has this many."""

DEFAULT_BATCH_MS = 20.0
"""Milliseconds after a batch's first row at which it is committed, full or not."""

_INSERT = (
    "INSERT INTO messages(seq, ts, run_id, sender, recipient, type, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class JournalTimeout(JournalError, TimeoutError):
    """A durable append was not committed in time (it may still be committed later)."""


class _Waiter:
    """What a durable append waits on: resolved with its seq, or failed with an error."""

    __slots__ = ("error", "event", "seq")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.seq = 0
        self.error: BaseException | None = None

    def resolve(self, seq: int) -> None:
        self.seq = seq
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()


# A queued envelope, already encoded: (ts, run_id, sender, recipient, type, body, waiter).
_Item = tuple[float, str, str, str, str, str, _Waiter | None]


def _item(envelope: Envelope, waiter: _Waiter | None) -> _Item:
    """What the queue holds of an envelope: its row, encoded in the publisher's thread."""
    message = envelope.message
    return (
        envelope.ts,
        envelope.run_id,
        envelope.sender,
        envelope.recipient,
        type(message).__name__,
        encode_message(message).decode(),
        waiter,
    )


# A row of the messages table, in `_INSERT` order.
_Row = tuple[int, float, str, str, str, str, str]


class _Wake:
    """Told to the actor when envelopes are waiting in the client's queue."""


_WAKE = _Wake()


@dataclass(frozen=True, slots=True)
class _Flush:
    """Told by the timer: commit batch ``batch_no`` if it is still the open one."""

    batch_no: int


class JournalClient:
    """Thread-safe handle on the journal; implements the bus's ``Store`` protocol.

    Any thread may call `append` and `append_durable`. Encoding happens here, in the
    publisher's thread, so a message that cannot be encoded fails where it was sent.
    """

    def __init__(self) -> None:
        # Why a deque rather than one pykka `tell` per envelope: a tell per message
        # costs a queue.Queue put/get and a thread hand-off each time, which caps the
        # journal near 210k msgs/s, below a bare SQLite insert loop. Here publishers
        # append to this deque (thread-safe, lock-free under the GIL) and tell the
        # actor a single `_Wake` only when it is not already draining; the actor then
        # takes everything queued in one go, so a burst costs one tell, not thousands.
        self._queue: deque[_Item] = deque()
        # True from the moment a `_Wake` is told until the actor finds the queue empty.
        # The actor clears it *before* its last look at the queue, so an envelope
        # appended meanwhile is either seen by that look or triggers a new `_Wake`.
        self._awake = False
        self._actor: pykka.ActorRef[Any] | None = None
        # Why the journal cannot take durable appends right now (None: it can).
        self._down: BaseException | None = JournalError("the journal is not started")
        # Stopped for good: envelopes appended now are dropped, not queued.
        self._closed = False
        self._committed_seq = 0

    @property
    def actor_ref(self) -> pykka.ActorRef[Any] | None:
        """The journal actor attached now; None before one starts and once it let go of the file."""
        return self._actor

    @property
    def committed_seq(self) -> int:
        """The seq of the last committed envelope (0 before the first commit)."""
        return self._committed_seq

    def append(self, envelope: Envelope) -> None:
        """Queue ``envelope`` for the next group commit; returns at once.

        While the journal is being restarted the envelope waits in the queue; once the
        journal is stopped for good it is dropped.
        """
        if self._closed:
            return
        self._queue.append(_item(envelope, None))
        if not self._awake:
            self._wake()

    def append_durable(self, envelope: Envelope, timeout: float | None = None) -> int:
        """Queue ``envelope`` and wait until its batch is committed; returns its seq.

        Raises `JournalTimeout` after ``timeout`` seconds (the envelope may still be
        committed later), and `JournalError` if the journal is down or goes down first
        (the envelope is then not written).
        """
        waiter = _Waiter()
        item = _item(envelope, waiter)
        self._queue.append(item)
        down = self._down
        if down is not None:
            # The actor may have already swept the queue: take the item back if still
            # there; if it is gone, whoever took it resolves or fails the waiter.
            try:
                self._queue.remove(item)
            except ValueError:
                pass
            else:
                raise JournalError(f"the journal is down: {down}") from down
        if not self._awake:
            self._wake()
        if not waiter.event.wait(timeout):
            raise JournalTimeout(f"the journal did not commit within {timeout} s")
        if waiter.error is not None:
            raise JournalError(f"the journal did not commit: {waiter.error}") from waiter.error
        return waiter.seq

    def stop(self, timeout: float | None = None) -> None:
        """Stop the journal actor, committing everything queued first."""
        ref = self._actor
        if ref is not None:
            ref.stop(block=True, timeout=timeout)

    def _wake(self) -> None:
        self._awake = True
        ref = self._actor
        if ref is not None:
            # A dead actor has detached or is detaching: its successor (if any) gets a
            # `_Wake` when it attaches, and the queue keeps the envelopes until then.
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_WAKE)

    # --- used by the actor ----------------------------------------------------------

    def _attach(self, ref: pykka.ActorRef[Any], committed_seq: int) -> None:
        self._committed_seq = committed_seq
        self._actor = ref
        self._closed = False
        self._down = None
        self._awake = True
        ref.tell(_WAKE)  # envelopes may have queued while no actor was attached

    def _detach(self, error: BaseException, *, closed: bool) -> None:
        """The actor is going away: fail queued durable appends, keep the rest if not closed."""
        self._down = error
        self._actor = None
        self._closed = closed
        kept: list[_Item] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                break
            waiter = item[6]
            if waiter is not None:
                waiter.fail(error)
            elif not closed:
                kept.append(item)
        self._queue.extendleft(reversed(kept))


class _Timer(threading.Thread):
    """Tells the journal `_Flush` when the open batch has waited ``interval`` seconds.

    One long-lived thread rather than a `threading.Timer` per batch: under load a batch
    fills every millisecond or so, and starting a thread for each would cost more than
    the commit. It is re-armed lazily: a stale `_Flush` is ignored by the actor.
    """

    def __init__(self, interval: float, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._interval = interval
        self._cond = threading.Condition()
        self._due: float | None = None
        self._batch_no = 0
        self._stopped = False
        self._ref: pykka.ActorRef[Any] | None = None

    def start_for(self, ref: pykka.ActorRef[Any]) -> None:
        self._ref = ref
        self.start()

    def arm(self, batch_no: int) -> None:
        """Flush batch ``batch_no`` after the interval (replaces any earlier arming)."""
        with self._cond:
            idle = self._due is None
            self._due = time.monotonic() + self._interval
            self._batch_no = batch_no
            # A thread already waiting for an earlier deadline wakes before this one and
            # waits again, so it need not be woken now.
            if idle:
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def run(self) -> None:
        with self._cond:
            while not self._stopped:
                if self._due is None:
                    self._cond.wait()
                    continue
                delay = self._due - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                self._due = None
                if self._ref is not None:
                    with contextlib.suppress(pykka.ActorDeadError):
                        self._ref.tell(_Flush(self._batch_no))


class _WriterLock:
    """An exclusive lock on ``<journal>.lock``: one writing process per journal.

    flock(2) is released by the kernel when the process dies, so a SIGKILLed run leaves
    no stale lock. A separate file, because closing any descriptor of the database file
    itself would drop SQLite's own POSIX locks in this process.
    """

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalError(
                f"{db_path}: another process (pid {holder}) is writing this journal"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Journal(Actor):
    """The journal actor: owns the write connection, numbers and commits envelopes.

    Start it with `Journal.open` (returns the client) or, under a supervisor, with one
    client kept across restarts so the bus never needs re-attaching::

        client = JournalClient()
        bus.attach(client)
        ChildSpec("journal", start=lambda: Journal.start(db, client=client))

    The file is opened in the constructor, in the starting thread, so a bad journal
    raises `JournalError` from ``start``. Stopping the actor commits what is queued.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        client: JournalClient | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_ms: float = DEFAULT_BATCH_MS,
        farewell: Callable[[], Envelope] | None = None,
    ) -> None:
        """``farewell`` makes the last envelope written when the journal is stopped.

        The journal is the last actor to stop and nobody journals after it, so only it
        can record its own stop (its supervisor's `ActorStopped` would come too late).
        """
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if batch_ms <= 0:
            raise ValueError(f"batch_ms must be positive, not {batch_ms}")
        self.path = Path(path)
        self.client = client if client is not None else JournalClient()
        self._farewell = farewell
        self._batch_size = batch_size
        self._lock = _WriterLock(self.path)
        try:
            self._conn = open_write(self.path)
            rows = self._conn.execute("SELECT max(seq) FROM messages").fetchall()
        except apsw.Error as exc:
            self._lock.release()
            raise journal_error(self.path, exc) from exc
        except BaseException:
            self._lock.release()
            raise
        last = rows[0][0] if rows else None
        self._next_seq: int = last + 1 if isinstance(last, int) else 1
        self._batch: list[_Row] = []
        self._waiters: list[tuple[_Waiter, int]] = []
        self._batch_no = 0
        self._timer = _Timer(batch_ms / 1000.0, name=f"journal-timer-{self.path.name}")
        self._closed = False
        # Attach now, not in on_start: `start` returns before the actor thread runs, and
        # a durable append made right after must find the journal up (the `_Wake` and
        # the stop request simply wait in the actor's inbox until it runs).
        self.client._attach(self.actor_ref, self._next_seq - 1)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_ms: float = DEFAULT_BATCH_MS,
    ) -> JournalClient:
        """Start a journal on ``path`` and return its client (``client.stop()`` ends it)."""
        client = JournalClient()
        cls.start(path, client=client, batch_size=batch_size, batch_ms=batch_ms)
        return client

    # --- pykka hooks ------------------------------------------------------------------

    def on_start(self) -> None:
        self._timer.start_for(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if message is _WAKE:
            self._drain()
        elif isinstance(message, _Flush) and message.batch_no == self._batch_no:
            self._commit()  # a `_Flush` for an older batch comes after its commit: ignored
        return None

    def on_stop(self) -> None:
        try:
            if self._farewell is not None:
                self.client.append(self._farewell())
            self._drain()
            self._commit()
        finally:
            self._shutdown(JournalError("the journal is stopped"), closed=True)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        error = exception_value if isinstance(exception_value, BaseException) else None
        self._shutdown(error or JournalError("the journal crashed"), closed=False)

    def on_kill(self) -> None:
        # Runs in the supervisor's thread while ours may be stuck in a commit: do not
        # touch the connection. Durable appends are failed, plain ones wait for the
        # successor, and the writer lock is released so that the successor can open.
        self._closed = True
        self._timer.stop()
        self._lock.release()
        self.client._detach(JournalError("the journal was killed"), closed=False)

    # --- the work ---------------------------------------------------------------------

    def _drain(self) -> None:
        """Number everything queued into the open batch, committing each full batch."""
        client = self.client
        queue = client._queue
        popleft = queue.popleft
        batch = self._batch
        size = self._batch_size
        seq = self._next_seq
        while True:
            try:
                ts, run_id, sender, recipient, tag, body, waiter = popleft()
            except IndexError:
                # Clear the flag, then look once more (see JournalClient.__init__).
                client._awake = False
                if not queue:
                    break
                client._awake = True
                continue
            batch.append((seq, ts, run_id, sender, recipient, tag, body))
            if waiter is not None:
                self._waiters.append((waiter, seq))
            seq += 1
            if len(batch) >= size:
                self._next_seq = seq
                self._commit()
                batch = self._batch
            elif len(batch) == 1:
                self._timer.arm(self._batch_no)
        self._next_seq = seq

    def _commit(self) -> None:
        """Commit the open batch in one transaction, then resolve its durable appends."""
        batch = self._batch
        if not batch:
            return
        waiters = self._waiters
        self._batch = []
        self._waiters = []
        self._batch_no += 1
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, batch)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with contextlib.suppress(apsw.Error):
                    conn.execute("ROLLBACK")
            self._requeue(batch, waiters, exc)
            raise
        self.client._committed_seq = batch[-1][0]
        for waiter, seq in waiters:
            waiter.resolve(seq)

    def _requeue(
        self, batch: list[_Row], waiters: list[tuple[_Waiter, int]], exc: BaseException
    ) -> None:
        """After a failed commit: fail its durable appends, put the rest back in front."""
        self._next_seq = batch[0][0]
        durable = {seq for _, seq in waiters}
        for waiter, _ in waiters:
            waiter.fail(exc)
        items: list[_Item] = [(*row[1:], None) for row in batch if row[0] not in durable]
        self.client._queue.extendleft(reversed(items))

    def _shutdown(self, error: BaseException, *, closed: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        # The open batch was never committed: requeue it for a successor (if any).
        if self._batch:
            batch, waiters = self._batch, self._waiters
            self._batch, self._waiters = [], []
            self._requeue(batch, waiters, error)
        with contextlib.suppress(apsw.Error):
            self._conn.close()
        # Release before detaching: once the client shows no actor, a successor can open.
        self._lock.release()
        self.client._detach(error, closed=closed)
