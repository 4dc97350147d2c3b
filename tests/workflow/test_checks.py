"""Running a project's test command: exit status, output tail, timeout, environment."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from autonoma.workflow.checks import OUTPUT_TAIL, CheckResult, kill_check, run_check

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# A command's own pids are those of its PID namespace (it runs in one of its own): this
# writes the host's pid of a background `sleep 600` (/proc is the host's, and the
# shell itself opens /proc/self for `read`).
SLEEPER = "sh -c 'read -r pid rest < /proc/self/stat; echo $pid > child.pid; exec sleep 600'"


def gone(pid: int) -> bool:
    """Whether a process is dead, allowing the moment SIGKILL takes to be delivered."""
    deadline = time.monotonic() + 2
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_passing_command(tmp_path: Path) -> None:
    (tmp_path / "marker").write_text("here")
    result = run_check("cat marker && echo done", tmp_path, ENV, timeout=30)
    assert result.passed
    assert result.exit_code == 0
    assert not result.timed_out
    assert result.output == "heredone\n"


def test_a_failing_command_gives_its_exit_code_and_both_streams(tmp_path: Path) -> None:
    result = run_check("echo out; echo err >&2; exit 3", tmp_path, ENV, timeout=30)
    assert not result.passed
    assert result.exit_code == 3
    assert not result.timed_out
    assert result.output == "out\nerr\n"


def test_stdin_is_empty(tmp_path: Path) -> None:
    result = run_check("cat; echo end", tmp_path, ENV, timeout=30)
    assert result.passed
    assert result.output == "end\n"


def test_huge_output_keeps_the_tail(tmp_path: Path) -> None:
    command = (
        "i=0; while [ $i -lt 5000 ]; do echo line-$i; i=$((i+1)); done; yes x | head -c 5000000"
    )
    command += "; echo the-end; exit 1"
    result = run_check(command, tmp_path, ENV, timeout=60)
    assert result.exit_code == 1
    assert len(result.output) == OUTPUT_TAIL
    assert result.output.endswith("x\nthe-end\n")
    assert "line-" not in result.output


def test_the_environment_is_the_one_given(tmp_path: Path) -> None:
    env = {**ENV, "CHECK_VALUE": "forty two"}
    result = run_check('echo "$CHECK_VALUE"; echo "${HOME:-no home}"', tmp_path, env, timeout=30)
    assert result.output == "forty two\nno home\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_check(f"{SLEEPER} & sleep 0.2; echo started; wait", tmp_path, ENV, timeout=1)
    elapsed = time.monotonic() - started

    assert result.timed_out
    assert not result.passed
    assert result.exit_code is None
    assert result.output.startswith("started\n")
    assert "timed out after 1s" in result.output
    assert elapsed < 10
    child = int((tmp_path / "child.pid").read_text())
    assert gone(child)


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    command = (
        "trap '' TERM; sh -c 'trap \"\" TERM; read -r pid rest < /proc/self/stat;"
        " echo $pid > child.pid; sleep 600' & wait"
    )
    result = run_check(command, tmp_path, ENV, timeout=1)
    assert result.timed_out
    child = int((tmp_path / "child.pid").read_text())
    assert gone(child)


def test_a_command_that_closes_its_output_still_runs_to_its_end(tmp_path: Path) -> None:
    result = run_check("exec >/dev/null 2>&1; sleep 1; touch finished", tmp_path, ENV, timeout=30)
    assert result.passed
    assert (tmp_path / "finished").exists()


def test_processes_left_behind_are_killed_when_the_check_ends(tmp_path: Path) -> None:
    result = run_check(f"{SLEEPER} & sleep 0.2; echo ok", tmp_path, ENV, timeout=30)
    assert result.passed
    assert result.output == "ok\n"
    assert gone(int((tmp_path / "child.pid").read_text()))


@pytest.mark.parametrize("command", ["", "   "])
def test_an_empty_command_is_refused(tmp_path: Path, command: str) -> None:
    with pytest.raises(ValueError):
        run_check(command, tmp_path, ENV, timeout=30)


# Three orphans (a setsid background job of a shell that exited), then a wait. Python
# reaps no child it did not start: exec'd as pid 1 of the namespace (before), it kept the
# zombie of each until the check ended.
ORPHANS = (
    "exec python3 -c 'import subprocess, time\n"
    'for _ in range(3): subprocess.run(["sh", "-c", "(setsid sleep 0.05 &)"])\n'
    'print("orphaned", flush=True)\ntime.sleep(3)\''
)


@pytest.mark.skipif(os.geteuid() != 0, reason="a PID namespace needs root here")
def test_the_orphans_of_an_unconfined_check_are_reaped_while_it_runs(tmp_path: Path) -> None:
    from tests.agents.test_reaper import lingering_zombies

    shells: list[int] = []
    results: list[CheckResult] = []
    worker = threading.Thread(
        target=lambda: results.append(run_check(ORPHANS, tmp_path, ENV, 60, started=shells.append))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while not shells and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # the orphans were made and have ended
        samples: list[dict[int, int]] = []
        lingering_zombies(shells[0], samples)
        time.sleep(1.0)
        assert lingering_zombies(shells[0], samples) == set(), samples
        assert not results  # still running
    finally:
        worker.join(30)
    assert results[0].passed and results[0].output == "orphaned\n"


def test_a_check_can_be_killed_from_another_thread(tmp_path: Path) -> None:
    groups: list[int] = []
    results: list[CheckResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_check("sleep 600", tmp_path, dict(os.environ), 600, started=groups.append)
        )
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not groups and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_check(groups[0])
    worker.join(10)
    assert not worker.is_alive()
    assert not results[0].passed and not results[0].timed_out
