"""Finding, creating and configuring the user's git repository (pygit2, no git subprocess)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2


class NotARepository(Exception):
    """The folder is not inside a git repository with a working tree."""


class NotOwned(NotARepository):
    """The repository belongs to another user, and git (and libgit2) refuse to use it."""


def find_root(start: Path) -> Path:
    """The working-tree root of the git repository that contains ``start``."""
    found: str | None = None
    try:
        found = pygit2.discover_repository(str(start))
        if found is None:
            raise NotARepository(f"not a git repository: {start}")
        repo = pygit2.Repository(found)
    except pygit2.GitError as err:
        if "not owned by current user" in str(err):
            # git's safe.directory check (CVE-2022-24765): libgit2 applies it too.
            where = Path(found or start).resolve()
            where = where.parent if where.name == ".git" else where
            raise NotOwned(
                f"{where}: the repository is owned by another user and git refuses it: run as "
                f"its owner, or trust it with `git config --global --add safe.directory {where}`"
            ) from None
        raise NotARepository(f"{start}: cannot open the git repository: {err}") from None
    if repo.is_bare or repo.workdir is None:
        raise NotARepository(f"a bare git repository has no working tree: {start}")
    return Path(repo.workdir).resolve()


def init_repository(path: Path) -> Path:
    """Create a git repository in ``path`` (with ``main`` as its initial branch)."""
    repo = pygit2.init_repository(str(path), initial_head="main")
    return Path(repo.workdir).resolve()


def _common_dir(repo: pygit2.Repository) -> Path:
    # A linked worktree's own git dir has a `commondir` file pointing at the shared one,
    # where info/exclude lives for every worktree.
    git_dir = Path(repo.path)
    pointer = git_dir / "commondir"
    if pointer.exists():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir


def ensure_excluded(root: Path, pattern: str) -> bool:
    """Add ``pattern`` to the repository's info/exclude; False when it was there already."""
    repo = pygit2.Repository(str(root))
    exclude = _common_dir(repo) / "info" / "exclude"
    existing = exclude.read_text().splitlines() if exclude.exists() else []
    if pattern in (line.strip() for line in existing):
        return False
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(existing)
    if text and not text.endswith("\n"):
        text += "\n"
    exclude.write_text(text + pattern + "\n")
    return True


def remove_worktrees_under(root: Path, folder: Path) -> list[str]:
    """Remove and prune every worktree of the repository that lives under ``folder``."""
    repository = pygit2.Repository(str(root))
    removed: list[str] = []
    folder = folder.resolve()
    for name in repository.list_worktrees():
        worktree = repository.lookup_worktree(name)
        path = Path(worktree.path).resolve()
        if not path.is_relative_to(folder):
            continue
        if path.exists():
            shutil.rmtree(path)
        worktree.prune(True)
        removed.append(name)
    return removed
