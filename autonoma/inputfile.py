"""One bounded reader for every file a user hands Autonoma: requirements, config, roles, scenarios.

A fifo would block `open` forever and ``/dev/zero`` would be read until the kernel kills
the process, so a file is opened without blocking, must be a regular file, and is read
up to its kind's size limit and no further; it must be UTF-8 without NUL bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Size limits per kind of file, in bytes: far above any real one, far below harm.
LIMITS: dict[str, int] = {
    # What a prompt can carry.
    "requirements": 100_000,
    "config": 1_000_000,
    "role": 1_000_000,
    "scenario": 64_000_000,
    "standards": 1_000_000,  # .autonoma/CLAUDE.md
    "exclude": 1_000_000,  # .autonoma/exclude, the user's git excludes file
}


class InputFileError(Exception):
    """A user's file cannot be read as text; the message is one line naming it."""


def read_text(path: Path, kind: str) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``LIMITS[kind]`` bytes.

    Never blocks (a fifo is refused without waiting for a writer). Raises
    `FileNotFoundError` when there is no such file (callers word that themselves), and
    `InputFileError` for anything else: a folder, a device, a fifo, too big, not UTF-8, NUL.
    """
    limit = LIMITS[kind]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a folder, not a {kind} file") from None
    except OSError as err:
        raise InputFileError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(f"{path}: is a folder, not a {kind} file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"{path}: not a regular file (a {_what(info.st_mode)})")
        if info.st_size > limit:
            raise InputFileError(_too_big(path, kind, info.st_size, limit))
        chunks: list[bytes] = []
        size = 0
        # Read to the limit and one byte more: the file may grow after fstat.
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise InputFileError(_too_big(path, kind, size, limit))
    except OSError as err:
        raise InputFileError(f"{path}: cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if b"\0" in data:
        raise InputFileError(f"{path}: not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: not UTF-8 text") from None


def _too_big(path: Path, kind: str, size: int, limit: int) -> str:
    more = "more than" if size > limit else "at least"
    return f"{path}: {more} the {limit} bytes a {kind} file may hold: shorten it"


def _what(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
