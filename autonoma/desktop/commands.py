"""A client's ``command`` frame, given to the run as ``autonoma pause`` and the others do.

pause, resume, stop, retry and resolve go through `autonoma.workflow.human.send` (checked
against the run's state, posted to the active run's inbox, or journaled for the next
start), their ``origin`` naming the gateway and the client's address. start starts
``autonoma start REQUIREMENTS`` for the project in a process of its own
(`autonoma.workflow.background.start_detached`) when no run is active. Blocks on the
disk, and start up to a minute for the run to journal its start: call from a worker
thread.
"""

from __future__ import annotations

from autonoma import project as projects
from autonoma.desktop import files
from autonoma.desktop.frames import CommandRequest
from autonoma.journal.schema import JournalError
from autonoma.protocol import (
    PauseRequested,
    ResolveRequested,
    ResumeRequested,
    RetryRequested,
    StopRequested,
)
from autonoma.workflow import background, human, inbox
from autonoma.workflow.run import RunOptions

START_TIMEOUT = 60.0
"""Seconds ``start`` waits for the new run to journal its start."""


class Refused(Exception):
    """The command was not taken; ``str`` is the one line for the client."""


def origin_of(peer: str) -> str:
    """The ``origin`` a command from ``peer`` carries: the gateway, the peer, this process."""
    return f"gateway, client {peer}, {inbox.origin()}"


def run_command(project: projects.Project, request: CommandRequest, peer: str) -> str:
    """Give ``request`` to the run; the one line the CLI would print for it.

    Raises `Refused` (one line) when it is not taken.
    """
    origin = origin_of(peer)
    name = request.command
    try:
        if name in ("retry", "resolve"):
            if not request.task_id:
                raise Refused(f"{name} needs a task_id")
            message: inbox.Command = (
                RetryRequested(task_id=request.task_id, note=request.note, origin=origin)
                if name == "retry"
                else ResolveRequested(task_id=request.task_id, note=request.note, origin=origin)
            )
            return human.send(project, message)
        if name == "pause":
            return human.send(project, PauseRequested(origin=origin))
        if name == "resume":
            return human.send(project, ResumeRequested(origin=origin))
        if name == "stop":
            return human.send(project, StopRequested(origin=origin))
        if name == "start":
            return _start(project, request.requirements or "")
    except (projects.ProjectError, inbox.InboxError, JournalError, OSError) as err:
        raise Refused(str(err)) from None
    raise Refused(f"unknown command {name!r}")


def _start(project: projects.Project, requirements: str) -> str:
    """Start a run of ``requirements`` (relative to the project) unless one is active."""
    try:
        path = files.requirements_file(project.root, requirements)
    except (files.OutsideProject, FileNotFoundError) as err:
        raise Refused(str(err)) from None
    pid = projects.active_run(project)
    if pid is not None:
        raise Refused(f"a run is already active (pid {pid}): stop it first")
    try:
        started = background.start_detached(
            project, RunOptions(requirements=path), timeout_s=START_TIMEOUT
        )
    except background.DetachFailed as err:
        raise Refused(str(err)) from None
    return (
        f"Run {started.run_id} started in the background "
        f"(pid {started.pid}; its log: {started.log})"
    )
