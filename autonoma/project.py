"""A project's ``.autonoma/`` folder: where each thing lives, creating it, and cleaning it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from autonoma import config
from autonoma.journal import schema
from autonoma.vcs import repo

AUTONOMA_DIR = ".autonoma"

CLAUDE_MD = """\
# Project standards for every Autonoma agent

Every agent (CEO, Staff Engineer, developers, QA) reads this file. Edit it to say how
this project is built; keep it short and concrete.

## Code
- Follow the conventions already in the repository: layout, naming, formatting.
- Small modules with one job each; no dead code, no commented-out code.
- Every change comes with tests that would fail without it.

## Tests
- The project's tests must pass before a task is handed to review.
- Say in the task's final message which command runs the tests.

## Git
- Commit your work on your task's branch with a message that says what and why.
- Never push, never rewrite history, never touch other branches or worktrees.
"""


class ProjectError(Exception):
    """The project cannot be used as asked; the message is one line."""


@dataclass(frozen=True)
class Project:
    """Paths of one project's Autonoma files, under its git working-tree root."""

    root: Path

    @property
    def dir(self) -> Path:
        """The ``.autonoma/`` folder."""
        return self.root / AUTONOMA_DIR

    @property
    def state_db(self) -> Path:
        """The journal: every message of every run."""
        return self.dir / "state.db"

    @property
    def logs(self) -> Path:
        """Raw logs (agent transcripts, crash reports)."""
        return self.dir / "logs"

    @property
    def worktrees(self) -> Path:
        """One git worktree per task."""
        return self.dir / "worktrees"

    @property
    def actors(self) -> Path:
        """Role overrides: ``actors/<role>.md``."""
        return self.dir / "actors"

    @property
    def claude_md(self) -> Path:
        """Project standards every agent reads."""
        return self.dir / "CLAUDE.md"

    @property
    def config_toml(self) -> Path:
        """This project's settings."""
        return config.config_path(self.root)

    @property
    def initialised(self) -> bool:
        """Whether ``autonoma init`` has run here."""
        return self.state_db.exists()


def find(start: Path) -> Project:
    """The project whose git working tree contains ``start``."""
    try:
        return Project(repo.find_root(start))
    except repo.NotARepository as err:
        raise ProjectError(str(err)) from None


def require_initialised(start: Path) -> Project:
    """The project containing ``start``, which must have been initialised."""
    project = find(start)
    if not project.initialised:
        raise ProjectError(
            f"no Autonoma project in {project.root}: run 'autonoma init' there first"
        )
    return project


def init(start: Path, git_init: bool = False) -> tuple[Project, list[str]]:
    """Create what is missing of ``.autonoma/``; returns the project and what was created."""
    try:
        root = repo.find_root(start)
    except repo.NotARepository as err:
        if not git_init:
            raise ProjectError(
                f"{err} (run 'git init' first, or 'autonoma init --git-init')"
            ) from None
        root = repo.init_repository(start)
    project = Project(root)
    created: list[str] = []
    for folder in (project.dir, project.logs, project.worktrees, project.actors):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(_relative(project, folder) + "/")
    for path, text in (
        (project.claude_md, CLAUDE_MD),
        (project.config_toml, config.commented_defaults()),
    ):
        if not path.exists():
            path.write_text(text)
            created.append(_relative(project, path))
    if not project.state_db.exists():
        schema.open_write(project.state_db).close()
        created.append(_relative(project, project.state_db))
    if repo.ensure_excluded(root, f"/{AUTONOMA_DIR}/"):
        created.append(f".git/info/exclude: /{AUTONOMA_DIR}/")
    return project, created


def clean(project: Project) -> list[str]:
    """Remove worktrees, journal and logs; settings, CLAUDE.md and roles stay. What went."""
    removed: list[str] = []
    repo.remove_worktrees_under(project.root, project.worktrees)
    for folder in (project.worktrees, project.logs):
        if folder.exists() and any(folder.iterdir()):
            shutil.rmtree(folder)
            folder.mkdir()
            removed.append(_relative(project, folder) + "/")
    db = project.state_db
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            path.unlink()
            removed.append(_relative(project, path))
    if removed:
        schema.open_write(project.state_db).close()
    return removed


def _relative(project: Project, path: Path) -> str:
    return str(path.relative_to(project.root))
