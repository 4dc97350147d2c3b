"""The project's set-up command: run in a worktree, bounded, timed, and told as a `SetupRan`.

A set-up (``pip install``, ``npm ci``) may take minutes, so the orchestrator never runs
one in its mailbox: `SetupRunner` runs each in a worker thread, which reports the
`SetupRan` through a callback (the orchestrator's ``tell``). The merge queue runs its
own with `run_setup`, in its own mailbox, right before the tests.

Package managers' caches are shared by every worktree of the project (`cache_env`), so
a second worktree's set-up reuses what the first one downloaded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from autonoma.protocol import SetupPlace, SetupRan
from autonoma.workflow.checks import kill_check, run_check
from autonoma.workflow.confine import Confinement

OUTPUT_TAIL = 2000
"""Characters of a set-up's output kept in the journal."""

REASON_TAIL = 600
"""Characters of a failed set-up's output carried in the task's reason."""


def cache_env(autonoma_dir: Path) -> dict[str, str]:
    """pip's and npm's cache folders under ``.autonoma/cache/`` (absolute paths).

    Set for the set-up, the tests and the agents: every worktree's installs share them.
    """
    cache = autonoma_dir.absolute() / "cache"
    return {"PIP_CACHE_DIR": str(cache / "pip"), "npm_config_cache": str(cache / "npm")}


def run_setup(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    *,
    task_id: str | None,
    place: SetupPlace,
    started: Callable[[int], None] | None = None,
    confinement: Confinement | None = None,
) -> SetupRan:
    """Run ``command`` in ``cwd`` (blocks until it ends or ``timeout`` passes); its `SetupRan`.

    Its whole process group is killed on timeout (`autonoma.workflow.checks.run_check`).
    With ``confinement`` it runs under bubblewrap, its network limited to the package
    registries (`autonoma.workflow.registry_proxy`); the `SetupRan` still names
    ``command`` as the model wrote it. Never raises for a command that cannot run.
    """
    began = time.monotonic()
    try:
        outcome = run_check(
            command,
            cwd,
            env,
            timeout,
            started=started,
            confinement=confinement,
            network="registries",
        )
    except OSError as error:  # the worktree went away, no /bin/sh
        return SetupRan(
            task_id=task_id,
            command=command,
            exit_code=None,
            duration_s=round(time.monotonic() - began, 3),
            output_tail=f"autonoma: cannot run the set-up: {error}",
            place=place,
            worktree=str(cwd),
        )
    return SetupRan(
        task_id=task_id,
        command=command,
        exit_code=outcome.exit_code,
        duration_s=round(time.monotonic() - began, 3),
        output_tail=outcome.output[-OUTPUT_TAIL:],
        timed_out=outcome.timed_out,
        place=place,
        worktree=str(cwd),
    )


def failure_reason(ran: SetupRan) -> str:
    """Why a failed set-up failed, in one reason: the command, how it ended, its output's end."""
    how = (
        "timed out"
        if ran.timed_out
        else "could not start"
        if ran.exit_code is None
        else f"exit code {ran.exit_code}"
    )
    tail = " ".join(ran.output_tail[-REASON_TAIL:].split())
    return f"the set-up command `{ran.command}` failed ({how}): {tail or '(no output)'}"


class SetupRunner:
    """Runs set-up commands in worker threads, one per task at most; `stop` kills them all."""

    def __init__(
        self, env: Mapping[str, str], timeout: float, confinement: Confinement | None = None
    ) -> None:
        self.env = dict(env)
        self.timeout = timeout
        self.confinement = confinement
        """Bubblewrap for every set-up (the ``sandbox`` setting); None: unconfined."""
        self._lock = threading.Lock()
        self._running: dict[str, int | None] = {}
        """Task id -> the process group of its set-up (None until it has started)."""
        self._stopped = False

    def running(self, task_id: str) -> bool:
        """Whether ``task_id``'s set-up is under way (or ended and not yet `forget`-ten)."""
        with self._lock:
            return task_id in self._running

    def start(
        self,
        task_id: str,
        command: str,
        cwd: Path,
        report: Callable[[SetupRan], None],
        place: SetupPlace = "task",
    ) -> bool:
        """Start ``task_id``'s set-up in a thread (never blocks); False if one runs already.

        ``report`` gets its `SetupRan` from that thread, unless the runner was stopped.
        """
        with self._lock:
            if self._stopped or task_id in self._running:
                return False
            self._running[task_id] = None

        def started(group: int) -> None:
            with self._lock:
                self._running[task_id] = group
                stopped = self._stopped
            if stopped:
                kill_check(group)

        def work() -> None:
            try:
                ran = run_setup(
                    command,
                    cwd,
                    self.env,
                    self.timeout,
                    task_id=task_id,
                    place=place,
                    started=started,
                    confinement=self.confinement,
                )
            finally:
                with self._lock:
                    # Its group is gone; it stays "running" until its owner has heard of
                    # it (`forget`), so that it is not started twice meanwhile.
                    self._running[task_id] = None
                    stopped = self._stopped
            if not stopped:
                with contextlib.suppress(Exception):
                    report(ran)

        threading.Thread(target=work, name=f"setup-{task_id}", daemon=True).start()
        return True

    def forget(self, task_id: str) -> None:
        """The owner has heard of ``task_id``'s set-up: a new one may start."""
        with self._lock:
            self._running.pop(task_id, None)

    def stop(self) -> None:
        """Kill every set-up under way (from any thread); none starts after."""
        with self._lock:
            self._stopped = True
            groups = [g for g in self._running.values() if g is not None]
        for group in groups:
            kill_check(group)


__all__ = ["SetupRunner", "cache_env", "failure_reason", "run_setup"]
