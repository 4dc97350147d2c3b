"""A project's ``.autonoma/`` folder: where each thing lives, creating it, and cleaning it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from autonoma import config, hints, privatefile
from autonoma.journal import schema
from autonoma.vcs import excludes, repo

if TYPE_CHECKING:
    from autonoma.journal.fold import State

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


class RunActiveError(ProjectError):
    """Another process holds the project's run lock; ``pid`` is that process."""

    def __init__(self, pid: int) -> None:
        super().__init__(
            f"a run is already active in this project (pid {pid}): "
            f"wait for it to end, or stop it: `{hints.command('stop')}`"
        )
        self.pid = pid


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
    def sim_home(self) -> Path:
        """claude's config folders of runs against the simulated model (one per run)."""
        return self.dir / "claude-home"

    @property
    def plan(self) -> Path:
        """The CEO's plan of the last run."""
        return self.dir / "plan.json"

    @property
    def worktrees(self) -> Path:
        """Autonoma's own git worktrees: the merge gate's check worktree ``_merge``
        (and tasks' worktrees of runs made before per-task clones)."""
        return self.dir / "worktrees"

    @property
    def clones(self) -> Path:
        """The agents' clones: ``clones/<run>/<task>``, QA's ``clones/<run>/_review/...``,
        the planning turns' ``clones/<run>/_plan``."""
        return self.dir / "clones"

    @property
    def actors(self) -> Path:
        """Role overrides: ``actors/<role>.md``."""
        return self.dir / "actors"

    @property
    def claude_md(self) -> Path:
        """Project standards every agent reads."""
        return self.dir / "CLAUDE.md"

    @property
    def exclude(self) -> Path:
        """What is never committed for an agent (gitignore syntax; the user edits it)."""
        return self.root / excludes.PROJECT_EXCLUDE

    @property
    def agent_exclude(self) -> Path:
        """The agents' ``core.excludesFile``, written at each run from `exclude`."""
        return self.dir / "agent-exclude"

    @property
    def config_toml(self) -> Path:
        """This project's settings."""
        return config.config_path(self.root)

    @property
    def run_lock(self) -> Path:
        """Held (flock) by the one process running this project's workflow."""
        return self.dir / "run.lock"

    @property
    def inbox(self) -> Path:
        """Commands from other processes (``retry``, ``resolve``) for the active run."""
        return self.dir / "inbox"

    @property
    def tmp(self) -> Path:
        """Each agent turn's private temp folder: ``tmp/<run>/<agent_id>`` (its TMPDIR)."""
        return self.dir / "tmp"

    @property
    def keys(self) -> Path:
        """Secret files agents must never read (mode 0700): the inbox's signing key."""
        return self.dir / "keys"

    @property
    def inbox_key(self) -> Path:
        """The secret that signs the humans' commands in the inbox (mode 0600)."""
        return self.keys / "inbox.key"

    @property
    def initialised(self) -> bool:
        """Whether ``autonoma init`` has run here."""
        return self.state_db.exists()


# The holder's record is written over the old one in place, fixed width and in one
# write, never truncated first: a prober never reads an empty file while it is held.
_HOLDER_WIDTH = 64

# A prober holds the lock for a few microseconds; an acquirer that meets one tries again
# for this long before it reports the run as active.
_ACQUIRE_PATIENCE = 0.25


