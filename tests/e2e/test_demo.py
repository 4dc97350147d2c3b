"""The demo, end to end: the real ``claude``, the sim playing the todo sample, the real git.

An uninterrupted run is the reference; a run killed with SIGKILL in the middle and
started again, and a run stopped with Ctrl-C and started again, must end with the same
merged tree, without redoing what was merged.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest

from autonoma import demo
from autonoma.protocol import (
    AgentProcessExited,
    AgentSessionStarted,
    AgentTurnFinished,
    AgentTurnStarting,
    CostReported,
    Envelope,
    MergeFailed,
    PhaseChanged,
    ReviewVerdict,
    RunFinished,
    RunStarted,
    TaskDefined,
    TaskStateChanged,
)
from tests.e2e.runs import journal, messages

SAMPLE = demo.sample_dir("todo")
SCENARIO = SAMPLE / "scenario.toml"
TASKS = {f"t{i}" for i in range(1, 7)}
UNITTEST = [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-t", "."]
DEADLINE = 120.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def autonoma(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """The real command, started in a child process."""
    return subprocess.Popen(
        [sys.executable, "-m", "autonoma", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start(root: Path) -> subprocess.Popen[str]:
    """``autonoma start`` on the sample, as the demo runs it."""
    return autonoma(
        "start", "requirements.md", "--scenario", str(SCENARIO), "--max-workers", "3", cwd=root
    )


def main_tree(root: Path) -> dict[str, bytes]:
    """What ``main`` holds: path -> content."""
    repo = pygit2.Repository(str(root))
    files: dict[str, bytes] = {}

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for entry in tree:
            obj = repo[entry.id]
            if isinstance(obj, pygit2.Tree):
                walk(obj, f"{prefix}{entry.name}/")
            else:
                assert isinstance(obj, pygit2.Blob)
                files[f"{prefix}{entry.name}"] = obj.data

    walk(repo.revparse_single("main").peel(pygit2.Tree), "")
    return files


def wait_until(root: Path, condition: Callable[[list[Envelope]], bool], what: str) -> None:
    """Poll the journal until ``condition`` holds (the run is not waited on with sleeps)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if condition(journal(root)):
            return
        time.sleep(0.02)
    raise AssertionError(f"never saw: {what}")


@dataclass
class Finished:
    """A run that ended: the repository, what was printed, the exit code."""

    root: Path
    stdout: str
    stderr: str
    code: int


def run_demo(where: Path) -> Finished:
    """``autonoma demo --dir where``, to its end."""
    proc = autonoma("demo", "--dir", str(where), cwd=where.parent)
    stdout, stderr = proc.communicate(timeout=DEADLINE)
    return Finished(where, stdout, stderr, proc.returncode)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """One uninterrupted demo run, shared by the tests of this module."""
    return run_demo(tmp_path_factory.mktemp("demo") / "todo")


# --- the uninterrupted run ------------------------------------------------------------


def test_the_demo_merges_every_task_and_says_where_the_result_is(reference: Finished) -> None:
    assert reference.code == 0, reference.stderr
    assert "against the simulated model" in reference.stdout
    assert f"The result: {reference.root}" in reference.stdout
    assert "done. 6 tasks: 6 merged" in reference.stdout
    assert reference.stderr == ""


def test_the_merged_main_is_a_working_todo_manager(reference: Finished) -> None:
    root = reference.root
    files = main_tree(root)
    assert {"todo/__main__.py", "todo/store.py", "tests/test_list.py", "README.md"} <= set(files)
    # The tests ran in every worktree; none of their caches was committed.
    assert [f for f in files if "__pycache__" in f or f.endswith(".pyc")] == []
    tests = subprocess.run(UNITTEST, cwd=root, capture_output=True, text=True, timeout=60)
    assert tests.returncode == 0, tests.stderr
    store = root.parent / "store.json"
    todo = [sys.executable, "-m", "todo", "--store", str(store)]
    added = subprocess.run(
        [*todo, "add", "write the demo"], cwd=root, capture_output=True, text=True
    )
    assert added.returncode == 0, added.stderr
    listed = subprocess.run([*todo, "list"], cwd=root, capture_output=True, text=True)
    assert "write the demo" in listed.stdout
    # Merged tasks leave no worktree behind; their branches stay for the record.
    repo = pygit2.Repository(str(root))
    worktrees = [Path(repo.lookup_worktree(name).path).name for name in repo.list_worktrees()]
    assert worktrees == ["_merge"]
    branches = [b for b in repo.branches.local if b.startswith("autonoma/") and "/t" in b]
    assert sorted(b.rsplit("/", 1)[1] for b in branches) == sorted(TASKS)
    # The user's working tree followed main, and nothing is left uncommitted.
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True
    )
    assert status.stdout == ""


def test_the_journal_holds_the_phases_the_review_the_conflict_and_the_costs(
    reference: Finished,
) -> None:
    envelopes = journal(reference.root)
    phases = [m.phase for m in messages(envelopes, PhaseChanged)]
    assert phases == ["planning", "decomposition", "development", "done"]
    merged = {m.task_id for m in messages(envelopes, TaskStateChanged) if m.state == "merged"}
    assert merged == TASKS
    verdicts = [(m.task_id, m.verdict) for m in messages(envelopes, ReviewVerdict)]
    assert ("t2", "changes_requested") in verdicts
    conflicts = [m for m in messages(envelopes, MergeFailed) if m.kind == "conflict"]
    assert [m.files for m in conflicts] == [["README.md"]]
    assert conflicts[0].task_id in ("t3", "t4")
    costs = sum(m.usd for m in messages(envelopes, CostReported))
    assert costs > 0
    status = subprocess.run(
        [sys.executable, "-m", "autonoma", "status", "--json"],
        cwd=reference.root,
        capture_output=True,
        text=True,
        env=_env(),
    )
    import json

    state = json.loads(status.stdout)
    run = state["runs"][state["current_run"]]
    assert run["outcome"] == "done"
    assert run["usage"]["usd"] == pytest.approx(costs)
    assert sum(t["usage"]["usd"] for t in state["tasks"].values()) <= costs
    assert messages(envelopes, RunFinished)[-1].outcome == "done"


