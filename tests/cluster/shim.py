"""A Python path on which ``import ray`` fails (as where the extra is not installed) and
leaves a mark: a run given it shows whether it tried to import Ray at all."""

from __future__ import annotations

from pathlib import Path

MARK_VARIABLE = "RAY_SHIM_MARK"

_SHIM = """
import os, pathlib
mark = os.environ.get("RAY_SHIM_MARK")
if mark:
    pathlib.Path(mark).write_text("ray was imported")
raise ImportError("No module named 'ray' (blocked by the test's shim)")
"""


def blocking_path(where: Path) -> Path:
    """A folder with a ``ray`` package that refuses to import; put it first on PYTHONPATH."""
    package = where / "no-ray" / "ray"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(_SHIM)
    return package.parent
