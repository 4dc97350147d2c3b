"""The project's files as the web view's file browser sees them: confined to the project.

A path from a client is relative to the project root, with ``/`` between its parts. It
may not be absolute, hold ``..``, ``.`` or an empty part, name ``.git`` or ``.autonoma``
(hidden: the repository's and Autonoma's own files), or lead out of the project through
a symlink. Listing and resolving block on the disk (a few stat calls per entry): call
them from a worker thread.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from autonoma.desktop.frames import Entry

HIDDEN = frozenset({".git", ".autonoma"})
"""Names never listed nor reached, at any depth."""

MAX_ENTRIES = 2000
"""A folder lists at most this many entries (``truncated`` says when there were more)."""


class OutsideProject(ValueError):
    """A path the gateway refuses (one line that says why)."""


def _parts(path: str) -> list[str]:
    if "\x00" in path or "\\" in path:
        raise OutsideProject(f"{path!r}: not a path inside the project")
    if path.startswith("/"):
        raise OutsideProject(
            f"{path!r}: absolute paths are refused: give one relative to the project"
        )
    parts = [] if path in ("", ".") else path.rstrip("/").split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise OutsideProject(f"{path!r}: '..', '.' and empty parts are refused")
        if part in HIDDEN:
            raise OutsideProject(f"{path!r}: {part} is not shown")
    return parts


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def resolve(root: Path, path: str) -> Path:
    """The real path of ``path`` (relative to ``root``) once checked to stay inside.

    Raises `OutsideProject` (one line) when it is refused, `FileNotFoundError` when it
    does not exist.
    """
    parts = _parts(path)
    real_root = root.resolve()
    target = real_root.joinpath(*parts)
    real = Path(os.path.realpath(target))
    if not _inside(real_root, real):
        raise OutsideProject(f"{path!r}: leads out of the project (a symlink)")
    relative = real.relative_to(real_root).parts
    if any(part in HIDDEN for part in relative):
        raise OutsideProject(f"{path!r}: leads into a hidden folder")
    if not real.exists():
        raise FileNotFoundError(f"{path!r}: no such file or folder in the project")
    return real


def listing(root: Path, path: str) -> tuple[list[Entry], bool]:
    """The entries of the folder ``path`` of the project: folders first, then by name,
    and whether more were left out (`MAX_ENTRIES`).

    Entries hidden (`HIDDEN`) or whose symlink leads out of the project are left out.
    Raises `OutsideProject`, `FileNotFoundError`, `NotADirectoryError` (one line each).
    """
    folder = resolve(root, path)
    if not folder.is_dir():
        raise NotADirectoryError(f"{path!r}: not a folder")
    real_root = root.resolve()
    entries: list[Entry] = []
    truncated = False
    with os.scandir(folder) as found:
        for item in found:
            if item.name in HIDDEN:
                continue
            try:
                if item.is_symlink():
                    real = Path(os.path.realpath(item.path))
                    if not _inside(real_root, real) or any(
                        part in HIDDEN for part in real.relative_to(real_root).parts
                    ):
                        continue
                info = os.stat(item.path)
            except OSError:
                continue  # gone meanwhile, or a dangling link: nothing to show
            if len(entries) >= MAX_ENTRIES:
                truncated = True
                break
            is_dir = stat.S_ISDIR(info.st_mode)
            entries.append(Entry(name=item.name, dir=is_dir, size=0 if is_dir else info.st_size))
    entries.sort(key=lambda e: (not e.dir, e.name))
    return entries, truncated


def requirements_file(root: Path, path: str) -> Path:
    """The requirements file ``path`` of the project, checked as in `resolve`, a file."""
    if not path:
        raise OutsideProject("name the requirements file (a path relative to the project)")
    real = resolve(root, path)
    if not real.is_file():
        raise OutsideProject(f"{path!r}: not a file")
    return real
