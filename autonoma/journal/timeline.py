"""Time travel through one run: the state of the run at any seq, fast, while it goes on.

A `Timeline` follows one run's rows in the journal (from any process: it only reads,
and the run's writer keeps going thanks to WAL) and folds them with the same
`autonoma.journal.fold.fold_rows` as ``status``. Every `CHECKPOINT_EVERY` rows it
keeps a checkpoint of the folded `State`, serialized with msgpack: ``state_at(seq)``
decodes the nearest checkpoint at or before ``seq`` and folds the few rows after it,
so any point of a long run answers in milliseconds (``bench/timetravel.py`` prints the
figures), and the result is the same as ``reader.replay(db, seq, run_id)``.

Why msgpack checkpoints rather than State objects: a decoded State is a fresh,
independent copy by construction (6 to 14 times faster than ``copy.deepcopy``), and
the bytes take a fraction of the memory of the objects they describe. A checkpoint
encodes each task apart and reuses the previous checkpoint's bytes for a task that did
not change, so the memory grows with what changed, not with checkpoints x tasks.

A task's long texts (its prompt, its spec: half a long run's bytes) stay out of the
checkpoints' bytes: the same immutable str objects are put back into every decoded
task, so a decode costs a third less and a prompt is held once.

Seqs are kept in memory (and the seqs of task events), and the rows after the last
checkpoint (so the head and the states near it need no read); older rows are read back
from the journal when a state or a message is asked for. No State of a long run is
kept between two looks at its head: the one `refresh` folded is handed to the next
``state_at`` of the head. A State is tens of thousands of objects that every full
cyclic GC of the process walks: where ``state_at``'s worst case went (see
``bench/timetravel.py``).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import gc
import os
import threading
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import apsw
import msgspec

from autonoma.journal.fold import Row, State, Task, fold_rows
from autonoma.journal.schema import COLUMNS, JournalError, journal_error, open_read

CHECKPOINT_EVERY = 1000
"""Rows between two checkpoints of the fold (see ``bench/timetravel.py``)."""

COPY_BYTES_PER_ROW = 800
"""Copying a State (a msgpack round trip) costs about as much per this many bytes as
folding one row (measured on a 100,000-row run: 2.5 ms per MB, 2 us per row): the
head is copied when that is cheaper than folding the rows after the last checkpoint."""

REFRESH_ROWS = 5000
"""At most this many rows are read and folded by one `Timeline.refresh` call."""

TASK_EVENTS = frozenset(
    {
        "RunStarted",
        "RunFinished",
        "PhaseChanged",
        "PlanWritten",
        "TaskStateChanged",
        "TaskMerged",
        "MergeFailed",
        "ReviewVerdict",
        "Escalation",
        "RetryRequested",
        "ResolveRequested",
        "WorkPaused",
        "WorkResumed",
        "BudgetReached",
        "SupervisorGaveUp",
        "PauseRequested",
        "ResumeRequested",
        "StopRequested",
    }
)
"""Message types `Timeline.step` stops at with ``task_events=True``: what moves the board."""

NO_ROW: Row = (0, 0.0, "", "", "", "", "")
"""What `Timeline.message_at` returns while the run has no row yet (seq 0)."""

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(State)
_TASK_DECODER = msgspec.msgpack.Decoder(Task)


BIG_TEXT = 256
"""A task's text fields longer than this (its prompt, its spec) are kept out of the
checkpoints' bytes: the str object itself is shared (it is immutable), not decoded."""

_TEXT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Task) if f.type in ("str", str)
)

_Texts = tuple[tuple[str, str], ...]
"""A task's long text fields, by name."""


def _long_texts(task: Task) -> _Texts:
    return tuple(
        (name, text)
        for name in _TEXT_FIELDS
        if len(text := cast(str, getattr(task, name))) > BIG_TEXT
    )


