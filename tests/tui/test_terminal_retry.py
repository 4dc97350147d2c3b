"""``autonoma dashboard`` in a real terminal: tmux types the keys, capture-pane reads the screen.

Two runs of the real claude against the sim. (a) A finished run with t2 escalated: the
time-travel keys and the help change what the screen shows, and r on t2 with a note
journals the retry for the next start, which retries t2 and merges it. (b) A live run
(``autonoma start --no-tui`` in its own terminal) where t2 is escalated while t1 is still
being developed: r on t2 reaches the running run, which merges t2 before it ends, and
the dashboard shows it.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from autonoma.journal import reader
from autonoma.protocol import (
    AgentTurnStarting,
    RetryRequested,
    RunFinished,
    RunStarted,
    TaskStateChanged,
)
from tests.conftest import run_autonoma
from tests.e2e.runs import files_on, git, journal, make_project, messages, start
from tests.tui.conftest import _env
from tests.tui.terminal import Terminal

LIVE_SCENARIO = Path(__file__).parent / "scenarios" / "retry_while_t1_works.toml"
SIZE = (120, 40)


def dashboard(root: Path) -> Terminal:
    """``autonoma dashboard`` on a terminal of its own, in the project ``root``."""
    return Terminal([sys.executable, "-m", "autonoma", "dashboard"], root, _env(), SIZE)


def board_state(screen: str, task: str) -> str | None:
    """The state the task board shows for ``task`` (None: no such row on the screen)."""
    # A board row: "│  t1   merged   -   1 ..." or "│ *t2   escalated (retry asked)  ...".
    found = re.search(rf"│ [ *]{task} +(\S+(?: \S+)*)  ", screen)
    return None if found is None else found.group(1)


def seqbar(screen: str) -> str:
    """The top line: the run, the seq shown, the head, live or time travel."""
    return next((line for line in screen.splitlines() if " · at " in line), "")


def until(condition: Callable[[], object], what: str, timeout: float) -> None:
    """Poll ``condition`` until it holds; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        time.sleep(0.1)


def retry_from_the_keyboard(term: Terminal, task_row: int, task: str, note: str) -> None:
    """Select the board's row ``task_row`` (0: the first) with the keys, press r, type
    ``note``, enter; the note dialog must name ``task``."""
    term.keys("Tab")  # from the actor tree to the task board
    for _ in range(task_row):
        term.keys("Down")
    term.keys("r")
    term.wait_for(lambda s: "a note?" in s, "the note dialog", timeout=30)
    screen = term.screen()
    assert f"Retry {task}: a note?" in screen, screen
    term.keys("-l", note)
    term.keys("Enter")


