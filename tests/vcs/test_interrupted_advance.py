"""A kill between `advance_main`'s checkout and its move of ``main`` (the user's files and
index at a merged commit, ``main`` behind them) is told from the user's own changes and
finished (real repositories, real git); a lock held on the integration branch makes a
move of it wait, then refuse, moving nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2
import pytest
from pygit2.enums import CheckoutStrategy

from autonoma.vcs import repo, workspace
from autonoma.vcs.workspace import INTEGRATION_BRANCH
from tests.vcs.test_workspace import back, git, task, write


@dataclass(frozen=True)
class Merges:
    """A project whose integration branch is two task merges ahead of ``main``."""

    root: Path
    main: str
    first: str
    """The first merge (T1: feature.py, a.txt gains a line)."""
    second: str
    """The second merge, the integration head (T2: other.py)."""


def _merge_task(root: Path, task_id: str, files: dict[str, str]) -> str:
    onto = workspace.head_of(root, INTEGRATION_BRANCH)
    branch, clone = task(root, task_id, onto)
    for name, text in files.items():
        write(clone, name, text)
    workspace.commit_all(clone, f"work of {task_id}", list(files))
    back(root, clone)
    merged = workspace.prepare_merge(root, onto, branch, f"Merge {task_id}").commit
    assert merged is not None
    workspace.move_branch(root, INTEGRATION_BRANCH, onto, merged)
    return merged


@pytest.fixture
def merges(git_repo: Path) -> Merges:
    repo.ensure_excluded(git_repo, "/.autonoma/")
    write(git_repo, "a.txt", "1\n2\n3\n")
    workspace.commit_all(git_repo, "start", ["a.txt"])
    main = workspace.ensure_integration(git_repo, "main")
    first = _merge_task(git_repo, "T1", {"feature.py": "x = 1\n", "a.txt": "1\n2\n3\n4\n"})
    second = _merge_task(git_repo, "T2", {"other.py": "y = 2\n"})
    return Merges(git_repo, main, first, second)


def killed_between(root: Path, commit: str) -> None:
    """What `advance_main` does before its ref update, then nothing: a SAFE checkout of
    ``commit``'s tree (files and index), ``main`` left where it was."""
    checkout = pygit2.Repository(str(root))
    tree = checkout[checkout.revparse_single(commit).peel(pygit2.Commit).tree_id]
    checkout.checkout_tree(tree, strategy=CheckoutStrategy.SAFE)  # type: ignore[no-untyped-call]


def exactly_second(m: Merges) -> None:
    killed_between(m.root, m.second)
    write(m.root, "notes.txt", "the user's untracked notes\n")  # untracked: the user's, allowed


def exactly_first(m: Merges) -> None:
    killed_between(m.root, m.first)  # an earlier merge than the integration head


def plus_a_staged_file(m: Merges) -> None:
    killed_between(m.root, m.second)
    write(m.root, "mine.txt", "the user's\n")
    git(m.root, "add", "mine.txt")


def plus_an_unstaged_edit(m: Merges) -> None:
    killed_between(m.root, m.second)
    write(m.root, "a.txt", "the user's edit\n")


def changed_again_after(m: Merges) -> None:
    killed_between(m.root, m.second)
    write(m.root, "feature.py", "x = 'changed again'\n")  # C's tree staged, the file not


def deleted_after(m: Merges) -> None:
    killed_between(m.root, m.second)
    (m.root / "other.py").unlink()


def not_on_integration(m: Merges) -> None:
    # The user's own commit, ahead of main but never merged by a run: their files.
    git(m.root, "branch", "experiment")
    write(m.root, "mine.txt", "the user's\n")
    git(m.root, "add", "mine.txt")
    git(m.root, "commit", "-qm", "mine")
    git(m.root, "branch", "-f", "experiment")
    git(m.root, "reset", "-q", "--soft", "HEAD~1")


def detached(m: Merges) -> None:
    git(m.root, "switch", "-q", "--detach", "main")
    killed_between(m.root, m.second)


def main_already_there(m: Merges) -> None:
    assert workspace.advance_main(m.root, "main", m.second) == (True, "")


def nothing_staged(m: Merges) -> None:
    write(m.root, "notes.txt", "untracked only\n")


def a_merge_of_the_users(m: Merges) -> None:
    killed_between(m.root, m.second)
    (Path(m.root) / ".git" / "MERGE_HEAD").write_text(m.first + "\n")


@dataclass(frozen=True)
class State:
    name: str
    make: Callable[[Merges], None]
    found: str | None
    """Which commit is found ("first", "second"), or None."""
    limit: int = workspace.ADVANCE_WALK


STATES = [
    State("exactly the integration head's tree (untracked files aside)", exactly_second, "second"),
    State("exactly an earlier merge's tree", exactly_first, "first"),
    State("an earlier merge beyond the walk's bound", exactly_first, None, limit=1),
    State("the merged tree plus a file the user staged", plus_a_staged_file, None),
    State("the merged tree plus an unstaged edit of another file", plus_an_unstaged_edit, None),
    State("the merged tree staged, a file of it changed again", changed_again_after, None),
    State("the merged tree staged, a file of it deleted", deleted_after, None),
    State("a tree of a commit not on the integration branch", not_on_integration, None),
    State("HEAD detached", detached, None),
    State("main already at the merged commit: nothing to do", main_already_there, None),
    State("nothing staged", nothing_staged, None),
    State("a merge of the user's in progress", a_merge_of_the_users, None),
]


