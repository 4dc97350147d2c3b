"""Journals for the dashboard's tests, recorded from real runs (the real claude, the sim).

``demo_run`` runs ``autonoma demo`` once per session on a real terminal (tmux) with the
dashboard, to its end; ``escalated_run`` runs ``autonoma start`` (stdout a pipe: the plain
log) on the ``rejects_t2`` scenario with one retry, so that t2 ends escalated.
The snapshot tests use ``data/*.db``, two journals recorded the same way and kept, so
that the pictures do not change with each run's timings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.runs import make_project, start
from tests.tui.terminal import Terminal

DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Recorded:
    """A finished run: its project, what the command printed, its exit code."""

    root: Path
    result: subprocess.CompletedProcess[str]

    @property
    def db(self) -> Path:
        return self.root / ".autonoma" / "state.db"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUTONOMA_")}


@dataclass(frozen=True)
class OnScreen:
    """A run watched on a real terminal: its project, and the screens read."""

    root: Path
    last_dashboard: str
    """The dashboard's screen once the run ended."""
    after: str
    """The terminal after ``q``: what the command printed, and ``EXIT=<code>``."""

    @property
    def db(self) -> Path:
        return self.root / ".autonoma" / "state.db"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> OnScreen:
    """``autonoma demo`` on a real terminal (tmux), with the dashboard, to its end and ``q``."""
    where = tmp_path_factory.mktemp("tui-demo") / "todo"
    argv = [sys.executable, "-m", "autonoma", "demo", "--dir", str(where)]
    term = Terminal(argv, where.parent, _env())
    try:
        done = term.wait_for(lambda s: "6 tasks: 6 merged" in s, "the run done", timeout=240)
        term.keys("q")
        after = term.wait_for(lambda s: "EXIT=" in s, "the command's end")
    finally:
        term.close()
    return OnScreen(where, done, after)


@pytest.fixture(scope="session")
def escalated_run(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """``autonoma start`` (no option) with stdout a pipe, until t2 is escalated."""
    root = make_project(tmp_path_factory.mktemp("tui-escalated"))
    env = {**_env(), "AUTONOMA_MAX_RETRIES": "1"}
    result = start(root, "rejects_t2.toml", env, "--max-workers", "2")
    assert result.returncode == 1, result.stdout + result.stderr
    return Recorded(root, result)


@pytest.fixture
def escalated_copy(escalated_run: Recorded, tmp_path: Path) -> Path:
    """A copy of the escalated project (a test's commands change its journal)."""
    root = tmp_path / "project"
    shutil.copytree(escalated_run.root, root, symlinks=True)
    return root
