"""What the chaos tests share: the figures they measure, kept for the session's tables.

A test calls `record(table, row)` once per trial; `tests/chaos/conftest.py` prints one
table per ``table`` name at the end of the session (columns: the rows' keys).
"""

from __future__ import annotations

TABLES: dict[str, list[dict[str, object]]] = {}
"""The rows recorded so far in this session, by table name, in order."""


def record(table: str, row: dict[str, object]) -> None:
    """Keep ``row`` (one trial's figures) for the session's ``table`` (never blocks)."""
    TABLES.setdefault(table, []).append(dict(row))
