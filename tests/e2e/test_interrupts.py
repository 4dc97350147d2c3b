"""Runs stopped by signals at awkward moments (real claude, the simulated model, real git).

SIGINT while a merge is under way: the stop waits for the merge (it is never cut in
half, and never counted twice). SIGTERM and SIGHUP stop a run as Ctrl-C does,
journaled. SIGKILL leaves no word in the journal: `status` says the run is interrupted
(its process is gone), and the next start resumes it to the tree an uninterrupted run
makes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from autonoma.protocol import (
    AgentSessionStarted,
    AgentToolResult,
    RunFinished,
    StopRequested,
    TaskMerged,
    TaskStateChanged,
)
from tests.conftest import run_autonoma
from tests.e2e.runs import (
    db_of,
    envelopes,
    files_on,
    git,
    journal,
    make_project,
    messages,
    model_file,
    start,
    status_json,
)
from tests.journal.testlib import seqs, wait_for


def launch(root: Path, env: dict[str, str], scenario: str) -> subprocess.Popen[str]:
    """``autonoma start`` (the plain log) with one developer, in the background."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
            *("--scenario", str(model_file(root, scenario)), "--max-workers", "1"),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def merges(root: Path) -> Counter[tuple[str, str]]:
    """How many times each (task, commit) merge is journaled."""
    return Counter((m.task_id, m.commit) for m in messages(journal(root), TaskMerged))


