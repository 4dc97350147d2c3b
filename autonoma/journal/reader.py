"""Reading the journal, from any process, while a run may be writing it.

Every function takes ``db``: the path of the journal (usually ``.autonoma/state.db``,
see `autonoma.journal.schema.state_db_path`) or an open connection. Connections opened
here are read-only. A missing journal reads as an empty one: no rows, ``last_seq`` 0, no
runs, an empty `State`; `follow` waits for it to appear. A file that is not a journal
or is corrupt raises `JournalError` with a one-line message naming the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import apsw
import msgspec

from autonoma.journal.fold import Row, State, fold_rows
from autonoma.journal.schema import COLUMNS, JournalError, journal_error, open_read
from autonoma.protocol import Envelope, decode_message

Db = str | os.PathLike[str] | apsw.Connection
"""A journal: its path, or an open connection."""

FOLLOW_INTERVAL = 0.1
"""Seconds between two looks for new rows in `follow`."""

_FOLLOW_CHUNK = 1000


@contextlib.contextmanager
def _open(db: Db) -> Iterator[tuple[apsw.Connection | None, str]]:
    """The connection for ``db`` (None if there is no journal yet) and its name for errors."""
    if isinstance(db, apsw.Connection):
        yield db, db.filename
        return
    conn = open_read(db)
    try:
        yield conn, os.fspath(db)
    finally:
        if conn is not None:
            conn.close()


def _select(
    conn: apsw.Connection,
    after_seq: int = 0,
    until_seq: int | None = None,
    run_id: str | None = None,
    sender_or_recipient: str | None = None,
    limit_last: int | None = None,
    limit: int | None = None,
) -> apsw.Cursor:
    where = ["seq > ?"]
    params: list[Any] = [after_seq]
    if until_seq is not None:
        where.append("seq <= ?")
        params.append(until_seq)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    if sender_or_recipient is not None:
        where.append("(sender = ? OR recipient = ?)")
        params += [sender_or_recipient, sender_or_recipient]
    query = f"SELECT {COLUMNS} FROM messages WHERE {' AND '.join(where)}"
    if limit_last is not None:
        query = f"SELECT * FROM ({query} ORDER BY seq DESC LIMIT ?) ORDER BY seq"
        params.append(max(limit_last, 0))
    else:
        query += " ORDER BY seq"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
    return conn.execute(query, params)


def rows(
    db: Db,
    after_seq: int = 0,
    until_seq: int | None = None,
    run_id: str | None = None,
    sender_or_recipient: str | None = None,
    limit_last: int | None = None,
) -> Iterator[Row]:
    """Journal rows ``(seq, ts, run_id, sender, recipient, type, body)`` in seq order.

    ``after_seq`` < seq <= ``until_seq``; only ``run_id``'s rows; only those sent by or
    to ``sender_or_recipient``; only the last ``limit_last`` of those.
    """
    with _open(db) as (conn, name):
        if conn is None:
            return
        try:
            yield from _select(conn, after_seq, until_seq, run_id, sender_or_recipient, limit_last)
        except apsw.Error as exc:
            raise journal_error(name, exc) from exc


def envelope_of(row: Row, name: str = "journal") -> Envelope:
    """The envelope of a journal row (``name`` is used in the error if it does not decode)."""
    seq, ts, run_id, sender, recipient, tag, body = row
    try:
        message = decode_message(body)
    except msgspec.DecodeError as exc:
        raise JournalError(f"{name}: seq {seq}: cannot read the {tag} message: {exc}") from exc
    return Envelope(
        seq=seq, ts=ts, run_id=run_id, sender=sender, recipient=recipient, message=message
    )


def read(
    db: Db,
    after_seq: int = 0,
    until_seq: int | None = None,
    run_id: str | None = None,
    sender_or_recipient: str | None = None,
    limit_last: int | None = None,
) -> Iterator[Envelope]:
    """The journal's envelopes in seq order, filtered as in `rows`."""
    name = db.filename if isinstance(db, apsw.Connection) else os.fspath(db)
    for row in rows(db, after_seq, until_seq, run_id, sender_or_recipient, limit_last):
        yield envelope_of(row, name)


