"""Agents work in clones of their own, through the real claude with its sandbox on.

A developer's commits reach ``main``; what it does to refs in its clone, or tries on the
user's repository, changes nothing there; QA's commits in its review checkout never
reach the branch; the CEO's ``git log --output`` writes only in its scratch clone; and
the user's ``git worktree list`` shows no task worktree.
"""

from __future__ import annotations

from pathlib import Path

from autonoma.protocol import AgentToolResult, AgentToolUse, AgentTurnStarting, TaskWorkspace
from tests.e2e.runs import assert_clean_exit, files_on, git, journal, make_project, messages, start


def result_of(rows: list, command_part: str) -> AgentToolResult:
    (use,) = [
        m for m in messages(rows, AgentToolUse, tool="Bash") if command_part in m.input["command"]
    ]
    (answer,) = messages(rows, AgentToolResult, tool_use_id=use.tool_use_id)
    return answer


def test_agents_in_sandboxed_clones_cannot_touch_the_users_repository(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    (root / ".autonoma").mkdir()
    (root / ".autonoma" / "config.toml").write_text("sandbox = true\n")

    result = start(root, "clone_attacks.toml", clean_env, "--max-workers", "1")

    assert_clean_exit(result, 0)
    assert files_on(root, "main") == {"requirements.md", "t1.txt"}
    rows = journal(root)
    (workspace,) = messages(rows, TaskWorkspace, task_id="t1")
    run = workspace.branch.split("/")[1]
    # Only the run's own branches exist: no evil, evil-user, evil-qa, no tag.
    assert git(root, "for-each-ref", "--format=%(refname)").split() == sorted(
        ["refs/heads/main", "refs/heads/autonoma/integration", f"refs/heads/autonoma/{run}/t1"]
    )
    assert "qa.txt" not in files_on(root, workspace.branch)
    assert not (root / ".git" / "EVIL").exists()
    # The CEO's `git log --output` wrote its file, in its scratch clone (gone now).
    assert not result_of(rows, "--output=ceo-was-here.txt").is_error
    assert not (root / "ceo-was-here.txt").exists()
    # The moves in the clone worked (so the commands ran); the ones aimed at the user's
    # repository did not.
    assert "clone-refs-moved" in result_of(rows, "update-ref refs/heads/main HEAD &&").content
    assert "qa-committed" in result_of(rows, "qa: sneaked in").content
    assert "Read-only file system" in result_of(rows, "git -C ../../../..").content
    # Where each agent worked: its own clone, QA's review checkout, planning's clone.
    clones = root / ".autonoma" / "clones" / run
    cwds = {m.role: m.cwd for m in messages(rows, AgentTurnStarting)}
    assert cwds == {
        "ceo": str(clones / "_plan"),
        "staff_engineer": str(clones / "_plan"),
        "developer": str(clones / "t1"),
        "qa": str(clones / "_review" / "t1-1"),
    }
    assert workspace.worktree == str(clones / "t1")
    # Every clone is gone at the end; the only worktree is the merge gate's.
    assert not clones.exists() or list(clones.iterdir()) == []
    listed = git(root, "worktree", "list", "--porcelain").split("\n\n")
    paths = sorted(block.split("\n")[0].removeprefix("worktree ") for block in listed if block)
    assert paths == [str(root), str(root / ".autonoma" / "worktrees" / "_merge")]
    assert git(root, "status", "--porcelain") == ""
