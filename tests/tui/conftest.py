"""Journals for the dashboard's tests, recorded from real runs (the real claude, the sim).

``demo_run`` runs ``autonoma demo`` once per session; ``escalated_run`` runs ``autonoma
start`` on the ``rejects_t2`` scenario with one retry, so that t2 ends escalated. Both
run with stdout a pipe: they also show what start and demo print when not on a terminal.
The snapshot tests use ``data/*.db``, two journals recorded the same way and kept, so
that the pictures do not change with each run's timings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import run_autonoma
from tests.e2e.runs import make_project, start

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


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """``autonoma demo --no-tui`` to its end, once."""
    where = tmp_path_factory.mktemp("tui-demo") / "todo"
    result = run_autonoma("demo", "--dir", str(where), "--no-tui", cwd=where.parent, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return Recorded(where, result)


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