class RunLock:
    """The project's run lock, held until `release` or the death of the process.

    An exclusive flock(2) on ``.autonoma/run.lock``: the kernel drops it when the process
    dies, even by SIGKILL, so a killed run never leaves a stale lock. The file holds the
    holder's pid and start time for others to name it.
    """

    def __init__(self, path: Path, fd: int, started: float) -> None:
        self.path = path
        self.pid = os.getpid()
        self.started = started
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lock (again: nothing happens)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def acquire_run_lock(project: Project) -> RunLock:
    """Take the project's run lock, or raise `RunActiveError` naming the process holding it."""
    path = project.run_lock
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open makes the descriptor non-inheritable: claude children never hold the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + _ACQUIRE_PATIENCE
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                pid = _holder_pid(fd)
                os.close(fd)
                raise RunActiveError(pid) from None
            time.sleep(0.01)
        except BaseException:
            os.close(fd)
            raise
    started = time.time()
    record = f"{os.getpid()} {started:.3f}".ljust(_HOLDER_WIDTH - 1) + "\n"
    try:
        os.pwrite(fd, record.encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return RunLock(path, fd, started)


def active_run(project: Project) -> int | None:
    """The pid of the process holding the project's run lock; None if no run is active."""
    try:
        fd = os.open(project.run_lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            # Shared: two probes never get in each other's way.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def mark_interrupted(project: Project, state: State) -> State:
    """Mark ``state``'s run interrupted when it has no outcome and no process holds the
    run lock (its process was killed before it could journal its end); returns ``state``.

    Decided from the lock, never from the journal: a killed run writes nothing. Call it
    on the state of the project's latest run only (an older run's lock is long gone).
    Blocks only on the lock file."""
    run = state.run
    if run is not None and run.outcome is None:
        run.interrupted = active_run(project) is None
    return state


def _holder_pid(fd: int) -> int:
    """The pid in a held lock's record (0 if it cannot be read, which should not happen)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(os.pread(fd, _HOLDER_WIDTH, 0).split()[0])
    return 0


def find(start: Path) -> Project:
    """The project whose git working tree contains ``start``."""
    try:
        project = Project(repo.find_root(start))
    except repo.NotARepository as err:
        raise ProjectError(str(err)) from None
    _check_folder(project)
    return project


def _check_folder(project: Project) -> None:
    """`ProjectError` if something other than a folder is where ``.autonoma/`` goes."""
    where = project.dir
    if where.exists() and not where.is_dir():
        raise ProjectError(
            f"{where}: is a file, where Autonoma keeps its folder: rename or remove it"
        )


def require_initialised(start: Path) -> Project:
    """The project containing ``start``, which must have been initialised."""
    project = find(start)
    if not project.initialised:
        raise ProjectError(
            f"no Autonoma project in {project.root}: run `{hints.command('init')}` there first"
        )
    return project


def init(start: Path, git_init: bool = False) -> tuple[Project, list[str]]:
    """Create what is missing of ``.autonoma/``; returns the project and what was created."""
    try:
        root = repo.find_root(start)
    except repo.NotOwned as err:
        raise ProjectError(str(err)) from None
    except repo.NotARepository as err:
        if not git_init:
            raise ProjectError(
                f"{err} (run `git init` first, or `{hints.command('init', '--git-init')}`)"
            ) from None
        root = repo.init_repository(start)
    project = Project(root)
    _check_folder(project)
    created: list[str] = []
    for folder in (project.dir, project.logs, project.worktrees, project.actors):
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            created.append(_relative(project, folder) + "/")
    for path, text in (
        (project.claude_md, CLAUDE_MD),
        (project.config_toml, config.commented_defaults()),
        (project.exclude, excludes.DEFAULT_RULES),
    ):
        if not path.exists():
            path.write_text(text)
            created.append(_relative(project, path))
    if not project.state_db.exists():
        schema.open_write(project.state_db).close()
        created.append(_relative(project, project.state_db))
    if not project.inbox_key.exists():
        secret_key(project)
        created.append(_relative(project, project.inbox_key))
    if repo.ensure_excluded(root, f"/{AUTONOMA_DIR}/"):
        created.append(f".git/info/exclude: /{AUTONOMA_DIR}/")
    return project, created


_KEY_BYTES = 32


def secret_key(project: Project) -> bytes:
    """The project's inbox key, made (32 random bytes, as hex) when there is none yet.

    ``keys/`` is kept at mode 0700 and the key at 0600, owned by this user: it never goes
    to the journal or to an agent's environment, and the agents' sandbox denies reading
    the folder. Raises `ProjectError` (one line) if the folder or the file is not one
    Autonoma made (a symlink, another owner, not 64 hex digits). Blocks only on the file.
    """
    folder, path = project.keys, project.inbox_key
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ProjectError(f"{folder}: not a folder of this user's: remove it")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        _make_key(path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise ProjectError(f"{path}: cannot read the inbox key: {err.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise ProjectError(f"{path}: not a file of this user's: remove it")
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        text = os.read(fd, 4 * _KEY_BYTES).strip()
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise ProjectError(
            f"{path}: not a key Autonoma made ({2 * _KEY_BYTES} hex digits): remove it"
        )
    return key


def _make_key(path: Path) -> None:
    """Write a new key whole, or leave the one another process made first."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    privatefile.write_new(temporary, secrets.token_hex(_KEY_BYTES).encode() + b"\n")
    try:
        # link, not rename: it never replaces a key another process made meanwhile.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def clean(project: Project) -> list[str]:
    """Remove clones, worktrees, journal and logs; settings, CLAUDE.md and roles stay.
    What went."""
    # Held throughout, so a run neither is active nor starts while its files go.
    with acquire_run_lock(project):
        return _clean(project)


def _clean(project: Project) -> list[str]:
    removed: list[str] = []
    repo.remove_worktrees_under(project.root, project.worktrees)
    # Commands left in the inbox were for the run whose journal goes now.
    for folder in (project.clones, project.worktrees, project.logs, project.inbox, project.tmp):
        if folder.exists() and any(folder.iterdir()):
            shutil.rmtree(folder)
            folder.mkdir()
            removed.append(_relative(project, folder) + "/")
    if project.sim_home.exists():
        shutil.rmtree(project.sim_home)
        removed.append(_relative(project, project.sim_home) + "/")
    db = project.state_db
    for path in (project.plan, db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists():
            path.unlink()
            removed.append(_relative(project, path))
    if removed:
        schema.open_write(project.state_db).close()
    return removed


def _relative(project: Project, path: Path) -> str:
    return str(path.relative_to(project.root))
