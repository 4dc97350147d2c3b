"""Fixtures shared by every test: a scratch git repository and the autonoma command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autonoma.vcs import repo


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository (branch main) to run Autonoma in."""
    root = tmp_path / "project"
    root.mkdir()
    return repo.init_repository(root)


@pytest.fixture
def needs_bwrap() -> None:
    """Fail, never skip, without bubblewrap on PATH: `make test` installs it (with socat),
    so a missing one is a fault of the set-up, and a skip would pass the sandbox's tests
    silently."""
    if shutil.which("bwrap") is None:
        pytest.fail(
            "bubblewrap is not on PATH: `make test` installs it (apt install bubblewrap socat)"
        )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The environment without any AUTONOMA_* variable the developer may have set."""
    for name in list(os.environ):
        if name.startswith("AUTONOMA_"):
            monkeypatch.delenv(name)
    yield dict(os.environ)


def run_autonoma(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``autonoma`` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "autonoma", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
    )
