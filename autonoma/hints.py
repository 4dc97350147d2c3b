"""The commands Autonoma tells its user to run: each one works as printed.

Pure apart from finding the program: no I/O but a look at ``PATH``. A hint names the
``autonoma`` that is running now (a virtual environment's script is often not on
``PATH``), every path in it is absolute, and it is quoted for a POSIX shell, so that
``shlex.split`` gives back its argv. Run it in the project's folder (where ``start``
looks for the repository).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fold renders its records with autonoma.words, which uses this
    from autonoma.journal.fold import Run

API = "api"
"""`RunStarted.endpoint` of a run against the real model (a sim run records its scenario)."""


def program() -> str:
    """How to call this autonoma again: ``autonoma`` when that is this one on ``PATH``.

    Else the script beside this Python (a virtual environment that is not activated),
    else plain ``autonoma``.
    """
    beside = Path(sys.executable).parent / "autonoma"
    on_path = shutil.which("autonoma")
    if not beside.exists():
        return "autonoma"
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(beside):
        return "autonoma"
    return str(beside)


def endpoint_of(scenario: Path | None) -> str:
    """What `RunStarted.endpoint` records: ``api``, or the scenario file's absolute path."""
    return API if scenario is None else str(scenario.absolute())


def endpoint_text(endpoint: str) -> str:
    """How a run's endpoint reads in a sentence."""
    if endpoint == API:
        return "against the real model"
    return f"against the simulated model of {endpoint}"


def start_command(requirements: str, endpoint: str = "", *extra: str) -> str:
    """``autonoma start REQUIREMENTS [--scenario FILE] EXTRA...``, quoted."""
    argv = [program(), "start", requirements]
    if endpoint and endpoint != API:
        argv += ["--scenario", endpoint]
    return shlex.join([*argv, *extra])


def resume_command(run: Run) -> str:
    """The command that resumes ``run``: its requirements, and its scenario if it had one."""
    return start_command(run.requirements or "requirements.md", run.endpoint)


def command(*args: str) -> str:
    """``autonoma ARGS...``, quoted: ``command("status")``."""
    return shlex.join([program(), *args])


__all__ = [
    "API",
    "command",
    "endpoint_of",
    "endpoint_text",
    "program",
    "resume_command",
    "start_command",
]
