"""Per-task clones: made from the user's objects, brought back with pygit2, and unable to
change the user's repository. Real git and real pygit2 throughout."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from autonoma.vcs import clones, workspace
from autonoma.vcs.workspace import VcsError
from autonoma.workflow import orchestrator
from autonoma.workflow.actions import (
    CommitForAgent,
    PrepareCheckout,
)
from autonoma.workflow.inputs import (
    CheckoutReady,
    WorkChecked,
)

RUN = "r1"
BRANCH = "autonoma/r1/t1"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def refs(repo: Path) -> str:
    """Every ref of the repository with its commit: what must not change."""
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def user(tmp_path: Path) -> Path:
    root = tmp_path / "user"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "User")
    git(root, "config", "user.email", "user@example.invalid")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-q", "-m", "first")
    (root / ".git" / "info" / "exclude").write_text("/.autonoma/\n")
    workspace.ensure_integration(root, "main")
    return root


def make(user: Path) -> Path:
    base = workspace.head_of(user, workspace.INTEGRATION_BRANCH)
    branch, path = clones.create_clone(user, user / ".autonoma" / "clones", "t1", base, run=RUN)
    assert branch == BRANCH
    return path


def commit(clone: Path, name: str, text: str = "x\n") -> str:
    (clone / name).write_text(text)
    git(clone, "add", name)
    git(clone, "commit", "-q", "-m", f"add {name}")
    return git(clone, "rev-parse", "HEAD").strip()


def test_a_clone_borrows_the_users_objects_and_is_no_worktree(user: Path) -> None:
    path = make(user)

    assert path == user / ".autonoma" / "clones" / RUN / "t1"
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD").strip() == BRANCH
    assert (path / "a.txt").read_text() == "a\n"
    alternates = (path / ".git" / "objects" / "info" / "alternates").read_text()
    assert alternates.strip() == str((user / ".git" / "objects").resolve())
    # No object was copied: the clone's own store is empty but for what it makes.
    assert git(path, "count-objects").startswith("0 objects")
    assert git(path, "remote") == ""
    assert git(user, "worktree", "list").count("\n") == 1
    # The user's identity of this repository holds in the clone.
    assert git(path, "config", "user.name").strip() == "User"
    # The branch exists in the user's repository, at the base, before any work.
    assert workspace.head_of(user, BRANCH) == workspace.head_of(user, "main")


def test_the_branch_is_brought_back_and_nothing_else(user: Path) -> None:
    path = make(user)
    before = refs(user)
    head = commit(path, "work.txt")
    # What a hostile agent could do in its clone: all of it stays there.
    git(path, "update-ref", "refs/heads/main", head)
    git(path, "branch", "evil")
    git(path, "tag", "v9", head)
    assert refs(user) == before

    assert clones.fetch_branch(user, path, BRANCH) == head

    after = refs(user)
    assert workspace.head_of(user, BRANCH) == head
    # Only the task's branch moved.
    changed = set(after.splitlines()) ^ set(before.splitlines())
    assert {line.split()[0] for line in changed} == {f"refs/heads/{BRANCH}"}
    assert workspace.head_of(user, "main") != head
    assert workspace.branch_changes(user, "main", BRANCH) == ["work.txt"]
    assert (
        subprocess.run(["git", "fsck", "--strict"], cwd=user, capture_output=True).returncode == 0
    )


def test_a_branch_rewritten_off_its_base_is_still_brought_back(user: Path) -> None:
    path = make(user)
    git(path, "checkout", "-q", "--orphan", "fresh")
    git(path, "rm", "-q", "-rf", ".")
    orphan = commit(path, "alone.txt")
    git(path, "branch", "-f", BRANCH, orphan)

    assert clones.fetch_branch(user, path, BRANCH) == orphan
    # The merge gate judges it (no common history): it is only carried back.
    assert workspace.head_of(user, BRANCH) == orphan


def test_a_clone_that_points_at_the_users_repository_is_refused(user: Path) -> None:
    path = make(user)
    commit(path, "work.txt")
    before = refs(user)
    # The agent swaps its .git for a pointer to the user's: Autonoma's own git work
    # (outside the sandbox) would then commit on the user's branches.
    subprocess.run(["rm", "-rf", str(path / ".git")], check=True)
    (path / ".git").write_text(f"gitdir: {user / '.git'}\n")

    with pytest.raises(VcsError, match="no longer the clone's own folder"):
        clones.fetch_branch(user, path, BRANCH)
    answer = orchestrator._commit_for_agent(
        user, CommitForAgent("t1", "developer-1", str(path), BRANCH)
    )
    assert isinstance(answer, WorkChecked)
    assert "no longer the clone's own folder" in answer.why and "\n" not in answer.why
    assert refs(user) == before


def test_a_linked_refs_folder_is_refused(user: Path) -> None:
    path = make(user)
    heads = path / ".git" / "refs" / "heads" / "autonoma"
    subprocess.run(["rm", "-rf", str(heads)], check=True)
    heads.symlink_to(user / ".git" / "refs" / "heads")

    with pytest.raises(VcsError, match="symbolic link"):
        clones.verify_clone(path, BRANCH)


def test_a_corrupt_object_fails_in_one_line(user: Path) -> None:
    path = make(user)
    head = commit(path, "work.txt", "content that only the clone has\n")
    blob = git(path, "rev-parse", "HEAD:work.txt").strip()
    loose = path / ".git" / "objects" / blob[:2] / blob[2:]
    loose.chmod(0o644)
    loose.write_bytes(b"garbage")
    before = refs(user)

    with pytest.raises(VcsError) as raised:
        clones.fetch_branch(user, path, BRANCH)
    assert "cannot bring autonoma/r1/t1 back" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert refs(user) == before
    assert head not in refs(user)


def test_an_oversized_branch_is_refused(user: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make(user)
    commit(path, "big.txt", "x" * 5000)
    monkeypatch.setattr(clones, "FETCH_LIMIT_BYTES", 4000)
    before = refs(user)

    with pytest.raises(VcsError, match="refused"):
        clones.fetch_branch(user, path, BRANCH)
    assert refs(user) == before


def test_an_existing_clone_is_kept_with_its_work(user: Path) -> None:
    path = make(user)
    head = commit(path, "work.txt")
    (path / "draft.txt").write_text("not yet committed\n")

    assert make(user) == path

    assert git(path, "rev-parse", "HEAD").strip() == head
    assert (path / "draft.txt").exists()


def test_a_lost_clone_is_made_again_from_the_branch_brought_back(user: Path) -> None:
    path = make(user)
    head = commit(path, "work.txt")
    clones.fetch_branch(user, path, BRANCH)
    clones.remove_clone(path)

    assert make(user) == path

    assert git(path, "rev-parse", "HEAD").strip() == head
    assert (path / "work.txt").exists()


def test_a_review_checkout_never_changes_the_branch(user: Path) -> None:
    path = make(user)
    head = commit(path, "work.txt")
    clones.fetch_branch(user, path, BRANCH)
    review = user / ".autonoma" / "clones" / RUN / "_review" / "t1-1"
    (review).mkdir(parents=True)
    (review / "leftover").write_text("from a killed review\n")

    clones.make_checkout(user, review, BRANCH, branch=BRANCH)

    assert not (review / "leftover").exists()
    assert git(review, "rev-parse", "--abbrev-ref", "HEAD").strip() == BRANCH
    qa = commit(review, "qa.txt")
    assert git(review, "rev-parse", workspace.INTEGRATION_BRANCH).strip() == workspace.head_of(
        user, workspace.INTEGRATION_BRANCH
    )
    assert workspace.head_of(user, BRANCH) == head != qa
    clones.remove_clone(review)
    assert not review.exists()


def test_a_planning_checkout_is_kept_when_asked(user: Path) -> None:
    plan = user / ".autonoma" / "clones" / RUN / "_plan"
    clones.make_checkout(user, plan, "main", fresh=False)
    (plan / "notes.txt").write_text("kept\n")

    clones.make_checkout(user, plan, "main", fresh=False)

    assert (plan / "notes.txt").exists()
    assert pygit2.Repository(str(plan)).head_is_detached


def test_the_planning_checkout_holds_the_requirements_even_untracked(user: Path) -> None:
    # The user's requirements.md is not committed: the planning turns still read it.
    (user / "requirements.md").write_text("Build a todo list.\n")
    plan = user / ".autonoma" / "clones" / RUN / "_plan"
    files = (("requirements.md", b"Build a todo list.\n"), ("../escape.txt", b"no"))
    action = PrepareCheckout("plan", str(plan), "main", fresh=False, files=files)

    answer = orchestrator._prepare_checkout(user, action)

    assert answer == CheckoutReady("plan", str(plan))
    assert (plan / "requirements.md").read_text() == "Build a todo list.\n"
    assert (plan / "a.txt").read_text() == "a\n"
    assert not (plan.parent / "escape.txt").exists()
    missing = orchestrator._prepare_checkout(user, PrepareCheckout("plan", str(plan), "nope"))
    assert missing.error.startswith(str(user)) and "no commit nope" in missing.error


def test_a_review_checkout_made_ahead_moves_to_the_branchs_new_head_in_place(
    user: Path,
) -> None:
    # QA's checkout made at the developer's result (the branch at its base), with QA's
    # claude already waiting in the folder; the developer's work then brought back.
    path = make(user)
    review = user / ".autonoma" / "clones" / RUN / "_review" / "t1-1"
    clones.make_checkout(user, review, BRANCH, branch=BRANCH)
    inode = review.stat().st_ino
    git(path, "rm", "-q", "a.txt")
    head = commit(path, "work.txt")
    clones.fetch_branch(user, path, BRANCH)
    before = refs(user)

    event = orchestrator._move_checkout(
        user,
        user / ".autonoma" / "clones" / RUN,
        orchestrator.MoveCheckout(str(review), BRANCH, "t1", BRANCH),
    )

    assert event == CheckoutReady("review", str(review), "t1", moved=True, changed=True)
    assert review.stat().st_ino == inode  # the same folder: a process working in it stays
    assert git(review, "rev-parse", "HEAD").strip() == head
    assert git(review, "rev-parse", "--abbrev-ref", "HEAD").strip() == BRANCH
    assert (review / "work.txt").exists() and not (review / "a.txt").exists()
    assert git(review, "status", "--porcelain") == ""
    assert refs(user) == before  # nothing of the user's moved
    again = orchestrator._move_checkout(
        user,
        user / ".autonoma" / "clones" / RUN,
        orchestrator.MoveCheckout(str(review), BRANCH, "t1", BRANCH),
    )
    assert again == CheckoutReady("review", str(review), "t1", moved=True, changed=False)


def test_moving_a_checkout_refuses_one_outside_the_run_or_not_a_clone(user: Path) -> None:
    run_clones = user / ".autonoma" / "clones" / RUN
    elsewhere = user / "elsewhere"
    elsewhere.mkdir()
    outside = orchestrator._move_checkout(
        user, run_clones, orchestrator.MoveCheckout(str(elsewhere), BRANCH, "t1", BRANCH)
    )
    assert outside.error and outside.moved  # type: ignore[union-attr]
    fake = run_clones / "_review" / "t1-1"
    fake.mkdir(parents=True)
    (fake / ".git").write_text(f"gitdir: {user / '.git'}\n")  # pointing at the user's
    refused = orchestrator._move_checkout(
        user, run_clones, orchestrator.MoveCheckout(str(fake), BRANCH, "t1", BRANCH)
    )
    assert refused.error and "no longer the clone's own folder" in refused.error  # type: ignore[union-attr]


def test_an_untouched_clone_catches_up_with_the_integration_head(user: Path) -> None:
    path = make(user)
    # Another task merged meanwhile: the integration head moved on.
    other = user / "other"
    git(user, "worktree", "add", "-q", "-b", "tmp-other", str(other), workspace.INTEGRATION_BRANCH)
    head = commit(other, "other.txt")
    git(user, "update-ref", f"refs/heads/{workspace.INTEGRATION_BRANCH}", head)

    assert clones.catch_up(user, path, BRANCH, head)

    assert workspace.head_of(user, BRANCH) == head
    assert git(path, "rev-parse", "HEAD").strip() == head
    assert (path / "other.txt").exists()
    assert git(path, "rev-parse", workspace.INTEGRATION_BRANCH).strip() == head
    assert not clones.catch_up(user, path, BRANCH, head)  # there already


def test_a_clone_with_work_of_its_own_does_not_catch_up(user: Path) -> None:
    path = make(user)
    base = workspace.head_of(user, workspace.INTEGRATION_BRANCH)
    other = user / "other"
    git(user, "worktree", "add", "-q", "-b", "tmp-other", str(other), workspace.INTEGRATION_BRANCH)
    head = commit(other, "other.txt")
    (path / "draft.txt").write_text("uncommitted\n")
    assert not clones.catch_up(user, path, BRANCH, head)  # a file of its own
    (path / "draft.txt").unlink()
    mine = commit(path, "mine.txt")
    clones.fetch_branch(user, path, BRANCH)
    assert not clones.catch_up(user, path, BRANCH, head)  # a commit of its own
    assert workspace.head_of(user, BRANCH) == mine != base


def test_a_review_checkout_made_ahead_holds_what_the_developer_committed(user: Path) -> None:
    path = make(user)
    head = commit(path, "work.txt")  # not brought back yet: the developer's claude exits
    review = user / ".autonoma" / "clones" / RUN / "_review" / "t1-1"
    action = PrepareCheckout("review", str(review), BRANCH, "t1", BRANCH, bring_back=str(path))

    event = orchestrator._prepare_checkout(user, action)

    assert event == CheckoutReady("review", str(review), "t1")
    assert workspace.head_of(user, BRANCH) == head
    assert git(review, "rev-parse", "HEAD").strip() == head
    assert (review / "work.txt").exists()


MAKE_CLONE = """
import sys
from pathlib import Path
from autonoma.vcs import clones, workspace
user = Path(sys.argv[1])
base = workspace.head_of(user, workspace.INTEGRATION_BRANCH)
print("go", flush=True)
clones.create_clone(user, user / ".autonoma" / "clones", "t1", base, run=sys.argv[2])
"""


def test_a_clone_killed_while_it_is_made_is_made_again_next_time(user: Path) -> None:
    # SIGKILLed at 16 moments of making the clone (found by the chaos suite: killed
    # between `git init` and the checkout, the next start refused the half-made clone
    # as "not a clone of this task" and escalated the task).
    base = workspace.head_of(user, workspace.INTEGRATION_BRANCH)
    for n in range(16):
        run = f"r{n}"
        maker = subprocess.Popen(
            [sys.executable, "-c", MAKE_CLONE, str(user), run], stdout=subprocess.PIPE, text=True
        )
        assert maker.stdout is not None and maker.stdout.readline() == "go\n"
        time.sleep(n * 0.002)
        maker.kill()
        maker.wait()
        workspace.remove_stale_ref_locks(user)  # as a resumed run does first
        branch, path = clones.create_clone(user, user / ".autonoma" / "clones", "t1", base, run=run)
        assert git(path, "rev-parse", "--abbrev-ref", "HEAD").strip() == branch
        assert (path / "a.txt").read_text() == "a\n"
        assert sorted(p.name for p in path.parent.iterdir()) == ["t1"]  # no partial left