def last_seq(db: Db) -> int:
    """The seq of the last committed message (0 for an empty or missing journal)."""
    with _open(db) as (conn, name):
        if conn is None:
            return 0
        try:
            value = conn.execute("SELECT max(seq) FROM messages").fetchall()[0][0]
        except apsw.Error as exc:
            raise journal_error(name, exc) from exc
        return int(value) if value is not None else 0


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Where a run is in the journal: its first and last rows, and how many."""

    run_id: str
    first_seq: int
    last_seq: int
    messages: int
    first_ts: float
    last_ts: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "run_id": self.run_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "messages": self.messages,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }


def runs(db: Db) -> list[RunSummary]:
    """Every run id in the journal, oldest first (by first message)."""
    with _open(db) as (conn, name):
        if conn is None:
            return []
        try:
            # Answered from the run_id index alone; the two timestamps are then looked up.
            groups = cast(
                list[tuple[str, int, int, int]],
                conn.execute(
                    "SELECT run_id, min(seq), max(seq), count(*) FROM messages GROUP BY run_id"
                ).fetchall(),
            )
            result = []
            for run_id, first, last, count in sorted(groups, key=lambda g: g[1]):
                first_ts, last_ts = (
                    cast(
                        float,
                        conn.execute("SELECT ts FROM messages WHERE seq = ?", (seq,)).fetchall()[0][
                            0
                        ],
                    )
                    for seq in (first, last)
                )
                result.append(RunSummary(run_id, first, last, count, first_ts, last_ts))
            return result
        except apsw.Error as exc:
            raise journal_error(name, exc) from exc


def run_ids(db: Db) -> list[str]:
    """Every run id in the journal, oldest first (by first message)."""
    return [run.run_id for run in runs(db)]


def latest_run(db: Db) -> str | None:
    """The run id of the last message that belongs to a run (None if there is none)."""
    with _open(db) as (conn, name):
        if conn is None:
            return None
        try:
            found = conn.execute(
                "SELECT run_id FROM messages WHERE run_id != '' ORDER BY seq DESC LIMIT 1"
            ).fetchall()
        except apsw.Error as exc:
            raise journal_error(name, exc) from exc
        return str(found[0][0]) if found else None


def replay(db: Db, at_seq: int | None = None, run_id: str | None = None) -> State:
    """The state as it was once message ``at_seq`` was committed (None: now).

    With ``run_id``, only that run's messages are folded: ``status`` shows one run with
    ``replay(db, run_id=latest_run(db))``.
    """
    with _open(db) as (conn, name):
        if conn is None:
            return State()
        try:
            return fold_rows(_select(conn, until_seq=at_seq, run_id=run_id))
        except apsw.Error as exc:
            raise journal_error(name, exc) from exc
        except ValueError as exc:
            raise JournalError(f"{name}: {exc}") from exc


def follow_rows(
    db: Db,
    after_seq: int = 0,
    *,
    run_id: str | None = None,
    sender_or_recipient: str | None = None,
    interval: float = FOLLOW_INTERVAL,
    stop: threading.Event | None = None,
) -> Iterator[Row]:
    """Rows after ``after_seq`` as they are committed, until ``stop`` is set (or forever).

    Looks for new rows every ``interval`` seconds; waits for the journal to appear if
    it does not exist yet. No read transaction is held between looks, so the writer's
    checkpoints are not held back.
    """
    conn: apsw.Connection | None
    if isinstance(db, apsw.Connection):
        conn, name, path, own = db, db.filename, None, False
    else:
        conn, name, path, own = None, os.fspath(db), db, True
    last = after_seq
    try:
        while stop is None or not stop.is_set():
            if conn is None and path is not None:
                conn = open_read(path)
            found = 0
            if conn is not None:
                try:
                    chunk = cast(
                        list[Row],
                        _select(
                            conn, last, None, run_id, sender_or_recipient, limit=_FOLLOW_CHUNK
                        ).fetchall(),
                    )
                except apsw.Error as exc:
                    raise journal_error(name, exc) from exc
                found = len(chunk)
                for row in chunk:
                    last = row[0]
                    yield row
            if found < _FOLLOW_CHUNK:
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)
    finally:
        if own and conn is not None:
            conn.close()


def follow(
    db: Db,
    after_seq: int = 0,
    *,
    run_id: str | None = None,
    sender_or_recipient: str | None = None,
    interval: float = FOLLOW_INTERVAL,
    stop: threading.Event | None = None,
) -> Iterator[Envelope]:
    """Envelopes after ``after_seq`` as they are committed: ``autonoma logs --follow``.

    Same rules as `follow_rows`.
    """
    name = db.filename if isinstance(db, apsw.Connection) else os.fspath(db)
    for row in follow_rows(
        db,
        after_seq,
        run_id=run_id,
        sender_or_recipient=sender_or_recipient,
        interval=interval,
        stop=stop,
    ):
        yield envelope_of(row, name)
