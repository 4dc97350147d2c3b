"""Process-group helpers for the port: the process table, signals to a whole tree, reaping.

A port's child is a session leader (its pid is its session id and its process-group
id). "Its tree" here is every process whose process group or session is that pid:
the group catches ordinary children and grandchildren, the session also catches
jobs that a shell moved to a group of their own (``set -m``). Only a process that
calls ``setsid`` itself escapes both.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_PDEATHSIG = 1
_CLONE_NEWPID = 0x20000000

log = logging.getLogger(__name__)

_libc_lock = threading.Lock()
_libc_handle: ctypes.CDLL | None = None
_namespaces_work: bool | None = None


@dataclass(frozen=True)
class ProcEntry:
    """One row of the process table, from ``/proc/<pid>/stat``."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: int = 0
    """Start time (clock ticks after boot): tells a process from a later one with its pid."""
    tty: int = 0
    """Its controlling terminal's device number; 0: none."""

    @property
    def alive(self) -> bool:
        """Whether it still runs (a zombie or a dead entry does not)."""
        return self.state not in ("Z", "X", "x")


def read_entry(pid: int) -> ProcEntry | None:
    """The process ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp session ...": comm may hold spaces and ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 4:
        return None
    return ProcEntry(
        pid=pid,
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        state=fields[0].decode("ascii", "replace"),
        start=int(fields[19]) if len(fields) > 19 else 0,
        tty=int(fields[4]),
    )


def processes() -> Iterator[ProcEntry]:
    """Every process in the table."""
    for name in os.listdir("/proc"):
        if name.isdigit():
            entry = read_entry(int(name))
            if entry is not None:
                yield entry


def tree(leader: int) -> list[ProcEntry]:
    """Every process (zombies included) in the group or the session of ``leader``."""
    return [e for e in processes() if e.pgid == leader or e.sid == leader]


class _Linked(Protocol):
    @property
    def pid(self) -> int: ...
    @property
    def ppid(self) -> int: ...


_P = TypeVar("_P", bound=_Linked)


def descendants(roots: set[int], table: Iterable[_P]) -> list[_P]:
    """The processes of ``table`` below ``roots`` by parent link (not the roots themselves).

    Catches what left the roots' session with ``setsid`` (claude's Bash tool runs each
    command in a session of its own, and the sandbox's bwrap in another one). ``table``:
    `ProcEntry` rows, or any rows with a pid and a parent pid.
    """
    children: dict[int, list[_P]] = {}
    for entry in table:
        children.setdefault(entry.ppid, []).append(entry)
    found: list[_P] = []
    pending = list(roots)
    seen = set(roots)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                pending.append(child.pid)
    return found


def reap_strays(table: list[ProcEntry] | None = None) -> list[int]:
    """Reap this process's zombie children that no ``Popen`` of it can own; their pids.

    A child this process forked is in its PID namespace and has its session (a plain
    ``subprocess.run``) or one of its own (``start_new_session``). A zombie child in
    another session, or in a PID namespace of its own, was reparented here (this
    process is a child subreaper) from a tree it no longer belongs to, such as the
    inner ``bwrap`` of a sandboxed Bash call (pid 1 of its namespace) whose outer
    ``bwrap`` exited first. Reaping it can never take an exit code another thread
    waits for. ``table``: a fresh enough `processes` list (read here when None).
    """
    me, mine = os.getpid(), os.getsid(0)
    # A child started in a namespace of its own (`own_pid_namespace`: its reaper, a turn's
    # claude, a check's shell) is claimed by its owner, which waits for it. Any other
    # zombie from a nested namespace was reparented here, such as a sandbox's inner bwrap
    # whose claude was not given a namespace of its own.
    with _claimed_lock:
        claimed = set(_claimed)
    reaped: list[int] = []
    for entry in processes() if table is None else table:
        if entry.ppid != me or entry.alive:
            continue
        nested = _nested_namespace(entry.pid)
        if entry.sid in (mine, entry.pid) and not nested:
            continue
        if nested and entry.pid in claimed:
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(entry.pid, os.WNOHANG)[0] == entry.pid:
                reaped.append(entry.pid)
    return reaped


_claimed: set[int] = set()
_claimed_lock = threading.Lock()


def claim(pid: int) -> None:
    """Say that ``pid``, a child started in a PID namespace of its own, is waited for by
    its owner: `reap_strays` leaves it alone until `release`. Returns at once."""
    with _claimed_lock:
        _claimed.add(pid)


def release(pid: int) -> None:
    """``pid`` was waited for by its owner (see `claim`). Returns at once."""
    with _claimed_lock:
        _claimed.discard(pid)


def _nested_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in a PID namespace below this process's (``NSpid`` has two ids)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"NSpid:"):
                    return len(line.split()) > 2
    except OSError:
        pass
    return False


def signal_tree(leader: int, sig: int) -> None:
    """Send ``sig`` to the group of ``leader`` and to every other process of its session.

    The caller must guarantee that ``leader`` is not reaped yet (a zombie is fine),
    so that its pid, and hence the group and session ids, cannot have been reused.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, sig)
    for entry in tree(leader):
        if entry.pgid != leader and entry.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(entry.pid, sig)


