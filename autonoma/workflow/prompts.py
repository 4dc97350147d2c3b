"""What each turn of the run asks an agent: role prompts filled in, and the follow-ups.

Pure text: the orchestrator decides which one a turn needs. A follow-up goes to the
same claude session (``--resume``), so it only says what is new: why the work came
back, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from autonoma.agents.roles import Role, render
from autonoma.journal.fold import Report, Task, Verdict
from autonoma.protocol import ProjectCommands

NONE = "(none)"

# Enough of a failing output to act on, small enough for one argv string.
OUTPUT_CHARS = 6000


def bullets(items: Sequence[str]) -> str:
    """A markdown list, or ``(none)``."""
    return "\n".join(f"- {item}" for item in items) if items else NONE


_TASK_FIELDS = frozenset({"task_id", "task_title", "spec", "acceptance", "files", "claude_md"})

GIVEN: dict[str, frozenset[str]] = {
    "ceo": frozenset({"requirements", "claude_md"}),
    "staff_engineer": frozenset({"requirements", "plan", "claude_md"}),
    "developer": _TASK_FIELDS | {"feedback", "commands"},
    "qa": _TASK_FIELDS
    | {"base_ref", "attempt", "test_command", "developer_report", "previous_review"},
}
"""The placeholders each role's prompt is filled with (the functions below give them)."""

# Their answers are read as structured output: without a schema there is nothing to read.
NEEDS_SCHEMA = frozenset({"ceo", "staff_engineer", "qa"})


def role_problem(role: Role) -> str | None:
    """Why a role file cannot be used by a run (one line naming the file), or None.

    Checked at start, before any agent runs: a placeholder nobody fills, or a role whose
    answer is read as structured output without a schema, would fail only mid-run.
    """
    unknown = sorted(role.placeholders - GIVEN.get(role.name, frozenset()))
    if unknown:
        names = ", ".join(f"${name}" for name in unknown)
        known = ", ".join(f"${name}" for name in sorted(GIVEN.get(role.name, ())))
        return (
            f"{role.path}: the prompt uses {names}, which Autonoma never fills for the "
            f"{role.name} role (it gives {known}; write $$ for a literal $)"
        )
    if role.name in NEEDS_SCHEMA and role.schema is None:
        return (
            f"{role.path}: the {role.name} role needs a 'schema' (its answer is read as "
            "structured output): copy it from the packaged role file"
        )
    return None


def ceo_prompt(role: Role, requirements: str, claude_md: str) -> str:
    """The CEO's planning turn."""
    return render(role, requirements=requirements, claude_md=claude_md or NONE)


def staff_prompt(role: Role, requirements: str, plan: str, claude_md: str) -> str:
    """The Staff Engineer's decomposition turn."""
    return render(role, requirements=requirements, plan=plan, claude_md=claude_md or NONE)


def _task_fields(task: Task, claude_md: str) -> dict[str, str]:
    """What the developer's and QA's templates say about the task."""
    return {
        "task_id": task.task_id,
        "task_title": task.title,
        "spec": task.spec,
        "acceptance": bullets(task.acceptance),
        "files": bullets(task.files),
        "claude_md": claude_md or NONE,
    }


def commands_text(commands: ProjectCommands | None) -> str:
    """What a developer is told about the project's set-up and test commands."""
    commands = commands or ProjectCommands()
    setup = (
        f"- Set-up: `{commands.setup_command}`. It already ran in this worktree. When you "
        "add a dependency, declare it in the project's manifest, then run it again."
        if commands.setup_command
        else "- Set-up: none. When you add a dependency, declare it in the project's "
        "manifest and install it into this clone with the project's package manager."
    )
    return f"{setup}\n- Tests: {tests_text(commands)}"


