"""Branches, task clones, merges and the push guard, on real repositories, as a user sees them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pygit2
import pytest

from autonoma.vcs import clones, repo, workspace
from autonoma.vcs.workspace import INTEGRATION_BRANCH, MergeResult, VcsError

# The git CLI stands for an agent (or the user) working in a clone.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run the git CLI in ``cwd`` and return its stdout."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def write(root: Path, name: str, text: str) -> None:
    """Write a file under ``root``, creating its folders."""
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def parents(repo_path: Path, commit: str) -> list[str]:
    """The parent ids of a commit."""
    return git(repo_path, "rev-list", "--parents", "-n1", commit).split()[1:]


def refs(repo_path: Path) -> dict[str, str]:
    """Every ref of the repository and what it points to."""
    lines = git(repo_path, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return dict(line.split() for line in lines)


@pytest.fixture
def project(git_repo: Path) -> Path:
    """A repository on main with one commit (a.txt of five lines, a .gitignore), as after init."""
    repo.ensure_excluded(git_repo, "/.autonoma/")
    write(git_repo, "a.txt", "1\n2\n3\n4\n5\n")
    write(git_repo, ".gitignore", "*.log\n")
    assert workspace.commit_all(git_repo, "start", ["a.txt", ".gitignore"]).commit is not None
    return git_repo


@pytest.fixture
def worktrees(project: Path) -> Path:
    """Where Autonoma's own worktrees live (as in a real project: .autonoma/worktrees)."""
    return project / ".autonoma" / "worktrees"


RUN = "run"


def task(project: Path, task_id: str, base: str) -> tuple[str, Path]:
    """A task's clone as a run makes it: ``.autonoma/clones/run/<task_id>``."""
    return clones.create_clone(project, project / ".autonoma" / "clones", task_id, base, run=RUN)


def back(project: Path, clone: Path) -> str:
    """Bring the clone's task branch back into the project, as a run does after a turn."""
    return clones.fetch_branch(project, clone, f"autonoma/{RUN}/{clone.name}")


def test_task_branch_name() -> None:
    assert workspace.task_branch("T1") == "autonoma/task/T1"
    assert workspace.task_branch("T1", "run") == "autonoma/run/T1"


def test_current_branch_on_an_empty_repository_makes_an_initial_commit(git_repo: Path) -> None:
    assert workspace.current_branch(git_repo) == "main"

    assert git(git_repo, "log", "--format=%s").splitlines() == ["Initial commit (autonoma)"]
    assert git(git_repo, "ls-tree", "-r", "HEAD") == ""
    assert git(git_repo, "status", "--porcelain") == ""
    assert workspace.current_branch(git_repo) == "main"
    assert len(git(git_repo, "log", "--format=%H").splitlines()) == 1