def test_a_finished_run_travelled_and_retried_from_the_keyboard(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    db = root / ".autonoma" / "state.db"
    recorded = start(root, "rejects_t2.toml", {**_env(), "AUTONOMA_MAX_RETRIES": "1"})
    assert recorded.returncode == 1, recorded.stdout + recorded.stderr
    head = reader.last_seq(db)
    first = reader.runs(db)[0].first_seq
    note = "t2.txt must say hello"
    term = dashboard(root)
    try:
        screen = term.wait_for(
            lambda s: f"at {head} / {head} (live)" in s and board_state(s, "t2") == "escalated",
            "the finished run, t2 escalated",
            timeout=60,
        )
        assert board_state(screen, "t1") == "merged", screen
        assert "needs a human" in screen and "t2 escalated: failed 2 times" in screen

        # Time travel: home goes to the journal's first row, where no task exists yet.
        term.keys("Home")
        screen = term.wait_for(lambda s: f"at {first} / {head} (time" in s, "the start")
        assert board_state(screen, "t1") is None and "no run yet" in seqbar(screen), screen
        # → one message forward.
        term.keys("Right")
        term.wait_for(lambda s: f"at {first + 1} / {head} (time" in s, "one message on")
        # ] one task event forward at a time, until the tasks are defined.
        shown = seqbar(term.screen())
        for _ in range(30):
            term.keys("]")
            screen = term.wait_for(lambda s, was=shown: seqbar(s) != was, "a task event on")
            shown = seqbar(screen)
            if board_state(screen, "t1") is not None:
                break
        at = int(re.search(r" at (\d+) / ", shown).group(1))  # type: ignore[union-attr]
        assert first + 1 < at < head and "(time travel" in shown, screen
        then = reader.replay(db, at_seq=at)
        assert [t for t in ("t1", "t2", "t3") if board_state(screen, t)] == list(then.tasks)
        assert board_state(screen, "t1") == "waiting on deps", screen
        # l: back to live, t2 escalated again.
        term.keys("l")
        screen = term.wait_for(lambda s: f"at {head} / {head} (live)" in s, "live again")
        assert board_state(screen, "t2") == "escalated", screen

        # ? opens the help; escape closes it.
        term.keys("?")
        screen = term.wait_for(lambda s: "Autonoma dashboard" in s, "the help")
        assert "one task event back / forward" in screen and "retry it, with a note" in screen
        term.keys("Escape")
        term.wait_for(lambda s: "Autonoma dashboard" not in s, "the help closed")

        # r on t2 (the board's second row), a note, enter: journaled for the next start.
        retry_from_the_keyboard(term, 1, "t2", note)
        # The board follows the journal, the toast the answer to the request: either may
        # be drawn first. The toast wraps where the temporary folder's length says: one
        # line of it.
        term.wait_for(
            lambda s: (
                board_state(s, "t2") == "escalated (retry asked)"
                and "t2 will be retried when the run" in s
            ),
            "the retry asked, and said",
        )
        (asked,) = messages(journal(root, after_seq=head), RetryRequested)
        assert (asked.task_id, asked.note) == ("t2", note)
        assert "tty /dev/pts/" in asked.origin  # typed on a terminal
        status = run_autonoma("status", cwd=root, env=_env())
        assert f"note: {note}" in status.stdout, status.stdout
        assert "retry requested" in status.stdout and "has not acted on it yet" in status.stdout

        # The next start resumes the run, retries t2 (QA now approves) and merges it;
        # the dashboard, still open, follows.
        resumed = start(root, "approves_all.toml", _env())
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "Resuming run" in resumed.stdout
        screen = term.wait_for(
            lambda s: all(board_state(s, t) == "merged" for t in ("t1", "t2", "t3")),
            "every task merged",
            timeout=60,
        )
        term.keys("q")
        assert "EXIT=0" in term.wait_for(lambda s: "EXIT=" in s, "the dashboard's end")
    finally:
        term.close()
    assert {"t1.txt", "t2.txt", "t3.txt"} <= files_on(root, "main")
    rows = journal(root, after_seq=head)
    retried = [m for m in messages(rows, AgentTurnStarting, task_id="t2") if m.role == "developer"]
    assert retried and note in retried[0].argv[-1]
    assert messages(rows, RunFinished)[-1].outcome == "done"


def test_a_live_run_takes_a_retry_from_the_dashboard_and_merges_the_task(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path)
    db = root / ".autonoma" / "state.db"
    note = "It must say hello."
    argv = [sys.executable, "-m", "autonoma", "start", "requirements.md", "--no-tui"]
    argv += ["--scenario", str(LIVE_SCENARIO), "--max-workers", "2"]
    run = Terminal(argv, root, {**_env(), "AUTONOMA_MAX_RETRIES": "0"}, SIZE)
    term: Terminal | None = None
    try:
        until(lambda: db.exists() and reader.latest_run(db), "the run started", timeout=60)
        term = dashboard(root)
        screen = term.wait_for(
            lambda s: board_state(s, "t2") == "escalated", "t2 escalated", timeout=90
        )
        # The run goes on: t1 is still being developed.
        assert board_state(screen, "t1") == "developing", screen
        assert "(live)" in seqbar(screen)
        before = reader.last_seq(db)

        retry_from_the_keyboard(term, 1, "t2", note)
        screen = term.wait_for(lambda s: "t2: retry sent to the active run" in s, "sent")
        # The same run merges t2, then t1 (which worked until t2 was on main), and ends.
        screen = term.wait_for(
            lambda s: board_state(s, "t2") == "merged" and board_state(s, "t1") == "merged",
            "t2 and t1 merged",
            timeout=90,
        )
        ended = run.wait_for(lambda s: "EXIT=" in s, "the run's end", timeout=60)
        assert "EXIT=0" in ended and ": done. 2 tasks: 2 merged" in ended, ended
        term.wait_for(lambda s: "2 tasks: 2 merged" in s, "the run done on the dashboard")
        term.keys("q")
        assert "EXIT=0" in term.wait_for(lambda s: "EXIT=" in s, "the dashboard's end")
    finally:
        run.close()
        if term is not None:
            term.close()

    rows = journal(root)
    # One run, never restarted: the retry reached it while it was active.
    assert len(messages(rows, RunStarted)) == 1
    [retry] = [e for e in rows if isinstance(e.message, RetryRequested)]
    assert retry.seq > before and retry.message.note == note
    assert "tty /dev/pts/" in retry.message.origin  # typed on the dashboard's terminal
    after = [
        (m.state, m.attempt)
        for m in messages([e for e in rows if e.seq > retry.seq], TaskStateChanged, task_id="t2")
    ]
    assert after[0][0] in ("ready", "running") and after[-1][0] == "merged", after
    retried = [m for m in messages(rows, AgentTurnStarting, task_id="t2") if m.role == "developer"]
    assert note in retried[-1].argv[-1]
    assert git(root, "show", "main:t2.txt") == "hello\n"
    assert messages(rows, RunFinished)[-1].outcome == "done"