def test_tasks_touching_the_same_files_never_ran_side_by_side(reference: Finished) -> None:
    envelopes = journal(reference.root)
    files = {m.task_id: set(m.files) for m in messages(envelopes, TaskDefined)}
    spans: dict[str, list[float]] = {}
    for e in envelopes:
        m = e.message
        if isinstance(m, TaskStateChanged) and m.state == "running":
            spans.setdefault(m.task_id, [e.ts, e.ts])
        elif isinstance(m, TaskStateChanged) and m.state in ("merging", "merged"):
            spans.setdefault(m.task_id, [e.ts, e.ts])[1] = e.ts
    together = [
        (a, b)
        for a in spans
        for b in spans
        if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
    ]
    assert together, "the three independent tasks should have run at the same time"
    assert all(not files[a] & files[b] for a, b in together)


def test_logs_show_what_one_agent_said_and_did(reference: Finished) -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "autonoma", "logs", "--agent", "developer-1", "--limit", "500"],
        cwd=reference.root,
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines and all("developer-1" in line for line in lines)
    assert any("AgentToolUse" in line and "git commit" in line for line in lines)
    assert any("AgentText" in line for line in lines)


# --- interrupted runs -------------------------------------------------------------------


def _live_sessions(envelopes: list[Envelope]) -> list[AgentTurnStarting]:
    """The developer turns whose session claude reported and whose process still runs."""
    starting: dict[str, AgentTurnStarting] = {}
    live: dict[str, AgentTurnStarting] = {}
    for e in envelopes:
        m = e.message
        if isinstance(m, AgentTurnStarting) and m.role == "developer":
            starting[m.agent_id] = m
        elif isinstance(m, AgentSessionStarted) and m.agent_id in starting:
            live[m.agent_id] = starting[m.agent_id]
        elif isinstance(m, AgentProcessExited):
            starting.pop(m.agent_id, None)
            live.pop(m.agent_id, None)
    return list(live.values())


def _developer_mid_turn(envelopes: list[Envelope]) -> bool:
    """At least one task merged, and a developer whose session is running now."""
    merged = any(m.state == "merged" for m in messages(envelopes, TaskStateChanged))
    return merged and bool(_live_sessions(envelopes))


def _claude_processes_in(root: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(root)) and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def _processes_gone(root: Path) -> list[int]:
    """Processes still working in ``root`` after up to 10 s (killed ones end asynchronously)."""
    deadline = time.monotonic() + 10
    while _claude_processes_in(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _claude_processes_in(root)


def test_a_run_killed_with_sigkill_resumes_to_the_same_tree_without_redoing_work(
    reference: Finished, tmp_path: Path
) -> None:
    root = demo.make_repository(SAMPLE, tmp_path / "todo")
    first = start(root)
    try:
        wait_until(root, _developer_mid_turn, "a task merged and a developer mid-turn")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    before = journal(root)
    kill_seq = before[-1].seq
    merged_before = {m.task_id for m in messages(before, TaskStateChanged) if m.state == "merged"}
    # A developer whose turn was cut after claude reported its session.
    cut = _live_sessions(before)[0]
    # Nothing of the killed run keeps working: its claude children died with it.
    assert _processes_gone(root) == []

    second = start(root)
    stdout, stderr = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, stdout + stderr
    assert "Resuming run" in stdout
    after = [e for e in journal(root) if e.seq > kill_seq]
    assert messages(after, RunStarted)[0].resumed
    # Merged tasks were not redone: no agent turn for them after the restart.
    redone = {m.task_id for m in messages(after, AgentTurnStarting)} & merged_before
    assert redone == set()
    # The cut task went on in the same worktree, resuming its claude session; only if
    # claude had kept no transcript of it yet, in a new session after that.
    turns = [m for m in messages(after, AgentTurnStarting) if m.task_id == cut.task_id]
    assert turns[0].cwd == cut.cwd
    assert turns[0].resume and turns[0].session_id == cut.session_id
    lost = [
        m
        for m in messages(after, AgentTurnFinished)
        if m.session_id == cut.session_id and "No conversation found" in m.result
    ]
    if lost:
        assert not turns[1].resume and turns[1].cwd == cut.cwd
    assert main_tree(root) == main_tree(reference.root)


def test_ctrl_c_stops_the_run_cleanly_and_start_resumes_it(
    reference: Finished, tmp_path: Path
) -> None:
    root = demo.make_repository(SAMPLE, tmp_path / "todo")
    first = start(root)
    wait_until(root, _developer_mid_turn, "a task merged and a developer mid-turn")
    first.send_signal(signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "stopped" in stdout
    assert "Traceback" not in stderr
    finished = messages(journal(root), RunFinished)
    assert [m.outcome for m in finished] == ["stopped"]
    assert _processes_gone(root) == []

    # The command the stopped run printed, run as printed, resumes it.
    hint = re.search(r"`([^`]+)` resumes the run", stdout)
    assert hint is not None, stdout
    argv = shlex.split(hint.group(1))
    assert argv[1:] == ["start", str(root / "requirements.md"), "--scenario", str(SCENARIO)]
    second = subprocess.Popen(
        argv, cwd=root, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stdout, stderr = second.communicate(timeout=DEADLINE)
    assert second.returncode == 0, stderr
    assert "Resuming run" in stdout
    assert main_tree(root) == main_tree(reference.root)
