"""The exclude list: its rules match what git's own do, and the agents' git applies it."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from autonoma import project as project_module
from autonoma.vcs import clones, excludes, workspace
from autonoma.vcs.excludes import DEFAULT_RULES, Excludes
from tests.vcs.test_workspace import git, write

# (rules, path, expected): a trailing "/" on the path marks a folder.
CASES = [
    ("__pycache__/", "__pycache__/", True),
    ("__pycache__/", "pkg/sub/__pycache__/", True),
    ("__pycache__/", "pkg/__pycache__/x.cpython-311.pyc", True),
    ("__pycache__/", "__pycache__", False),  # a file of that name: the rule is for folders
    ("*.py[cod]", "a/b.pyc", True),
    ("*.py[cod]", "a/b.py", False),
    ("*.py[!c]", "b.pyd", True),
    ("*.py[!c]", "b.pyc", False),
    (".env\n.env.*\n!.env.example", ".env", True),
    (".env\n.env.*\n!.env.example", "app/.env.local", True),
    (".env\n.env.*\n!.env.example", ".env.example", False),
    (".env\n.env.*\n!.env.example", ".envrc", False),
    ("/build", "build/", True),
    ("/build", "src/build/", False),
    ("docs/*.md", "docs/a.md", True),
    ("docs/*.md", "docs/x/a.md", False),
    ("docs/*.md", "x/docs/a.md", False),
    ("**/logs", "a/b/logs/", True),
    ("**/logs/*.txt", "logs/x.txt", True),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
    ("out/**", "out/a/b.o", True),
    ("out/**", "out/", False),
    ("node_modules/\n!node_modules/keep.js", "node_modules/keep.js", True),  # parent wins
    ("*.log\n!keep.log", "keep.log", False),
    ("# comment\n\n*.tmp ", "x.tmp", True),
    ("\\#hash", "#hash", True),
    ("\\!bang", "!bang", True),
    ("id_rsa*", "home/id_rsa.pub", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    (".claude/.cc-writes/", ".claude/.cc-writes/tmp-1/x", True),
    (".claude/.cc-writes/", "sub/.claude/.cc-writes/", False),
]


@pytest.mark.parametrize(("rules", "path", "expected"), CASES)
def test_rules_match_like_gitignore(rules: str, path: str, expected: bool) -> None:
    assert Excludes.parse(rules).matches(path) is expected


def _tree(root: Path) -> list[str]:
    """Every file and folder the defaults and the cases name, made real under ``root``."""
    made: list[str] = []
    paths = [path for _, path, _ in CASES] + [
        "src/app.py",
        "src/app.pyc",
        ".venv/lib/python3.11/site.py",
        "venv/bin/python",
        "web/node_modules/dep/index.js",
        ".npm/_cacache/x",
        "vendor/github.com/x/y.go",
        "target/debug/app",
        "pkg.egg-info/PKG-INFO",
        ".env.example",
        ".env.production",
        "certs/server.pem",
        "certs/server.key",
        "keys/id_ed25519.pub",
        ".netrc",
        ".npmrc",
        "docs/.DS_Store",
        "notes.txt~",
        ".autonoma/exclude",
        ".pytest_cache/v/x",
        "README.md",
        "htmlcov/index.html",
    ]
    for path in paths:
        target = root / path.rstrip("/")
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            target = target / "inside"
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name taken by a folder already stays a folder: put a file in it.
        target.write_text("x")
        made.append(target.relative_to(root).as_posix())
    return sorted(made)


@pytest.mark.parametrize(
    "rules",
    [
        DEFAULT_RULES,
        "\n".join(rules for rules, _, _ in CASES if "\\" not in rules),
    ],
    ids=["defaults", "cases"],
)
def test_rules_agree_with_git_on_a_real_tree(tmp_path: Path, rules: str) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    git(root, "init", "-q")
    files = _tree(root)
    (tmp_path / "rules").write_text(rules)
    # git's verdict on every untracked file, from these rules alone.
    ignored = git(
        root, "ls-files", "--others", "--ignored", f"--exclude-from={tmp_path / 'rules'}"
    ).split("\n")
    matcher = Excludes.parse(rules)
    assert sorted(f for f in files if matcher.matches(f)) == sorted(filter(None, ignored))


def test_init_writes_the_defaults_and_keeps_the_users_edits(git_repo: Path) -> None:
    project, created = project_module.init(git_repo)
    assert ".autonoma/exclude" in created
    assert project.exclude.read_text() == DEFAULT_RULES
    project.exclude.write_text("*.secret\n")
    project_module.init(git_repo)
    assert project.exclude.read_text() == "*.secret\n"
    assert excludes.project_rules(git_repo) == "*.secret\n"
    project.exclude.unlink()
    assert excludes.project_rules(git_repo) == DEFAULT_RULES


def test_agents_git_does_not_see_excluded_files_and_keeps_the_users_own_excludes(
    git_repo: Path, tmp_path: Path
) -> None:
    project, _ = project_module.init(git_repo)
    # The user's global excludes file, named in their config: still applied.
    users = tmp_path / "users-ignore"
    users.write_text("*.mine\n")
    git(git_repo, "config", "core.excludesFile", str(users))
    write(git_repo, "a.txt", "a\n")
    git(git_repo, "add", "a.txt")
    git(git_repo, "commit", "-qm", "start")
    _, path = clones.create_clone(git_repo, project.clones, "T1", "main", run="r")

    env = workspace.install_push_guard(project.dir / "hooks")
    agent_exclude = excludes.agent_excludes(git_repo, project.agent_exclude)
    workspace.add_git_config(env, "core.excludesFile", str(agent_exclude))
    assert env["GIT_CONFIG_COUNT"] == "4"
    assert env["GIT_CONFIG_KEY_0"] == "core.hooksPath"  # the push guard is kept

    for name in (
        ".env",
        "__pycache__/x.cpython-311.pyc",
        ".venv/lib/site.py",
        "node_modules/dep/index.js",
        "editor.mine",
        "app.py",
    ):
        write(path, name, "x\n")
    assert git(path, "status", "--porcelain", env=env) == "?? app.py\n"
    git(path, "add", "-A", env=env)
    git(path, "commit", "-qm", "the agent's own", env=env)
    assert git(path, "ls-files") == "a.txt\napp.py\n"
    # Without that environment (the user's own git) nothing changed in their config.
    assert "?? .env" in git(path, "status", "--porcelain")
    assert git(git_repo, "config", "--get", "core.excludesFile").strip() == str(users)
    assert "core.hooksPath" not in git(git_repo, "config", "--list")


def test_the_users_default_global_excludes_file_is_found(
    git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # A user whose global and system git config name no excludes file (whatever this
    # machine's say): git then reads $XDG_CONFIG_HOME/git/ignore.
    empty = tmp_path / "no-config"
    empty.mkdir()
    search = pygit2.settings.search_path
    levels = (
        pygit2.GIT_CONFIG_LEVEL_GLOBAL,
        pygit2.GIT_CONFIG_LEVEL_XDG,
        pygit2.GIT_CONFIG_LEVEL_SYSTEM,
    )
    saved = {level: search[level] for level in levels}
    for level in levels:
        search[level] = str(empty)
    request.addfinalizer(lambda: [search.__setitem__(k, v) for k, v in saved.items()])
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert excludes.user_excludes_file(git_repo) == tmp_path / "xdg" / "git" / "ignore"
    write(tmp_path / "xdg", "git/ignore", "*.orig\n")
    text = excludes.agent_excludes(git_repo, tmp_path / "out").read_text()
    assert text.index("*.orig") < text.index("node_modules/")


@pytest.mark.parametrize(
    ("path", "files", "expected"),
    [
        ("src/app.py", ["src/app.py"], True),
        ("src/app.py", ["./src/app.py"], True),
        ("src/app.py", ["src/"], True),
        ("src/app.py", ["src"], True),
        ("src/app.py", ["src/*.py"], True),
        ("src/app.py", ["src/app"], False),
        ("src/application.py", ["src/app"], False),
        ("lib/app.py", ["src/app.py"], False),
    ],
)
def test_declared_files(path: str, files: list[str], expected: bool) -> None:
    assert excludes.declared(path, files) is expected