class _Checkpoint:
    """A State, encoded: its tasks one by one, each shared with the checkpoint before it
    when it did not change since (most tasks of a long run are long finished).

    A task's long texts (`BIG_TEXT`) are not encoded: the same str objects are put back
    into each decoded task. They are half the bytes of a long run's state (its prompts),
    so decoding a checkpoint costs about half as much, and a task's prompt is held once
    however many checkpoints hold the task.
    """

    __slots__ = ("nbytes", "rest", "tasks", "texts")

    def __init__(self, state: State, before: _Checkpoint | None) -> None:
        tasks = state.tasks
        state.tasks = {}
        try:
            self.rest = _ENCODER.encode(state)
        finally:
            state.tasks = tasks
        known = before.tasks if before is not None else {}
        known_texts = before.texts if before is not None else {}
        self.tasks: dict[str, bytes] = {}
        self.texts: dict[str, _Texts] = {}
        for task_id, task in tasks.items():
            texts = _long_texts(task)
            # Blanked while encoded (the fold is not running: the lock is held).
            for name, _ in texts:
                setattr(task, name, "")
            try:
                encoded = _ENCODER.encode(task)
            finally:
                for name, text in texts:
                    setattr(task, name, text)
            old = known.get(task_id)
            # The same bytes object as before: memory is shared, not copied.
            self.tasks[task_id] = old if old == encoded else encoded
            if texts:
                old_texts = known_texts.get(task_id)
                self.texts[task_id] = old_texts if old_texts == texts else texts
        self.nbytes = len(self.rest) + sum(map(len, self.tasks.values()))
        self.nbytes += sum(len(text) for texts in self.texts.values() for _, text in texts)
        """The State's size as msgpack (about): what copying it costs."""

    def state(self) -> State:
        """A new State, decoded from the checkpoint."""
        state = _DECODER.decode(self.rest)
        decode = _TASK_DECODER.decode
        state.tasks = tasks = {task_id: decode(encoded) for task_id, encoded in self.tasks.items()}
        for task_id, texts in self.texts.items():
            task = tasks[task_id]
            for name, text in texts:
                setattr(task, name, text)
        return state

    def size(self, seen: set[int]) -> int:
        """Bytes held, not counting the tasks' bytes already in ``seen`` (ids)."""
        total = len(self.rest)
        for encoded in self.tasks.values():
            if id(encoded) not in seen:
                seen.add(id(encoded))
                total += len(encoded)
        for texts in self.texts.values():
            for _, text in texts:
                if id(text) not in seen:
                    seen.add(id(text))
                    total += len(text)
        return total


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """No cyclic garbage collection while a State is decoded or folded.

    A State of a long run is hundreds of thousands of objects, all made at once: left
    on, the collector walks the whole heap several times per decode (measured: it
    doubles ``state_at``'s median and makes its worst case several times worse). None
    of these objects is garbage yet, so nothing is lost by waiting.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def copy_state(state: State) -> State:
    """An independent deep copy of ``state`` (a msgpack round trip: fast, and shares nothing)."""
    with _no_gc():
        return _DECODER.decode(_ENCODER.encode(state))


class Timeline:
    """One run of a journal, folded, with checkpoints to go back to any of its seqs.

    ``run_id`` None follows the latest run of the journal when it is opened (or the first
    run to appear, if there is none yet). The constructor reads the rows committed so far
    (blocking: about a second per 100,000 rows of a large run); `refresh` then reads what
    the run adds.
    A missing journal is waited for (it reads as an empty run). The methods are safe to
    call from several threads (one lock). A journal that is not a journal or is corrupt
    raises `JournalError` (one line naming the file) from the constructor or `refresh`.
    """

    def __init__(
        self,
        db: Path | str | os.PathLike[str],
        run_id: str | None = None,
        *,
        checkpoint_every: int = CHECKPOINT_EVERY,
        catch_up: bool = True,
    ) -> None:
        """``catch_up=False``: read nothing yet (call `refresh` until `caught_up`)."""
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        self.db = Path(db)
        self.run_id = run_id
        self.every = checkpoint_every
        self._conn: apsw.Connection | None = None
        self._lock = threading.RLock()
        self._seqs: array[int] = array("q")
        self._events: array[int] = array("q")
        # The head State when nobody else holds it. `refresh` folds new rows into it (or
        # into one made from the last checkpoint and the tail); `state_at` of the head
        # hands a large one out (then forgets it) and copies a small one. So a Timeline
        # keeps no State of a long run between two looks at its head: its objects would
        # only make every full cyclic GC of the process longer (see bench/timetravel.py).
        self._spare: State | None = State()
        # _checkpoints[i]: the state after the first i * every rows.
        self._checkpoints: list[_Checkpoint] = [_Checkpoint(State(), None)]
        # The rows after the last checkpoint (fewer than `every`): states there are
        # folded from memory, the head's included, with no read and no copy of the head.
        self._tail: list[Row] = []
        self.caught_up = False
        """The last `refresh` read everything committed then."""
        if catch_up:
            while not self.caught_up:
                self.refresh()

    # --- reading --------------------------------------------------------------------

    def _connection(self) -> apsw.Connection | None:
        if self._conn is None:
            self._conn = open_read(self.db)
        return self._conn

    def close(self) -> None:
        """Close the read connection (a later call opens it again)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _query(self, sql: str, params: Sequence[object]) -> list[Row]:
        conn = self._connection()
        if conn is None:
            return []
        try:
            # fetchall: the read transaction ends here, so the writer's WAL checkpoints
            # are never held back by a dashboard.
            return cast(list[Row], conn.execute(sql, params).fetchall())
        except apsw.Error as exc:
            raise journal_error(self.db, exc) from exc

    def _find_run(self) -> str | None:
        conn = self._connection()
        if conn is None:
            return None
        try:
            found = conn.execute(
                "SELECT run_id FROM messages WHERE run_id != '' ORDER BY seq DESC LIMIT 1"
            ).fetchall()
        except apsw.Error as exc:
            raise journal_error(self.db, exc) from exc
        return str(found[0][0]) if found else None

    def refresh(self, limit: int = REFRESH_ROWS) -> int:
        """Read and fold at most ``limit`` rows committed since the last call; the head seq.

        Bounded work (a few ms per thousand rows), no waiting: `caught_up` says whether
        there may be more. Raises `JournalError` for a broken journal.
        """
        with self._lock, _no_gc():
            if self.run_id is None:
                self.run_id = self._find_run()
                if self.run_id is None:
                    self.caught_up = True
                    return self.head
            after = self._seqs[-1] if self._seqs else 0
            rows = self._query(
                f"SELECT {COLUMNS} FROM messages WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (self.run_id, after, limit),
            )
            self.caught_up = len(rows) < limit
            if not rows:
                return self.head
            # Taken: should a fold fail, the next refresh starts again from what is kept.
            head, self._spare = self._spare, None
            if head is None:
                head = self._state(len(self._seqs))
            every = self.every
            start = 0
            while start < len(rows):
                # Fold up to the next checkpoint boundary, then keep a checkpoint.
                room = every - len(self._seqs) % every
                chunk = rows[start : start + room]
                self._fold(chunk, head)
                self._read(chunk)
                self._tail.extend(chunk)
                for row in chunk:
                    self._seqs.append(row[0])
                    if row[5] in TASK_EVENTS:
                        self._events.append(row[0])
                start += len(chunk)
                if len(self._seqs) % every == 0:
                    self._checkpoints.append(_Checkpoint(head, self._checkpoints[-1]))
                    self._tail = []
            self._spare = head
            return self.head

    def _read(self, rows: list[Row]) -> None:
        """Called by `refresh` with the rows it just folded, in seq order, the lock held:
        a subclass keeps what it needs of them (nothing here)."""

    def _fold(self, rows: list[Row], state: State) -> None:
        try:
            fold_rows(rows, state)
        except ValueError as exc:
            raise JournalError(f"{self.db}: {exc}") from exc

    # --- where the run is -----------------------------------------------------------

    @property
    def head(self) -> int:
        """The seq of the run's last row read (0 before any)."""
        return self._seqs[-1] if self._seqs else 0

    @property
    def seqs(self) -> Sequence[int]:
        """This run's seqs read so far, ascending (a live view: do not keep it across refreshes)."""
        return self._seqs

    @property
    def checkpoints(self) -> int:
        """How many checkpoints are kept (the empty state included)."""
        return len(self._checkpoints)

    def checkpoint_bytes(self) -> int:
        """Memory taken by the checkpoints' bytes (a task's bytes shared by several once)."""
        seen: set[int] = set()
        return sum(c.size(seen) for c in self._checkpoints)

    def _count_at(self, seq: int | None) -> int:
        """How many of the run's rows have a seq <= ``seq`` (None: all)."""
        if seq is None:
            return len(self._seqs)
        return bisect.bisect_right(self._seqs, seq)

    def state_at(self, seq: int | None = None) -> State:
        """The run's state once message ``seq`` was committed (None: the head).

        The same as ``reader.replay(db, seq, run_id)``. The State is the caller's: later
        refreshes never change it. A seq before the run gives the empty State, one after
        its head the head. Reads at most `checkpoint_every` rows from the journal (none
        after the last checkpoint: those rows are kept).

        The cost is decoding the checkpoint before ``seq`` (it grows with the run's
        tasks) and folding the rows after it (fewer than `checkpoint_every`).
        """
        with self._lock, _no_gc():
            count = self._count_at(seq)
            spare = self._spare
            if count == len(self._seqs) and spare is not None:
                if self._checkpoints[-1].nbytes < len(self._tail) * COPY_BYTES_PER_ROW:
                    return copy_state(spare)  # a small State: cheaper than the fold
                self._spare = None  # the caller's now
                return spare
            return self._state(count)

    def _state(self, count: int) -> State:
        """A new State after the run's first ``count`` rows (the lock held, GC off)."""
        base = count // self.every
        state = self._checkpoints[base].state()
        done = base * self.every
        if base == len(self._checkpoints) - 1:
            # After the last checkpoint (the head too): the rows are in memory.
            self._fold(self._tail[: count - done], state)
        elif count > done:
            after = self._seqs[done - 1] if done else 0
            rows = self._query(
                f"SELECT {COLUMNS} FROM messages"
                " WHERE run_id = ? AND seq > ? AND seq <= ? ORDER BY seq",
                (self.run_id, after, self._seqs[count - 1]),
            )
            self._fold(rows, state)
        return state

    def step(self, seq: int, by: int = 1, *, task_events: bool = False) -> int:
        """The seq ``by`` messages after ``seq`` (before, if negative), clamped to the run.

        With ``task_events``, counts only `TASK_EVENTS`; stepping past the last one gives
        the head, before the first one the run's first seq. ``by=0`` gives the run's seq
        at or before ``seq`` (its first seq if ``seq`` is before it). 0 while the run has
        no row.
        """
        with self._lock:
            seqs = self._seqs
            if not seqs:
                return 0
            marks = self._events if task_events else seqs
            if by > 0:
                index = bisect.bisect_right(marks, seq) + by - 1
                return marks[index] if index < len(marks) else seqs[-1]
            if by < 0:
                index = bisect.bisect_left(marks, seq) + by
                return marks[index] if index >= 0 else seqs[0]
            index = bisect.bisect_right(seqs, seq) - 1
            return seqs[max(index, 0)]

    def message_at(self, seq: int) -> Row:
        """The row of the run at ``seq``, or the run's row just before it (clamped to the run).

        `NO_ROW` (seq 0) while the run has no row.
        """
        with self._lock:
            at = self.step(seq, 0)
            if not at:
                return NO_ROW
            rows = self._query(f"SELECT {COLUMNS} FROM messages WHERE seq = ?", (at,))
            return rows[0] if rows else NO_ROW
