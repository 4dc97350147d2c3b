"""The dashboard driven by Textual's pilot on journals of real runs: each panel after keys."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import apsw
import pytest
from textual.widgets import DataTable, Static, Tree

from autonoma.journal import reader
from autonoma.journal.schema import open_write
from autonoma.project import find
from autonoma.protocol import Escalation, RetryRequested
from autonoma.tui.app import Dashboard, HelpScreen
from autonoma.tui.notify import escape
from autonoma.tui.run import human_command
from autonoma.tui.source import JournalSource
from tests.conftest import run_autonoma
from tests.e2e.runs import journal, make_project, messages, model_file
from tests.tui.conftest import OnScreen, Recorded, _env
from tests.tui.terminal import Terminal

TASKS = [f"t{i}" for i in range(1, 7)]

F = TypeVar("F", bound=Callable[..., Coroutine[Any, Any, None]])


def sync(test: F) -> Callable[..., None]:
    """Run an async pilot test in its own event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def text_of(app: Dashboard, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def board(app: Dashboard) -> dict[str, str]:
    """Task id -> the state the board shows."""
    table = app.query_one("#board", DataTable)
    return {
        str(key.value): str(table.get_row(key)[1])
        for key in (row.key for row in table.ordered_rows)
    }


def tree_labels(app: Dashboard) -> list[str]:
    tree: Tree[str] = app.query_one("#actors", Tree)
    labels: list[str] = []

    def walk(node: object) -> None:
        labels.append(str(node.label))  # type: ignore[attr-defined]
        for child in node.children:  # type: ignore[attr-defined]
            walk(child)

    walk(tree.root)
    return labels


@sync
async def test_a_finished_demo_shows_every_task_merged_every_agent_and_the_outcome(
    demo_run: OnScreen,
) -> None:
    app = Dashboard(JournalSource(demo_run.db))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        head = reader.last_seq(demo_run.db)
        assert f"at {head} / {head} (live)" in text_of(app, "#seqbar")
        assert board(app) == dict.fromkeys(TASKS, "merged")
        labels = tree_labels(app)
        for actor in ("journal", "governor", "merge_queue", "orchestrator", "crew", "ceo"):
            assert any(label.startswith(actor) for label in labels), labels
        assert any(label.startswith("developer-1 dead") for label in labels), labels
        run = text_of(app, "#run")
        assert ": done" in run and "tasks 6/6 done" in run and "6 merged" in run
        # No escalation in the demo: the panel is hidden.
        assert not app.query_one("#escalations").has_class("shown")


@sync
async def test_time_travel_shows_the_run_as_it_was_and_l_returns_to_live(
    demo_run: OnScreen,
) -> None:
    app = Dashboard(JournalSource(demo_run.db))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        head = reader.last_seq(demo_run.db)
        first = reader.run_ids(demo_run.db) and reader.runs(demo_run.db)[0].first_seq
        await pilot.press("home")
        assert app.at == first
        assert f"at {first} / {head} (time travel" in text_of(app, "#seqbar")
        assert board(app) == {}
        # Task events, one at a time, until the first task is defined.
        while not board(app):
            await pilot.press("right_square_bracket")
        at = app.at
        assert at is not None
        expected = reader.replay(demo_run.db, at_seq=at)
        assert list(board(app)) == list(expected.tasks)
        # One message forward and back: the seq moves by exactly one row of the run.
        await pilot.press("full_stop")
        assert app.at == at + 1
        await pilot.press("comma")
        assert app.at == at
        # Every panel shows the fold at that seq (the run panel says the phase then).
        assert f"phase {expected.run.phase}" in text_of(app, "#run")  # type: ignore[union-attr]
        await pilot.press("l")
        assert app.at is None
        assert board(app) == dict.fromkeys(TASKS, "merged")
        assert "(live)" in text_of(app, "#seqbar")


@sync
async def test_choosing_an_agent_in_the_tree_shows_its_stream(demo_run: OnScreen) -> None:
    app = Dashboard(JournalSource(demo_run.db))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        tree: Tree[str] = app.query_one("#actors", Tree)
        node = next(n for n in _nodes(tree.root) if n.data == "developer-1")
        tree.select_node(node)
        await pilot.pause()
        assert app.agent == "developer-1"
        shown = app.stream_text
        assert "▶ Bash: git commit" in shown or "▶ Bash: " in shown
        assert "◀ result" in shown
        # Paths as the agent saw them: its clone's folder is left out.
        assert ".autonoma/clones" not in shown


def _nodes(node: object) -> list[object]:
    found = [node]
    for child in node.children:  # type: ignore[attr-defined]
        found += _nodes(child)
    return found


@sync
async def test_an_escalated_task_is_shown_with_its_history_and_r_retries_it(
    escalated_copy: Path,
) -> None:
    db = escalated_copy / ".autonoma" / "state.db"
    before = reader.last_seq(db)
    app = Dashboard(JournalSource(db), command=human_command(find(escalated_copy)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert board(app)["t2"] == "escalated"
        panel = text_of(app, "#escalations")
        assert "t2 escalated" in panel and "t2.txt must say hello" in panel
        assert app.query_one("#escalations").has_class("shown")
        table = app.query_one("#board", DataTable)
        table.focus()
        table.move_cursor(row=list(board(app)).index("t2"))
        await pilot.press("r")
        await pilot.pause()
        await pilot.press(*"say hello")
        await pilot.press("enter")
        await pilot.pause()
        # The retry reached the journal (no run active: for the next start), with the note.
        retries = messages(journal(escalated_copy, after_seq=before), RetryRequested)
        assert [(m.task_id, m.note) for m in retries] == [("t2", "say hello")]
        # The dashboard follows its own journal: the board says the retry was asked.
        for _ in range(40):
            if "retry asked" in board(app)["t2"]:
                break
            await asyncio.sleep(0.05)
        assert board(app)["t2"] == "escalated (retry asked)"


@sync
async def test_a_refused_command_is_said_and_nothing_is_journaled(escalated_copy: Path) -> None:
    db = escalated_copy / ".autonoma" / "state.db"
    before = reader.last_seq(db)
    app = Dashboard(JournalSource(db), command=human_command(find(escalated_copy)))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one("#board", DataTable)
        table.focus()
        table.move_cursor(row=list(board(app)).index("t1"))  # merged: nothing to retry
        await pilot.press("r", "enter")
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert any("already merged" in m for m in said), said
    assert reader.last_seq(db) == before


def partial_journal(
    source: Path, db: Path, rows: int
) -> tuple[apsw.Connection, list[tuple[Any, ...]]]:
    """A journal at ``db`` holding the first ``rows`` rows of ``source`` (a run under
    way); its open connection, and the rows left out."""
    every = list(reader.rows(source))
    marks = ",".join("?" * len(every[0]))
    target = open_write(db)
    with target:
        target.executemany(f"INSERT INTO messages VALUES ({marks})", every[:rows])
    return target, list(every[rows:])


@sync
async def test_question_mark_opens_the_help(demo_run: OnScreen) -> None:
    app = Dashboard(JournalSource(demo_run.db))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@sync
async def test_the_live_dashboard_follows_rows_as_they_are_committed(
    demo_run: OnScreen, tmp_path: Path
) -> None:
    db = tmp_path / "state.db"
    # The first 200 rows now, the rest while the dashboard is open (a run writing them).
    target, rows = partial_journal(demo_run.db, db, 200)
    marks = ",".join("?" * len(rows[0]))
    app = Dashboard(JournalSource(db), refresh_s=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "merged" not in board(app).values() or len(set(board(app).values())) > 1
        with target:
            target.executemany(f"INSERT INTO messages VALUES ({marks})", rows)
        live = f"at {rows[-1][0]} / {rows[-1][0]} (live)"
        # Until the screen shows the head (a loaded machine redraws late), at most 20 s.
        for _ in range(400):
            if app.source.head == rows[-1][0] and live in text_of(app, "#seqbar"):
                break
            await pilot.pause(0.05)
        assert live in text_of(app, "#seqbar")
        assert board(app) == dict.fromkeys(TASKS, "merged")


def test_the_demo_on_a_terminal_runs_with_the_dashboard_to_its_end(demo_run: OnScreen) -> None:
    # The dashboard showed the run done, every task merged, until q.
    screen = demo_run.last_dashboard
    assert screen.count(" merged ") + screen.count(" merged\n") >= 6 or all(
        f"{t}   merged" in screen for t in TASKS
    ), screen
    for task in TASKS:
        assert any(task in line and "merged" in line for line in screen.splitlines()), screen
    # Then the same end as the plain log: the summary, the result's path, exit 0.
    after = demo_run.after
    assert "Run " in after and ": done. 6 tasks: 6 merged" in after, after
    assert f"The result: {demo_run.root}" in after
    assert "EXIT=0" in after
    assert "Traceback" not in after


def test_start_without_a_terminal_prints_the_plain_log(escalated_run: Recorded) -> None:
    out = escalated_run.result.stdout
    assert "[00:0" in out and "!!! ESCALATION [t2]" in out
    assert "\x1b[?1049h" not in out + escalated_run.result.stderr  # no full screen
    assert "failed. 3 tasks: 1 merged; 1 escalated" in out


def test_no_tui_on_a_terminal_prints_the_plain_log(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    model = model_file(root, "rejects_t2.toml")
    argv = [sys.executable, "-m", "autonoma", "start", "requirements.md"]
    argv += ["--scenario", str(model), "--max-workers", "2", "--no-tui"]
    term = Terminal(argv, root, {**_env(), "AUTONOMA_MAX_RETRIES": "1"})
    try:
        screen = term.wait_for(lambda s: "EXIT=" in s, "the command's end", timeout=90)
    finally:
        term.close()
    assert "Starting run" in screen and "!!! ESCALATION [t2]" in screen, screen
    assert "EXIT=1" in screen
    assert "tasks (* critical path)" not in screen


def test_dashboard_refuses_without_a_terminal(demo_run: OnScreen) -> None:
    result = run_autonoma("dashboard", cwd=demo_run.root)
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("notify", [True, False])
def test_an_escalation_arriving_live_rings_once_unless_switched_off(
    escalated_run: Recorded, tmp_path: Path, notify: bool
) -> None:
    @sync
    async def scenario() -> None:
        db = tmp_path / "state.db"
        escalation = next(
            e.seq for e in journal(escalated_run.root) if isinstance(e.message, Escalation)
        )
        # The run up to just before the escalation; then the rest is committed.
        target, rows = partial_journal(escalated_run.db, db, escalation - 1)
        marks = ",".join("?" * len(rows[0]))
        app = Dashboard(JournalSource(db), refresh_s=0.05, notify=notify)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert app.notified == []
            with target:
                target.executemany(f"INSERT INTO messages VALUES ({marks})", rows)
            for _ in range(100):
                if app.source.head == rows[-1][0]:
                    break
                await asyncio.sleep(0.05)
            await pilot.pause(0.3)
            if notify:
                # The escalation and the run's end: each said once.
                assert any("t2" in said for said in app.notified), app.notified
                count = len(app.notified)
                await pilot.pause(0.3)
                assert len(app.notified) == count
            else:
                assert app.notified == []

    scenario()


@pytest.mark.parametrize(
    ("title", "body", "shown"),
    [
        ("autonoma", "run done", "autonoma: run done"),
        # A body cannot end the sequence or add fields: ; and control characters go.
        ("autonoma", "evil\x1b]9;pwned\x07;x", "autonoma: evilx"),
    ],
)
def test_the_notification_escape(title: str, body: str, shown: str) -> None:
    sent = escape(title, body)
    assert sent.startswith("\a\x1b]9;")
    osc9 = sent[len("\a\x1b]9;") : sent.index("\x1b\\")]
    assert osc9 == shown
    assert sent.count("\x1b") == 4  # two sequences, two terminators: nothing injected
