"""A lock on ``main`` (``.git/refs/heads/main.lock``) at start: a stale one (a git killed
as it moved main, an earlier Autonoma SIGKILLed by its merge queue) is removed, said in
the progress log and journaled, and the run moves main; a fresh one may be a git of the
user's, moving main now: the start is refused in one line naming the file (real claude,
the simulated model, real git)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from autonoma.protocol import RefLockRemoved, RunFinished, RunStarted
from autonoma.vcs.workspace import STALE_LOCK_AGE
from tests.e2e.runs import files_on, git, journal, make_project, messages, start

DONE = {"requirements.md", "t1.txt", "t2.txt", "t3.txt"}


def lock_main(root: Path, age: float) -> Path:
    """``main.lock`` as a git moving main leaves it, written ``age`` seconds ago."""
    lock = root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text(git(root, "rev-parse", "main"))
    then = time.time() - age
    os.utime(lock, (then, then))
    return lock


def test_a_stale_lock_on_main_is_removed_said_and_main_moves(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    lock = lock_main(root, STALE_LOCK_AGE + 60)
    done = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not lock.exists()
    (removed,) = messages(journal(root), RefLockRemoved)
    assert removed.path == str(lock) and removed.branch == "main" and not removed.ours
    assert removed.age_s >= STALE_LOCK_AGE + 60
    said = [line for line in done.stdout.splitlines() if "main.lock" in line]
    assert len(said) == 1 and "a lock on main left by a killed git" in said[0], done.stdout
    assert files_on(root, "main") == DONE
    assert git(root, "status", "--porcelain") == ""


def test_a_fresh_lock_on_main_refuses_the_start_in_one_line(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    lock = lock_main(root, 1.0)
    refused = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"autonoma: {lock}: a git command holds branch main ")
    assert "remove the file" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert lock.exists()  # perhaps the user's: never removed
    assert not messages(journal(root), RunStarted)  # nothing of a run started
    lock.unlink()  # the user's git is done
    done = start(root, "approves_all.toml", clean_env, "--max-workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert messages(journal(root), RunFinished)[-1].outcome == "done"
    assert files_on(root, "main") == DONE
