"""The journal's SQLite file: creating it, opening it, and telling it apart from other files.

One table, ``messages``, holds every envelope in ``seq`` order. Triggers refuse UPDATE
and DELETE, so the history can only grow. ``PRAGMA application_id`` marks the file as
an Autonoma journal and ``PRAGMA user_version`` is the schema version.

The file is in WAL mode so that other processes (``autonoma status``, ``logs --follow``,
the TUI) read while a run writes, without blocking it. ``synchronous=NORMAL`` makes a
commit durable against the process crashing (even SIGKILL), which is what the journal
promises; a power cut may lose the last commits but never corrupts the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import apsw

SCHEMA_VERSION = 1
"""The ``user_version`` this code writes and reads."""

APPLICATION_ID = 0x41544E4D
"""``PRAGMA application_id`` of an Autonoma journal ("ATNM")."""

STATE_DB = Path(".autonoma") / "state.db"
"""Where a project's journal lives, relative to the project root."""

BUSY_TIMEOUT_MS = 5000
"""How long a connection waits for a lock (WAL recovery, checkpoints) before failing."""

COLUMNS = "seq, ts, run_id, sender, recipient, type, body"
"""The columns of a journal row, in the order readers and the fold expect them."""

# Several statements run in one `execute`: none of them returns rows, so apsw runs
# them all at once (a statement that returns rows would leave the rest pending).
_CREATE = f"""
CREATE TABLE messages(
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    run_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL
);
-- `autonoma status` folds one run and `runs()` lists them: both find a run's rows here.
CREATE INDEX messages_run ON messages(run_id);
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: UPDATE refused'); END;
CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages
BEGIN SELECT RAISE(ABORT, 'the journal is append-only: DELETE refused'); END;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""


class JournalError(Exception):
    """The journal cannot be used; the message is one line that names the file."""


def state_db_path(project_root: str | os.PathLike[str]) -> Path:
    """The journal of the project at ``project_root``: ``<root>/.autonoma/state.db``."""
    return Path(project_root) / STATE_DB


def _pragma(conn: apsw.Connection, name: str) -> object:
    # One statement per call: apsw would run anything after a row-returning pragma lazily.
    rows = conn.execute(f"PRAGMA {name}").fetchall()
    return rows[0][0] if rows else None


def _describe(exc: BaseException) -> str:
    """One line about an apsw error, in words a user can act on."""
    if isinstance(exc, apsw.NotADBError):
        return "not an Autonoma journal (not a SQLite database)"
    if isinstance(exc, apsw.CorruptError):
        return "the journal is corrupt (SQLite reports a malformed database)"
    if isinstance(exc, apsw.CantOpenError):
        return "cannot open the file (missing folder or no permission)"
    if isinstance(exc, apsw.BusyError):
        return "the journal stayed locked by another process"
    if isinstance(exc, apsw.ReadOnlyError):
        return "the journal is read-only"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def journal_error(path: str | os.PathLike[str], exc: BaseException) -> JournalError:
    """A `JournalError` naming ``path`` for an apsw error met while using it."""
    return JournalError(f"{os.fspath(path)}: {_describe(exc)}")


def _check(conn: apsw.Connection, path: str | os.PathLike[str]) -> bool:
    """Check that ``conn`` is an Autonoma journal; False when the file is still empty."""
    # One statement, so one snapshot: read piecemeal, a journal being created by its
    # writer could look half made (no application id yet, but already a table).
    [(app_id, version, has_objects, has_table)] = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id),"
        " (SELECT user_version FROM pragma_user_version),"
        " EXISTS (SELECT 1 FROM sqlite_schema),"
        " EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'messages')"
    ).fetchall()
    if app_id == 0 and version == 0 and not has_objects:
        return False
    name = os.fspath(path)
    if app_id != APPLICATION_ID:
        raise JournalError(f"{name}: not an Autonoma journal (another SQLite database)")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise JournalError(
            f"{name}: journal schema {version} was written by a newer Autonoma "
            f"(this one reads schema {SCHEMA_VERSION})"
        )
    if version < 1 or not has_table:
        raise JournalError(f"{name}: the journal is damaged (no messages table)")
    return True


def _create(conn: apsw.Connection, path: str | os.PathLike[str]) -> None:
    """Create the schema in one transaction: a reader sees an empty file or all of it."""
    # IMMEDIATE: take the write lock before reading. A deferred transaction that reads
    # first may be refused the upgrade at once (SQLITE_BUSY, no busy wait) when a
    # reader opening the new file meanwhile rebuilt the WAL index.
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _check(conn, path):  # another process may have created it meanwhile
            conn.execute(_CREATE)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def open_write(path: str | os.PathLike[str]) -> apsw.Connection:
    """Open the journal at ``path`` for writing, creating it (and its folder) if needed.

    Raises `JournalError` if the file is not a journal, is corrupt or cannot be opened.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn: apsw.Connection | None = None
    try:
        conn = apsw.Connection(
            os.fspath(path), flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
        )
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        exists = _check(conn, path)
        mode = _pragma(conn, "journal_mode=WAL")
        if mode != "wal":
            raise JournalError(f"{os.fspath(path)}: cannot switch the journal to WAL mode")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not exists:
            _create(conn, path)
        return conn
    except JournalError:
        if conn is not None:
            conn.close()
        raise
    except apsw.Error as exc:
        if conn is not None:
            conn.close()
        raise journal_error(path, exc) from exc


def open_read(path: str | os.PathLike[str]) -> apsw.Connection | None:
    """Open the journal at ``path`` read-only; None if there is none yet (missing or empty file).

    Safe from any process while a run writes it. Raises `JournalError` for a file that is
    not a journal or is corrupt.
    """
    if not os.path.exists(path):
        return None
    conn: apsw.Connection | None = None
    try:
        conn = apsw.Connection(os.fspath(path), flags=apsw.SQLITE_OPEN_READONLY)
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        if not _check(conn, path):
            conn.close()
            return None
        return conn
    except JournalError:
        if conn is not None:
            conn.close()
        raise
    except apsw.Error as exc:
        if conn is not None:
            conn.close()
        raise journal_error(path, exc) from exc


def integrity_check(path: str | os.PathLike[str]) -> list[str]:
    """SQLite's ``PRAGMA integrity_check`` of the journal: ``["ok"]`` when it is sound."""
    conn = open_read(path)
    if conn is None:
        return ["ok"]
    try:
        return [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]
    except apsw.Error as exc:
        raise journal_error(path, exc) from exc
    finally:
        conn.close()
