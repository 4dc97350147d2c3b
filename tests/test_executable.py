"""The pinned claude CLI that `make test` installs is found without any PATH change."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from autonoma.agents.executable import LOCAL_INSTALL, find_claude
from autonoma.config import Settings

PINNED = "2.1.331"


def test_the_project_local_install_is_found_and_runs(tmp_path: Path) -> None:
    found = find_claude(Settings())
    assert found == LOCAL_INSTALL / "claude"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}  # no claude on this PATH
    version = subprocess.run(
        [str(found), "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(PINNED)


def test_the_setting_wins_and_a_wrong_one_finds_nothing(tmp_path: Path) -> None:
    script = tmp_path / "my-claude"
    script.write_text("#!/bin/sh\necho 9.9.9\n")
    script.chmod(0o755)
    assert find_claude(Settings(claude_path=str(script))) == script
    assert find_claude(Settings(claude_path=str(tmp_path / "missing"))) is None
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    assert find_claude(Settings(claude_path=str(not_executable))) is None
    assert os.access(script, os.X_OK)
