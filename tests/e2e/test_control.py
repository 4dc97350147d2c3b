"""`autonoma pause`, `resume` and `stop` on a real run (real claude, the simulated model).

A run of three tasks (t3 after t2) with one developer, each developer turn answering
after 2 s (``scenarios/paced.toml``). The commands are the real ``autonoma`` command in
another process, as a human in another terminal gives them; what is checked is what a
user sees: the journal's rows, the exit codes, ``status`` and the files on ``main``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from autonoma.protocol import (
    AgentProcessExited,
    AgentSessionStarted,
    AgentTurnStarting,
    PauseRequested,
    ResumeRequested,
    RunFinished,
    StopRequested,
    TaskMerged,
    TaskStateChanged,
)
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    envelopes,
    files_on,
    journal,
    make_project,
    messages,
    model_file,
    start,
    status_json,
)
from tests.journal.testlib import wait_for

TASKS = {"t1", "t2", "t3"}
FILES = {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}


def launch(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``autonoma start`` of the paced scenario with one developer, in the background."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
            *("--scenario", str(model_file(root, "paced.toml")), "--max-workers", "1"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def first_developer_turn(root: Path) -> None:
    wait_for(
        lambda: messages(journal(root), AgentSessionStarted, agent_id="developer-1"),
        timeout=90,
        interval=0.05,
    )


def test_a_pause_holds_new_turns_while_ready_tasks_wait_and_resume_finishes_the_run(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    active = launch(root, clean_env)
    try:
        first_developer_turn(root)
        paused = run_autonoma("pause", cwd=root, env=clean_env)
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith("pause sent to the running run ")
        wait_for(lambda: envelopes(journal(root), PauseRequested), timeout=30, interval=0.05)
        (pause,) = envelopes(journal(root), PauseRequested)
        # The turn under way finishes and is handled: its task goes to review...
        wait_for(
            lambda: [
                e
                for e in envelopes(journal(root), TaskStateChanged, state="review")
                if e.seq > pause.seq
            ],
            timeout=60,
            interval=0.05,
        )
        time.sleep(2.0)  # ten ticks of the orchestrator
        rows = journal(root)
        # ...but no turn starts after the pause: not QA's, not the ready task's.
        assert not [e for e in envelopes(rows, AgentTurnStarting) if e.seq > pause.seq]
        state = status_json(root, clean_env)
        assert state["paused"] and state["pause_reason"].startswith("paused by user ")
        assert "ready" in {t["state"] for t in state["tasks"].values()}
        shown = run_autonoma("status", cwd=root, env=clean_env).stdout
        assert "PAUSED: paused by user " in shown
        assert active.poll() is None  # the run waits

        resumed = run_autonoma("resume", cwd=root, env=clean_env)
        assert resumed.returncode == 0, resumed.stderr
        stdout, stderr = active.communicate(timeout=180)
    finally:
        active.kill()
    assert active.returncode == 0, stdout + stderr
    rows = journal(root)
    (resume,) = envelopes(rows, ResumeRequested)
    assert resume.message.origin.startswith("user ")
    assert [e for e in envelopes(rows, AgentTurnStarting) if e.seq > resume.seq]
    assert {m.task_id for m in messages(rows, TaskMerged)} == TASKS
    assert files_on(root, "main") == FILES
    assert "PAUSED by user " in stdout and "resumed by user " in stdout
    assert not status_json(root, clean_env)["paused"]


def test_stop_ends_the_run_gracefully_and_start_resumes_it(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    active = launch(root, clean_env)
    try:
        first_developer_turn(root)
        stopped = run_autonoma("stop", cwd=root, env=clean_env)
        stdout, stderr = active.communicate(timeout=60)
    finally:
        active.kill()
    # `autonoma stop` returns once the run has ended, and says how.
    assert stopped.returncode == 0, stopped.stderr
    lines = stopped.stdout.splitlines()
    assert lines[0].startswith("stop sent to the running run ")
    assert lines[1].startswith("Run ") and ": stopped. stopped by `autonoma stop`" in lines[1]
    # The run itself: exit 130, as after Ctrl-C, journaled as stopped.
    assert active.returncode == 130, stdout + stderr
    assert "STOPPING (asked by user " in stdout
    rows = journal(root)
    (asked,) = envelopes(rows, StopRequested)
    (end,) = envelopes(rows, RunFinished)
    assert asked.seq < end.seq and end.message.outcome == "stopped"
    # The developer's turn was stopped through its port (SIGTERM) before the run ended.
    (killed,) = [
        e
        for e in envelopes(rows, AgentProcessExited, agent_id="developer-1")
        if asked.seq < e.seq < end.seq
    ]
    ended = killed.message
    # claude exits 128 + 15 on a SIGTERM it catches.
    assert ended.signal == signal.SIGTERM or ended.exit_code == 128 + signal.SIGTERM, ended
    assert not [e for e in envelopes(rows, AgentTurnStarting) if e.seq > asked.seq]
    state = status_json(root, clean_env)
    assert not state["stopping"] and state["runs"][end.run_id]["outcome"] == "stopped"
    assert files_on(root, "main") == {"requirements.md"}

    again = start(root, "paced.toml", clean_env, "--max-workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming run " in again.stdout
    rows = journal(root)
    assert {m.task_id for m in messages(rows, TaskMerged)} == TASKS
    assert messages(rows, RunFinished)[-1].outcome == "done"
    assert files_on(root, "main") == FILES
