"""Finding the ``claude`` executable: the setting, then the project-local install, then PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autonoma.config import Settings

# Where `make test` / `make claude` install the pinned CLI, beside the source tree of a
# checkout. An installed wheel has no such folder: its users set claude_path or PATH.
LOCAL_INSTALL = Path(__file__).resolve().parents[2] / ".tools" / "claude" / "node_modules" / ".bin"


def find_claude(settings: Settings) -> Path | None:
    """The claude executable to run, or None when there is none."""
    if settings.claude_path:
        configured = Path(settings.claude_path).expanduser()
        return configured if _runnable(configured) else None
    local = LOCAL_INSTALL / "claude"
    if _runnable(local):
        return local
    found = shutil.which("claude")
    return Path(found) if found else None


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
