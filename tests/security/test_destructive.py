"""The attacks that wreck the user's repository or the run when they land (`destructive.toml`).

A developer replaces ``main`` (from its own folder, and in the user's store) and
overwrites an object file of the user's store; QA kills the ``autonoma start`` among
its ancestors. Safe outcome: the user's ``main`` still descends from where it was, the
store is whole, the run finishes "done" with the task merged, and it says so.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from autonoma.protocol import RunFinished
from tests.security.harness import (
    Run,
    attack,
    attempted,
    changes,
    git,
    messages,
    refused_bash,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield attack(tmp_path_factory.mktemp("destructive"), "destructive.toml")


def test_the_run_finishes_done_and_the_users_repository_is_whole(run: Run) -> None:
    assert run.result.returncode == 0, run.result.stdout + run.result.stderr
    assert [m.outcome for m in messages(run, RunFinished)] == ["done"]
    assert "done" in run.status
    assert changes(run.before, run.after, run.user, {"t1.txt"}) == []
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=run.user.root, capture_output=True)
    assert fsck.returncode == 0, fsck.stderr


def test_replacing_main_from_the_agents_folder_leaves_the_users_main_whole(run: Run) -> None:
    attempted(run, "dev-replace-main")  # may succeed: on the agent's own copy
    old_main = run.before.refs["refs/heads/main"]
    ancestor = subprocess.run(
        ["git", "merge-base", "--is-ancestor", old_main, "main"], cwd=run.user.root
    )
    assert ancestor.returncode == 0, "main was replaced"
    roots = git(run.user.root, "rev-list", "--max-parents=0", "main").split()
    assert roots == [old_main]
    # "done" only with the merged work on the user's own main.
    assert "t1.txt" in git(run.user.root, "ls-tree", "--name-only", "main").split()


def test_replacing_the_users_main_directly_is_refused(run: Run) -> None:
    refused_bash(run, "dev-replace-user-main")
    assert "x" not in git(run.user.root, "log", "--format=%s", "main").splitlines()


def test_overwriting_an_object_of_the_users_store_is_refused(run: Run) -> None:
    refused_bash(run, "dev-object-overwrite")
    objects = {k: v for k, v in run.before.git_files.items() if k.startswith("objects/")}
    assert objects
    assert {k: run.after.git_files.get(k) for k in objects} == objects


def test_an_agent_cannot_kill_the_autonoma_process(run: Run) -> None:
    refused_bash(run, "qa-kill-autonoma")
    # Killed, the run stops (SIGTERM) or never finishes; whatever else ended it, not that.
    outcomes = [m.outcome for m in messages(run, RunFinished)]
    assert outcomes and "stopped" not in outcomes, outcomes
    assert run.result.returncode >= 0
