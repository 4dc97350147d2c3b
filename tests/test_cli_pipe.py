"""A reader that closes the pipe early (`| head -1`) is a normal end for every command
that prints: no message, no crash file, the exit code of a process ended by SIGPIPE."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autonoma import protocol as p
from autonoma.journal.writer import Journal
from autonoma.runtime.bus import Bus
from tests.conftest import run_autonoma

# 128 + SIGPIPE: what a shell says of `git log | head` and every other Unix tool.
PIPE_CLOSED = 141


def publish_many(db: Path, tasks: int) -> None:
    """A run with many tasks: every command prints far more than a pipe holds (64 KiB)."""
    client = Journal.open(db)
    bus = Bus(run_id="run-1")
    bus.attach(client)
    bus.publish("orchestrator", p.RunStarted(requirements="r.md", project="/p", max_workers=2))
    for n in range(tasks):
        title = f"Task number {n}: " + "a title long enough to fill the pipe " * 3
        bus.publish("orchestrator", p.TaskDefined(task_id=f"t{n}", title=title))
    client.stop()


@pytest.fixture
def busy(git_repo: Path, clean_env: dict[str, str]) -> Path:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    publish_many(git_repo / ".autonoma" / "state.db", 1500)
    return git_repo


@pytest.mark.parametrize(
    "command",
    [
        "logs --json --limit 5000",
        "logs --limit 5000",
        "logs --follow --json --limit 5000",
        "status --json",
        "status",
        "replay",
    ],
)
def test_a_closed_pipe_is_a_normal_end(
    busy: Path, clean_env: dict[str, str], tmp_path: Path, command: str
) -> None:
    crashes = tmp_path / "tmp"
    crashes.mkdir()
    env = {**clean_env, "TMPDIR": str(crashes)}
    autonoma = f"{shlex.quote(sys.executable)} -m autonoma {command}"
    # The shell keeps autonoma's own exit code and stderr: a pipeline says only head's.
    script = f"{{ {autonoma} 2>../stderr; echo $? >../code; }} | head -1"
    result = subprocess.run(
        ["sh", "-c", script], cwd=busy, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.count("\n") == 1 and result.stdout.strip()
    assert (busy.parent / "stderr").read_text() == ""
    # 141 when a write met the closed pipe; 0 when the kernel took the whole output first.
    assert int((busy.parent / "code").read_text()) in (PIPE_CLOSED, 0)
    assert list(crashes.iterdir()) == []
