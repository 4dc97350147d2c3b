"""What Autonoma never commits for an agent: the project's exclude list (gitignore syntax).

``autonoma init`` writes `DEFAULT_RULES` to ``.autonoma/exclude``; the user edits it, and
a missing file means the defaults. The rules reach two places without changing the
user's repository config or files:

- the agents' own git, through ``core.excludesFile`` in their environment (`agent_excludes`
  writes the file it names: the user's own global excludes, then these rules), so an
  agent's ``git status`` and ``git add -A`` do not see what they match;
- the commit Autonoma makes for an agent (`Excludes`, matched here in Python: pygit2
  cannot add ignore rules to a repository without writing them to a file git reads).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2

from autonoma import inputfile

# Relative to the project's root, like the rest of Autonoma's files.
PROJECT_EXCLUDE = Path(".autonoma") / "exclude"

DEFAULT_RULES = """\
# What Autonoma never commits for an agent, and what the agents' own git does not see
# (`git status`, `git add -A`), in .gitignore syntax. Applied in every task worktree;
# your repository's .gitignore and git config are not changed. Delete a line to let such
# files be committed, add your own below. Without this file, these defaults apply.
# Files already tracked in your repository stay visible to the agents' git.

# Python
__pycache__/
*.py[cod]
.venv/
venv/
.pytest_cache/
.mypy_cache/
.ruff_cache/
.tox/
.nox/
.hypothesis/
*.egg-info/
.coverage
.coverage.*
htmlcov/

# Node
node_modules/
.npm/

# Go, PHP, Ruby (remove this line if your project commits its vendored dependencies)
vendor/

# Rust
target/

# Secrets
.env
.env.*
!.env.example
!.env.sample
!.env.template
*.pem
*.key
id_rsa*
id_ecdsa*
id_ed25519*
.netrc
.pypirc
# .npmrc usually holds only registry settings and is committed on purpose; uncomment
# this line if yours holds a token.
# .npmrc

# Operating systems and editors
.DS_Store
Thumbs.db
*.swp
*~

# Claude Code's staging folder, its local settings, and Autonoma's own folder
.claude/.cc-writes/
.claude/settings.local.json
.autonoma/
"""

SANDBOX_PLACEHOLDERS = """\
# claude's sandbox mounts a placeholder (a character device) on each of these names
# that does not exist in the agent's folder (claude 2.1.331), so that Bash cannot create
# them; `git add -A` fails on a placeholder. Git ignores only untracked files: a real,
# tracked .gitmodules or .claude/settings.json is still seen and committed.
/.gitconfig
/.gitmodules
/.bashrc
/.bash_profile
/.zshrc
/.zprofile
/.profile
/.ripgreprc
/.mcp.json
/.vscode
/.idea
/.claude/
"""
"""Always last in the agents' excludes file, whatever ``.autonoma/exclude`` says."""

_AGENT_HEADER = """\
# Written by Autonoma at the start of each run: your global git excludes file, then the
# project's .autonoma/exclude. The agents' git reads it as core.excludesFile (from their
# environment). Edit .autonoma/exclude, not this file.
"""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    negate: bool
    dir_only: bool
    anchored: bool
    """With a "/" before its end, the pattern matches the whole path, else the last name."""


def _class(glob: str, start: int) -> tuple[str, int] | None:
    """The regex of the bracket expression at ``glob[start]`` and the index after it."""
    i = start + 1
    negate = i < len(glob) and glob[i] in "!^"
    if negate:
        i += 1
    body_start = i
    if i < len(glob) and glob[i] == "]":
        i += 1  # a "]" first is a literal member
    while i < len(glob) and glob[i] != "]":
        i += 2 if glob[i] == "\\" else 1
    if i >= len(glob):
        return None  # no closing bracket: a literal "["
    body = glob[body_start:i].replace("[", "\\[")
    # A class never matches the separator, negated or not.
    return ("[^/" + body + "]" if negate else "(?!/)[" + body + "]"), i + 1


