"""The port: one ``claude`` child per agent turn, in a PTY that the port owns.

The child runs in a new session (``setsid``) with the PTY's slave side as its
controlling terminal, stdin, stdout and stderr. Its pid is therefore its session id
and its process-group id, and stopping the turn signals that whole tree (the Bash
tool's children included), never one process only.

How the session is made: ``Popen(start_new_session=True)`` calls ``setsid`` in the
child, after the slave has been dup'ed onto fds 0-2; a session leader gets no
controlling terminal from inherited fds, so a tiny ``preexec_fn`` then calls
``ioctl(0, TIOCSCTTY)``. (``os.login_tty`` would call ``setsid`` a second time;
opening the slave by name in the child would need a wrapper process.) The
``preexec_fn`` touches no Python-level lock, which is what makes it safe in a
process full of actor threads.

The first port makes this process a child subreaper (``prctl``): a grandchild
orphaned by the child is then reparented here, not to pid 1 (which in some
containers never reaps), and the port reaps it by pid. Only processes of the
port's own tree are ever reaped this way.

The slave is put in raw mode before the spawn (``cfmakeraw``: no echo, no
canonical mode, no signals from keys, and no output processing, so ``\\n`` is not
turned into ``\\r\\n``): the bytes read from the master are exactly what the child
wrote.

Nothing blocks the caller: ``start`` spawns and returns the pid, ``stop`` and
``kill`` send signals and return. Two threads per port do the rest. The reader
reads the master, splits complete lines (a partial last line is kept until more
arrives, and delivered at the end) and calls ``on_line(line)`` (the line without
its ``\\n``); it also appends each raw line to the transcript file. The waiter
waits for the child's exit without reaping it (``waitid(WNOWAIT)``: the zombie
keeps the pid, and so the group and session ids, from being reused), clears what
is left of the tree (SIGTERM, SIGKILL after the grace period, reaping orphans),
reaps the child, lets the reader drain, and calls
``on_exit(exit_code, signal, timed_out)`` once, after the last ``on_line``.

Two limits stop a turn (SIGTERM, then SIGKILL after the grace period): ``timeout``,
the wall clock (time spent frozen by `freeze` not counted), and ``idle_timeout``,
seconds without a byte of output. A real turn may stream for an hour; one that says
nothing for ten minutes is stuck. `PortExit` says which one fired. A tool that runs
prints nothing in the stream until its result (a test suite, a package install): while
the owner says one runs (`tool_running`), the idle limit is at least
`TOOL_QUIET_LIMIT`, the longest a claude Bash call may take.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import math
import os
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from autonoma.agents import process

log = logging.getLogger(__name__)

CLAUDE_NOT_FOUND = (
    "Claude Code not found (not on PATH, nor in .tools/claude of a source checkout): "
    "install it with `npm install -g @anthropic-ai/claude-code` (or `make claude` in a "
    "checkout), or set claude_path in .autonoma/config.toml or AUTONOMA_CLAUDE_PATH"
)

# How long the waiter waits for the reader to see the end of the output once the
# whole tree is gone (a process that left the session with setsid can still hold
# the slave open; its output after that is not the turn's).
DRAIN_TIMEOUT = 2.0
# After SIGKILL, how long to wait for the tree to disappear before giving up.
KILL_TIMEOUT = 5.0
_POLL_INTERVAL = 0.01
# How often the waiter notes the child's descendants by parent link while it runs.
TRACK_INTERVAL = 0.5
_READ_SIZE = 65536
_WINDOW = struct.pack("HHHH", 50, 200, 0, 0)  # rows, columns: roomy, never 0x0

OnLine = Callable[[bytes], None]
OnExit = Callable[[int | None, int | None, bool], None]
TimeoutKind = Literal["", "idle", "wall"]

TOOL_QUIET_LIMIT = 660.0
"""Seconds of silence allowed while a tool runs: claude's Bash tool stops a command after
at most 10 minutes (its own limit), so a quiet minute past that is a stuck turn."""


class PortError(Exception):
    """A turn that could not be started, with a one-line message."""


class ExecutableNotFound(PortError):
    """The program to run is missing or not executable."""


@dataclass(frozen=True)
class PortExit:
    """How a turn ended: an exit code, or the signal that killed it; and whether it timed out."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    timeout: TimeoutKind = ""
    """Which limit stopped it: ``"idle"`` (no output), ``"wall"`` (ran too long), or none."""
    timeout_s: float = 0.0
    """That limit, in seconds."""