def reap_orphans(leader: int) -> None:
    """Reap the zombies of ``leader``'s tree that were reparented to this process.

    ``leader`` itself is left alone: its owner reaps it (after the tree is gone).
    """
    me = os.getpid()
    for entry in tree(leader):
        if entry.pid != leader and entry.ppid == me and not entry.alive:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(entry.pid, os.WNOHANG)


def die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` step: the child gets ``sig`` when the thread that forked it dies.

    So a turn's ``claude`` does not outlive Autonoma killed with SIGKILL (nothing else
    would stop it: it has its own session). libc is looked up here, in the parent: the
    child only makes the call.
    """
    parent = os.getpid()
    libc = _libc()  # looked up once: find_library may run a process (ldconfig)
    if libc is None:
        return lambda: None
    prctl = libc.prctl

    def set_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        # The parent died before the call: too late to learn it. (The first process of a
        # PID namespace of its own sees its parent, outside, as 0.)
        if os.getppid() not in (parent, 0):
            os._exit(1)

    return set_signal


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``prctl``).

    Without it, a grandchild orphaned by the port's child goes to pid 1, which in
    some containers never reaps: its zombie would stay in the table forever.
    Returns whether it worked.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _libc() -> ctypes.CDLL | None:
    global _libc_handle
    with _libc_lock:
        if _libc_handle is None:
            with contextlib.suppress(OSError, AttributeError):
                _libc_handle = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        return _libc_handle


# pid 1 of a turn's (or a check's) PID namespace: it reaps every process of the namespace
# that ends as an orphan (a Bash command's background job, a double fork, a sandboxed Bash
# call's inner bwrap), which claude, pid 1 before, never did: their zombies piled up until
# the turn ended. It starts nothing itself: its owner forks the turn's process into the
# namespace (pid 2), keeps it as its own child (its exit code and signal are its own), and
# SIGKILLs the reaper when that process ends, which kills the rest of the namespace. Python
# without site (-I -S): a few milliseconds to start. SIGCHLD blocked and waited for, so no
# end is missed between a reap and the wait. As pid 1 it ignores every signal it has no
# handler for (SIGTERM, SIGINT once reset), even from outside; SIGKILL from outside ends it.
_REAPER = """
import os, signal
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
    signal.sigwaitinfo({signal.SIGCHLD})
"""


class Namespace:
    """A PID namespace of its own whose pid 1 is a reaper (`own_pid_namespace`).

    The owner ends it with `end` once its own child of the namespace has ended (the
    kernel then kills every other process of the namespace), and reaps the reaper with
    `reap` after reaping that child: until the child's zombie is gone, the kernel keeps
    the reaper from exiting (pid 1 outlives every pid of its namespace).
    """

    def __init__(self, reaper: subprocess.Popen[bytes]) -> None:
        self.reaper = reaper

    @property
    def pid(self) -> int:
        """The reaper's pid (in this process's namespace)."""
        return self.reaper.pid

    def end(self) -> None:
        """SIGKILL the reaper: every process of the namespace dies. Returns at once."""
        if self.reaper.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.reaper.pid, signal.SIGKILL)

    def reap(self, timeout: float | None = 10.0) -> None:
        """`end`, then wait for the reaper (up to ``timeout`` seconds) and reap it.

        Call it after reaping your own children of the namespace. Never raises: a
        reaper still there after ``timeout`` is left to `reap_strays`.
        """
        self.end()
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            self.reaper.wait(timeout)
        release(self.reaper.pid)


@contextlib.contextmanager
def own_pid_namespace() -> Iterator[Namespace | None]:
    """While the block runs, the children this thread forks are in a new PID namespace.

    Yields the `Namespace` (its pid 1, a reaper, is already running) or None when it could
    not be arranged (not Linux, no CAP_SYS_ADMIN: root here); then the block runs as
    usual. Why: when the first process of a PID namespace dies, however it dies, the
    kernel SIGKILLs every process of the namespace: ``setsid``, ``nohup`` and
    double-forked children included, which no process group, session or parent link
    holds. The reaper has PDEATHSIG (SIGKILL): a SIGKILLed Autonoma takes all of it
    along. ``unshare(CLONE_NEWPID)`` changes only the calling thread's namespace for its
    next children (``pid_for_children``); it is set back to this process's own after the
    block, so no other spawn is affected. Fork only the owner's child in the block, and
    build its ``preexec_fn`` before. Blocks while the reaper starts (milliseconds). The
    caller must `Namespace.end` and `Namespace.reap` it. Raises OSError only if the thread
    cannot get its own namespace back.
    """
    global _namespaces_work
    libc = _libc()
    if libc is None or _namespaces_work is False:
        yield None
        return
    setup = die_with_parent(signal.SIGKILL)  # before: it may look libc up
    try:
        home = os.open("/proc/thread-self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        if int(libc.unshare(_CLONE_NEWPID)) != 0:
            _namespaces_work = False  # EPERM without CAP_SYS_ADMIN: it will not change
            log.warning(
                "no PID namespace for children (%s): what a turn starts may outlive a "
                "killed autonoma until the next start",
                os.strerror(ctypes.get_errno()),
            )
            yield None
            return
        _namespaces_work = True
        try:
            reaper = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _REAPER],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env={},
                close_fds=True,
                start_new_session=True,
                preexec_fn=setup,
            )
        except (OSError, subprocess.SubprocessError) as err:
            # A namespace whose pid 1 is gone takes no child (ENOMEM): back home first.
            _return_home(libc, home)
            log.warning("no reaper for a PID namespace (%s): the child gets none", err)
            yield None
            return
        claim(reaper.pid)
        space = Namespace(reaper)
        try:
            yield space
        except BaseException:
            space.reap(5.0)  # the block failed: nothing of it may be left running
            raise
    finally:
        try:
            _return_home(libc, home)
        finally:
            os.close(home)


def _return_home(libc: ctypes.CDLL, home: int) -> None:
    """Set the calling thread's namespace for children back to ``home`` (an fd of this
    process's own PID namespace; os.setns is 3.12+). Raises OSError if it cannot."""
    if int(libc.setns(home, _CLONE_NEWPID)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot return to this process's PID namespace: {os.strerror(err)}")


def in_own_namespace(pid: int) -> bool:
    """Whether ``pid`` lives in a PID namespace below this process's (``NSpid`` has more
    than one id: a turn's claude, a check's shell, a sandbox's bwrap)."""
    return _nested_namespace(pid)


@dataclass(frozen=True)
class Leftover:
    """A process found still working for an earlier run of the project."""

    pid: int
    command: str
    where: str
    """What tied it to the project: the folder it works in, or an environment entry."""


def _points_into(pid: int, folders: tuple[str, ...]) -> str | None:
    """What of ``pid`` (its cwd, root or an environment value) lies in one of ``folders``."""
    for link in ("cwd", "root"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/{link}")
            if any(target == f or target.startswith(f + "/") for f in folders):
                return target
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        value = entry.partition(b"=")[2].decode("utf-8", "replace")
        if any(f in value for f in folders):
            return entry.decode("utf-8", "replace")
    return None


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()[:200]
    except OSError:
        return ""


def leftovers(autonoma_dir: Path) -> list[Leftover]:
    """Processes working in the project's agents' folders (``clones``, ``tmp``, ``worktrees``
    under ``autonoma_dir``), other than this one and its ancestors, and without a
    controlling terminal: a person's shell opened in a clone has one; what a turn's Bash
    tool or a check started has none (each runs in a session of its own, or with no
    terminal at all), and a turn's ``claude`` dies with Autonoma.

    Called before a run starts or resumes (the run lock held: no run of the project is
    active), so each is left from an earlier run whose ``autonoma`` died. Reads ``/proc``;
    never raises.
    """
    base = str(autonoma_dir.resolve())
    folders = tuple(f"{base}/{name}" for name in ("clones", "tmp", "worktrees"))
    spared = {os.getpid()}
    entry = read_entry(os.getpid())
    while entry is not None and entry.ppid > 1 and entry.ppid not in spared:
        spared.add(entry.ppid)
        entry = read_entry(entry.ppid)
    found: list[Leftover] = []
    for row in processes():
        if row.pid in spared or not row.alive or row.tty != 0:
            continue
        where = _points_into(row.pid, folders)
        if where is not None:
            found.append(Leftover(pid=row.pid, command=_command(row.pid), where=where))
    return found


def kill_leftovers(autonoma_dir: Path, timeout: float = 5.0) -> list[Leftover]:
    """SIGKILL every one of `leftovers` (again, until none is found or ``timeout``); those killed.

    Blocks up to ``timeout`` seconds. A pid is killed only after it was found, in the same
    pass, to point into the project (its start time checked again first, so a pid reused
    meanwhile is spared).
    """
    killed: dict[int, Leftover] = {}
    deadline = time.monotonic() + timeout
    while True:
        found = leftovers(autonoma_dir)
        if not found:
            break
        for item in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(item.pid, 9)
            killed.setdefault(item.pid, item)
        reap_strays()
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return list(killed.values())


_CLONE_NEWNS = 0x00020000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


def fresh_proc() -> Callable[[], None]:
    """A ``preexec_fn`` step for a child in a new PID namespace: a mount namespace of its
    own with a ``/proc`` of that PID namespace, so that the pids it and its children see
    (``getpid``, ``$$``) name the same processes in ``/proc``. Does nothing (and changes
    nothing) when ``/proc`` already shows the child's own pid (no new namespace). libc is
    looked up here, in the parent."""
    libc = _libc()
    if libc is None:
        return lambda: None
    unshare, mount = libc.unshare, libc.mount

    def remount() -> None:
        try:
            if os.readlink("/proc/self") == str(os.getpid()):
                return
        except OSError:
            return
        if unshare(_CLONE_NEWNS) != 0:
            return
        mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None)
        mount(b"proc", b"/proc", b"proc", 0, None)

    return remount
