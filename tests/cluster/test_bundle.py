"""A working copy's state crosses to a node and back whole: commits, changes, new files,
deletions; only what the other side lacks is bundled; the real git, no Ray."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from autonoma.cluster.bundle import capture, clone_into, head_commit, restore
from autonoma.cluster.node import localise, shipped_files


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "head"
    root.mkdir()
    git(root, "init", "-q", "-b", "task")
    git(root, "config", "user.name", "T")
    git(root, "config", "user.email", "t@example.invalid")
    (root / "a.txt").write_text("a\n")
    (root / "gone.txt").write_text("gone\n")
    (root / ".gitignore").write_text("ignored/\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file but .git's: path -> content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def test_a_state_with_commits_changes_new_files_and_deletions_arrives_whole(
    repo: Path, tmp_path: Path
) -> None:
    (repo / "a.txt").write_text("a changed\n")
    (repo / "new.bin").write_bytes(bytes(range(256)))
    (repo / "gone.txt").unlink()
    (repo / "ignored").mkdir()
    (repo / "ignored" / "cache").write_text("not shipped\n")
    node = tmp_path / "node"
    clone_into(node, capture(repo), "task")
    assert head_commit(node) == head_commit(repo)
    assert git(node, "symbolic-ref", "--short", "HEAD").strip() == "task"
    expected = tree(repo)
    del expected["ignored/cache"]
    assert tree(node) == expected
    # The head's index was not touched by the capture.
    assert git(repo, "diff", "--cached", "--name-only") == ""


def test_the_way_home_bundles_only_the_new_commits_and_mirrors_the_node(
    repo: Path, tmp_path: Path
) -> None:
    node = tmp_path / "node"
    base = capture(repo)
    clone_into(node, base, "task")
    (node / "b.txt").write_text("b\n")
    git(node, "add", "b.txt")
    git(node, "commit", "-q", "-m", "two")
    (node / "uncommitted.txt").write_text("left\n")
    back = capture(node, known=base.commit)
    whole = capture(node)
    assert 0 < len(back.bundle) < len(whole.bundle)
    # A stray file on the head is dropped; ignored files (a set-up's installs) stay.
    (repo / "stray.txt").write_text("x\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "venv").write_text("kept\n")
    restore(repo, back, "task")
    assert head_commit(repo) == head_commit(node)
    assert git(repo, "log", "--format=%s").split() == ["two", "one"]
    assert (repo / "uncommitted.txt").read_text() == "left\n"
    assert not (repo / "stray.txt").exists()
    assert (repo / "ignored" / "venv").read_text() == "kept\n"


def test_nothing_new_ships_no_bundle(repo: Path) -> None:
    state = capture(repo, known=head_commit(repo))
    assert state.bundle == b""
    assert state.patch == b""


def test_the_push_guard_and_the_excludes_are_shipped_and_renamed(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-push").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "pre-push").chmod(0o755)
    exclude = tmp_path / "agent-exclude"
    exclude.write_text(".claude/.cc-writes\n")
    env = {
        "GIT_CONFIG_VALUE_0": str(hooks),
        "GIT_CONFIG_VALUE_1": "",
        "GIT_CONFIG_VALUE_2": str(exclude),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "not-on-this-node"),
        "PATH": os.environ["PATH"],
    }
    shipped = shipped_files(env)
    node = tmp_path / "node"
    local = localise(env, shipped, node)
    hook = Path(local["GIT_CONFIG_VALUE_0"]) / "pre-push"
    assert hook.read_text() == "#!/bin/sh\nexit 1\n" and os.access(hook, os.X_OK)
    assert Path(local["GIT_CONFIG_VALUE_2"]).read_text() == ".claude/.cc-writes\n"
    assert local["GIT_CONFIG_VALUE_0"].startswith(str(node))
    assert local["GIT_CONFIG_VALUE_1"] == ""
    assert Path(local["CLAUDE_CONFIG_DIR"]).is_dir()
    assert local["CLAUDE_CONFIG_DIR"].startswith(str(node))
    assert local["PATH"] == env["PATH"]


def test_a_merge_left_to_resolve_crosses_and_becomes_a_merge_commit(
    repo: Path, tmp_path: Path
) -> None:
    """The orchestrator's conflict merge leaves MERGE_HEAD for the developer: on the node
    the developer's commit must still be the merge, or the conflict comes back."""
    git(repo, "checkout", "-q", "-b", "other")
    (repo / "a.txt").write_text("theirs\n")
    (repo / "merged-in.txt").write_text("what the merge brings\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "theirs")
    git(repo, "checkout", "-q", "task")
    (repo / "a.txt").write_text("ours\n")
    git(repo, "commit", "-q", "-am", "ours")
    theirs = git(repo, "rev-parse", "other").strip()
    assert subprocess.run(["git", "merge", "-q", "other"], cwd=repo).returncode != 0
    node = tmp_path / "node"
    clone_into(node, capture(repo), "task")
    # The conflict is still one: git refuses to commit until it is resolved.
    assert git(node, "diff", "--name-only", "--diff-filter=U").split() == ["a.txt"]
    refused = subprocess.run(["git", "commit", "-q", "--no-edit"], cwd=node, capture_output=True)
    assert refused.returncode != 0
    (node / "a.txt").write_text("both\n")
    git(node, "add", "a.txt")  # what a developer does: only the file it resolved
    git(node, "commit", "-q", "--no-edit")
    assert git(node, "rev-parse", "HEAD^2").strip() == theirs
    # The merge commit holds what the merge brought, not only what was resolved.
    assert git(node, "show", "HEAD:merged-in.txt") == "what the merge brings\n"
    restore(repo, capture(node, known=head_commit(repo)), "task")
    assert git(repo, "rev-parse", "HEAD^2").strip() == theirs
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "for-each-ref", "refs/autonoma/") == ""
