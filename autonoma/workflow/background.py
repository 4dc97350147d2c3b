"""A run in a process of its own, detached from the terminal that started it.

`start_detached` starts ``autonoma _run`` (a hidden command) in a new session: no
controlling terminal, stdin ``/dev/null``, stdout and stderr in a log file under
``.autonoma/logs/``. Closing the terminal, or killing the process that started it (and
its process group), leaves the run going; ``autonoma dashboard`` watches it and
``autonoma stop`` stops it, as for any run. The child prints the same plain progress
log as ``autonoma start --no-tui``, and exits with the same code (0 done, 1 failed,
130 stopped).

The handshake: the child gets its options in a file, and once ``prepare`` has passed
(the lock is held, the run id known) it writes the run id into a small file; the parent
returns once that run's `RunStarted` is in the journal. A check that fails in the child
(a bad setting, a missing requirements file, a run already active) ends it with the
CLI's one line on stderr, which the parent raises as `DetachFailed`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.project import Project
from autonoma.protocol import RunStarted
from autonoma.workflow.run import RunOptions

POLL_S = 0.05
"""Seconds between two looks at the child and the journal while it starts."""

_children: dict[int, subprocess.Popen[bytes]] = {}
"""The runs this process started and has not reaped: their exit codes are ours to read."""


class Detached(msgspec.Struct, frozen=True):
    """A run going on in a process of its own."""

    pid: int
    """The run's process (its own session: it outlives the terminal)."""
    run_id: str
    log: str
    """Absolute path of the file its stdout and stderr go to."""


class DetachFailed(Exception):
    """The run did not start; ``str(err)`` is the child's one line for the user,
    ``exit_code`` its exit code (2 for a bad setting, as ``autonoma start``)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _enc(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def _dec(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot decode {kind}")


def encode_options(options: RunOptions) -> bytes:
    """``options`` as JSON, every field (paths as strings)."""
    return msgspec.json.encode(options, enc_hook=_enc)


def decode_options(data: bytes) -> RunOptions:
    """The `RunOptions` of `encode_options`; `msgspec.ValidationError` if malformed."""
    return msgspec.json.decode(data, type=RunOptions, dec_hook=_dec)


def start_detached(project: Project, options: RunOptions, *, timeout_s: float = 60.0) -> Detached:
    """Start the run of ``options`` in ``project`` in a detached process; return once it
    journaled its `RunStarted` (a new run, or the resumed one).

    Blocks up to ``timeout_s`` (claude's login check and the sim's start take a few
    seconds). Raises `DetachFailed` with the child's own one-line error and exit code if
    it exits before; on timeout, asks the child to stop (SIGTERM: a clean stop) and
    raises `DetachFailed` (exit code 1) naming its log. Interrupted (Ctrl-C), it asks the
    child to stop too.
    """
    _reap()
    project.logs.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    log = project.logs / f"{stem}.log"
    spec = project.logs / f"{stem}.options.json"
    ready = project.logs / f"{stem}.started"
    spec.write_bytes(encode_options(options))
    before = _head(project)
    argv = [sys.executable, "-m", "autonoma", "_run", "--options", str(spec), "--ready", str(ready)]
    # Unbuffered: the log is written as the run goes, and says all even after a SIGKILL.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        child = subprocess.Popen(
            argv,
            cwd=project.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: no terminal, so no SIGHUP or Ctrl-C of this terminal's.
            start_new_session=True,
        )
    _children[child.pid] = child
    try:
        run_id = _await_start(project, child, ready, before, log, timeout_s)
    except KeyboardInterrupt:
        child.terminate()  # Ctrl-C while it starts: it stops cleanly, as a run does
        raise
    finally:
        ready.unlink(missing_ok=True)
        spec.unlink(missing_ok=True)
    return Detached(pid=child.pid, run_id=run_id, log=str(log.absolute()))


def _await_start(
    project: Project,
    child: subprocess.Popen[bytes],
    ready: Path,
    before: int,
    log: Path,
    timeout_s: float,
) -> str:
    """The child's run id once its `RunStarted` is journaled (seq > ``before``)."""
    deadline = time.monotonic() + timeout_s
    run_id: str | None = None
    while True:
        if run_id is None:
            with contextlib.suppress(FileNotFoundError):
                run_id = ready.read_text().strip() or None
        if run_id is not None and _started(project, run_id, before):
            return run_id
        code = child.poll()
        if code is not None:
            _children.pop(child.pid, None)
            if run_id is not None and _started(project, run_id, before):
                return run_id  # a run that ended at once: it did start
            said = _last_line(log, code)
            log.unlink(missing_ok=True)  # it held only that line: nothing ran
            raise DetachFailed(said, code or 1)
        if time.monotonic() > deadline:
            child.terminate()
            raise DetachFailed(
                f"the run did not start within {timeout_s:.0f} s: it is asked to stop; "
                f"its log: {log}",
                1,
            )
        time.sleep(POLL_S)


def _head(project: Project) -> int:
    """The journal's last seq (0: no journal yet)."""
    if not project.state_db.exists():
        return 0
    try:
        return reader.last_seq(project.state_db)
    except JournalError:
        return 0


def _started(project: Project, run_id: str, after: int) -> bool:
    """Whether run ``run_id`` journaled a `RunStarted` after seq ``after``."""
    if not project.state_db.exists():
        return False
    try:
        # By the row's tag: nothing to decode.
        return any(
            row[5] == RunStarted.__name__
            for row in reader.rows(project.state_db, after_seq=after, run_id=run_id)
        )
    except JournalError:
        return False


def _last_line(log: Path, code: int) -> str:
    """The child's error: its last line on stderr (``autonoma: ...``), without the prefix."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [line for line in lines if line]
    if not lines:
        return f"the run exited with code {code} before it started, saying nothing"
    return lines[-1].removeprefix("autonoma: ")


def exit_code(detached: Detached, timeout: float | None = None) -> int | None:
    """The run's exit code once its process has ended, waiting up to ``timeout`` seconds
    (None: until it ends). None if it is still going, or if this process did not start
    it (another's child: read the journal's outcome instead)."""
    child = _children.get(detached.pid)
    if child is None:
        return None
    try:
        code = child.wait(timeout)
    except subprocess.TimeoutExpired:
        return None
    _children.pop(detached.pid, None)
    return code


def alive(detached: Detached) -> bool:
    """Whether the run's process is still there (never blocks)."""
    child = _children.get(detached.pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(detached.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap() -> None:
    """Forget the children that ended (no zombie left in a long-lived process)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            del _children[pid]


__all__ = [
    "DetachFailed",
    "Detached",
    "alive",
    "decode_options",
    "encode_options",
    "exit_code",
    "start_detached",
]