def tests_text(commands: ProjectCommands | None) -> str:
    """How the project's tests are run (QA's ``$test_command``, and the developer's)."""
    commands = commands or ProjectCommands()
    if commands.test_command:
        return (
            f"run `{commands.test_command}` (exactly this: the merge gate runs it on every "
            "merged result). While the project has no tests yet, a run that collects none "
            "(pytest's exit code 5, `# tests 0` from `node --test`) is not a failure."
        )
    if commands.tests_opted_out:
        return (
            'the user opted out of automated tests (test_command = "none"): check the work '
            "by reading it and by running what the acceptance criteria name."
        )
    return (
        "no project test command is known: run the tests the project has (e.g. `pytest -q`, "
        "`npm test`). Merging is refused until a test command is set."
    )


def developer_prompt(
    role: Role,
    task: Task,
    claude_md: str,
    feedback: str = "",
    commands: ProjectCommands | None = None,
) -> str:
    """A developer's first turn on a task (a fresh session)."""
    return render(
        role,
        **_task_fields(task, claude_md),
        feedback=feedback or NONE,
        commands=commands_text(commands),
    )


def qa_prompt(
    role: Role,
    task: Task,
    base_ref: str,
    review: int,
    claude_md: str,
    commands: ProjectCommands | None = None,
) -> str:
    """QA's review of a task's branch; ``review`` counts the reviews of this task from 1.

    It names the project's test command, says what the developer reported at the end of
    its latest turn and, on a re-review, QA's previous verdict (the developer's report
    then answers it).
    """
    return render(
        role,
        **_task_fields(task, claude_md),
        base_ref=base_ref,
        attempt=str(review),
        test_command=tests_text(commands),
        developer_report=report_text(task.report),
        previous_review=previous_review(task.verdicts),
    )


def report_text(report: Report | None) -> str:
    """A developer's report, as QA's prompt quotes it."""
    if report is None:
        return "(the developer gave no report)"
    if not report.structured:
        summary = report.summary.strip() or "(nothing)"
        return f"The developer gave no structured report; its last words:\n\n{summary}"
    return (
        f"Summary: {report.summary}\n\nChanges:\n{bullets(report.changes)}\n\n"
        f"Tests: {report.tests or NONE}\n\nLeft to do:\n{bullets(report.left)}"
    )


def previous_review(verdicts: Sequence[Verdict]) -> str:
    """QA's latest verdict on the task, for a re-review; ``(none: ...)`` on the first."""
    if not verdicts:
        return "(none: this is the first review of this task)"
    last = verdicts[-1]
    said = "approved it" if last.verdict == "approve" else "requested changes"
    return (
        f"Review {last.attempt or len(verdicts)} {said}, for these reasons:\n"
        f"{bullets(last.reasons)}\n\nThe developer's report above is its answer to them: "
        "check that every point was acted on."
    )


_FINISH = (
    "Then run the project's tests, fix what fails, and commit your work on your branch "
    "(`git add` the files, then `git commit`). End with a short summary."
)


def rejected(task_id: str, review: int, reasons: Sequence[str]) -> str:
    """QA sent the work back."""
    return (
        f"QA requested changes on task {task_id} (review {review}). "
        f"Act on every point:\n{bullets(reasons)}\n\n{_FINISH}"
    )


def conflicted(task_id: str, files: Sequence[str]) -> str:
    """The branch conflicts with the new integration head; a merge is in progress."""
    return (
        f"Your branch for task {task_id} conflicts with the integration branch, which moved "
        "on while you worked (other tasks were merged). A merge of the new integration head "
        "is in progress in your worktree; these files hold conflict markers:\n"
        f"{bullets(files)}\n\nResolve every conflict so that both your change and theirs "
        "keep working, run the tests, then `git add` the files and `git commit` to conclude "
        f'the merge (message "{task_id}: merge integration"). Do not abort the merge.'
    )


