"""Time travel: `Timeline` against ``reader.replay`` on a real demo run, followed live.

The demo runs in a child process (the real ``claude`` against the sim, the real git)
while a `Timeline` in this process follows its journal; every seq of the recorded run
must then fold to the same state as a full replay up to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autonoma.journal import reader
from autonoma.journal.fold import State
from autonoma.journal.schema import JournalError
from autonoma.journal.timeline import NO_ROW, TASK_EVENTS, Timeline, copy_state
from autonoma.journal.writer import Journal
from autonoma.protocol import (
    AgentText,
    AnyMessage,
    Envelope,
    RunStarted,
    TaskDefined,
    TaskStateChanged,
)

DEADLINE = 180.0


@dataclass
class Followed:
    """A demo run, and what a Timeline following it live handed out on the way."""

    db: Path
    code: int
    stderr: str
    timeline: Timeline
    heads: list[int]
    """Every distinct head the live timeline reported, in order."""
    handed: list[tuple[State, dict[str, Any]]]
    """States handed out while following, with what they said when handed out."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Followed]:
    """``autonoma demo`` in a child process, followed from here while it runs."""
    where = tmp_path_factory.mktemp("timeline") / "todo"
    db = where / ".autonoma" / "state.db"
    proc = subprocess.Popen(
        [sys.executable, "-m", "autonoma", "demo", "--dir", str(where)],
        cwd=where.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Opened before the journal exists: it waits for it, and for the run to start.
    timeline = Timeline(db, checkpoint_every=16)
    heads: list[int] = []
    handed: list[tuple[State, dict[str, Any]]] = []
    deadline = time.monotonic() + DEADLINE
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            # Small bounded reads, so that checkpoints are made while the run writes.
            head = timeline.refresh(limit=7)
            if head and (not heads or head != heads[-1]):
                heads.append(head)
                state = timeline.state_at()
                handed.append((state, state.to_dict()))
            if timeline.caught_up:
                time.sleep(0.05)
        _, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        while not timeline.caught_up or timeline.head < reader.last_seq(db):
            timeline.refresh(limit=7)
        yield Followed(db, proc.returncode, stderr, timeline, heads, handed)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        timeline.close()


def test_the_run_was_followed_live_from_another_process(followed: Followed) -> None:
    assert followed.code == 0, followed.stderr
    assert followed.timeline.head == reader.last_seq(followed.db)
    # Seen growing while the demo wrote it, not read once at the end.
    assert len(followed.heads) > 10
    assert followed.heads == sorted(followed.heads)
    run_id = reader.latest_run(followed.db)
    assert followed.timeline.run_id == run_id
    assert list(followed.timeline.seqs) == [r[0] for r in reader.rows(followed.db, run_id=run_id)]


@pytest.mark.parametrize("every", [1, 7, 1000])
def test_every_seq_folds_to_the_same_state_as_a_full_replay(followed: Followed, every: int) -> None:
    db = followed.db
    timeline = Timeline(db, checkpoint_every=every)
    last = reader.last_seq(db)
    for seq in [None, *range(0, last + 3)]:
        expected = reader.replay(db, seq, run_id=timeline.run_id).to_dict()
        assert timeline.state_at(seq).to_dict() == expected, seq


def test_the_followed_timeline_folds_every_seq_like_a_replay(followed: Followed) -> None:
    timeline, db = followed.timeline, followed.db
    for seq in range(0, timeline.head + 1):
        assert timeline.state_at(seq).to_dict() == reader.replay(db, seq).to_dict(), seq


def test_states_handed_out_while_following_are_never_changed_later(followed: Followed) -> None:
    assert followed.handed
    for state, said in followed.handed:
        assert state.to_dict() == said
        assert said == reader.replay(followed.db, state.last_seq).to_dict()


def test_a_state_handed_out_is_the_callers_own(followed: Followed) -> None:
    timeline = followed.timeline
    seq = timeline.seqs[len(timeline.seqs) // 2]
    before = timeline.state_at(seq).to_dict()
    mine = timeline.state_at(seq)
    for task in mine.tasks.values():
        task.history.clear()
        task.usage.usd = -1.0
    mine.tasks.clear()
    head = timeline.state_at()
    head.agents.clear()
    assert timeline.state_at(seq).to_dict() == before
    assert timeline.state_at().agents


def test_step_moves_by_messages_and_by_task_events_clamped_to_the_run(
    followed: Followed,
) -> None:
    timeline = followed.timeline
    seqs = [r[0] for r in reader.rows(followed.db, run_id=timeline.run_id)]
    events = [r[0] for r in reader.rows(followed.db, run_id=timeline.run_id) if r[5] in TASK_EVENTS]
    first, last = seqs[0], seqs[-1]
    assert len(events) > 20
    table = [
        # (seq, by, task_events, expected)
        (first, 1, False, seqs[1]),
        (seqs[10], 5, False, seqs[15]),
        (seqs[10], -3, False, seqs[7]),
        (seqs[10], 0, False, seqs[10]),
        (last, 1, False, last),
        (last + 100, -1, False, last),
        (last, -1, False, seqs[-2]),
        (first, -1, False, first),
        (0, 1, False, first),
        (0, 0, False, first),
        (last + 100, 0, False, last),
        (0, 1, True, events[0]),
        (events[3], 1, True, events[4]),
        (events[3], 2, True, events[5]),
        (events[3], -1, True, events[2]),
        (events[3] + 1, -1, True, events[3]),
        (events[3] + 1, 1, True, events[4]),
        (events[-1], 1, True, last),
        (events[0], -1, True, first),
        (last + 100, -1, True, events[-1]),
    ]
    got = [(s, b, t, timeline.step(s, b, task_events=t)) for s, b, t, _ in table]
    assert got == table


def test_message_at_is_the_runs_row_at_or_before_the_seq(followed: Followed) -> None:
    timeline = followed.timeline
    rows = list(reader.rows(followed.db, run_id=timeline.run_id))
    assert timeline.message_at(rows[5][0]) == rows[5]
    assert timeline.message_at(rows[-1][0] + 50) == rows[-1]
    assert timeline.message_at(0) == rows[0]


# --- made-up journals: runs, a missing journal, bounded reads -------------------------


def _write(db: Path, run_id: str, messages: list[AnyMessage]) -> None:
    client = Journal.open(db)
    try:
        for message in messages:
            client.append_durable(
                Envelope(
                    seq=0,
                    ts=time.time(),
                    run_id=run_id,
                    sender="orchestrator",
                    recipient="*",
                    message=message,
                )
            )
    finally:
        client.stop()


def _run_messages(tasks: int) -> list[AnyMessage]:
    out: list[AnyMessage] = [RunStarted(requirements="r.md", project=".", max_workers=2)]
    for i in range(tasks):
        out.append(TaskDefined(task_id=f"t{i}", title=f"task {i}"))
        out.append(AgentText(agent_id="developer-1", text=f"working on t{i}", task_id=f"t{i}"))
        out.append(TaskStateChanged(task_id=f"t{i}", state="merged", attempt=1))
    return out


def test_a_missing_journal_is_an_empty_run_until_one_appears(tmp_path: Path) -> None:
    db = tmp_path / ".autonoma" / "state.db"
    timeline = Timeline(db)
    assert (timeline.head, list(timeline.seqs), timeline.run_id) == (0, [], None)
    assert timeline.state_at().to_dict() == State().to_dict()
    assert timeline.state_at(5).to_dict() == State().to_dict()
    assert (timeline.step(3), timeline.step(3, -1, task_events=True)) == (0, 0)
    assert timeline.message_at(1) == NO_ROW
    _write(db, "run-a", _run_messages(3))
    assert timeline.refresh() == 10
    assert timeline.run_id == "run-a"
    assert timeline.state_at().tasks["t2"].state == "merged"


def test_it_follows_the_run_it_was_given_and_only_that_one(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _write(db, "run-a", _run_messages(2))
    _write(db, "run-b", _run_messages(4))
    _write(db, "run-a", [TaskStateChanged(task_id="t0", state="failed", attempt=2)])
    first = Timeline(db, "run-a")
    assert list(first.seqs) == [1, 2, 3, 4, 5, 6, 7, 21]
    assert first.state_at().to_dict() == reader.replay(db, run_id="run-a").to_dict()
    assert set(first.state_at(20).tasks) == {"t0", "t1"}
    assert first.state_at(20).tasks["t0"].state == "merged"
    assert first.state_at().tasks["t0"].state == "failed"
    latest = Timeline(db)
    assert latest.run_id == "run-a"  # the run of the last row
    assert Timeline(db, "run-b").seqs[-1] == 20


def test_refresh_reads_a_bounded_batch_and_says_when_it_caught_up(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _write(db, "run-a", _run_messages(10))
    timeline = Timeline(db, catch_up=False, checkpoint_every=4)
    assert timeline.head == 0 and not timeline.caught_up
    assert timeline.refresh(limit=6) == 6
    assert not timeline.caught_up
    assert timeline.refresh(limit=6) == 12
    while not timeline.caught_up:
        timeline.refresh(limit=6)
    assert timeline.head == 31
    assert timeline.checkpoints == 1 + 31 // 4
    for seq in range(0, 33):
        assert timeline.state_at(seq).to_dict() == reader.replay(db, seq).to_dict(), seq


def test_copy_state_shares_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _write(db, "run-a", _run_messages(2))
    state = reader.replay(db)
    copy = copy_state(state)
    assert copy.to_dict() == state.to_dict()
    copy.tasks["t0"].history.clear()
    copy.runs["run-a"].usage.turns = 99
    assert state.tasks["t0"].history and state.runs["run-a"].usage.turns == 0


def test_a_file_that_is_not_a_journal_is_one_line_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_bytes(b"not a database at all, just text" * 100)
    with pytest.raises(JournalError, match=str(db)):
        Timeline(db)
