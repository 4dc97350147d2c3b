"""What a human asks of a run from the command line: ``autonoma retry`` and ``resolve``.

The request is checked against the latest run's state (the fold, as ``status`` shows
it), then given to the run: through the inbox if a run is active (the journal has one
writer, the run), signed with the project's key, else appended to the journal under that
run's id, where the run finds it when it resumes. Either way it carries its ``origin``.
"""

from __future__ import annotations

import time
from typing import Literal

from autonoma import project as projects
from autonoma.hints import command, resume_command
from autonoma.journal import reader
from autonoma.journal.writer import Journal
from autonoma.protocol import Envelope, ResolveRequested, RetryRequested
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


def request(project: projects.Project, kind: Kind, task_id: str, note: str) -> str:
    """Give ``kind`` for ``task_id`` to the latest run; returns the line to print."""
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
    # Who and where, journaled with the command: the run's record names its human.
    origin = inbox.origin()
    message = (
        RetryRequested(task_id=task_id, note=note, origin=origin)
        if kind == "retry"
        else ResolveRequested(task_id=task_id, note=note, origin=origin)
    )
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