@pytest.mark.parametrize("state", STATES, ids=[s.name for s in STATES])
def test_which_states_are_an_interrupted_move_of_main(merges: Merges, state: State) -> None:
    state.make(merges)
    before = git(merges.root, "status", "--porcelain")
    expected = None if state.found is None else getattr(merges, state.found)

    found = workspace.interrupted_advance(merges.root, "main", limit=state.limit)

    assert found == expected
    assert workspace.interrupted_advance(merges.root, limit=state.limit) == expected
    # Looking moves nothing.
    assert git(merges.root, "status", "--porcelain") == before
    if state.make is not main_already_there:
        assert workspace.head_of(merges.root, "refs/heads/main") == merges.main


def test_another_branch_than_the_one_checked_out_is_no_interrupted_move(merges: Merges) -> None:
    killed_between(merges.root, merges.second)
    git(merges.root, "branch", "other", "main")
    assert workspace.interrupted_advance(merges.root, "other") is None
    assert workspace.finish_advance(merges.root, "other") is None


def test_finishing_moves_main_only_and_leaves_the_tree_clean(merges: Merges) -> None:
    exactly_second(merges)
    assert workspace.finish_advance(merges.root, "main") == merges.second
    assert workspace.head_of(merges.root, "main") == merges.second
    assert git(merges.root, "status", "--porcelain") == "?? notes.txt\n"
    assert (merges.root / "notes.txt").read_text() == "the user's untracked notes\n"
    said = git(merges.root, "reflog", "-1", "--format=%gs", "main")
    assert (
        said
        == f"autonoma: fast-forward to {merges.second[:10]} (finishing a move a kill interrupted)\n"
    )
    # Done: nothing left to finish.
    assert workspace.interrupted_advance(merges.root, "main") is None
    assert workspace.finish_advance(merges.root, "main") is None


def test_finishing_in_a_linked_worktree_that_has_main_checked_out(
    merges: Merges, tmp_path: Path
) -> None:
    # The user works on another branch here and keeps main in a linked worktree, which
    # `advance_main` updated before the kill: that one is finished, this one untouched.
    git(merges.root, "switch", "-q", "-c", "work")
    linked = tmp_path / "main-tree"
    git(merges.root, "worktree", "add", "-q", str(linked), "main")
    killed_between(linked, merges.second)
    assert workspace.finish_advance(merges.root, "main") == merges.second
    assert workspace.head_of(merges.root, "main") == merges.second
    assert git(linked, "status", "--porcelain") == ""
    assert git(merges.root, "status", "--porcelain") == ""
    assert workspace.head_of(merges.root, "work") == merges.main


def test_finishing_refuses_the_users_own_changes_and_moves_nothing(merges: Merges) -> None:
    plus_an_unstaged_edit(merges)
    assert workspace.finish_advance(merges.root, "main") is None
    assert workspace.head_of(merges.root, "main") == merges.main
    assert (merges.root / "a.txt").read_text() == "the user's edit\n"


def test_finishing_with_mains_lock_held_says_so_and_moves_nothing(merges: Merges) -> None:
    exactly_second(merges)
    lock = merges.root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text(merges.main + "\n")
    with pytest.raises(workspace.VcsError, match="cannot move main to"):
        workspace.finish_advance(merges.root, "main")
    assert workspace.head_of(merges.root, "main") == merges.main
    lock.unlink()
    assert workspace.finish_advance(merges.root, "main") == merges.second


# --- a lock on the integration branch ------------------------------------------------------


def _integration_lock(root: Path) -> Path:
    return root / ".git" / "refs" / "heads" / "autonoma" / "integration.lock"


def test_moving_the_integration_branch_waits_for_a_users_git_holding_it(merges: Merges) -> None:
    lock = _integration_lock(merges.root)
    lock.write_text(merges.second + "\n")  # a `git branch -f` of the user's, say
    threading.Timer(0.5, lock.unlink).start()  # ...done in half a second
    workspace.move_branch(
        merges.root, INTEGRATION_BRANCH, merges.second, merges.first, lock_wait=10
    )
    assert workspace.head_of(merges.root, INTEGRATION_BRANCH) == merges.first


def test_a_lock_held_on_the_integration_branch_refuses_the_move_and_moves_nothing(
    merges: Merges,
) -> None:
    lock = _integration_lock(merges.root)
    lock.write_text(merges.second + "\n")
    with pytest.raises(workspace.BranchLocked) as refused:
        workspace.move_branch(
            merges.root, INTEGRATION_BRANCH, merges.second, merges.first, lock_wait=0.3
        )
    assert str(refused.value).startswith(f"{lock} stayed there 0.3 s")
    assert "remove the file" in str(refused.value)
    assert workspace.head_of(merges.root, INTEGRATION_BRANCH) == merges.second
    assert lock.read_text() == merges.second + "\n"  # the user's: never touched
