"""The merge queue's gate on a real repository: set-up first, then the project's tests."""

from __future__ import annotations

import os
import queue
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest

from autonoma.protocol import (
    AnyMessage,
    Envelope,
    MergeFailed,
    RefLockRemoved,
    SetupRan,
    TaskMerged,
)
from autonoma.runtime.bus import Bus
from autonoma.vcs import workspace
from autonoma.workflow.merge_queue import MergeQueue, MergeRequest


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on main, and a task branch t1 adding ``t1.txt``."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "T")
    git(root, "config", "user.email", "t@example.invalid")
    (root / ".gitignore").write_text(".venv/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-q", "-m", "start")
    workspace.ensure_integration(root, "main")
    git(root, "branch", "t1")
    git(root, "worktree", "add", "-q", str(tmp_path / "t1"), "t1")
    (tmp_path / "t1" / "t1.txt").write_text("t1\n")
    git(tmp_path / "t1", "add", "t1.txt")
    git(tmp_path / "t1", "commit", "-q", "-m", "t1")
    return root


@dataclass
class Gate:
    """The merge queue under test and what it publishes."""

    ref: pykka.ActorRef[Any]
    heard: queue.Queue[AnyMessage]


@pytest.fixture
def gate(repo: Path) -> Iterator[Gate]:
    bus = Bus(run_id="r1")
    heard: queue.Queue[AnyMessage] = queue.Queue()

    def listen(envelope: Envelope) -> None:
        heard.put(envelope.message)

    bus.subscribe(listen)
    ref = MergeQueue.start(
        bus,
        repo=repo,
        worktrees=repo / ".autonoma" / "worktrees",
        main="main",
        env=dict(os.environ),
        timeout=30,
    )
    yield Gate(ref, heard)
    ref.stop()


def merge(request: MergeRequest, gate: Gate) -> list[AnyMessage]:
    """Submit ``request``; what the gate said, up to its verdict."""
    gate.ref.tell(request)
    said: list[AnyMessage] = []
    while not said or not isinstance(said[-1], MergeFailed | TaskMerged):
        said.append(gate.heard.get(timeout=30))
    return said


def test_the_set_up_runs_in_the_check_worktree_before_the_tests(repo: Path, gate: Gate) -> None:
    setup = "mkdir -p .venv && echo installed > .venv/marker"
    request = MergeRequest("t1", "t1", "T1", "test -f .venv/marker", setup_command=setup)
    ran, merged = merge(request, gate)
    assert isinstance(ran, SetupRan) and ran.ok and ran.place == "merge_gate"
    assert ran.worktree.endswith("/_merge")
    assert isinstance(merged, TaskMerged) and merged.tests == "passed"
    assert git(repo, "show", "main:t1.txt") == "t1\n"


def test_a_failing_set_up_refuses_the_merge_with_its_output(repo: Path, gate: Gate) -> None:
    before = git(repo, "rev-parse", "main")
    request = MergeRequest("t1", "t1", "T1", "true", setup_command="echo no wheel >&2; exit 4")
    ran, failed = merge(request, gate)
    assert isinstance(ran, SetupRan) and ran.exit_code == 4
    assert isinstance(failed, MergeFailed) and failed.kind == "setup_failed"
    assert failed.output.startswith("$ echo no wheel >&2; exit 4\n")
    assert "(exit code 4)" in failed.output and failed.output.endswith("no wheel\n")
    assert git(repo, "rev-parse", "main") == before


def test_no_test_command_refuses_unless_the_user_opted_out(repo: Path, gate: Gate) -> None:
    [refused] = merge(MergeRequest("t1", "t1", "T1", ""), gate)
    assert isinstance(refused, MergeFailed) and refused.kind == "no_test_command"
    assert "`autonoma retry t1`" in refused.output
    [merged] = merge(MergeRequest("t1", "t1", "T1", "", tests_opted_out=True), gate)
    assert isinstance(merged, TaskMerged) and merged.tests == "opted_out"
    assert "opted out" in merged.detail


def test_no_tests_collected_passes_only_while_the_project_had_none(repo: Path, gate: Gate) -> None:
    empty = "echo 'no tests ran in 0.01s'; exit 5"
    [failed] = merge(MergeRequest("t1", "t1", "T1", empty, tests_seen=True), gate)
    assert isinstance(failed, MergeFailed) and failed.kind == "tests_failed"
    assert "no tests collected, though earlier merges had tests" in failed.output
    [merged] = merge(MergeRequest("t1", "t1", "T1", empty), gate)
    assert isinstance(merged, TaskMerged) and merged.tests == "no_tests"
    assert merged.detail.startswith("no tests collected yet")


def test_a_lock_held_on_the_integration_branch_refuses_the_merge_and_moves_nothing(
    repo: Path, gate: Gate, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A git of the user's (a `git branch -f`, a `git pack-refs`) holds the branch's lock.
    monkeypatch.setattr(workspace, "LOCK_WAIT", 0.5)
    lock = repo / ".git" / "refs" / "heads" / "autonoma" / "integration.lock"
    before = {ref: git(repo, "rev-parse", ref) for ref in ("main", "autonoma/integration")}
    lock.write_text(before["autonoma/integration"])
    ran = tmp_path / "tests-ran"
    [refused] = merge(MergeRequest("t1", "t1", "T1", f"touch {ran}"), gate)
    assert isinstance(refused, MergeFailed) and refused.kind == "integration_locked"
    assert refused.output.startswith(f"{lock} stayed there 0.5 s")
    assert not ran.exists()  # refused before its tests: a lock that stays costs no test runs
    assert {ref: git(repo, "rev-parse", ref) for ref in before} == before  # nothing moved
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert lock.exists()  # the user's: never removed
    lock.unlink()  # their git is done: the task merged again goes through
    [merged] = merge(MergeRequest("t1", "t1", "T1", "true"), gate)
    assert isinstance(merged, TaskMerged) and merged.main_moved
    assert git(repo, "show", "main:t1.txt") == "t1\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_lock_a_killed_git_left_on_the_integration_branch_is_removed_and_said(
    repo: Path, gate: Gate
) -> None:
    # Only Autonoma moves autonoma/integration, and git holds a ref's lock for
    # milliseconds: a lock a minute old belongs to no git still running.
    lock = repo / ".git" / "refs" / "heads" / "autonoma" / "integration.lock"
    lock.write_text(git(repo, "rev-parse", "autonoma/integration"))
    old = time.time() - workspace.STALE_LOCK_AGE - 5
    os.utime(lock, (old, old))
    removed, merged = merge(MergeRequest("t1", "t1", "T1", "true"), gate)
    assert isinstance(removed, RefLockRemoved) and removed.path == str(lock)
    assert removed.branch == "autonoma/integration" and removed.age_s >= workspace.STALE_LOCK_AGE
    assert isinstance(merged, TaskMerged) and merged.main_moved
    assert not lock.exists()
    assert git(repo, "show", "main:t1.txt") == "t1\n"
