"""What a human asks of a run: ``autonoma retry``, ``resolve``, ``pause``, ``resume``, ``stop``.

`send` is the one way in, for the command line and the dashboard alike. A request is
checked against the latest run's state (the fold, as ``status`` shows it), then given
to the run: through the inbox if a run is active (the journal has one writer, the run),
signed with the project's key. With no active run, a retry or a resolve is appended to
the journal under that run's id, where the run finds it when it resumes; a pause, a
resume or a stop is refused (there is nothing to pause, and a pause waiting for the next
start would only surprise). Either way it carries its ``origin``.
"""

from __future__ import annotations

import time
from typing import Literal

import msgspec

from autonoma import project as projects
from autonoma.hints import command, resume_command
from autonoma.journal import reader
from autonoma.journal.writer import Journal
from autonoma.protocol import (
    Envelope,
    PauseRequested,
    ResolveRequested,
    ResumeRequested,
    RetryRequested,
    StopRequested,
)
from autonoma.workflow import inbox

Kind = Literal["retry", "resolve"]

SENDER = "human"
"""Who the journal says sent a human's request."""

RECIPIENT = "orchestrator"

ALLOWED: dict[Kind, frozenset[str]] = {
    "retry": frozenset({"escalated", "failed"}),
    # pending and ready too: a human may finish by hand a task no agent has started.
    "resolve": frozenset({"escalated", "failed", "pending", "ready"}),
}
"""The task states each request makes sense in."""

APPEND_TIMEOUT = 30.0
"""Seconds to wait for the journal to commit the request."""


class HumanCommandError(projects.ProjectError):
    """A request that cannot be made (no run, unknown task, wrong state); one line."""


RunCommand = PauseRequested | ResumeRequested | StopRequested

NAMES: dict[type[inbox.Command], str] = {
    RetryRequested: "retry",
    ResolveRequested: "resolve",
    PauseRequested: "pause",
    ResumeRequested: "resume",
    StopRequested: "stop",
}
"""Each command as the user types it."""

NO_ACTIVE_RUN = "no run is active"


def send(project: projects.Project, message: inbox.Command) -> str:
    """Give a human's command to the run; returns the one line to show the user.

    ``message`` is any of `autonoma.workflow.inbox.COMMANDS`; an empty ``origin`` is
    filled with this process's (`inbox.origin`). Raises `HumanCommandError` (one line)
    when it is refused: no run, an unknown task or one in the wrong state, or (for a
    pause, resume or stop) no active run. Blocks on the disk only (an fsync, or a
    journal append when no run is active), never on the run.
    """
    if not message.origin:
        message = msgspec.structs.replace(message, origin=inbox.origin())
    if isinstance(message, RetryRequested | ResolveRequested):
        kind: Kind = "retry" if isinstance(message, RetryRequested) else "resolve"
        return _task_request(project, kind, message)
    return _run_command(project, message)


def request(project: projects.Project, kind: Kind, task_id: str, note: str) -> str:
    """Give ``kind`` for ``task_id`` to the latest run; returns the line to print."""
    message = (
        RetryRequested(task_id=task_id, note=note)
        if kind == "retry"
        else ResolveRequested(task_id=task_id, note=note)
    )
    return send(project, message)


def _run_command(project: projects.Project, message: RunCommand) -> str:
    """Post a pause, resume or stop to the active run; refused when none is active."""
    name = NAMES[type(message)]
    run_id = reader.latest_run(project.state_db) if project.state_db.exists() else None
    try:
        lock = projects.acquire_run_lock(project)
    except projects.RunActiveError as active:
        if run_id is None:
            raise HumanCommandError(f"{NO_ACTIVE_RUN} yet: the run is starting") from None
        try:
            inbox.post(project.inbox, projects.secret_key(project), run_id, message)
        except inbox.InboxError as err:
            raise HumanCommandError(str(err)) from None
        return f"{name} sent to the running run {run_id} (pid {active.pid})"
    lock.release()
    raise HumanCommandError(f"{NO_ACTIVE_RUN}: nothing to {name}")


def _task_request(
    project: projects.Project, kind: Kind, message: RetryRequested | ResolveRequested
) -> str:
    """A retry or a resolve: to the active run, or journaled for the next start."""
    task_id = message.task_id
    db = project.state_db
    run_id = reader.latest_run(db)
    if run_id is None:
        raise HumanCommandError(f"no run in this project yet: there is no task to {kind}")
    state = reader.replay(db, run_id=run_id)
    task = state.tasks.get(task_id)
    if task is None:
        known = ", ".join(state.tasks) or "none yet"
        raise HumanCommandError(f"no task {task_id!r} in run {run_id} (its tasks: {known})")
    if task.state not in ALLOWED[kind]:
        raise HumanCommandError(_refusal(kind, task_id, task.state))
    run = state.runs.get(run_id)
    resume = resume_command(run) if run is not None else command("start", "requirements.md")
    try:
        # Held while appending: no run starts (and opens the journal) meanwhile.
        lock = projects.acquire_run_lock(project)
    except projects.RunActiveError as active:
        # Signed with the project's key: the run acts on no file an agent could forge.
        try:
            inbox.post(project.inbox, projects.secret_key(project), run_id, message)
        except inbox.InboxError as err:
            raise HumanCommandError(str(err)) from None
        return f"{task_id}: {kind} sent to the active run (pid {active.pid})"
    with lock:
        client = Journal.open(db)
        try:
            client.append_durable(
                Envelope(
                    seq=0,
                    ts=time.time(),
                    run_id=run_id,
                    sender=SENDER,
                    recipient=RECIPIENT,
                    message=message,
                ),
                timeout=APPEND_TIMEOUT,
            )
        finally:
            client.stop()
    what = "retried" if kind == "retry" else "marked resolved"
    return f"{task_id} will be {what} when the run resumes: {resume}"


def _refusal(kind: Kind, task_id: str, state: str) -> str:
    """Why ``kind`` makes no sense for a task in ``state``, in one line."""
    if state == "merged":
        return f"{task_id} is already merged: nothing to {kind}"
    if state == "resolved":
        return f"{task_id} was already resolved by hand: nothing to {kind}"
    if state in ("pending", "ready"):  # only a retry gets here
        return f"{task_id} is {state}: it has not been tried yet, so there is nothing to retry"
    *others, last = sorted(ALLOWED[kind])
    allowed = f"{', '.join(others)} or {last}"
    return f"{task_id} is {state} (work on it goes on): {kind} applies to a task {allowed}"
