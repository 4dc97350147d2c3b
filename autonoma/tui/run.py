"""Opening the dashboard: on its own (``autonoma dashboard``) or beside a run in this process."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from autonoma import config
from autonoma.project import Project
from autonoma.tui.app import Dashboard, RunLink
from autonoma.tui.source import open_source

ControlKind = Literal["pause", "resume", "stop"]


def human_command(project: Project) -> Callable[[str, str, str], str]:
    """What the dashboard's retry and resolve keys call: `autonoma.workflow.human`."""
    from autonoma.workflow import human

    def send(kind: str, task_id: str, note: str) -> str:
        if kind not in ("retry", "resolve"):
            raise ValueError(f"unknown command {kind}")
        return human.request(project, "retry" if kind == "retry" else "resolve", task_id, note)

    return send


def control_command(project: Project) -> Callable[[str], str]:
    """What the pause, resume and stop keys call: `autonoma.workflow.human.send`, as
    ``autonoma pause``/``resume``/``stop`` do. Raises `HumanCommandError` (one line) when
    refused (no active run); the dashboard shows it."""
    from autonoma.protocol import PauseRequested, ResumeRequested, StopRequested
    from autonoma.workflow import human

    commands: dict[str, type[PauseRequested | ResumeRequested | StopRequested]] = {
        "pause": PauseRequested,
        "resume": ResumeRequested,
        "stop": StopRequested,
    }

    def send(kind: str) -> str:
        made = commands.get(kind)
        if made is None:
            raise ValueError(f"unknown command {kind}")
        return human.send(project, made())

    return send


def open_dashboard(
    project: Project,
    settings: config.Settings,
    *,
    run_id: str | None = None,
    at: int | None = None,
    notify: bool = True,
    link: RunLink | None = None,
) -> None:
    """Run the dashboard on the terminal until the user quits (blocks)."""
    app = Dashboard(
        open_source(project.state_db, run_id),
        at=at,
        command=human_command(project),
        control=control_command(project),
        link=link,
        notify=notify,
        budget_usd=settings.budget_usd,
        task_budget_usd=settings.task_budget_usd,
        max_retries=settings.max_retries,
    )
    app.run()


@dataclass
class Background:
    """A function run in a thread of its own, its result or error kept for the caller."""

    target: Callable[[], object]
    result: object = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="autonoma-run", daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.target()
        except BaseException as err:
            self.error = err

    def start(self) -> None:
        """Start the thread (returns at once)."""
        self.thread.start()

    def running(self) -> bool:
        """True until the function returned or raised."""
        return self.thread.is_alive()

    def interrupt(self) -> None:
        """Raise KeyboardInterrupt in the thread, as Ctrl-C does on the main thread.

        `autonoma.workflow.run.execute` waits in a loop that wakes every half second;
        it takes the interrupt there and stops the run cleanly, as after a Ctrl-C.
        """
        ident = self.thread.ident
        if ident is not None and self.thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
            )
