"""A SIGKILL of ``autonoma start`` between the merge queue's update of the user's working
tree to a merged result and its move of ``main`` leaves the files (and the index) ahead
of ``main``; the next ``autonoma start`` finishes the move, says so in the progress log
and the journal, and the resumed run ends with every task merged once, ``main`` at the
integration head and the tree clean. The user's own changes are still refused (real
claude, the simulated model, real git)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from autonoma.protocol import MainAdvanceFinished, RefLockRemoved, RunStarted
from tests.chaos.chaoslib import double_merges, kill_group, poll, run_problems
from tests.e2e.runs import (
    envelopes,
    files_on,
    git,
    journal,
    make_project,
    messages,
    model_file,
    start,
)
from tests.vcs.test_interrupted_advance import killed_between

DONE = {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}
TASKS = ["t1", "t2", "t3"]


def launch(root: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``autonoma start`` in a session of its own (so that its group can be killed)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "autonoma", "start", "requirements.md"),
                *("--scenario", str(model_file(root, "approves_all.toml"))),
                *("--max-workers", "1"),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_kill_between_the_checkout_and_the_move_of_main_is_finished_by_the_next_start(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    old = git(root, "rev-parse", "main").strip()
    active = launch(root, clean_env, tmp_path / "start-1.log")
    try:
        # The run checked main's lock at start; from here on a lock makes the merge
        # queue wait (5 s) inside `advance_main`, after it moved the integration branch
        # and before it touches the working tree: the kill comes in there.
        assert poll(lambda: messages(journal(root), RunStarted), 60), (
            tmp_path / "start-1.log"
        ).read_text()
        lock = root / ".git" / "refs" / "heads" / "main.lock"
        lock.write_text(old + "\n")

        def merged() -> bool:
            head = git(root, "rev-parse", "autonoma/integration").strip()
            return head != old

        assert poll(merged, 90, interval=0.02), (tmp_path / "start-1.log").read_text()
        kill_group(active)
    finally:
        if active.poll() is None:
            kill_group(active)
    first = git(root, "rev-parse", "autonoma/integration").strip()
    assert git(root, "rev-parse", "main").strip() == old
    # What the kill a moment later leaves: the files and the index at the merged commit,
    # and (killed as it wrote main) main's lock naming that commit.
    killed_between(root, first)
    lock.write_text(first + "\n")
    staged = git(root, "status", "--porcelain")
    assert staged and all(line.startswith("A ") for line in staged.splitlines()), staged

    # The user's own change on top of it: refused as ever, nothing moved.
    (root / "requirements.md").write_text("the user's edit\n")
    refused = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "the working tree has uncommitted changes to tracked files (" in refused.stderr
    assert "requirements.md" in refused.stderr
    assert git(root, "rev-parse", "main").strip() == old
    git(root, "checkout", "--", "requirements.md")
    assert git(root, "status", "--porcelain") == staged

    before = time.monotonic()
    done = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - before < 60
    rows = journal(root)
    (removed,) = envelopes(rows, RefLockRemoved)
    (finished,) = envelopes(rows, MainAdvanceFinished)
    assert removed.message.ours and not lock.exists()
    assert finished.message == MainAdvanceFinished(branch="main", commit=first)
    assert removed.seq < finished.seq  # the lock went first: main could not move before
    said = [line for line in done.stdout.splitlines() if "finished moving main" in line]
    assert len(said) == 1, done.stdout
    assert said[0].endswith(f"finished moving main to {first[:8]} (a stop interrupted it)")
    reflog = git(root, "reflog", "--format=%gs", "main")
    assert f"fast-forward to {first[:10]} (finishing a move a kill interrupted)" in reflog
    assert run_problems(root, TASKS) == []
    assert double_merges(root, TASKS) == []
    assert git(root, "rev-parse", "main") == git(root, "rev-parse", "autonoma/integration")
    assert files_on(root, "main") == DONE
    assert git(root, "status", "--porcelain") == ""