_subreaper_lock = threading.Lock()
_subreaper_done = False


def _ensure_subreaper() -> None:
    global _subreaper_done
    with _subreaper_lock:
        if not _subreaper_done:
            if not process.become_subreaper():
                log.warning("could not become a child subreaper; orphans go to pid 1")
            _subreaper_done = True


def resolve_executable(argv0: str, cwd: Path, env: Mapping[str, str]) -> str:
    """The absolute path of ``argv0`` as ``exec`` would find it, or `ExecutableNotFound`."""
    if os.sep in argv0:
        candidate: str | None = str(cwd / argv0) if not os.path.isabs(argv0) else argv0
    else:
        candidate = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if candidate is None or not os.path.isfile(candidate) or not os.access(candidate, os.X_OK):
        if Path(argv0).name == "claude":
            raise ExecutableNotFound(CLAUDE_NOT_FOUND)
        raise ExecutableNotFound(f"{argv0}: not found or not executable")
    return candidate


def _take_terminal(fd: int = 0) -> None:
    """In the child, after setsid: make the PTY on ``fd`` the controlling terminal."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def _child_setup(
    die: Callable[[], None], proc: Callable[[], None] = lambda: None, terminal: int = 0
) -> Callable[[], None]:
    def setup() -> None:
        die()
        proc()
        _take_terminal(terminal)

    return setup


class Port:
    """One child process in a PTY, its output as lines, its end as one event."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: Path,
        env: Mapping[str, str],
        *,
        on_line: OnLine,
        on_exit: OnExit,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        grace: float = 5.0,
        transcript: Path | None = None,
        own_namespace: bool = False,
        stdin_pipe: bool = False,
    ) -> None:
        """``timeout``: seconds the child may run; ``idle_timeout``: seconds it may go
        without writing anything; None: no such limit. ``own_namespace``: the child is
        in a PID namespace of its own where this machine allows it (root), whose pid 1
        reaps what its tools orphan; nothing it starts outlives it: the namespace ends
        when the child does (`process.own_pid_namespace`).
        ``stdin_pipe``: the child's stdin is a pipe this port writes once (`send`, which
        closes it) instead of the PTY, whose end could never say EOF in raw mode; its
        output stays on the PTY, its controlling terminal. Its wall clock starts at
        `send`; its idle clock runs from the spawn and starts again at `send`."""
        if not argv:
            raise PortError("nothing to run: empty command")
        self.argv = list(argv)
        self.cwd = Path(cwd)
        self.env = dict(env)
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.grace = grace
        self.transcript = transcript
        self.own_namespace = own_namespace
        self.stdin_pipe = stdin_pipe
        self._stdin = -1
        """The write end of the child's stdin pipe (``stdin_pipe``), until closed."""
        self._on_line = on_line
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._exited = False
        self._reaped = False
        self._timeout: TimeoutKind = ""
        self._last_output = 0.0
        self._tool_running = False
        self._frozen = False
        self._idle_fired = 0.0
        self._wall_left: float | None = None
        """Seconds the wall clock had left when last armed (at its start or a thaw)."""
        self._wall_armed = 0.0
        """When it was last armed (monotonic)."""
        self._wall_arming = 0
        """Which arming the live wall-clock timer belongs to: older ones are stale."""
        self._stop_reason: str | None = None
        self._kill_at: float | None = None
        self._timers: list[threading.Timer] = []
        self._result: PortExit | None = None
        self._master = -1
        self._wake_r = -1
        self._wake_w = -1
        self._reader: threading.Thread | None = None
        self._waiter: threading.Thread | None = None
        self._known: dict[int, int] = {}
        """Descendants seen by parent link (pid: start time), in or out of the session."""
        self._namespace: process.Namespace | None = None
        """The child's PID namespace (``own_namespace``), whose reaper adopts its orphans."""

    # -- public API --------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The child's pid (also its process-group and session id), once started."""
        return self._pid

    @property
    def stop_reason(self) -> str | None:
        """Why `stop` was called first, if it was (``"timeout"``, ``"idle timeout"``)."""
        return self._stop_reason

    @property
    def result(self) -> PortExit | None:
        """How the turn ended, once `on_exit` has been called."""
        return self._result

    def start(self) -> int:
        """Spawn the child in its PTY and session; return its pid at once."""
        if self._proc is not None:
            raise PortError("port already started")
        executable = resolve_executable(self.argv[0], self.cwd, self.env)
        _ensure_subreaper()
        transcript: BinaryIO | None = None
        master, slave = os.openpty()
        stdin_r = stdin_w = -1
        try:
            if self.stdin_pipe:
                stdin_r, stdin_w = os.pipe()  # both close-on-exec: Popen dups the read end
            tty.setraw(slave, termios.TCSANOW)  # no echo, no ICANON, no OPOST/ONLCR
            fcntl.ioctl(slave, termios.TIOCSWINSZ, _WINDOW)
            if self.transcript is not None:
                self.transcript.parent.mkdir(parents=True, exist_ok=True)
                transcript = self.transcript.open("ab")
            proc = process.fresh_proc() if self.own_namespace else (lambda: None)
            setup = _child_setup(
                process.die_with_parent(signal.SIGKILL), proc, terminal=1 if self.stdin_pipe else 0
            )
            # The child is in a PID namespace of its own whose pid 1 reaps what its tools
            # leave: when the child ends (or this process dies), so does all of it.
            with process.own_pid_namespace() if self.own_namespace else _no_namespace() as ns:
                self._namespace = ns
                self._proc = subprocess.Popen(
                    self.argv,
                    executable=executable,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=stdin_r if self.stdin_pipe else slave,
                    stdout=slave,
                    stderr=slave,
                    close_fds=True,
                    start_new_session=True,
                    preexec_fn=setup,
                )
                if ns is not None:
                    process.claim(self._proc.pid)
        except (OSError, subprocess.SubprocessError) as exc:
            os.close(master)
            if stdin_w >= 0:
                os.close(stdin_w)
            if transcript is not None:
                transcript.close()
            raise PortError(f"could not start {self.argv[0]}: {exc}") from exc
        finally:
            os.close(slave)  # only the child holds it now: EOF/EIO when the tree is done
            if stdin_r >= 0:
                os.close(stdin_r)
        self._stdin = stdin_w
        self._pid = self._proc.pid
        self._master = master
        self._wake_r, self._wake_w = os.pipe()
        self._reader = threading.Thread(
            target=self._read_loop, args=(transcript,), name=f"port-reader-{self._pid}"
        )
        self._waiter = threading.Thread(target=self._wait_loop, name=f"port-waiter-{self._pid}")
        self._reader.daemon = self._waiter.daemon = True
        self._last_output = time.monotonic()
        self._reader.start()
        self._waiter.start()
        if self.timeout is not None and not self.stdin_pipe:
            self._arm_wall(self.timeout)
        if self.idle_timeout is not None:
            self._add_timer(self.idle_timeout, self._check_idle)
        return self._pid

    def send(self, data: bytes) -> None:
        """Write ``data`` to the child's stdin pipe (``stdin_pipe``), then close it (EOF);
        returns at once: a thread writes, so a child that does not read never blocks the
        caller. A child already gone loses the data (its exit says the rest). Raises
        `PortError` if the port has no stdin pipe, or it was written or closed already."""
        with self._lock:
            fd, self._stdin = self._stdin, -1
        if fd < 0:
            raise PortError("the child's stdin is not open for writing")
        # The turn starts now: its clocks too (the idle one ran from the spawn, so a
        # child never given its input still ends).
        self._last_output = time.monotonic()
        if self.timeout is not None:
            self._arm_wall(self.timeout)
        thread = threading.Thread(
            target=_write_all, args=(fd, data), name=f"port-stdin-{self._pid}", daemon=True
        )
        thread.start()

    def close_stdin(self) -> None:
        """Close the child's stdin pipe (EOF for the child), if open. Never blocks."""
        with self._lock:
            fd, self._stdin = self._stdin, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def tool_running(self, running: bool) -> None:
        """Say whether a tool call of the child is running now (never blocks).

        A tool's run is silent in the stream: meanwhile the idle limit is at least
        `TOOL_QUIET_LIMIT`. The end of a tool counts as output.
        """
        with self._lock:
            if self._tool_running and not running:
                self._last_output = time.monotonic()
            self._tool_running = running

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP (``frozen``) or SIGCONT to the whole tree; never blocks.

        A frozen child sends nothing (a ``claude`` waiting out a rate-limit storm: its
        retry goes once it is thawed) and its silence is on purpose: the idle limit
        does not run meanwhile, and thawing counts as output. Nor does the wall clock
        (``timeout``): a long storm is no fault of the turn's; thawed, what it had left
        still applies.
        """
        arming: int | None = None
        with self._lock:
            if self._pid is None or self._exited or self._reaped or frozen == self._frozen:
                return
            self._frozen = frozen
            now = time.monotonic()
            left = self._wall_left
            if not frozen:
                self._last_output = now
                if left is not None:
                    arming = self._arm_wall_locked(left)  # what it had left, from now
            elif left is not None:
                # Paused: the time run so far is kept, and the live timer goes stale.
                self._wall_left = max(0.0, left - (now - self._wall_armed))
                self._wall_arming += 1
            self._signal_all(signal.SIGSTOP if frozen else signal.SIGCONT)
        if arming is not None and left is not None:
            self._add_wall_timer(left, arming)

    @property
    def frozen(self) -> bool:
        """Whether the child is frozen (`freeze`)."""
        return self._frozen

    def _idle_limit(self) -> float:
        assert self.idle_timeout is not None
        if self._frozen:
            return math.inf
        if self._tool_running and not self._stopped():
            return max(self.idle_timeout, TOOL_QUIET_LIMIT)
        return self.idle_timeout

    def _stopped(self) -> bool:
        """Whether the child itself is stopped (SIGSTOP from elsewhere, not `freeze`): a
        stopped claude waits on no tool, so its silence is idle time."""
        entry = None if self._pid is None else process.read_entry(self._pid)
        return entry is not None and entry.state == "T"

    def stop(self, reason: str = "stop") -> None:
        """SIGTERM to the whole tree; SIGKILL after ``grace`` seconds if anything still runs."""
        with self._lock:
            if self._pid is None or self._reaped or self._stop_reason is not None:
                return
            self._stop_reason = reason
            self._kill_at = time.monotonic() + self.grace
            self._signal_all(signal.SIGTERM)
            # A stopped process (frozen here, or stopped by someone else) handles SIGTERM
            # only once continued; a running one ignores SIGCONT.
            self._frozen = False
            self._signal_all(signal.SIGCONT)
        self._add_timer(self.grace, self._escalate)

    def kill(self) -> None:
        """SIGKILL to the whole tree, now."""
        with self._lock:
            if self._pid is None or self._reaped:
                return
            if self._stop_reason is None:
                self._stop_reason = "kill"
            self._kill_at = time.monotonic()
            self._signal_all(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> PortExit | None:
        """Block until `on_exit` has been called (not for actors); None on timeout."""
        self._done.wait(timeout)
        return self._result

    # -- internals ---------------------------------------------------------

    def _track(self) -> list[process.ProcEntry]:
        """Note every descendant of the child by parent link; the table it read.

        Called with the lock held. A process that left the session (claude's Bash
        tool, the sandbox's ``bwrap``) is found only this way; once the child is gone
        its orphans are reparented here, and the noted pids (checked against their
        start time) still name them.
        """
        assert self._pid is not None
        table = list(process.processes())
        by_pid = {entry.pid: entry for entry in table}
        roots = {self._pid} | {
            pid for pid, start in self._known.items() if _same(by_pid.get(pid), start)
        }
        if self._namespace is not None:
            roots.add(self._namespace.pid)  # what the tools orphaned was adopted there
        for entry in process.descendants(roots, table):
            self._known.setdefault(entry.pid, entry.start)
        return table

    def _rest(self, pid: int, *, include_leader: bool = False) -> list[process.ProcEntry]:
        """What is left of the tree: the group, the session and the noted descendants."""
        table = self._track()
        left = {e.pid: e for e in table if e.pgid == pid or e.sid == pid}
        for entry in table:
            if _same(entry, self._known.get(entry.pid)):
                left.setdefault(entry.pid, entry)
        if not include_leader:
            left.pop(pid, None)
        return list(left.values())

    def _signal_all(self, sig: int) -> None:
        """``sig`` to the child's group and session and to every noted descendant."""
        assert self._pid is not None
        table = self._track()
        process.signal_tree(self._pid, sig)
        for entry in table:
            if entry.alive and _same(entry, self._known.get(entry.pid)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(entry.pid, sig)

    def _add_timer(self, delay: float, action: Callable[[], None]) -> None:
        timer = threading.Timer(delay, action)
        timer.daemon = True
        with self._lock:
            if self._reaped:
                return
            self._timers.append(timer)
        timer.start()

    def _arm_wall(self, left: float) -> None:
        """Start the wall clock with ``left`` seconds to go (frozen: once thawed)."""
        with self._lock:
            arming = self._arm_wall_locked(left)
            if self._frozen:
                self._wall_arming += 1  # given its input while frozen: thawing arms it
                return
        self._add_wall_timer(left, arming)

    def _arm_wall_locked(self, left: float) -> int:
        """(Re)start the wall clock's count with ``left`` seconds to go (lock held); the
        arming its timer must carry (`_add_wall_timer`, once the lock is released)."""
        self._wall_left, self._wall_armed = left, time.monotonic()
        self._wall_arming += 1
        return self._wall_arming

    def _add_wall_timer(self, left: float, arming: int) -> None:
        self._add_timer(left, lambda: self._on_timeout(arming))

    def _on_timeout(self, arming: int) -> None:
        with self._lock:
            if self._exited or self._stop_reason is not None:
                return
            if arming != self._wall_arming:
                return  # frozen since it was armed: the thaw armed a later one
            self._timeout = "wall"
        self.stop("timeout")

    def _check_idle(self) -> None:
        assert self.idle_timeout is not None
        with self._lock:
            if self._exited or self._stop_reason is not None:
                return
            quiet = time.monotonic() - self._last_output
            limit = self._idle_limit()
            if quiet < limit:
                # Never longer than the idle limit: a tool that ends brings it back.
                wait = min(limit - quiet, self.idle_timeout)
            else:
                wait = 0.0
                self._timeout = "idle"
                self._idle_fired = limit
        if wait > 0:
            self._add_timer(wait, self._check_idle)  # output came since: look again then
        else:
            self.stop("idle timeout")

    def _escalate(self) -> None:
        with self._lock:
            if self._pid is None or self._reaped:
                return
            if any(e.alive for e in self._rest(self._pid, include_leader=True)):
                self._signal_all(signal.SIGKILL)

    def _read_loop(self, transcript: BinaryIO | None) -> None:
        pending = b""
        poller = _Poller(self._master, self._wake_r)
        try:
            while True:
                master_ready, woken = poller.wait()
                if master_ready:
                    chunk = _read(self._master)
                    if not chunk:
                        break
                    self._last_output = time.monotonic()  # a float store: no lock needed
                    pending = self._split(pending + chunk, transcript)
                elif woken:
                    # The tree is gone but someone outside it holds the slave: take
                    # what is already there and finish.
                    os.set_blocking(self._master, False)
                    while chunk := _read(self._master):
                        pending = self._split(pending + chunk, transcript)
                    break
            if pending:
                self._emit(pending, transcript, newline=False)
        except Exception:
            log.exception("port reader for pid %s failed", self._pid)
        finally:
            os.close(self._master)
            os.close(self._wake_r)
            if transcript is not None:
                transcript.close()

    def _split(self, data: bytes, transcript: BinaryIO | None) -> bytes:
        *lines, rest = data.split(b"\n")
        for line in lines:
            self._emit(line, transcript, newline=True)
        return rest

    def _emit(self, line: bytes, transcript: BinaryIO | None, *, newline: bool) -> None:
        if transcript is not None:
            transcript.write(line + b"\n" if newline else line)
            transcript.flush()
        try:
            self._on_line(line)
        except Exception:
            log.exception("on_line callback failed for pid %s", self._pid)

    def _wait_loop(self) -> None:
        assert self._proc is not None and self._pid is not None
        pid = self._pid
        try:
            self._await_exit(pid)
            with self._lock:
                self._exited = True  # a turn timeout from now on is not the turn's
            if self._namespace is not None:
                # The child has ended: so does its namespace, whatever is left in it.
                self._namespace.end()
            self._clear_tree(pid)
        except Exception:
            log.exception("port waiter for pid %s failed", pid)
        self.close_stdin()
        with self._lock:
            returncode = self._proc.wait()
            process.release(self._proc.pid)
            self._reaped = True
            timers, self._timers = self._timers, []
            timeout = self._timeout
        if self._namespace is not None:
            self._namespace.reap()  # after the child: the kernel keeps pid 1 until then
            process.reap_strays()  # the child's zombies, reparented here once it was reaped
        for timer in timers:
            timer.cancel()
        assert self._reader is not None
        self._reader.join(DRAIN_TIMEOUT)
        if self._reader.is_alive():
            os.write(self._wake_w, b"x")
            self._reader.join()
        os.close(self._wake_w)
        limit = {"idle": self._idle_fired, "wall": self.timeout}.get(timeout) or 0.0
        code, sig = (None, -returncode) if returncode < 0 else (returncode, None)
        result = PortExit(
            exit_code=code,
            signal=sig,
            timed_out=bool(timeout),
            timeout=timeout,
            timeout_s=limit,
        )
        self._result = result
        try:
            self._on_exit(result.exit_code, result.signal, result.timed_out)
        except Exception:
            log.exception("on_exit callback failed for pid %s", pid)
        finally:
            self._done.set()

    def _await_exit(self, pid: int) -> None:
        """Block until the child has exited, noting its descendants meanwhile.

        The zombie is left: the pid stays ours until the tree is cleared, so
        signalling the group can never hit a stranger.
        """
        try:
            pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            pidfd = -1  # an old kernel: descendants are noted only when signalled
        try:
            while pidfd >= 0 and not select.select([pidfd], [], [], TRACK_INTERVAL)[0]:
                with self._lock:
                    table = self._track()
                process.reap_strays(table)  # a sandboxed Bash call leaves one per call
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def _clear_tree(self, pid: int) -> None:
        """After the child's exit: end whatever of its tree is left, and reap orphans."""
        termed = killed = False
        give_up: float | None = None
        me = os.getpid()
        while True:
            process.reap_orphans(pid)
            with self._lock:
                rest = self._rest(pid)
            for entry in rest:
                if entry.ppid == me and not entry.alive and entry.pid in self._known:
                    # A noted descendant reparented here: no Popen of ours owns it.
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(entry.pid, os.WNOHANG)
            process.reap_strays()
            with self._lock:
                rest = self._rest(pid)
            if not rest:
                return
            now = time.monotonic()
            with self._lock:
                if any(e.alive for e in rest):
                    if self._kill_at is None:
                        self._kill_at = now + self.grace
                    if not termed:
                        self._signal_all(signal.SIGTERM)
                        termed = True
                    if not killed and now >= self._kill_at:
                        self._signal_all(signal.SIGKILL)
                        killed = True
                        give_up = now + KILL_TIMEOUT
                elif all(e.ppid != os.getpid() for e in rest):
                    # Zombies only, and not ours to reap: nothing runs. In a namespace of
                    # its own (ended above) they are the child's own, reparented to this
                    # process once the child is reaped (reaped then, below): expected.
                    if self._namespace is None:
                        log.warning("pid %s: zombies of its tree left to their reaper", pid)
                    return
            if give_up is not None and now >= give_up:
                log.warning("pid %s: processes of its tree remain: %s", pid, rest)
                return
            time.sleep(_POLL_INTERVAL)


@contextlib.contextmanager
def _no_namespace() -> Iterator[process.Namespace | None]:
    yield None


def _same(entry: process.ProcEntry | None, start: int | None) -> bool:
    """Whether ``entry`` is the process noted with ``start`` (not a later one with its pid)."""
    return entry is not None and start is not None and entry.start == start


class _Poller:
    def __init__(self, master: int, wake: int) -> None:
        self._master = master
        self._wake = wake
        self._poll = select.poll()
        self._poll.register(master, select.POLLIN)
        self._poll.register(wake, select.POLLIN)

    def wait(self) -> tuple[bool, bool]:
        events = dict(self._poll.poll())
        return self._master in events, self._wake in events


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (blocking: a thread of its own), then close it.
    A reader gone (EPIPE: SIGPIPE is ignored in Python) ends the writing quietly."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        log.debug("stdin of a port's child: %s", exc)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read(fd: int) -> bytes:
    """Read from the master; b"" at the end (EIO is how Linux says the slave closed)."""
    try:
        return os.read(fd, _READ_SIZE)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


__all__ = [
    "CLAUDE_NOT_FOUND",
    "ExecutableNotFound",
    "Port",
    "PortError",
    "PortExit",
    "TimeoutKind",
    "resolve_executable",
]