def tests_failed(task_id: str, command: str, output: str) -> str:
    """The tests failed on the merged result."""
    tail = output[-OUTPUT_CHARS:]
    return (
        f"Your branch for task {task_id} merged cleanly, but the tests failed on the merged "
        f"result. Command: `{command}`. Its output (the end of it):\n\n```\n{tail}\n```\n\n"
        "Your branch now holds the merged result. Find and fix the cause. " + _FINISH
    )


def setup_failed(task_id: str, command: str, output: str) -> str:
    """The project's set-up command failed in the merge gate's check worktree."""
    tail = output[-OUTPUT_CHARS:]
    return (
        f"Your branch for task {task_id} merged cleanly, but the project's set-up command "
        f"failed on the merged result. Command: `{command}`. Its output (the end of it):"
        f"\n\n```\n{tail}\n```\n\nYour branch now holds the merged result. Fix the cause "
        "(a dependency missing from the manifest, a broken manifest), run the set-up "
        "command again to check it. " + _FINISH
    )


def turn_failed(task_id: str, reason: str) -> str:
    """The previous turn ended in failure (an error, a timeout, no commit)."""
    return f"Your previous turn on task {task_id} did not finish the task: {reason}\n\n{_FINISH}"


def timeout_reason(kind: str, seconds: float) -> str:
    """Which limit stopped a turn and how long it was, in a few words (status, the log)."""
    if kind == "idle":
        return f"no output for {seconds:g} s (idle timeout)"
    return f"it ran {seconds:g} s (wall-clock timeout)"


STOPPED = "Your previous turn was stopped"
"""How the prompt that resumes a turn stopped for time starts (scenarios match on it)."""


def stopped(kind: str, seconds: float, task_id: str | None = None) -> str:
    """The prompt that resumes a turn stopped for time, in the same session."""
    if kind == "idle":
        limit = f"by Autonoma's idle timeout: it wrote no output for {seconds:g} s"
    else:
        limit = f"by Autonoma's wall-clock limit: it ran for {seconds:g} s"
    what = (
        f"task {task_id}. Do long-running commands in smaller steps that print as they go. "
        + _FINISH
        if task_id is not None
        else "what that turn asked, and end with your complete answer."
    )
    return f"{STOPPED} {limit}. Continue where you left off and finish {what}"


def interrupted(task_id: str, asked: str) -> str:
    """The previous turn was cut off (a crash, a restart): what it was asked, asked again."""
    asked = asked_of(asked)  # interrupted twice: ask the original
    return (
        f"{_INTERRUPTED} {task_id} was interrupted before it finished (Autonoma "
        "restarted). Look at `git status` and `git log` in your worktree to see where you "
        "stopped, and finish what that turn asked. " + _FINISH + _ASKED + asked
    )


def asked_of(prompt: str) -> str:
    """What an `interrupted` prompt asks again (any other prompt: itself)."""
    head, _, inner = prompt.partition(_ASKED)
    return inner if inner and head.startswith(_INTERRUPTED) else prompt


_INTERRUPTED = "Your previous turn on task"
_ASKED = " That turn asked:\n\n"


def human_retry(task_id: str, notes: Sequence[str]) -> str:
    """A human sent an escalated task back, maybe with context."""
    said = f" They added:\n{bullets(notes)}\n\n" if notes else " "
    return (
        f"Task {task_id} was escalated to a human after repeated failures, and the human "
        f"sent it back to you.{said}Look at your worktree (`git status`, `git log`) and "
        "finish the task. " + _FINISH
    )


def plan_rejected(errors: Sequence[str]) -> str:
    """The CEO's plan did not validate."""
    return (
        "Your plan could not be used:\n"
        f"{bullets(errors)}\n\nFix every point and return the whole plan again with the "
        "StructuredOutput tool."
    )


def tasks_rejected(errors: Sequence[str]) -> str:
    """The Staff Engineer's task list did not validate."""
    return (
        "Your task list was rejected:\n"
        f"{bullets(errors)}\n\nFix every point and return the whole task list again with "
        "the StructuredOutput tool."
    )