def test_sigint_during_a_merge_waits_for_it_and_it_is_journaled_once(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    gate = root / ".autonoma" / "cache"
    active = launch(root, clean_env, "merge_stop.toml")
    try:
        # The merge gate's tests run (and wait for us): the merge is under way.
        wait_for(lambda: (gate / "gate.started").exists(), timeout=120, interval=0.05)
        active.send_signal(signal.SIGINT)
        wait_for(lambda: envelopes(journal(root), StopRequested), timeout=30, interval=0.05)
        assert not messages(journal(root), TaskMerged)
        (gate / "gate.release").touch()
        stdout, stderr = active.communicate(timeout=120)
    finally:
        active.kill()
    rows = journal(root)
    (asked,) = envelopes(rows, StopRequested)
    assert asked.message.origin.startswith("Ctrl-C, ")
    (merged,) = envelopes(rows, TaskMerged, task_id="t1")
    (end,) = envelopes(rows, RunFinished)
    # The stop waited for the merge: journaled before the run's end, main moved then.
    assert asked.seq < merged.seq < end.seq, stdout + stderr
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    assert end.message.outcome == "done"  # the merge ended the run
    assert active.returncode == 0, stdout + stderr
    again = start(root, "merge_stop.toml", clean_env, "--max-workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(merges(root).values()) == {1}  # no merge journaled twice
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}


def test_a_second_sigint_during_a_merge_never_merges_it_twice(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    gate = root / ".autonoma" / "cache"
    active = launch(root, clean_env, "merge_stop.toml")
    try:
        wait_for(lambda: (gate / "gate.started").exists(), timeout=120, interval=0.05)
        active.send_signal(signal.SIGINT)
        wait_for(lambda: envelopes(journal(root), StopRequested), timeout=30, interval=0.05)
        active.send_signal(signal.SIGINT)  # stop now: the merge queue gets 2 s
        time.sleep(0.3)
        (gate / "gate.release").touch()  # ...in which the tests pass and main moves
        stdout, stderr = active.communicate(timeout=120)
    finally:
        active.kill()
    assert active.returncode == 130, stdout + stderr
    again = start(root, "merge_stop.toml", clean_env, "--max-workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    rows = journal(root)
    # Merged once, whichever side of the stop main moved on; the run ends done.
    assert set(merges(root).values()) == {1}
    assert [m.state for m in messages(rows, TaskStateChanged) if m.state == "merged"] == ["merged"]
    assert messages(rows, RunFinished)[-1].outcome == "done"
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_run_as_ctrl_c_does(
    tmp_path: Path, clean_env: dict[str, str], signum: signal.Signals
) -> None:
    root = make_project(tmp_path)
    active = launch(root, clean_env, "paced.toml")
    try:
        wait_for(
            lambda: messages(journal(root), AgentSessionStarted, agent_id="developer-1"),
            timeout=90,
            interval=0.05,
        )
        active.send_signal(signum)
        stdout, stderr = active.communicate(timeout=90)
    finally:
        active.kill()
    assert active.returncode == 130, stdout + stderr
    rows = journal(root)
    (asked,) = envelopes(rows, StopRequested)
    (end,) = envelopes(rows, RunFinished)
    assert asked.message.origin.startswith(f"{signum.name}, ")
    assert end.message.outcome == "stopped"
    assert f"interrupted ({signum.name})" in end.message.summary
    assert f"Run {end.run_id}: stopped. interrupted ({signum.name})" in stdout
    shown = run_autonoma("status", cwd=root, env=clean_env).stdout
    assert shown.startswith(f"Run {end.run_id}: stopped, ")


def kill_mid_turn(root: Path, env: dict[str, str], turns_before: int) -> None:
    """Start (or resume) the run; SIGKILL it once a developer's turn has had an answer
    from the model and its tool ran (the result is journaled): the next answer waits 3 s."""
    active = launch(root, env, "resume_ids.toml")
    try:
        wait_for(
            lambda: (
                len(messages(journal(root), AgentToolResult, agent_id="developer-1")) > turns_before
            ),
            timeout=120,
            interval=0.05,
        )
        active.send_signal(signal.SIGKILL)
        active.communicate(timeout=30)
    finally:
        active.kill()


def test_sigkill_is_shown_interrupted_and_resumed_sessions_merge_the_same_tree(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    # Killed twice inside t1's turn: the twice-resumed claude session holds answers of
    # both earlier starts of the simulated model, whose ids must not come again.
    kill_mid_turn(root, clean_env, 0)
    rows = journal(root)
    assert not messages(rows, RunFinished) and not messages(rows, StopRequested)
    (run_id,) = {e.run_id for e in rows}
    shown = run_autonoma("status", cwd=root, env=clean_env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"Run {run_id}: interrupted, phase development")
    assert status_json(root, clean_env)["runs"][run_id]["interrupted"] is True
    kill_mid_turn(root, clean_env, 1)
    again = start(root, "resume_ids.toml", clean_env, "--max-workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming run " in again.stdout
    assert messages(journal(root), RunFinished)[-1].outcome == "done"
    assert set(merges(root).values()) == {1}
    # One line per turn of t1 (three starts), one for t2: no answer of the model played
    # twice (with ids restarting at 1, the third start's first answer has the id of the
    # second's, claude drops it, and the step is played again: four lines).
    assert files_on(root, "main") == {"requirements.md", "t1.txt", "t2.txt"}
    assert git(root, "show", "main:t1.txt") == "t1\n" * 3
    assert git(root, "show", "main:t2.txt") == "t2\n"


def catches(pid: int, signum: signal.Signals) -> bool:
    """Whether process ``pid`` has a handler of its own for ``signum`` (/proc's SigCgt)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


EARLY = ("imported", "prepared", "first row")


@pytest.mark.parametrize("moment", EARLY)
def test_a_signal_in_the_first_moments_of_a_start_is_journaled_or_leaves_nothing(
    tmp_path: Path, clean_env: dict[str, str], moment: str
) -> None:
    """SIGINT while the command is imported (once it handles signals), while the run is
    prepared (its claude login checked: ``.autonoma/`` is made by then), at the journal's first row
    (the tree starting, no actor able to journal a stop yet): exit 130 in one line each
    time; the journal holds either nothing of the start (status says no run started) or
    its stop (status says stopped, never interrupted); the next start ends the run."""
    root = make_project(tmp_path)
    active = launch(root, clean_env, "approves_all.toml")
    try:
        if moment == "imported":
            # As soon as it handles SIGHUP itself (Python does not): still importing.
            wait_for(lambda: catches(active.pid, signal.SIGHUP), timeout=30, interval=0.001)
        elif moment == "prepared":
            wait_for(lambda: (root / ".autonoma").is_dir(), timeout=60, interval=0.002)
        else:
            wait_for(lambda: seqs(db_of(root)), timeout=60, interval=0.002)
        active.send_signal(signal.SIGINT)
        stdout, stderr = active.communicate(timeout=90)
    finally:
        active.kill()
    assert active.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr, stderr
    rows = journal(root)
    shown = run_autonoma("status", cwd=root, env=clean_env)
    if moment == "first row":
        (asked,) = envelopes(rows, StopRequested)
        (end,) = envelopes(rows, RunFinished)
        assert asked.message.origin.startswith("Ctrl-C, ")
        assert end.message.outcome == "stopped"
        assert shown.stdout.startswith(f"Run {end.run_id}: stopped, "), shown.stdout
    elif not messages(rows, RunFinished):
        # Stopped before its run was journaled: nothing of it, nothing shown interrupted.
        assert "interrupted" not in shown.stdout + shown.stderr
        assert not messages(rows, StopRequested)
    else:
        # A slow machine: the signal came once the tree started. Journaled all the same.
        assert messages(rows, RunFinished)[-1].outcome == "stopped"
        assert ": stopped, " in shown.stdout, shown.stdout
    again = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert messages(journal(root), RunFinished)[-1].outcome == "done"
    assert files_on(root, "main") == {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}
