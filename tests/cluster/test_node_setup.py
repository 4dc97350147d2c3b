"""The set-up command on a node: run once in the node's clone of a task, confined as on
the head, told as a `SetupRan` with place ``node``; `NodeAgent` itself, without Ray (the
real git and bubblewrap)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from autonoma.agents.roles import load_role
from autonoma.cluster.bundle import capture
from autonoma.cluster.node import NodeAgent, TurnSpec, clone_path
from autonoma.config import Settings


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def head_and_spec(tmp_path: Path, command: str, sandbox: bool) -> tuple[Path, TurnSpec]:
    """A head clone with one commit on ``task``, and a developer's spec with ``command``
    as its set-up."""
    head = tmp_path / "head"
    head.mkdir()
    git(head, "init", "-q", "-b", "task")
    (head / "a.txt").write_text("a\n")
    (head / ".gitignore").write_text("made.txt\n")
    git(head, "add", "-A")
    git(head, "-c", "user.name=T", "-c", "user.email=t@x.invalid", "commit", "-q", "-m", "one")
    spec = TurnSpec(
        agent_id="developer-1",
        run_id=f"test-{tmp_path.name}",
        role=load_role("developer", None),
        prompt="",
        session_id="",
        resume=False,
        task_id="t1",
        budget_usd=None,
        session_usd=0.0,
        settings=Settings(sandbox=sandbox, test_timeout=60.0),
        env={"PATH": "/usr/bin:/bin"},
        claude="",
        branch="task",
        setup_command=command,
    )
    return head, spec


@pytest.mark.parametrize("sandbox", [True, False])
def test_the_set_up_runs_once_per_node_clone(tmp_path: Path, sandbox: bool) -> None:
    # `make test` installs bubblewrap: without it the sandboxed case is a set-up fault.
    assert not sandbox or shutil.which("bwrap") is not None, "bubblewrap is not installed"
    head, spec = head_and_spec(tmp_path, "echo installed >> made.txt", sandbox)
    run_id = spec.run_id
    node = NodeAgent("developer-1", str(tmp_path / "node"))
    try:
        assert node.needs_setup(spec)
        ran = node.prepare(spec, capture(head))
        assert ran is not None and ran.ok, ran
        assert ran.place == "node" and ran.task_id == "t1"
        clone = clone_path(run_id, "t1")
        assert ran.worktree == str(clone)
        assert (clone / "made.txt").read_text() == "installed\n"
        # Once per clone and command: the next turn's clone keeps what it installed.
        assert not node.needs_setup(spec)
        assert node.prepare(spec, capture(head)) is None
        assert (clone / "made.txt").read_text() == "installed\n"
    finally:
        node.cleanup(run_id)
    assert not clone_path(run_id, "t1").exists()


def test_a_failed_set_up_runs_again_before_the_next_turn(tmp_path: Path) -> None:
    """A failed set-up on a node is not marked done: the link refuses the turn (a failed
    attempt, as on the head) and the next attempt's `prepare` runs the command again."""
    head, spec = head_and_spec(tmp_path, "echo tried >> ../tries.txt; exit 3", sandbox=False)
    run_id = spec.run_id
    node = NodeAgent("developer-1", str(tmp_path / "node"))
    try:
        first = node.prepare(spec, capture(head))
        assert first is not None and not first.ok and first.exit_code == 3
        assert node.needs_setup(spec)
        second = node.prepare(spec, capture(head))
        assert second is not None and not second.ok
        tries = clone_path(run_id, "t1").parent / "tries.txt"
        assert tries.read_text() == "tried\ntried\n"
    finally:
        node.cleanup(run_id)
