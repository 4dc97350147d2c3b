"""Runs detached from the dashboard: a process of their own, which quitting may leave running.

Real processes throughout: the real ``autonoma`` command, the real claude against the sim,
the real git; a real terminal (tmux) for what a user types.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec
import pytest

from autonoma import demo
from autonoma.journal import reader
from autonoma.project import active_run, find
from autonoma.protocol import RunFinished, RunStarted, StopRequested, TaskMerged
from autonoma.tui.app import Dashboard, RunLink
from autonoma.tui.quit import QuitDialog, Stopping
from autonoma.tui.run import control_command, watching
from autonoma.tui.source import JournalSource
from autonoma.workflow import background
from autonoma.workflow.background import Detached, DetachFailed, start_detached
from autonoma.workflow.run import RunOptions
from tests.e2e.runs import envelopes, files_on, journal, make_project, messages, model_file
from tests.journal.testlib import wait_for
from tests.tui.conftest import _env
from tests.tui.terminal import Terminal

SAMPLE = demo.sample_dir("todo")
TASKS = {f"t{i}" for i in range(1, 7)}
SAMPLE_FILES = {"todo/cli.py", "todo/store.py", "README.md"}

# The process that starts the run: prints the Detached as JSON, then waits to be killed.
PARENT = """
import sys, time, msgspec
from pathlib import Path
from autonoma import demo
from autonoma.project import find
from autonoma.workflow.background import start_detached
from autonoma.workflow.run import RunOptions

root = Path(sys.argv[1])
sample = demo.sample_dir("todo")
options = RunOptions(
    requirements=root / "requirements.md",
    max_workers=2,
    scenario=sample / "scenario.toml",
    path_prefix=(demo.python_bin(),),
)
print(msgspec.json.encode(start_detached(find(root), options)).decode(), flush=True)
time.sleep(600)
"""


def demo_project(parent: Path) -> Path:
    return demo.make_repository(SAMPLE, parent / "todo")


def run_over(root: Path, run_id: str, timeout: float) -> RunFinished:
    """The run's `RunFinished`, once journaled and its process gone (the lock free)."""
    (end,) = wait_for(lambda: messages(journal(root), RunFinished), timeout=timeout, interval=0.2)
    wait_for(lambda: active_run(find(root)) is None, timeout=90, interval=0.2)
    assert [e.run_id for e in envelopes(journal(root), RunFinished)] == [run_id]
    return end


def test_a_detached_run_goes_on_after_its_starter_and_its_process_group_are_killed(
    tmp_path: Path,
) -> None:
    root = demo_project(tmp_path)
    # The starter in a process group of its own, as a shell runs a command: killing the
    # group is what closing a terminal does to what runs in it.
    starter = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(root)],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert starter.stdout is not None
        line = starter.stdout.readline()
        detached = msgspec.json.decode(line, type=Detached)
    finally:
        os.killpg(starter.pid, signal.SIGKILL)
        starter.wait()
    # start_detached returned once the run had journaled its start.
    started = envelopes(journal(root), RunStarted)
    assert [e.run_id for e in started] == [detached.run_id]
    log = Path(detached.log)
    assert log.parent == root / ".autonoma" / "logs" and log.name.endswith(".log")
    time.sleep(1.0)
    assert active_run(find(root)) == detached.pid  # the run, alive, holds the lock
    assert os.getsid(detached.pid) == detached.pid  # in a session of its own

    end = run_over(root, detached.run_id, timeout=240)
    assert end.outcome == "done", log.read_text()
    rows = journal(root)
    assert {m.task_id for m in messages(rows, TaskMerged)} == TASKS
    assert files_on(root, "main") >= SAMPLE_FILES
    # Its log is the plain progress log, to its last line.
    said = log.read_text()
    assert f"Starting run {detached.run_id}" in said
    assert f"Run {detached.run_id}: done. 6 tasks: 6 merged" in said
    assert "Traceback" not in said