def _translate(glob: str) -> str:
    """The regex of a gitignore glob: ``*`` and ``?`` stop at "/", ``**`` crosses it."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i) and (i == 0 or glob[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i) and i + 2 == len(glob) and (i == 0 or glob[i - 1] == "/"):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            while i < len(glob) and glob[i] == "*":
                i += 1
            out.append("[^/]*")
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[":
            found = _class(glob, i)
            if found is None:
                out.append(re.escape("["))
                i += 1
            else:
                out.append(found[0])
                i = found[1]
        elif glob[i] == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "".join(out)


def _rule(line: str) -> _Rule | None:
    """One line of a gitignore file as a rule; None for a blank line or a comment."""
    line = line.rstrip("\n").rstrip("\r")
    # Trailing spaces go, unless escaped.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    # "!" negates; "\!" and "\#" start a pattern with that character.
    if negate or line.startswith(("\\!", "\\#")):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.removeprefix("/")
    return _Rule(re.compile(_translate(line) + r"\Z"), negate, dir_only, anchored)


class Excludes:
    """A parsed exclude list: which paths of a worktree it matches, the way git does."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self._rules = tuple(rules)

    @classmethod
    def parse(cls, text: str) -> Excludes:
        """The rules of a gitignore-syntax text (comments and blank lines skipped)."""
        return cls([rule for line in text.splitlines() if (rule := _rule(line)) is not None])

    def _last_match(self, path: str, is_dir: bool) -> bool:
        name = path.rsplit("/", 1)[-1]
        excluded = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            if rule.pattern.match(path if rule.anchored else name):
                excluded = not rule.negate
        return excluded

    def matches(self, path: str, *, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative, "/"-separated; a trailing "/" = a folder) is excluded.

        As in git, a path inside an excluded folder is excluded, whatever a later "!"
        rule says about the path itself.
        """
        if path.endswith("/"):
            is_dir = True
        parts = [part for part in path.split("/") if part]
        for depth in range(1, len(parts)):
            if self._last_match("/".join(parts[:depth]), True):
                return True
        return bool(parts) and self._last_match("/".join(parts), is_dir)


def project_rules(root: Path) -> str:
    """The text of the project's ``.autonoma/exclude``; the defaults when it is missing.

    Raises `inputfile.InputFileError` when it is not a readable, bounded text file.
    """
    try:
        return inputfile.read_text(root / PROJECT_EXCLUDE, "exclude")
    except FileNotFoundError:
        return DEFAULT_RULES


def user_excludes_file(root: Path) -> Path | None:
    """The excludes file the user's git reads in ``root`` (``core.excludesFile``, else XDG)."""
    try:
        configured = pygit2.Repository(str(root)).config["core.excludesFile"]
    except (KeyError, pygit2.GitError):
        configured = None
    if configured:
        path = Path(os.path.expanduser(str(configured)))
        return path if path.is_absolute() else root / path
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "git" / "ignore"


def agent_excludes(root: Path, target: Path) -> Path:
    """Write the agents' ``core.excludesFile`` to ``target``; returns its absolute path.

    Setting ``core.excludesFile`` for the agents replaces the user's own global excludes
    file, so its rules come first, then the project's (which win where they disagree),
    then `SANDBOX_PLACEHOLDERS` (which win over both).
    """
    parts = [_AGENT_HEADER]
    user = user_excludes_file(root)
    if user is not None:
        # Often there is none; an unreadable one is skipped like git skips it.
        with contextlib.suppress(OSError, inputfile.InputFileError):
            parts.append(f"# from {user}\n{inputfile.read_text(user, 'exclude')}\n")
    parts.append(f"# from {root / PROJECT_EXCLUDE}\n{project_rules(root)}\n")
    parts.append(f"# claude's sandbox (Autonoma's own, always)\n{SANDBOX_PLACEHOLDERS}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(parts), "utf-8")
    return target.absolute()


def declared(path: str, files: Iterable[str]) -> bool:
    """Whether ``path`` is one of a task's declared files.

    An entry names a file, a folder (with a trailing "/": everything under it), or a
    glob (``*`` also crosses "/").
    """
    return any(_declares(entry.strip().removeprefix("./").lstrip("/"), path) for entry in files)


def _declares(entry: str, path: str) -> bool:
    if not entry:
        return False
    if entry.endswith("/"):
        return path.startswith(entry)
    if path == entry or path.startswith(entry + "/"):
        return True
    return any(c in entry for c in "*?[") and fnmatch.fnmatchcase(path, entry)


__all__ = [
    "DEFAULT_RULES",
    "PROJECT_EXCLUDE",
    "SANDBOX_PLACEHOLDERS",
    "Excludes",
    "agent_excludes",
    "declared",
    "project_rules",
    "user_excludes_file",
]
