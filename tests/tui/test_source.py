"""The stream panel: its rows from memory are exactly the journal's, and drawn live as at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import RichLog

from autonoma.journal import reader
from autonoma.tui.app import Dashboard
from autonoma.tui.source import JournalSource
from tests.tui.conftest import DATA
from tests.tui.test_dashboard import partial_journal, sync

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


def _shown(app: Dashboard) -> list[str]:
    """The stream panel's lines as drawn (its strips' text, wrapped lines joined back)."""
    log = app.query_one("#stream", RichLog)
    return [strip.text.rstrip() for strip in log.lines]


@sync
async def test_a_stream_followed_live_is_drawn_as_a_fresh_dashboard_draws_it(
    tmp_path: Path,
) -> None:
    # The demo's journal, its rows committed a few at a time while the dashboard follows
    # one agent: the panel grows by its new lines only, and ends as one drawn at once.
    db = tmp_path / "state.db"
    target, rows = partial_journal(DB, db, 120)
    marks = ",".join("?" * len(rows[0]))
    live = Dashboard(JournalSource(db), refresh_s=3600.0, notify=False)
    fresh = Dashboard(JournalSource(DB), refresh_s=3600.0, notify=False)
    async with live.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        live.agent = "developer-1"
        seen = set()
        for at in range(0, len(rows), 9):
            with target:
                target.executemany(f"INSERT INTO messages VALUES ({marks})", rows[at : at + 9])
            live.follow()
            await pilot.pause()
            seen.add(len(live._stream_shown))
        drawn = _shown(live)
        assert live.stream_text.count("\n") + 1 == len(live._stream_shown)
    async with fresh.run_test(size=(100, 40)) as pilot:
        await pilot.pause()
        fresh.agent = "developer-1"
        fresh.redraw(force=True)
        await pilot.pause()
        assert len(seen) > 3  # it grew while followed
        assert fresh.stream_text == live.stream_text
        assert _shown(fresh) == drawn
