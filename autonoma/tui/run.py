"""Opening the dashboard: on its own (``autonoma dashboard``), or on a run the command
just started in the background (``autonoma start``, ``autonoma demo``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from autonoma import config
from autonoma import project as projects
from autonoma.journal import reader
from autonoma.project import Project
from autonoma.tui.app import Dashboard, RunLink
from autonoma.tui.quit import Quit
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
) -> Quit:
    """Run the dashboard on the terminal until the user quits (blocks); how it ended.

    ``link`` None: the run shown, if it is the active one, may be stopped or left
    running on quitting (`watching`)."""
    app = Dashboard(
        open_source(project.state_db, run_id),
        at=at,
        command=human_command(project),
        control=control_command(project),
        link=watching(project, run_id) if link is None else link,
        notify=notify,
        budget_usd=settings.budget_usd,
        task_budget_usd=settings.task_budget_usd,
        max_retries=settings.max_retries,
    )
    # None: the app ended without a choice (an error Textual already showed).
    return app.run() or "quit"


def watching(project: Project, run_id: str | None) -> RunLink:
    """The link of ``autonoma dashboard``: the run shown goes on while a process holds the
    project's run lock and it is the latest run (the one that process runs)."""

    def running() -> bool:
        if projects.active_run(project) is None:
            return False
        latest = reader.latest_run(project.state_db)
        return run_id is None or run_id == latest

    return RunLink(running=running)
