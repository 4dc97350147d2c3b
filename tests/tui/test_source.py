"""The stream panel's rows from memory: exactly the journal's, for every agent and seq."""

from __future__ import annotations

from pathlib import Path

import pytest

from autonoma.journal import reader
from autonoma.tui.source import JournalSource
from tests.tui.conftest import DATA

DB = DATA / "demo.db"


def expected(db: Path, agent: str, until: int, limit: int) -> list[tuple[object, ...]]:
    """What the panel read from SQLite before: the agent's last rows up to ``until``."""
    return list(
        reader.rows(
            db,
            until_seq=until,
            run_id=reader.latest_run(db),
            sender_or_recipient=agent,
            limit_last=limit,
        )
    )


def agents(db: Path) -> list[str]:
    names = {r[3] for r in reader.rows(db)} | {r[4] for r in reader.rows(db)}
    return sorted(names)


@pytest.mark.parametrize("keep", [1, 3, 50, 400])
def test_rows_of_is_the_journal_query_for_every_agent_seq_and_limit(keep: int) -> None:
    source = JournalSource(DB, stream_keep=keep)
    head = source.head
    for agent in [*agents(DB), "nobody"]:
        for until in [0, 1, *range(7, head + 1, 13), head, head + 5]:
            for limit in (1, 4, 200):
                got = source.rows_of(agent, until, limit)
                assert got == expected(DB, agent, min(until, head), limit), (agent, until, limit)


def test_rows_of_follows_a_journal_read_bit_by_bit(tmp_path: Path) -> None:
    # Small refreshes, as while a run writes: at each head the panel's rows are the query's.
    source = JournalSource(DB, catch_up=False, stream_keep=3)
    names = agents(DB)
    while not source.caught_up:
        source.refresh(limit=11)
        for agent in names:
            assert source.rows_of(agent, source.head, 5) == expected(DB, agent, source.head, 5), (
                agent,
                source.head,
            )
    assert source.head == reader.last_seq(DB)
