"""`autonoma init` and `autonoma clean`, and the one-line errors every command gives."""

from __future__ import annotations

import stat
from pathlib import Path

import pygit2

from autonoma import hints
from autonoma.vcs import clones
from tests.conftest import run_autonoma

EXPECTED = [
    ".autonoma/CLAUDE.md",
    ".autonoma/config.toml",
    ".autonoma/state.db",
    ".autonoma/logs",
    ".autonoma/worktrees",
    ".autonoma/actors",
]


def snapshot(root: Path) -> dict[str, tuple[float, bytes]]:
    files = {}
    for path in sorted((root / ".autonoma").rglob("*")):
        if path.is_file():
            files[str(path.relative_to(root))] = (path.stat().st_mtime, path.read_bytes())
    exclude = root / ".git" / "info" / "exclude"
    files["exclude"] = (exclude.stat().st_mtime, exclude.read_bytes())
    return files


def test_init_creates_the_project_files(git_repo: Path, clean_env: dict[str, str]) -> None:
    result = run_autonoma("init", cwd=git_repo, env=clean_env)
    assert result.returncode == 0, result.stderr
    for name in EXPECTED:
        assert (git_repo / name).exists(), name
        assert name.split("/")[1] in result.stdout
    exclude = (git_repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert "/.autonoma/" in exclude
    # The inbox's signing key: only this user may read it, and it is 32 random bytes.
    keys = git_repo / ".autonoma" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    key = keys / "inbox.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(bytes.fromhex(key.read_text())) == 32
    assert ".autonoma/keys/inbox.key" in result.stdout
    # git itself now ignores the folder: the user's status stays clean.
    assert pygit2.Repository(str(git_repo)).status() == {}


def test_init_twice_changes_nothing_and_says_so(git_repo: Path, clean_env: dict[str, str]) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    before = snapshot(git_repo)
    again = run_autonoma("init", cwd=git_repo, env=clean_env)
    assert again.returncode == 0
    assert "nothing changed" in again.stdout
    assert snapshot(git_repo) == before


def test_init_from_a_subfolder_uses_the_repository_root(
    git_repo: Path, clean_env: dict[str, str]
) -> None:
    sub = git_repo / "src" / "pkg"
    sub.mkdir(parents=True)
    assert run_autonoma("init", cwd=sub, env=clean_env).returncode == 0
    assert (git_repo / ".autonoma" / "state.db").exists()
    assert not (sub / ".autonoma").exists()


def test_init_outside_git_is_one_line_and_non_zero(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    result = run_autonoma("init", cwd=tmp_path, env=clean_env)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "not a git repository" in result.stderr
    assert "--git-init" in result.stderr
    assert not (tmp_path / ".autonoma").exists()


def test_init_git_init_creates_the_repository(tmp_path: Path, clean_env: dict[str, str]) -> None:
    result = run_autonoma("init", "--git-init", cwd=tmp_path, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert pygit2.discover_repository(str(tmp_path)) is not None
    assert (tmp_path / ".autonoma" / "state.db").exists()


def test_a_bad_setting_is_one_line_and_exit_2(git_repo: Path, clean_env: dict[str, str]) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    for env_value in ("abc", "0", "-3"):
        result = run_autonoma(
            "status", cwd=git_repo, env={**clean_env, "AUTONOMA_MAX_WORKERS": env_value}
        )
        assert result.returncode == 2
        assert (
            result.stderr == f"autonoma: AUTONOMA_MAX_WORKERS={env_value!r}: "
            "must be a whole number >= 1 and <= 64\n"
        )
        assert "Traceback" not in result.stdout + result.stderr


def test_a_broken_config_toml_names_the_file(git_repo: Path, clean_env: dict[str, str]) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    config = git_repo / ".autonoma" / "config.toml"
    config.write_text("max_workers = [\n")
    result = run_autonoma("status", cwd=git_repo, env=clean_env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"autonoma: {config}: invalid TOML")
    assert result.stderr.count("\n") == 1
    config.write_text("flavour = 'blue'\n")
    result = run_autonoma("logs", cwd=git_repo, env=clean_env)
    assert result.returncode == 2
    assert result.stderr == f"autonoma: {config}: unknown key 'flavour'\n"


def test_commands_before_init_say_what_to_do(git_repo: Path, clean_env: dict[str, str]) -> None:
    for command in (["status"], ["logs"], ["replay"], ["clean", "--yes"]):
        result = run_autonoma(*command, cwd=git_repo, env=clean_env)
        assert result.returncode == 1, command
        assert f"run `{hints.command('init')}` there first" in result.stderr
        assert result.stderr.count("\n") == 1


def test_clean_removes_clones_worktrees_and_state_but_keeps_settings(
    git_repo: Path, clean_env: dict[str, str]
) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    repository = pygit2.Repository(str(git_repo))
    tree = repository.TreeBuilder().write()
    signature = pygit2.Signature("t", "t@example.com")
    repository.create_commit("HEAD", signature, signature, "first", tree, [])
    branch = repository.branches.local.create("autonoma/t1", repository.head.peel(pygit2.Commit))
    worktree_path = git_repo / ".autonoma" / "worktrees" / "t1"
    repository.add_worktree("t1", str(worktree_path), branch)
    base = str(repository.head.target)
    _, clone = clones.create_clone(git_repo, git_repo / ".autonoma" / "clones", "t2", base, run="r")
    (git_repo / ".autonoma" / "logs" / "agent.log").write_text("said things\n")
    settings = (git_repo / ".autonoma" / "config.toml").read_text() + "max_workers = 2\n"
    (git_repo / ".autonoma" / "config.toml").write_text(settings)

    declined = run_autonoma("clean", cwd=git_repo, env=clean_env, input="n\n")
    assert declined.returncode == 1
    assert worktree_path.exists() and clone.exists()

    result = run_autonoma("clean", "--yes", cwd=git_repo, env=clean_env)
    assert result.returncode == 0, result.stderr
    assert not worktree_path.exists()
    assert not clone.exists() and not (git_repo / ".autonoma" / "clones" / "r").exists()
    assert "autonoma/r/t2" in pygit2.Repository(str(git_repo)).branches.local  # kept
    assert pygit2.Repository(str(git_repo)).list_worktrees() == []
    assert not (git_repo / ".autonoma" / "logs" / "agent.log").exists()
    assert (git_repo / ".autonoma" / "config.toml").read_text() == settings
    assert (git_repo / ".autonoma" / "CLAUDE.md").exists()
    # The journal is empty again but still there, so every command keeps working.
    status = run_autonoma("status", cwd=git_repo, env=clean_env)
    assert status.returncode == 0, status.stderr


def test_the_command_never_prints_a_traceback_for_unknown_options(
    git_repo: Path, clean_env: dict[str, str]
) -> None:
    result = run_autonoma("logs", "--limit", "zero", cwd=git_repo, env=clean_env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