@pytest.mark.parametrize(
    ("setting", "requirements", "code", "said"),
    [
        ({"AUTONOMA_MAX_WORKERS": "lots"}, "requirements.md", 2, "AUTONOMA_MAX_WORKERS='lots'"),
        ({}, "missing.md", 1, "missing.md: no such file"),
    ],
)
def test_a_check_failing_in_the_child_is_its_one_line_and_exit_code(
    tmp_path: Path,
    clean_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    setting: dict[str, str],
    requirements: str,
    code: int,
    said: str,
) -> None:
    root = make_project(tmp_path)
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    options = RunOptions(
        requirements=root / requirements, scenario=model_file(root, "approves_all.toml")
    )
    with pytest.raises(DetachFailed) as failed:
        start_detached(find(root), options, timeout_s=30)
    error = failed.value
    assert error.exit_code == code
    assert said in str(error) and "\n" not in str(error)
    assert "Traceback" not in str(error) and not str(error).startswith("autonoma:")
    # The same line and code as the plain `autonoma start` gives.
    plain = subprocess.run(
        [sys.executable, "-m", "autonoma", "start", requirements, "--no-tui"],
        cwd=root,
        env={**clean_env, **setting},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == code
    assert plain.stderr.strip() == f"autonoma: {error}"
    # Nothing ran: no run in the journal, no log left behind.
    assert not list((root / ".autonoma" / "logs").glob("run-*.log"))


def sync_pilot(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a pilot scenario in its own event loop."""
    asyncio.run(coroutine)


async def wait_until(check: Callable[[], bool], timeout: float) -> None:
    """Let the app run until ``check`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.1)


def test_quitting_while_the_run_goes_on_asks_leave_keeps_it_stop_ends_it(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    root = make_project(tmp_path)
    project = find(root)
    options = RunOptions(
        requirements=root / "requirements.md",
        scenario=model_file(root, "paced.toml"),
        max_workers=1,
    )
    detached = start_detached(project, options)
    db = project.state_db
    try:
        # A second run while this one holds the lock: refused, in one line.
        with pytest.raises(DetachFailed) as busy:
            start_detached(project, options, timeout_s=30)
        assert busy.value.exit_code == 1
        assert f"a run is already active in this project (pid {detached.pid})" in str(busy.value)

        async def leave() -> None:
            link = RunLink(running=lambda: background.alive(detached), started_here=True)
            app = Dashboard(JournalSource(db, detached.run_id), link=link)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("q")
                await pilot.pause()
                assert isinstance(app.screen, QuitDialog)
                await pilot.press("escape")  # cancel: back to the dashboard
                await pilot.pause()
                assert not isinstance(app.screen, QuitDialog)
                await pilot.press("q")
                await pilot.pause()
                assert isinstance(app.screen, QuitDialog)
                await pilot.press("l")
                await wait_until(lambda: app.return_value is not None, 10)
            assert app.return_value == "left"

        sync_pilot(leave())
        assert background.alive(detached)
        # `autonoma status` names the process the run goes on in.
        status = subprocess.run(
            [sys.executable, "-m", "autonoma", "status"],
            cwd=root,
            env=clean_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert f"  process: pid {detached.pid} (" in status.stdout, status.stdout
        assert not messages(journal(root), StopRequested)
        assert not messages(journal(root), RunFinished)

        async def stop() -> None:
            # As `autonoma dashboard` opens it: not the run's starter.
            app = Dashboard(
                JournalSource(db),
                control=control_command(project),
                link=watching(project, None),
                refresh_s=0.1,
            )
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("ctrl+c")
                await pilot.pause()
                assert isinstance(app.screen, QuitDialog)
                await pilot.press("s")
                await pilot.pause()
                assert isinstance(app.screen, Stopping)
                await wait_until(lambda: app.return_value is not None, 120)
            assert app.return_value == "stopped"

        sync_pilot(stop())
        rows = journal(root)
        (asked,) = envelopes(rows, StopRequested)
        assert asked.run_id == detached.run_id
        (end,) = messages(rows, RunFinished)
        assert end.outcome == "stopped"
        # The run's process ended as `autonoma start` does on a stop.
        assert background.exit_code(detached, timeout=60) == 130
    finally:
        if background.alive(detached):
            os.kill(detached.pid, signal.SIGKILL)


def test_the_demo_left_running_from_the_dashboard_ends_and_dashboard_comes_back(
    tmp_path: Path,
) -> None:
    where = tmp_path / "todo"
    # One developer: the run lasts long enough to be left in the middle.
    argv = [sys.executable, "-m", "autonoma", "demo", "--dir", str(where), "--max-workers", "1"]
    term = Terminal(argv, tmp_path, _env())
    try:
        term.wait_for(lambda s: "developing" in s, "a task under way", timeout=120)
        term.keys("q")
        term.wait_for(lambda s: "is still going" in s, "the quit dialog", timeout=20)
        term.keys("l")
        after = term.wait_for(lambda s: "EXIT=" in s, "the shell prompt", timeout=30)
        going = not messages(journal(where), RunFinished)
    finally:
        term.close()  # the terminal goes: its session gets SIGHUP, the run must not
    assert "EXIT=0" in after, after
    assert "goes on in the background (pid " in after, after
    assert "autonoma dashboard" in after and "autonoma stop" in after
    assert "Traceback" not in after
    assert going, "the run had ended before the prompt returned"
    assert active_run(find(where)) is not None  # it survived the terminal

    back = Terminal([sys.executable, "-m", "autonoma", "dashboard"], where, _env())
    try:
        back.wait_for(lambda s: "6 merged" in s, "the run done, on the dashboard", timeout=240)
        back.keys("q")
        again = back.wait_for(lambda s: "EXIT=" in s, "the dashboard's end", timeout=30)
    finally:
        back.close()
    assert "EXIT=0" in again
    rows = journal(where)
    (end,) = messages(rows, RunFinished)
    assert end.outcome == "done"
    assert {m.task_id for m in messages(rows, TaskMerged)} == TASKS
    assert files_on(where, "main") >= SAMPLE_FILES


def test_start_on_a_terminal_says_a_failed_check_in_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    argv = [sys.executable, "-m", "autonoma", "start", "missing.md"]
    term = Terminal(argv, root, _env())
    try:
        screen = term.wait_for(lambda s: "EXIT=" in s, "the command's end", timeout=60)
    finally:
        term.close()
    assert f"autonoma: {root}/missing.md: no such file" in screen, screen
    assert "EXIT=1" in screen and "Traceback" not in screen
    assert reader.last_seq(root / ".autonoma" / "state.db") == 0


def test_start_on_a_terminal_stopped_from_the_quit_dialog_ends_as_a_stopped_run(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path)
    model = model_file(root, "paced.toml")
    argv = [sys.executable, "-m", "autonoma", "start", "requirements.md"]
    argv += ["--scenario", str(model), "--max-workers", "1"]
    term = Terminal(argv, root, _env(), size=(80, 24))
    try:
        term.wait_for(lambda s: "developing" in s, "a task under way", timeout=120)
        term.keys("q")
        term.wait_for(lambda s: "is still going" in s, "the quit dialog", timeout=20)
        term.keys("s")
        term.wait_for(lambda s: "stopping…" in s, "the stop under way", timeout=20)
        after = term.wait_for(lambda s: "EXIT=" in s, "the command's end", timeout=120)
    finally:
        term.close()
    (end,) = envelopes(journal(root), RunFinished)
    assert end.message.outcome == "stopped"
    assert f"Run {end.run_id}: stopped." in after, after
    assert "EXIT=130" in after and "Traceback" not in after
    assert active_run(find(root)) is None
