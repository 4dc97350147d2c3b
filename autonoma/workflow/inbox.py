"""Commands from other processes to the active run, as files in ``.autonoma/inbox/``.

The journal has one writer, the run; a human command (``autonoma retry``, ``resolve``)
given while a run is active cannot append to it, so it posts a file here and the run
takes it, journals the message itself, then removes the file. A file is
``<time_ns>-<pid>.json`` holding one encoded message; it appears whole or not at all
(written beside, fsynced, then renamed), so a taker never reads half of one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import msgspec

from autonoma.protocol import (
    AnyMessage,
    ResolveRequested,
    RetryRequested,
    decode_message,
    encode_message,
)

SUFFIX = ".json"
"""Every pending command's file name ends so."""

BAD_SUFFIX = ".bad"
"""Added to a file that does not decode: kept for a human to look at, never taken again."""

_last_ns = 0
_last_lock = threading.Lock()


def _next_ns() -> int:
    """Nanoseconds since the epoch, strictly increasing within this process."""
    global _last_ns
    with _last_lock:
        # Two posts in the same clock tick must not get the same name.
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def post(inbox: Path, message: RetryRequested | ResolveRequested) -> Path:
    """Leave ``message`` for the active run; returns the file it is in."""
    inbox.mkdir(parents=True, exist_ok=True)
    name = f"{_next_ns()}-{os.getpid()}{SUFFIX}"
    final = inbox / name
    # A leading dot and another suffix: `take` never sees a file still being written.
    temporary = inbox / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.write(fd, encode_message(message))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(inbox)
    return final


def take(inbox: Path) -> list[tuple[Path, AnyMessage]]:
    """The pending commands, oldest first; a file that does not decode becomes ``<name>.bad``."""
    try:
        names = [n for n in os.listdir(inbox) if n.endswith(SUFFIX) and not n.startswith(".")]
    except FileNotFoundError:
        return []
    taken: list[tuple[Path, AnyMessage]] = []
    for name in sorted(names, key=_order):
        path = inbox / name
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            continue  # done() by another taker meanwhile
        try:
            message = decode_message(body)
        except (msgspec.DecodeError, UnicodeDecodeError):
            with contextlib.suppress(FileNotFoundError):
                path.rename(path.with_name(name + BAD_SUFFIX))
            continue
        taken.append((path, message))
    return taken


def done(path: Path) -> None:
    """Remove a command once the run has journaled it (already gone: nothing happens)."""
    path.unlink(missing_ok=True)


def _order(name: str) -> tuple[int, int, str]:
    """Posting order: by time, then pid; names of another form go last, by name."""
    stem = name[: -len(SUFFIX)]
    ns, _, pid = stem.partition("-")
    if ns.isdigit() and pid.isdigit():
        return int(ns), int(pid), name
    return 1 << 63, 0, name


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut, not only a crash."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
