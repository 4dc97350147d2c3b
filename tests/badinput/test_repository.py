"""A repository Autonoma cannot use as it is: one line saying what to do, nothing made."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from autonoma.vcs.workspace import INTEGRATION_BRANCH
from tests.badinput.conftest import SCENARIO, Cli, git


def _start(requirements: Path) -> list[str]:
    return ["start", str(requirements), "--scenario", str(SCENARIO)]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_repository_owned_by_another_user(cli: Cli, project: Path, requirements: Path) -> None:
    nobody = 65534
    for path in [project, *project.rglob("*")]:
        os.lchown(path, nobody, nobody)
    says = f"{project}: the repository is owned by another user and git refuses it"
    for args in (_start(requirements), ["init"], ["init", "--git-init"], ["status"], ["logs"]):
        line = cli.refused(*args, code=1, says=says)
        assert f"git config --global --add safe.directory {project}" in line


def test_a_branch_named_autonoma(cli: Cli, project: Path, requirements: Path) -> None:
    git(project, "branch", "autonoma")
    cli.refused(
        *_start(requirements),
        code=1,
        says=f"{project}: a branch named 'autonoma' blocks Autonoma's autonoma/... branches: "
        "rename it",
    )


def test_a_file_named_dot_autonoma(cli: Cli, project: Path, requirements: Path) -> None:
    shutil.rmtree(project / ".autonoma")
    (project / ".autonoma").write_text("mine\n")
    says = f"{project / '.autonoma'}: is a file, where Autonoma keeps its folder"
    for args in (_start(requirements), ["init"], ["status"], ["logs"]):
        cli.refused(*args, code=1, says=says)


def test_an_integration_branch_on_unrelated_history(
    cli: Cli, project: Path, requirements: Path
) -> None:
    git(project, "checkout", "-q", "--orphan", "elsewhere")
    git(project, "commit", "-q", "-m", "unrelated")
    git(project, "branch", INTEGRATION_BRANCH)
    git(project, "checkout", "-q", "main")
    git(project, "branch", "-D", "elsewhere")
    line = cli.refused(
        *_start(requirements),
        code=1,
        says=f"{project}: branch {INTEGRATION_BRANCH} shares no history with main",
    )
    assert f"git branch -D {INTEGRATION_BRANCH}" in line
    assert "--new does not help" in line
    cli.refused(*_start(requirements), "--new", code=1, says="shares no history with main")


def test_an_integration_branch_behind_main_is_fine(
    cli: Cli, project: Path, requirements: Path
) -> None:
    """The control: an earlier run's integration branch, which main has since passed."""
    git(project, "branch", INTEGRATION_BRANCH)
    git(project, "commit", "-q", "--allow-empty", "-m", "later")
    out = cli(*_start(requirements), env={"AUTONOMA_CLAUDE_PATH": "/nonexistent"})
    assert "shares no history" not in out.stderr
    assert "AUTONOMA_CLAUDE_PATH" in out.stderr
