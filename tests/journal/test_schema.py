"""The journal file: creation, WAL, append-only, schema version, bad files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import apsw
import pytest

from autonoma.journal import reader
from autonoma.journal.schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    JournalError,
    integrity_check,
    open_read,
    open_write,
    state_db_path,
)


def _insert(conn: apsw.Connection, seq: int) -> None:
    conn.execute(
        "INSERT INTO messages VALUES (?, 1.0, 'r', 's', '*', 'PhaseChanged', '{}')", (seq,)
    )


def test_creates_the_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.db"
    conn = open_write(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
        assert conn.execute("PRAGMA synchronous").fetchall() == [(1,)]  # NORMAL
        assert conn.execute("PRAGMA user_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA application_id").fetchall() == [(APPLICATION_ID,)]
        columns = [r[1] for r in conn.execute("PRAGMA table_info(messages)")]
        assert columns == ["seq", "ts", "run_id", "sender", "recipient", "type", "body"]
    finally:
        conn.close()
    # Reopening an existing journal keeps it as it is.
    open_write(path).close()
    assert integrity_check(path) == ["ok"]


def test_update_and_delete_are_refused(tmp_path: Path) -> None:
    conn = open_write(tmp_path / "state.db")
    try:
        _insert(conn, 1)
        with pytest.raises(apsw.ConstraintError, match="append-only"):
            conn.execute("UPDATE messages SET body = '[]' WHERE seq = 1")
        with pytest.raises(apsw.ConstraintError, match="append-only"):
            conn.execute("DELETE FROM messages")
        with pytest.raises(apsw.ConstraintError):
            _insert(conn, 1)  # a seq is written once
        assert conn.execute("SELECT seq, body FROM messages").fetchall() == [(1, "{}")]
    finally:
        conn.close()


def test_open_read_of_a_missing_or_empty_file_is_none(tmp_path: Path) -> None:
    assert open_read(tmp_path / "nothing.db") is None
    (tmp_path / "empty.db").write_bytes(b"")
    assert open_read(tmp_path / "empty.db") is None
    assert integrity_check(tmp_path / "nothing.db") == ["ok"]


def test_reader_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    open_write(path).close()
    conn = open_read(path)
    assert conn is not None
    try:
        with pytest.raises(apsw.ReadOnlyError):
            _insert(conn, 1)
    finally:
        conn.close()


@pytest.mark.parametrize("opener", [open_write, open_read])
def test_a_file_that_is_not_a_database(tmp_path: Path, opener: object) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not SQLite at all\n" * 200)
    with pytest.raises(JournalError) as caught:
        opener(path)  # type: ignore[operator]
    message = str(caught.value)
    assert str(path) in message and "not an Autonoma journal" in message
    assert "\n" not in message


@pytest.mark.parametrize("opener", [open_write, open_read])
def test_another_sqlite_database(tmp_path: Path, opener: object) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE t(x)")
    with pytest.raises(JournalError, match="not an Autonoma journal"):
        opener(path)  # type: ignore[operator]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = open_write(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer Autonoma"):
        open_read(path)
    with pytest.raises(JournalError, match="newer Autonoma"):
        open_write(path)


def test_a_corrupt_journal(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = open_write(path)
    with conn:
        for seq in range(1, 2000):
            conn.execute(
                "INSERT INTO messages VALUES (?, 1.0, 'r', 's', '*', 'T', ?)", (seq, "x" * 200)
            )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 3 : page * 6] = b"\xff" * (page * 3)  # wreck a few b-tree pages
    path.write_bytes(bytes(data))
    for action in (lambda: list(reader.rows(path)), lambda: reader.replay(path)):
        with pytest.raises(JournalError) as caught:
            action()
        assert (
            str(caught.value)
            == f"{path}: the journal is corrupt (SQLite reports a malformed database)"
        )


def test_state_db_path(tmp_path: Path) -> None:
    assert state_db_path(tmp_path) == tmp_path / ".autonoma" / "state.db"
