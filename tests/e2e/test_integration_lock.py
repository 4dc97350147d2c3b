"""A git of the user's holding ``autonoma/integration``'s lock mid-run (a ``git pack-refs``,
a ``git branch -f``): the merge waits for it, then is refused (nothing moved, said in the
progress log and journaled), is not counted against the task, and goes through once the
lock is gone (real claude, the simulated model, real git)."""

from __future__ import annotations

from pathlib import Path

from autonoma.protocol import MergeFailed, RunStarted, TaskStateChanged
from tests.chaos.chaoslib import double_merges, kill_group, poll, run_problems
from tests.e2e.runs import files_on, git, journal, make_project, messages
from tests.e2e.test_interrupted_advance import launch

DONE = {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}
TASKS = ["t1", "t2", "t3"]


def test_a_lock_held_on_the_integration_branch_refuses_a_merge_that_goes_through_later(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    log = tmp_path / "start.log"
    active = launch(root, clean_env, log)
    try:
        assert poll(lambda: messages(journal(root), RunStarted), 60), log.read_text()
        before = {ref: git(root, "rev-parse", ref) for ref in ("main", "autonoma/integration")}
        lock = root / ".git" / "refs" / "heads" / "autonoma" / "integration.lock"
        lock.write_text(before["autonoma/integration"])

        def refused() -> list[MergeFailed]:
            said = messages(journal(root), MergeFailed)
            return [m for m in said if m.kind == "integration_locked"]

        assert poll(refused, 90), log.read_text()
        # Nothing moved while it was held.
        assert {ref: git(root, "rev-parse", ref) for ref in before} == before
        assert git(root, "status", "--porcelain") == ""
        lock.unlink()  # the user's git is done
        assert active.wait(90) == 0, log.read_text()
    finally:
        if active.poll() is None:
            kill_group(active)
    out = log.read_text()
    (first, *_) = refused()
    assert first.output.startswith(f"{lock} stayed there 5 s")
    said = [line for line in out.splitlines() if "autonoma/integration was locked" in line]
    assert said and f"{first.task_id} not merged yet" in said[0], out
    rows = journal(root)
    # Not the developer's fault: nothing failed, no attempt counted, no developer told.
    assert not messages(rows, TaskStateChanged, state="failed")
    again = messages(rows, TaskStateChanged, task_id=first.task_id, state="merging")
    assert "autonoma/integration was locked; merging again" in [m.reason for m in again]
    assert run_problems(root, TASKS) == []
    assert double_merges(root, TASKS) == []
    assert git(root, "rev-parse", "main") == git(root, "rev-parse", "autonoma/integration")
    assert files_on(root, "main") == DONE
    assert git(root, "status", "--porcelain") == ""
