"""Set-up commands off the orchestrator's mailbox: reported once, never twice at once, killable."""

from __future__ import annotations

import os
import queue
from pathlib import Path

from autonoma.protocol import SetupRan
from autonoma.workflow.setup import SetupRunner, cache_env, failure_reason, run_setup
from tests.journal.testlib import wait_for


def test_a_set_up_reports_how_it_ended_and_stays_running_until_forgotten(tmp_path: Path) -> None:
    runner = SetupRunner(dict(os.environ), timeout=30)
    heard: queue.Queue[SetupRan] = queue.Queue()
    assert runner.start("t1", "echo installing; echo broken >&2; exit 2", tmp_path, heard.put)
    ran = heard.get(timeout=10)
    assert (ran.task_id, ran.exit_code, ran.timed_out, ran.place) == ("t1", 2, False, "task")
    assert ran.output_tail == "installing\nbroken\n" and ran.worktree == str(tmp_path)
    assert not ran.ok and ran.duration_s >= 0
    # Until its owner has heard of it, the same task's set-up is not started again.
    assert runner.running("t1")
    assert not runner.start("t1", "true", tmp_path, heard.put)
    runner.forget("t1")
    assert not runner.running("t1")
    assert runner.start("t1", "true", tmp_path, heard.put)
    assert heard.get(timeout=10).ok
    assert failure_reason(ran) == (
        "the set-up command `echo installing; echo broken >&2; exit 2` "
        "failed (exit code 2): installing broken"
    )


def test_stop_kills_the_set_ups_under_way_and_reports_nothing(tmp_path: Path) -> None:
    runner = SetupRunner(dict(os.environ), timeout=60)
    heard: queue.Queue[SetupRan] = queue.Queue()
    pid_file = tmp_path / "pid"
    assert runner.start(
        "t1",
        f"read -r pid rest < /proc/self/stat; echo $pid > {pid_file}; exec sleep 60",
        tmp_path,
        heard.put,
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=10)
    pid = int(pid_file.read_text())
    runner.stop()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, timeout=10)
    assert heard.empty()
    assert not runner.start("t2", "true", tmp_path, heard.put)  # none starts after


def test_a_set_up_past_its_timeout_is_killed_and_said(tmp_path: Path) -> None:
    ran = run_setup("sleep 30", tmp_path, dict(os.environ), 0.5, task_id=None, place="merge_gate")
    assert ran.timed_out and ran.exit_code is None and ran.duration_s < 10
    assert "timed out" in failure_reason(ran)


def test_the_package_caches_are_shared_absolute_folders(tmp_path: Path) -> None:
    env = cache_env(Path(".autonoma"))
    assert env["PIP_CACHE_DIR"] == str(Path.cwd() / ".autonoma" / "cache" / "pip")
    assert env["npm_config_cache"] == str(Path.cwd() / ".autonoma" / "cache" / "npm")