def test_initial_commit_without_any_identity_is_by_autonoma(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_identity(self: pygit2.Repository) -> pygit2.Signature:
        raise KeyError("user.name")

    monkeypatch.setattr(pygit2.Repository, "default_signature", property(no_identity))
    workspace.current_branch(git_repo)

    assert git(git_repo, "log", "--format=%an <%ae>") == "Autonoma <autonoma@localhost>\n"


def test_current_branch_names_the_branch_and_refuses_a_detached_head(project: Path) -> None:
    git(project, "switch", "-q", "-c", "feature/x")
    assert workspace.current_branch(project) == "feature/x"

    git(project, "switch", "-q", "--detach")
    with pytest.raises(VcsError, match="detached"):
        workspace.current_branch(project)


def test_dirty_files_lists_every_kind_of_change_but_ignored_and_autonoma(project: Path) -> None:
    assert workspace.dirty_files(project) == []
    # Even where .autonoma/ is not excluded, it is not the user's work.
    (project / ".git" / "info" / "exclude").write_text("")
    write(project, ".autonoma/state.db", "journal")
    write(project, "debug.log", "ignored")
    assert workspace.dirty_files(project) == []

    write(project, "a.txt", "changed\n")
    write(project, "staged.txt", "new\n")
    git(project, "add", "staged.txt")
    write(project, "new/untracked.txt", "new\n")
    (project / ".gitignore").unlink()
    write(project, "debug.log", "no longer ignored")

    assert workspace.dirty_files(project) == [
        ".gitignore",
        "a.txt",
        "debug.log",
        "new/",
        "staged.txt",
    ]


def test_untracked_files_can_be_left_out_of_what_is_dirty(project: Path) -> None:
    write(project, "notes.txt", "mine\n")
    assert workspace.dirty_files(project, untracked=False) == []
    write(project, "a.txt", "changed\n")
    assert workspace.dirty_files(project, untracked=False) == ["a.txt"]


def test_remove_untracked_deletes_only_untracked_matches(project: Path) -> None:
    write(project, "src/x.py.tmp.123.abc", "half written")
    write(project, "keep.tmp.txt", "not a match")
    write(project, "a.txt", "changed\n")
    removed = workspace.remove_untracked(project, re.compile(r"\.tmp\.\d+\.[0-9a-f]+$"))
    assert removed == ["src/x.py.tmp.123.abc"]
    assert not (project / "src/x.py.tmp.123.abc").exists()
    assert (project / "keep.tmp.txt").exists() and (project / "a.txt").read_text() == "changed\n"


def test_ensure_integration_creates_then_fast_forwards_to_main(project: Path) -> None:
    main_head = workspace.head_of(project, "main")
    assert workspace.ensure_integration(project, "main") == main_head
    assert workspace.head_of(project, INTEGRATION_BRANCH) == main_head

    # The user commits on main between runs: the integration branch follows.
    write(project, "b.txt", "user\n")
    git(project, "add", "b.txt")
    git(project, "commit", "-qm", "user work")
    user_head = workspace.head_of(project, "main")
    assert workspace.ensure_integration(project, "main") == user_head

    # Merged work not yet on main is kept.
    ahead = _commit_on(project, INTEGRATION_BRANCH, "c.txt")
    assert workspace.ensure_integration(project, "main") == ahead
    assert workspace.head_of(project, "refs/heads/main") == user_head


def _commit_on(repo_path: Path, branch: str, name: str) -> str:
    # A commit on a branch that is checked out nowhere, without touching any working tree.
    repo = pygit2.Repository(str(repo_path))
    parent = repo.lookup_reference(f"refs/heads/{branch}").peel(pygit2.Commit)
    builder = repo.TreeBuilder(parent.tree)
    builder.insert(name, repo.create_blob(f"{name}\n"), pygit2.enums.FileMode.BLOB)
    signature = pygit2.Signature("Test", "test@example.com")
    commit = repo.create_commit(
        f"refs/heads/{branch}", signature, signature, f"add {name}", builder.write(), [parent.id]
    )
    return str(commit)


def test_head_of_names_a_missing_branch(project: Path) -> None:
    with pytest.raises(VcsError, match="no branch nope"):
        workspace.head_of(project, "nope")


def test_create_clone_branches_from_base_and_is_idempotent(project: Path) -> None:
    base = workspace.ensure_integration(project, "main")
    branch, path = task(project, "T1", base)

    assert branch == "autonoma/run/T1"
    assert path == project / ".autonoma" / "clones" / RUN / "T1"
    assert git(path, "branch", "--show-current") == "autonoma/run/T1\n"
    assert git(path, "rev-parse", "HEAD").strip() == base
    assert (path / "a.txt").read_text() == "1\n2\n3\n4\n5\n"
    assert git(project, "status", "--porcelain") == ""

    # A resumed run finds the agent's work where it left it.
    write(path, "wip.txt", "half done\n")
    assert task(project, "T1", base) == (branch, path)
    assert (path / "wip.txt").read_text() == "half done\n"

    # The folder was deleted: the branch (and its commits brought back) come back in a
    # new clone.
    commit = workspace.commit_all(path, "wip", ["wip.txt"]).commit
    assert commit is not None
    back(project, path)
    shutil.rmtree(path)
    assert task(project, "T1", base) == (branch, path)
    assert git(path, "rev-parse", "HEAD").strip() == commit
    assert (path / "wip.txt").read_text() == "half done\n"
    assert git(path, "status", "--porcelain") == ""


def test_create_clone_refuses_an_unsafe_task_id_or_a_foreign_folder(project: Path) -> None:
    base = workspace.head_of(project, "main")
    for bad in ("../x", "a/b", "_merge", "x.lock", "a..b", ""):
        with pytest.raises(VcsError, match="cannot name a branch and a folder"):
            task(project, bad, base)

    folder = project / ".autonoma" / "clones" / RUN
    write(folder, "T2/keep.txt", "someone's file\n")
    with pytest.raises(VcsError, match="exists"):
        task(project, "T2", base)
    assert (folder / "T2" / "keep.txt").read_text() == "someone's file\n"


def test_commit_all_takes_tracked_changes_and_declared_files_only(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    assert workspace.commit_all(path, "nothing") == workspace.CommitResult(None, [], [])

    write(path, "a.txt", "changed\n")  # tracked: taken
    write(path, "src/new.py", "print('hi')\n")  # declared: taken
    write(path, "src/notes.md", "mine\n")  # new, not declared: left out
    write(path, "src/__pycache__/new.cpython-311.pyc", "\0")  # excluded: left out
    write(path, "run.log", "ignored\n")  # the repository's own .gitignore: silent
    write(path, "gone.txt", "")  # declared
    write(path, "scratch/a.txt", "")  # a new folder, nothing declared in it
    result = workspace.commit_all(path, "work", ["src/new.py", "gone.txt"])

    assert result.commit is not None
    assert result.files == ["a.txt", "gone.txt", "src/new.py"]
    assert result.left_out == ["scratch/", "src/__pycache__/", "src/notes.md"]
    assert git(path, "status", "--porcelain", "-uall") == (
        "?? scratch/a.txt\n?? src/__pycache__/new.cpython-311.pyc\n?? src/notes.md\n"
    )
    assert git(path, "log", "-1", "--format=%H %s") == f"{result.commit} work\n"
    back(project, path)
    assert workspace.head_of(project, "autonoma/run/T1") == result.commit

    (path / "gone.txt").unlink()
    result = workspace.commit_all(path, "delete")
    assert result.files == ["gone.txt"]
    assert result.left_out == ["scratch/", "src/__pycache__/", "src/notes.md"]
    # Nothing left to commit: what stays out is still reported.
    again = workspace.commit_all(path, "again")
    assert again.commit is None and again.left_out == result.left_out


def test_commit_all_never_takes_what_the_exclude_list_matches(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    declared = ["app.py", ".env", "node_modules/", ".venv/lib/site.py", "config/"]
    write(path, "app.py", "x = 1\n")
    write(path, ".env", "TOKEN=secret\n")
    write(path, ".env.example", "TOKEN=\n")
    write(path, ".venv/lib/site.py", "")
    write(path, "node_modules/dep/index.js", "")
    write(path, "config/app.toml", "")
    write(path, "config/__pycache__/x.pyc", "")
    write(path, "config/id_rsa", "KEY")
    # The agent forced a secret into the index itself: still not committed.
    git(path, "add", "-f", ".env")

    result = workspace.commit_all(path, "work", declared)

    assert result.files == ["app.py", "config/app.toml"]
    assert result.left_out == [
        ".env",
        ".env.example",
        ".venv/",
        "config/__pycache__/",
        "config/id_rsa",
        "node_modules/",
    ]
    assert git(path, "ls-files") == ".gitignore\na.txt\napp.py\nconfig/app.toml\n"
    # A negated rule is honoured; a project's own list replaces the defaults.
    custom = workspace.commit_all(path, "custom", [".env.example"], rules=".env\n")
    assert custom.files == [".env.example"]


def test_commit_all_reads_the_project_exclude_file(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    write(project, ".autonoma/exclude", "*.secret\n")
    write(path, "x.secret", "")
    write(path, ".env", "declared, and no longer excluded\n")
    result = workspace.commit_all(path, "work", ["x.secret", ".env"])
    assert (result.files, result.left_out) == ([".env"], ["x.secret"])


def test_commit_all_leaves_out_a_tracked_file_the_list_matches(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    write(path, "vendor/lib.go", "v1\n")
    write(path, "main.go", "v1\n")
    git(path, "add", "-f", "vendor/lib.go", "main.go")
    git(path, "commit", "-qm", "the agent's own commit, vendor/ included")
    back(project, path)
    own = workspace.head_of(project, "autonoma/run/T1")
    write(path, "vendor/lib.go", "v2\n")
    write(path, "main.go", "v2\n")

    result = workspace.commit_all(path, "work")
    back(project, path)

    assert (result.files, result.left_out) == (["main.go"], ["vendor/lib.go"])
    # The agent's commit is its own: kept as it was, the new commit on top of it.
    assert parents(project, str(result.commit)) == [own]
    assert git(path, "show", f"{own}:vendor/lib.go") == "v1\n"
    assert git(path, "status", "--porcelain") == " M vendor/lib.go\n"


def test_commit_all_bounds_what_it_reports(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    for i in range(workspace.LEFT_OUT_LIMIT + 5):
        write(path, f"note{i:02}.md", "")
    for i in range(500):
        write(path, f"node_modules/dep{i}/index.js", "")
    result = workspace.commit_all(path, "work")
    assert result.commit is None
    assert len(result.left_out) == workspace.LEFT_OUT_LIMIT
    assert result.left_out[0] == "node_modules/"
    assert result.left_out_more == 6


def test_commit_all_uses_the_repository_identity(project: Path) -> None:
    git(project, "config", "user.name", "Repo Owner")
    git(project, "config", "user.email", "owner@example.com")
    _, path = task(project, "T1", "main")
    write(path, "b.txt", "b\n")
    assert workspace.commit_all(path, "b", ["b.txt"]).commit is not None
    assert git(path, "log", "-1", "--format=%an <%ae> / %cn <%ce>") == (
        "Repo Owner <owner@example.com> / Repo Owner <owner@example.com>\n"
    )


def _two_conflicting_tasks(project: Path) -> tuple[str, Path, Path]:
    base = workspace.ensure_integration(project, "main")
    _, first = task(project, "T1", base)
    _, second = task(project, "T2", base)
    # One agent commits with the git CLI, the other leaves its work for commit_all.
    write(first, "a.txt", "1\n2\nfirst\n4\n5\n")
    write(first, "first.txt", "T1\n")
    git(first, "add", "-A")
    git(first, "commit", "-qm", "T1 work")
    write(second, "a.txt", "1\n2\nsecond\n4\n5\n")
    write(second, "second.txt", "T2\n")
    assert workspace.commit_all(second, "T2 work", ["second.txt"]).commit is not None
    back(project, first)
    back(project, second)
    return base, first, second


def test_merge_queue_flow_conflict_resolution_and_main_advanced(project: Path) -> None:
    base, _, second = _two_conflicting_tasks(project)
    before = refs(project)

    merged = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1")
    assert merged.conflicts == []
    assert merged.commit is not None
    assert parents(project, merged.commit) == [base, workspace.head_of(project, "autonoma/run/T1")]
    assert refs(project) == before
    workspace.move_branch(project, INTEGRATION_BRANCH, base, merged.commit)
    integration = merged.commit

    before = refs(project)
    clash = workspace.prepare_merge(project, integration, "autonoma/run/T2", "Merge T2")
    assert clash == MergeResult(commit=None, conflicts=["a.txt"])
    assert refs(project) == before

    # The developer gets the conflict in its own clone, the way `git merge` leaves it; the
    # clone sees the integration commit through its alternates.
    assert workspace.start_conflict_merge(second, integration) == ["a.txt"]
    text = (second / "a.txt").read_text()
    assert "<<<<<<< " in text and "=======" in text and ">>>>>>> " in text
    assert (second / "first.txt").read_text() == "T1\n"
    assert "UU a.txt" in git(second, "status", "--porcelain")
    with pytest.raises(VcsError, match=r"a\.txt"):
        workspace.commit_all(second, "not resolved")
    assert "UU a.txt" in git(second, "status", "--porcelain")

    write(second, "a.txt", "1\n2\nfirst and second\n4\n5\n")
    git(second, "commit", "-qam", "resolve")
    back(project, second)
    t2_head = workspace.head_of(project, "autonoma/run/T2")
    assert len(parents(project, t2_head)) == 2
    assert git(second, "status", "--porcelain") == ""

    clean = workspace.prepare_merge(project, integration, "autonoma/run/T2", "Merge T2")
    assert clean.conflicts == []
    assert clean.commit is not None
    assert parents(project, clean.commit) == [integration, t2_head]
    workspace.move_branch(project, INTEGRATION_BRANCH, integration, clean.commit)

    assert workspace.advance_main(project, "main", clean.commit) == (True, "")
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "rev-parse", "main").strip() == clean.commit
    assert (project / "a.txt").read_text() == "1\n2\nfirst and second\n4\n5\n"
    assert (project / "first.txt").read_text() == "T1\n"
    assert (project / "second.txt").read_text() == "T2\n"
    assert workspace.changed_files(project, base, clean.commit) == [
        "a.txt",
        "first.txt",
        "second.txt",
    ]


def test_prepare_merge_makes_a_merge_commit_even_for_a_fast_forward(project: Path) -> None:
    base = workspace.ensure_integration(project, "main")
    _, path = task(project, "T1", base)
    write(path, "b.txt", "b\n")
    result = workspace.commit_all(path, "b", ["b.txt"]).commit
    assert result is not None
    back(project, path)

    merged = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1")
    assert merged.commit is not None
    assert parents(project, merged.commit) == [base, result]
    assert git(project, "log", "-1", "--format=%s", merged.commit) == "Merge T1\n"
    assert workspace.head_of(project, INTEGRATION_BRANCH) == base

    # A branch with nothing new merges to the commit it was given.
    assert workspace.prepare_merge(project, merged.commit, "autonoma/run/T1", "again") == (
        MergeResult(commit=merged.commit, conflicts=[])
    )


def test_merge_result_has_either_a_commit_or_conflicts() -> None:
    with pytest.raises(ValueError):
        MergeResult(commit=None, conflicts=[])
    with pytest.raises(ValueError):
        MergeResult(commit="abc", conflicts=["a.txt"])


def test_commit_all_concludes_a_merge_with_both_parents(project: Path) -> None:
    base, _, second = _two_conflicting_tasks(project)
    integration = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1").commit
    assert integration is not None
    t2_head = workspace.head_of(project, "autonoma/run/T2")

    assert workspace.start_conflict_merge(second, integration) == ["a.txt"]
    # Resumed: the same merge is still waiting, nothing is redone.
    assert workspace.start_conflict_merge(second, integration) == ["a.txt"]
    write(second, "a.txt", "1\n2\nresolved\n4\n5\n")
    result = workspace.commit_all(second, "resolve").commit

    assert result is not None
    back(project, second)
    assert parents(project, result) == [t2_head, integration]
    assert "merge" not in git(second, "status")
    assert git(second, "status", "--porcelain") == ""
    assert not (Path(pygit2.Repository(str(second)).path) / "MERGE_HEAD").exists()


def test_start_conflict_merge_commits_a_clean_merge_at_once(project: Path) -> None:
    base = workspace.ensure_integration(project, "main")
    _, first = task(project, "T1", base)
    _, second = task(project, "T2", base)
    write(first, "first.txt", "T1\n")
    workspace.commit_all(first, "T1", ["first.txt"])
    back(project, first)
    write(second, "second.txt", "T2\n")
    t2 = workspace.commit_all(second, "T2", ["second.txt"]).commit
    assert t2 is not None
    back(project, second)
    # QA ran the tests here: their leftovers neither block the merge nor go into it.
    write(second, ".coverage", "data")
    integration = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1").commit
    assert integration is not None

    assert workspace.start_conflict_merge(second, integration) == []
    back(project, second)
    head = workspace.head_of(project, "autonoma/run/T2")
    assert parents(project, head) == [t2, integration]
    assert git(second, "status", "--porcelain") == "?? .coverage\n"
    assert ".coverage" not in git(second, "ls-files")
    assert (second / "first.txt").read_text() == "T1\n"
    assert git(second, "log", "-1", "--format=%s") == (
        f"Merge {INTEGRATION_BRANCH} ({integration[:10]}) into autonoma/run/T2\n"
    )
    # Already merged: nothing to do.
    assert workspace.start_conflict_merge(second, integration) == []
    assert workspace.head_of(project, "autonoma/run/T2") == head


def test_start_conflict_merge_refuses_uncommitted_work(project: Path) -> None:
    base, _, second = _two_conflicting_tasks(project)
    integration = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1").commit
    assert integration is not None
    write(second, "second.txt", "unsaved\n")
    with pytest.raises(VcsError, match=r"uncommitted changes \(second\.txt\)"):
        workspace.start_conflict_merge(second, integration)
    assert (second / "second.txt").read_text() == "unsaved\n"


def test_conflict_marker_files_finds_whole_blocks_only(project: Path) -> None:
    base = workspace.head_of(project, "main")
    _, path = task(project, "T1", base)
    write(path, "doc.md", "A line starting\n<<<<<<< is fine alone\n")
    result = workspace.commit_all(path, "doc", ["doc.md"]).commit
    assert result is not None
    back(project, path)
    assert workspace.conflict_marker_files(project, base, result) == []

    # An agent that commits markers with the git CLI is caught before its branch is merged.
    write(path, "b.txt", "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n")
    git(path, "add", "b.txt")
    git(path, "commit", "-qm", "markers")
    back(project, path)
    head = workspace.head_of(project, "autonoma/run/T1")
    assert workspace.conflict_marker_files(project, base, head) == ["b.txt"]


def _merged_work(project: Path) -> str:
    base = workspace.ensure_integration(project, "main")
    _, path = task(project, "T1", base)
    write(path, "feature.py", "x = 1\n")
    write(path, "a.txt", "1\n2\n3\n4\n5\n6\n")
    workspace.commit_all(path, "feature", ["feature.py"])
    back(project, path)
    merged = workspace.prepare_merge(project, base, "autonoma/run/T1", "Merge T1").commit
    assert merged is not None
    workspace.move_branch(project, INTEGRATION_BRANCH, base, merged)
    return merged


def test_advance_main_keeps_a_dirty_user_tree_untouched(project: Path) -> None:
    old = workspace.head_of(project, "main")
    merged = _merged_work(project)
    write(project, "a.txt", "the user's unsaved edit\n")

    moved, reason = workspace.advance_main(project, "main", merged)

    assert not moved
    assert "uncommitted changes: a.txt" in reason
    assert INTEGRATION_BRANCH in reason
    assert workspace.head_of(project, "main") == old
    assert (project / "a.txt").read_text() == "the user's unsaved edit\n"
    assert not (project / "feature.py").exists()


def test_advance_main_moves_only_the_ref_when_main_is_not_checked_out(project: Path) -> None:
    merged = _merged_work(project)
    git(project, "switch", "-q", "-c", "experiment")
    write(project, "a.txt", "work on another branch\n")

    assert workspace.advance_main(project, "main", merged) == (True, "")

    assert workspace.head_of(project, "main") == merged
    assert git(project, "branch", "--show-current") == "experiment\n"
    assert git(project, "status", "--porcelain") == " M a.txt\n"
    assert (project / "a.txt").read_text() == "work on another branch\n"
    assert not (project / "feature.py").exists()


def test_advance_main_updates_a_user_worktree_that_has_main(project: Path, tmp_path: Path) -> None:
    merged = _merged_work(project)
    git(project, "switch", "-q", "-c", "experiment")
    elsewhere = tmp_path / "users-main"
    git(project, "worktree", "add", "-q", str(elsewhere), "main")

    assert workspace.advance_main(project, "main", merged) == (True, "")

    assert git(elsewhere, "status", "--porcelain") == ""
    assert (elsewhere / "feature.py").read_text() == "x = 1\n"


def test_advance_main_refuses_when_the_user_committed_on_main(project: Path) -> None:
    merged = _merged_work(project)
    write(project, "mine.txt", "user\n")
    git(project, "add", "mine.txt")
    git(project, "commit", "-qm", "user work")
    user_head = workspace.head_of(project, "main")

    moved, reason = workspace.advance_main(project, "main", merged)

    assert not moved
    assert "meanwhile" in reason
    assert workspace.head_of(project, "main") == user_head
    assert git(project, "status", "--porcelain") == ""
    assert workspace.advance_main(project, "main", user_head) == (True, "")


def test_move_branch_refuses_a_branch_that_moved(project: Path) -> None:
    base = workspace.ensure_integration(project, "main")
    other = _commit_on(project, "main", "b.txt")
    with pytest.raises(VcsError, match="moved under us"):
        workspace.move_branch(project, INTEGRATION_BRANCH, other, base)
    assert workspace.head_of(project, INTEGRATION_BRANCH) == base
    workspace.move_branch(project, INTEGRATION_BRANCH, base, other)
    assert workspace.head_of(project, INTEGRATION_BRANCH) == other


def test_check_worktree_is_exactly_the_commit(project: Path, worktrees: Path) -> None:
    first = workspace.head_of(project, "main")
    second = _commit_on(project, "main", "b.txt")
    git(project, "reset", "-q", "--hard")

    path = workspace.ensure_check_worktree(project, worktrees, first)
    assert path == worktrees / "_merge"
    assert git(path, "rev-parse", "HEAD").strip() == first
    assert git(path, "branch", "--show-current") == ""
    assert "autonoma/check-worktree" not in git(project, "branch", "--list")

    write(path, "a.txt", "scribbled\n")
    write(path, "stray/new.txt", "left over\n")
    write(path, "cache.log", "ignored stays\n")
    assert workspace.ensure_check_worktree(project, worktrees, second) == path
    assert git(path, "rev-parse", "HEAD").strip() == second
    assert git(path, "status", "--porcelain") == ""
    assert (path / "a.txt").read_text() == "1\n2\n3\n4\n5\n"
    assert (path / "b.txt").exists()
    assert not (path / "stray" / "new.txt").exists()
    assert (path / "cache.log").exists()

    workspace.checkout_detached(path, first)
    assert not (path / "b.txt").exists()
    assert git(path, "status", "--porcelain") == ""

    shutil.rmtree(path)
    assert workspace.ensure_check_worktree(project, worktrees, second) == path
    assert git(path, "rev-parse", "HEAD").strip() == second


def test_push_guard_refuses_agent_pushes(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True)
    _, path = task(project, "T1", "main")
    git(path, "remote", "add", "origin", str(remote))
    guard = workspace.install_push_guard(tmp_path / "hooks")
    assert guard["GIT_CONFIG_KEY_0"] == "core.hooksPath"
    assert os.access(tmp_path / "hooks" / "pre-push", os.X_OK)

    for args in (
        ["push", "origin", "autonoma/run/T1"],
        ["push", "--no-verify", "origin", "autonoma/run/T1"],
        ["push", str(remote), "HEAD:refs/heads/x"],
    ):
        pushed = subprocess.run(
            ["git", *args],
            cwd=path,
            env={**os.environ, **GIT_IDENTITY, **guard},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pushed.returncode != 0, args
        assert "autonoma: agents never push (refused)" in pushed.stderr
    assert git(remote, "for-each-ref") == ""
    # The user's own configuration is untouched.
    assert "hookspath" not in git(project, "config", "--list").lower()

    # The same push without the guard's environment works: the guard is what refuses.
    git(path, "push", "-q", "origin", "autonoma/run/T1")
    assert "refs/heads/autonoma/run/T1" in git(remote, "for-each-ref")


def test_push_guard_hook_alone_refuses(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True)
    _, path = task(project, "T1", "main")
    guard = workspace.install_push_guard(tmp_path / "hooks")
    # A remote with an explicit pushurl escapes the URL rewrite; the hook still refuses.
    git(path, "remote", "add", "origin", str(remote))
    git(path, "remote", "set-url", "--push", "origin", str(remote))
    hook_only = {key: guard[key] for key in ("GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")}
    pushed = subprocess.run(
        ["git", "push", "origin", "autonoma/run/T1"],
        cwd=path,
        env={**os.environ, **GIT_IDENTITY, **hook_only, "GIT_CONFIG_COUNT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pushed.returncode != 0
    assert "autonoma: agents never push (refused)" in pushed.stderr
    assert git(remote, "for-each-ref") == ""


def test_branch_changes_ignores_what_the_integration_gained(project: Path) -> None:
    base = workspace.ensure_integration(project, "main")
    _, path = task(project, "T1", base)
    newer = _commit_on(project, INTEGRATION_BRANCH, "other.txt")
    assert workspace.branch_changes(project, newer, "autonoma/run/T1") == []
    assert workspace.changed_files(
        project, newer, workspace.head_of(project, "autonoma/run/T1")
    ) == ["other.txt"]

    write(path, "mine.txt", "T1\n")
    workspace.commit_all(path, "T1", ["mine.txt"])
    back(project, path)
    assert workspace.branch_changes(project, newer, "autonoma/run/T1") == ["mine.txt"]


def test_a_ref_lock_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    # Found by tests/chaos (SIGKILL start, seed 1118330): killed while git moved a task
    # branch, the resumed run failed to bring the branch back four times ("failed to
    # lock file ...t1.lock") and escalated the task.
    root = tmp_path / "user"
    root.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    heads = root / ".git" / "refs" / "heads" / "autonoma" / "run1"
    heads.mkdir(parents=True)
    (heads / "t1.lock").write_text("0" * 40 + "\n")
    (root / ".git" / "refs" / "heads" / "main.lock").write_text("")  # the user's: left
    assert workspace.remove_stale_ref_locks(root) == [heads / "t1.lock"]
    assert not (heads / "t1.lock").exists()
    assert (root / ".git" / "refs" / "heads" / "main.lock").exists()


def _main_lock(project: Path) -> Path:
    return project / ".git" / "refs" / "heads" / "main.lock"


def test_advance_main_waits_for_a_users_git_holding_main_then_moves_it(project: Path) -> None:
    merged = _merged_work(project)
    lock = _main_lock(project)
    lock.write_text(workspace.head_of(project, "main") + "\n")  # as git holds it, moving main
    threading.Timer(0.5, lock.unlink).start()  # ...for half a second

    assert workspace.advance_main(project, "main", merged, lock_wait=10.0) == (True, "")

    assert workspace.head_of(project, "main") == merged
    assert git(project, "status", "--porcelain") == ""
    assert (project / "feature.py").read_text() == "x = 1\n"


def test_advance_main_leaves_main_and_the_users_files_as_they_were_while_the_lock_stays(
    project: Path,
) -> None:
    old = workspace.head_of(project, "main")
    merged = _merged_work(project)
    lock = _main_lock(project)
    lock.write_text(old + "\n")

    moved, reason = workspace.advance_main(project, "main", merged, lock_wait=0.3)

    assert not moved
    assert str(lock) in reason and "remove the file" in reason
    assert workspace.head_of(project, "main") == old
    # The user's tree untouched: not ahead of their branch (it would show as their edits).
    assert git(project, "status", "--porcelain") == ""
    assert not (project / "feature.py").exists()
    lock.unlink()  # their git is done: the next merge moves main
    assert workspace.advance_main(project, "main", merged) == (True, "")
    assert git(project, "status", "--porcelain") == ""


def _lock(age: float, ours: bool) -> workspace.BranchLock:
    return workspace.BranchLock(path=Path("main.lock"), age_s=age, ours=ours)


@pytest.mark.parametrize(
    ("lock", "stale"),
    [
        (_lock(0.0, ours=True), True),  # Autonoma's own move, killed: whatever its age
        (_lock(0.0, ours=False), False),  # a git of the user's, moving main now
        (_lock(workspace.STALE_LOCK_AGE - 1, ours=False), False),
        (_lock(workspace.STALE_LOCK_AGE, ours=False), True),  # no git holds one that long
        (_lock(3600.0, ours=False), True),
    ],
)
def test_which_locks_on_main_a_start_may_remove(lock: workspace.BranchLock, stale: bool) -> None:
    assert workspace.lock_is_stale(lock) is stale


def test_branch_lock_says_how_old_a_lock_is_and_whether_it_names_a_merged_commit(
    project: Path,
) -> None:
    old = workspace.head_of(project, "main")
    merged = _merged_work(project)
    lock = _main_lock(project)
    assert workspace.branch_lock(project, "main") is None
    lock.write_text(merged + "\n")  # what the merge queue writes there as it moves main
    os.utime(lock, (1000.0, 1000.0))
    found = workspace.branch_lock(project, "main", now=1090.0)
    assert found == workspace.BranchLock(path=lock, age_s=90.0, ours=True)
    git(project, "branch", "experiment", old)
    lock.write_text(_commit_on(project, "experiment", "x.txt") + "\n")  # not on integration
    os.utime(lock, (1000.0, 1000.0))
    found = workspace.branch_lock(project, "main", now=1000.5)
    assert found == workspace.BranchLock(path=lock, age_s=0.5, ours=False)
    lock.write_text(old + "\n")  # on integration, but no move forward: a reset of the user's
    found = workspace.branch_lock(project, "main")
    assert found is not None and not found.ours
    lock.write_text("")  # killed before it wrote a line
    found = workspace.branch_lock(project, "main")
    assert found is not None and not found.ours
    assert workspace.head_of(project, "main") == old
