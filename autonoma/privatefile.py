"""Files only this user may read (keys, the inbox's commands, the gateway's token), made whole.

A reader must never see one half written nor one another user could read, so each is
first written to a new temporary name (``O_EXCL``, mode 0600, fsynced) and only then
given its final name by the caller: replaced, renamed, or linked where an existing
file must win.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with mode 0600, write ``data`` and fsync it.

    Blocks for the write and the fsync. Raises OSError (FileExistsError if ``path``
    exists); on any failure after the file was made, it is removed again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
