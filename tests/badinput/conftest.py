"""Bad input, tried through the real ``autonoma`` command: one line, the right exit code,
no traceback, no hang (a subprocess timeout) and nothing changed on disk."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autonoma.resources import packaged

# Every refusal here happens before any agent runs: seconds, not minutes. A hang (a fifo
# opened for reading, /dev/zero read to the end) is a TimeoutExpired, and a failure.
TIMEOUT = 20

SCENARIO = packaged("sim", "example.toml")


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every file, folder, link and special file under ``root`` (its .git too), and refs."""
    seen: dict[str, tuple[object, ...]] = {}
    for path in sorted([root, *root.rglob("*")]):
        info = path.lstat()
        key = str(path.relative_to(root))
        if stat.S_ISLNK(info.st_mode):
            seen[key] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            # Big (sparse) test files: their size and time; the rest: their content.
            if info.st_size > 1_000_000:
                seen[key] = ("big", info.st_size, info.st_mtime_ns)
            else:
                seen[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            seen[key] = ("other", stat.S_IFMT(info.st_mode), info.st_uid)
    refs = subprocess.run(
        [
            "git",
            "-c",
            f"safe.directory={root}",
            "for-each-ref",
            "--format=%(refname) %(objectname)",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    seen[":refs"] = (refs.stdout,)
    return seen


@dataclass
class Outcome:
    """What the command did: its exit code and its stderr."""

    code: int
    stderr: str
    stdout: str


@dataclass
class Cli:
    """The ``autonoma`` command, run in a project with a clean environment."""

    root: Path
    env: dict[str, str]

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, unchanged: bool = True
    ) -> Outcome:
        """Run it; assert no traceback and (``unchanged``) nothing changed in the project."""
        before = snapshot(self.root)
        done = subprocess.run(
            [sys.executable, "-m", "autonoma", *args],
            cwd=self.root,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in done.stderr + done.stdout
        assert "internal error" not in done.stderr
        if unchanged:
            assert snapshot(self.root) == before, "the project changed on disk"
        return Outcome(done.returncode, done.stderr, done.stdout)

    def refused(self, *args: str, code: int, says: str, env: dict[str, str] | None = None) -> str:
        """Run it and assert one line on stderr, holding ``says``, and exit ``code``."""
        out = self(*args, env=env)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert says in lines[0], lines[0]
        assert out.code == code, (out.code, out.stderr)
        return lines[0]


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; its output."""
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository on main with one commit, and .autonoma/ made by hand (no run)."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "t")
    git(root, "config", "user.email", "t@example.com")
    (root / "README").write_text("hello\n")
    git(root, "add", "README")
    git(root, "commit", "-q", "-m", "first")
    (root / ".autonoma" / "actors").mkdir(parents=True)
    return root


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    """A good requirements file, outside the project."""
    path = tmp_path / "requirements.md"
    path.write_text("Build a hello world script.\n")
    return path


@pytest.fixture
def cli(project: Path) -> Cli:
    """The command in ``project``, without the developer's AUTONOMA_* or IS_SANDBOX."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_") and k != "IS_SANDBOX"
    }
    return Cli(project, env)
