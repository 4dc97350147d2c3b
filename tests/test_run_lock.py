"""One active run per project: the run lock, held by a real second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autonoma import hints
from autonoma.project import (
    Project,
    ProjectError,
    RunActiveError,
    acquire_run_lock,
    active_run,
)
from tests.conftest import run_autonoma

_HOLDER = """
import sys
from pathlib import Path
from autonoma.project import Project, acquire_run_lock
lock = acquire_run_lock(Project(Path(sys.argv[1])))
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def hold_run_lock(root: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the run lock of the project at ``root`` until the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "held\n", child.stderr.read() if child.stderr else line
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        for stream in (child.stdin, child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def test_held_and_released_in_this_process(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert active_run(project) is None
    assert not (tmp_path / ".autonoma").exists()  # probing creates nothing
    with acquire_run_lock(project) as lock:
        assert lock.held and lock.pid == os.getpid()
        assert active_run(project) == os.getpid()
        # A second acquire, even here, is refused: flock is per open file.
        with pytest.raises(RunActiveError) as refused:
            acquire_run_lock(project)
        assert refused.value.pid == os.getpid()
        record = project.run_lock.read_text().split()
        assert record[0] == str(os.getpid()) and float(record[1]) == pytest.approx(lock.started)
    assert not lock.held
    assert active_run(project) is None
    lock.release()  # again: nothing happens
    with acquire_run_lock(project):
        pass


def test_another_process_holds_it(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with hold_run_lock(tmp_path) as holder:
        assert active_run(project) == holder.pid
        with pytest.raises(ProjectError) as refused:
            acquire_run_lock(project)
        assert str(refused.value) == (
            f"a run is already active in this project (pid {holder.pid}): "
            f"wait for it to end, or stop it: `{hints.command('stop')}`"
        )
        assert "\n" not in str(refused.value)
        assert holder.stdin is not None
        holder.stdin.close()  # it ends normally
        assert holder.wait(timeout=10) == 0
    assert active_run(project) is None
    with acquire_run_lock(project) as lock:
        assert project.run_lock.read_text().split()[0] == str(lock.pid)


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    project = Project(tmp_path)
    with hold_run_lock(tmp_path) as holder:
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
        # Its pid is still written in the file; the lock is what counts.
        assert project.run_lock.read_text().split()[0] == str(holder.pid)
        assert active_run(project) is None
        with acquire_run_lock(project) as lock:
            assert active_run(project) == lock.pid == os.getpid()


def test_children_of_the_run_do_not_inherit_the_lock(tmp_path: Path) -> None:
    project = Project(tmp_path)
    lock = acquire_run_lock(project)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], close_fds=False)
    try:
        lock.release()
        # The child is alive, yet the lock went with its parent's release. (The kernel
        # closes close-on-exec descriptors a moment after Popen returns: hence the wait.)
        deadline = time.monotonic() + 5
        while active_run(project) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None
        assert active_run(project) is None
    finally:
        child.kill()
        child.wait()


def test_probes_never_make_an_acquire_fail(tmp_path: Path) -> None:
    project = Project(tmp_path)
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            active_run(project)

    probers = [threading.Thread(target=probe) for _ in range(3)]
    for thread in probers:
        thread.start()
    try:
        for _ in range(200):
            acquire_run_lock(project).release()
    finally:
        stop.set()
        for thread in probers:
            thread.join()


def test_clean_refuses_while_a_run_is_active(git_repo: Path, clean_env: dict[str, str]) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    with hold_run_lock(git_repo) as holder:
        result = run_autonoma("clean", "--yes", cwd=git_repo, env=clean_env)
        assert result.returncode == 1
        assert result.stderr == (
            f"autonoma: a run is already active in this project (pid {holder.pid}): "
            f"wait for it to end, or stop it: `{hints.command('stop')}`\n"
        )
    assert (git_repo / ".autonoma" / "state.db").exists()
    assert run_autonoma("clean", "--yes", cwd=git_repo, env=clean_env).returncode == 0
