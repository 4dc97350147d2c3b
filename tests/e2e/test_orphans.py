"""Whatever a turn or a check starts dies with ``autonoma start``, however it dies.

The real ``autonoma start`` and ``claude``, scenario ``orphans.toml``: the developer's Bash
command, or the merge gate's test command, leaves a ``setsid``, double-forked ``sleep``
behind and waits. The whole ``autonoma start`` is then SIGKILLed (the process, not its
group: as the OOM killer would), and within a few seconds no process carrying the test's
marker in its environment may be left. The resumed run then merges as usual. And a
process an earlier run left in a task's clone is killed (and journaled) when a run resumes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma.protocol import LeftoversKilled, TaskMerged
from tests.conftest import run_autonoma
from tests.e2e.runs import SCENARIOS, assert_clean_exit, files_on, journal, make_project, messages

pytestmark = pytest.mark.usefixtures("needs_bwrap")


def marked(mark: str) -> list[int]:
    """The live processes whose environment holds ``REAPER_MARK=<mark>``."""
    needle = f"REAPER_MARK={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
            with open(f"/proc/{name}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state not in (b"Z", b"X"):
            found.append(int(name))
    return found


def until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def model(root: Path, mark: str, dev_flag: Path, gate_flag: Path) -> Path:
    text = (SCENARIOS / "orphans.toml").read_text()
    text = text.replace("@MARK@", mark).replace("@DEVFLAG@", str(dev_flag))
    path = root.parent / "model.toml"
    path.write_text(text.replace("@GATEFLAG@", str(gate_flag)))
    return path


def launch(root: Path, scenario: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "autonoma", "start", "requirements.md", "--scenario", str(scenario)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def resume(root: Path, scenario: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autonoma", "start", "requirements.md", "--scenario", str(scenario)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("sandbox", ["1", "0"], ids=["sandbox", "no-sandbox"])
@pytest.mark.parametrize("where", ["developer", "merge-gate"])
def test_sigkilled_start_leaves_no_process_of_its_turns_or_checks_and_the_run_resumes(
    tmp_path: Path, clean_env: dict[str, str], where: str, sandbox: str
) -> None:
    root = make_project(tmp_path)
    mark = uuid.uuid4().hex
    # In .git: readable by every sandbox (the repository is), invisible to git.
    dev_flag, gate_flag = root / ".git" / "linger-dev", root / ".git" / "linger-gate"
    (dev_flag if where == "developer" else gate_flag).touch()
    scenario = model(root, mark, dev_flag, gate_flag)
    env = {**clean_env, "AUTONOMA_SANDBOX": sandbox}
    active = launch(root, scenario, env)
    try:
        # The foreground sleep and the double-forked one.
        assert until(lambda: len(marked(mark)) >= 2, 120), "the lingering command never ran"
        time.sleep(0.5)
        os.kill(active.pid, signal.SIGKILL)
        active.wait(10)
        gone = until(lambda: not marked(mark), 5)
        left = marked(mark)
        assert gone, f"survived autonoma's SIGKILL: {left}"
    finally:
        if active.poll() is None:
            active.kill()
            active.wait()
        for pid in marked(mark):  # only this test's own marked processes
            os.kill(pid, signal.SIGKILL)
    dev_flag.unlink(missing_ok=True)
    gate_flag.unlink(missing_ok=True)
    resumed = resume(root, scenario, env)
    assert_clean_exit(resumed, 0)
    rows = journal(root)
    assert [m.task_id for m in messages(rows, TaskMerged)] == ["t1"]
    assert "t1.txt" in files_on(root, "main")
    assert messages(rows, LeftoversKilled) == []  # nothing was left to kill


def test_a_process_left_in_a_task_clone_is_killed_and_journaled_when_the_run_resumes(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    mark = uuid.uuid4().hex
    dev_flag = root / ".git" / "linger-dev"
    dev_flag.touch()
    scenario = model(root, mark, dev_flag, root / ".git" / "linger-gate")
    env = {**clean_env, "AUTONOMA_SANDBOX": "0"}
    active = launch(root, scenario, env)
    stray: subprocess.Popen[bytes] | None = None
    try:
        assert until(lambda: len(marked(mark)) >= 2, 120), "the developer's command never ran"
        [clone] = (root / ".autonoma" / "clones").glob("*/t1")
        os.kill(active.pid, signal.SIGKILL)
        active.wait(10)
        # As if it had escaped: a process of its own session working in the clone.
        stray = subprocess.Popen(
            ["sleep", "300"], cwd=clone, start_new_session=True, env={"REAPER_MARK": mark}
        )
        dev_flag.unlink()
        resumed = resume(root, scenario, env)
        assert_clean_exit(resumed, 0)
        assert stray.wait(5) == -signal.SIGKILL
        [killed] = messages(journal(root), LeftoversKilled)
        assert killed.pids == [stray.pid]
        assert killed.commands == ["sleep 300"]
        assert "t1.txt" in files_on(root, "main")
        status = run_autonoma(
            "logs", "--agent", "orchestrator", "--limit", "10000", cwd=root, env=env
        )
        assert "killed 1 process(es) an earlier run left working: sleep 300" in status.stdout
    finally:
        for proc in (active, stray):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
