"""The sandbox at ``autonoma start`` and ``demo``: checked before any agent runs, and an
opt-out that is said at every start."""

from __future__ import annotations

from pathlib import Path

import pytest

from autonoma.agents.sandbox import sandbox_problem
from tests.conftest import run_autonoma


@pytest.mark.parametrize(
    ("platform", "present", "missing"),
    [
        ("linux", {"bwrap", "socat"}, None),
        ("linux", {"socat"}, "bubblewrap"),
        ("linux", {"bwrap"}, "socat"),
        ("linux", set(), "bubblewrap and socat"),
        ("darwin", set(), None),  # Seatbelt is built in
    ],
)
def test_sandbox_problem_table(platform: str, present: set[str], missing: str | None) -> None:
    problem = sandbox_problem(
        platform, lambda name: f"/usr/bin/{name}" if name in present else None
    )
    if missing is None:
        assert problem is None
    else:
        assert problem is not None and "\n" not in problem
        assert f"needs {missing} (not on PATH)" in problem
        assert "apt install bubblewrap socat" in problem
        assert "sandbox = false" in problem and "AUTONOMA_SANDBOX=0" in problem


def _no_bwrap_path(tmp_path: Path) -> str:
    # A PATH with nothing on it: the check must not find bwrap (python is run by path).
    empty = tmp_path / "nobin"
    empty.mkdir()
    return str(empty)


def test_start_without_bubblewrap_is_one_line_exit_2_and_changes_nothing(
    git_repo: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    (git_repo / "requirements.md").write_text("Build a thing.\n")
    env = {**clean_env, "PATH": _no_bwrap_path(tmp_path)}
    result = run_autonoma("start", "requirements.md", cwd=git_repo, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("autonoma: agents run in claude's sandbox, which needs ")
    assert "apt install bubblewrap socat" in result.stderr
    assert result.stdout == ""
    assert not (git_repo / ".autonoma").exists()  # no run started, no journal


def test_demo_without_bubblewrap_is_one_line_exit_2(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    where = tmp_path / "demo"
    env = {**clean_env, "PATH": _no_bwrap_path(tmp_path)}
    result = run_autonoma("demo", "--dir", str(where), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert "apt install bubblewrap socat" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not where.exists()


@pytest.mark.parametrize("how", ["env", "toml"])
def test_the_opt_out_is_said_at_every_start(
    how: str, git_repo: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**clean_env, "PATH": _no_bwrap_path(tmp_path)}  # no bwrap: not needed when off
    if how == "env":
        env["AUTONOMA_SANDBOX"] = "0"
        where = "AUTONOMA_SANDBOX"
    else:
        (git_repo / ".autonoma").mkdir()
        (git_repo / ".autonoma" / "config.toml").write_text("sandbox = false\n")
        where = str(git_repo / ".autonoma" / "config.toml")
    for _ in range(2):
        # A missing requirements file stops the run just after the warning.
        result = run_autonoma("start", "missing.md", cwd=git_repo, env=env)
        lines = result.stderr.splitlines()
        assert lines[0] == (
            f"autonoma: agents run WITHOUT claude's sandbox (sandbox = false in {where}): "
            "they can write anywhere you can"
        )
        assert len(lines) == 2 and "missing.md: no such file" in lines[1]
        assert result.returncode == 1
