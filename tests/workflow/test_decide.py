"""The orchestrator's decisions as a table: one row per way a real claude turn can end.

Each row plays what the bus says about a turn (claude's ``result`` line as the agent
reports it, the process's exit) into the pure `decide`, then asks for the next turn and
checks what a user would see: the task's state and reason in the journal, and what runs
next (the same session resumed, a fresh session, a review, a merge, nothing). The result
lines follow the real transcripts in ``/work/shared/claude-stream/`` (claude 2.1.197).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from autonoma.agents.roles import load_role
from autonoma.journal.fold import apply
from autonoma.protocol import (
    AgentProcessExited,
    AgentSessionStarted,
    AgentStateChanged,
    AgentTurnFinished,
    AgentTurnStarting,
    AnyMessage,
    BudgetReached,
    CostReported,
    Envelope,
    Escalation,
    HumanCommandRejected,
    MergeFailed,
    PauseRequested,
    PlanWritten,
    ProjectCommands,
    ResolveRequested,
    ResumeRequested,
    ReviewVerdict,
    RunFinished,
    RunStarted,
    SchemaRejected,
    SetupRan,
    SpawnsHeld,
    StopRequested,
    TaskDefined,
    TaskFeedback,
    TaskMerged,
    TaskStateChanged,
    WorkCommittedForAgent,
    WorkPaused,
    WorkResumed,
)
from autonoma.workflow.actions import (
    Action,
    CommitForAgent,
    ConflictMerge,
    Emit,
    GivePrompt,
    MoveCheckout,
    PrepareCheckout,
    PrepareWorkspace,
    RemoveCheckout,
    RemoveWorktrees,
    ResumeRoot,
    RunSetup,
    StartTurn,
    StopTurns,
    SubmitMerge,
    WriteFile,
)
from autonoma.workflow.crew import CEO, STAFF_ENGINEER
from autonoma.workflow.decide import (
    decide,
)
from autonoma.workflow.governor import GOVERNOR
from autonoma.workflow.inputs import (
    CheckoutReady,
    Event,
    Heard,
    InboxCommand,
    PromptGiven,
    PromptNotGiven,
    SetupDone,
    SpawnRefused,
    Started,
    StopRun,
    Tick,
    TurnNotStarted,
    TurnSpawned,
    WorkChecked,
    WorkspaceReady,
    WorktreesRemoved,
)
from autonoma.workflow.machine import (
    Config,
    Machine,
    permit,
)

RUN = "run-1"
T = "t1"
DEV = "developer-1"
QA = "qa-1"
NOW = 1_000_000.0
WORKTREE = "/work/t1"
CLONES = Path("/repo/.autonoma/clones") / RUN
REVIEW_1 = str(CLONES / "_review" / "t1-1")
PLAN_DIR = str(CLONES / "_plan")
LIVE = frozenset({CEO, STAFF_ENGINEER, DEV, QA, GOVERNOR})

PLAN = {
    "summary": "A todo list CLI.",
    "milestones": [
        {"id": "m1", "title": "Skeleton", "goal": "A package.", "acceptance": ["pytest passes"]}
    ],
    "assumptions": [],
    "out_of_scope": [],
}
TASKS = {
    "tasks": [
        {
            "id": T,
            "title": "Add items",
            "spec": "Build it.",
            "deps": [],
            "files": ["todo.py"],
            "acceptance": ["pytest passes"],
        }
    ],
    "setup_command": "",
    "test_command": "pytest -q",
}

Kind = Literal["develop", "review", "plan", "decompose"]
Next = Literal["resume", "fresh", "review", "merge", "decompose", "develop", "none"]


# --- what the bus says about a turn (as in the real transcripts) -----------------------


def result(
    *,
    is_error: bool = False,
    subtype: str = "success",
    text: str = "Done. I wrote hello.txt.",
    status: int | None = None,
    errors: tuple[str, ...] = (),
    terminal: str = "completed",
    structured: Any = None,
    denials: tuple[dict[str, Any], ...] = (),
) -> AgentTurnFinished:
    """claude's ``result`` line; agent and session are filled in when played."""
    return AgentTurnFinished(
        agent_id="",
        session_id="",
        subtype=subtype,
        is_error=is_error,
        result=text,
        api_error_status=status,
        terminal_reason=terminal,
        errors=list(errors),
        num_turns=2,
        structured_output=structured,
        permission_denials=list(denials),
    )


def exited(
    code: int | None = 0,
    signal: int | None = None,
    timeout: Literal["", "idle", "wall"] = "",
    limit: float = 0.0,
) -> AgentProcessExited:
    """The process's end; agent and pid are filled in when played."""
    return AgentProcessExited(
        agent_id="",
        exit_code=code,
        signal=signal,
        timed_out=bool(timeout),
        timeout=timeout,
        timeout_s=limit,
    )


@dataclass(frozen=True)
class Checked:
    """The git worker's answer to `CommitForAgent` (``why``: the branch is refused)."""

    why: str = ""


@dataclass(frozen=True)
class Refused:
    """The agent refused to start the turn (`TurnRefused`)."""

    error: str


@dataclass(frozen=True)
class SchemaRefused:
    """claude refused the StructuredOutput call against the role's schema (its tool result)."""

    reason: str


@dataclass(frozen=True)
class Again:
    """The next turn starts (asked for, spawned, its session reported)."""


@dataclass(frozen=True)
class FromGovernor:
    """A message of the governor's (a budget reached, a hold)."""

    message: AnyMessage


Step = (
    AgentTurnFinished
    | AgentProcessExited
    | Checked
    | Refused
    | SchemaRefused
    | Again
    | FromGovernor
)

SUCCESS = result()
FAILED_500 = result(
    is_error=True,
    status=500,
    text="API Error: 500 fake. This is a server-side issue, usually temporary",
    terminal="completed",
)
MAX_TURNS = result(
    is_error=True,
    subtype="error_max_turns",
    text="",
    errors=("Reached maximum number of turns (1)",),
    terminal="max_turns",
)
BUDGET = result(
    is_error=True,
    subtype="error_max_budget_usd",
    text="",
    errors=("Reached maximum budget ($0.5)",),
    terminal="max_budget_usd",
)
RATE_LIMITED = result(is_error=True, status=429, text="API Error: Request rejected (429) · fake")
OVERLOADED = result(is_error=True, status=529, text="API Error: 529 fake.")
DENIED = result(
    denials=(
        {
            "tool_name": "Write",
            "tool_use_id": "toolu_01",
            "tool_input": {"file_path": "/work/t1/hello.txt", "content": "hello\n"},
        },
    )
)
SCHEMA_GAVE_UP = result(
    is_error=True,
    subtype="error_max_structured_output_retries",
    text="",
    errors=("Failed to provide valid structured output after 5 attempts",),
)
SCHEMA_REASON = "Output does not match required schema: root: must have required property 'x'"
SESSION_LOST = result(
    is_error=True,
    subtype="error_during_execution",
    text="",
    errors=("No conversation found with session ID: 5f0c",),
    terminal="",
)
APPROVE = result(
    structured={
        "verdict": "approve",
        "reasons": [],
        "test_command": "pytest -q",
        "test_output_summary": "3 passed",
    }
)
CHANGES = result(
    structured={
        "verdict": "changes_requested",
        "reasons": ["add a test"],
        "test_command": "pytest -q",
        "test_output_summary": "3 passed",
    }
)
NO_VERDICT = result(text="Looks good to me.")
EXIT_0, EXIT_1 = exited(0), exited(1)
KILLED = exited(None, signal=9)
IDLE = exited(None, signal=15, timeout="idle", limit=300)
WALL = exited(None, signal=15, timeout="wall", limit=600)
NOTHING_COMMITTED = Checked("no change was committed on the task's branch")
TASK_BUDGET = FromGovernor(BudgetReached(scope="task", limit_usd=1.0, spent_usd=1.2, task_id=T))


# --- the harness ------------------------------------------------------------------------


def envelope(message: AnyMessage, sender: str = "agent") -> Envelope:
    return Envelope(seq=0, ts=NOW, run_id=RUN, sender=sender, recipient="*", message=message)


class Harness:
    """A machine in one phase, and the plumbing the actor would do around `decide`.

    Git work is answered at once (a worktree made ready); everything else is played by
    the row: the turn's result line, its exit, the commit check's answer.
    """

    def __init__(
        self,
        phase: str,
        *,
        max_retries: int = 2,
        task_budget: float = 0.0,
        budget: float = 0.0,
        commands: ProjectCommands | None = None,
        checkouts: bool = True,
        workspaces: bool = True,
        prestart: bool = False,
        workers: int = 1,
        then: tuple[str, ...] = (),
    ) -> None:
        """``then``: tasks defined after t1, each depending on t1."""
        self.checkouts = checkouts
        self.workspaces = workspaces
        self.base = "base"
        """The integration head a clone is made from (or caught up with)."""
        """Answer `PrepareWorkspace` at once (else the test feeds `WorkspaceReady`)."""
        """Answer `PrepareCheckout` at once (else the row feeds `CheckoutReady` itself)."""
        roles = {name: load_role(name) for name in (CEO, STAFF_ENGINEER, "developer", "qa")}
        config = Config(
            run_id=RUN,
            repo=Path("/repo"),
            plan_path=Path("/repo/.autonoma/plan.json"),
            requirements="A todo list.",
            claude_md="",
            roles=roles,
            workers=workers,
            max_retries=max_retries,
            clones=CLONES,
            budget_usd=budget,
            task_budget_usd=task_budget,
            prestart=prestart,
        )
        ids = itertools.count(1)
        live = LIVE | {f"{r}-{i}" for r in ("developer", "qa") for i in range(1, workers + 1)}
        self.m = Machine(cfg=config, now=NOW, live=live, new_session=lambda: f"s{next(ids)}")
        self.actions: list[Action] = []
        self.mark = 0
        """Actions before this index belong to turns already begun."""
        self.pids = itertools.count(100)
        self.turn: StartTurn | None = None
        self.last: dict[str, StartTurn] = {}
        self.pid = 0
        self.hear(RunStarted(requirements="r.md", project="/repo", max_workers=1), "orchestrator")
        if phase != "planning":
            self.hear(PlanWritten(plan=PLAN, path="/repo/.autonoma/plan.json"), "orchestrator")
        if phase == "development":
            spec = TASKS["tasks"][0]
            defined = TaskDefined(
                task_id=T,
                title=spec["title"],
                deps=[],
                files=spec["files"],
                spec=spec["spec"],
                acceptance=spec["acceptance"],
            )
            self.hear(defined, "orchestrator")
            self.hear(TaskStateChanged(task_id=T, state="pending"), "orchestrator")
            for tid in then:
                after = TaskDefined(
                    task_id=tid,
                    title=f"Then {tid}",
                    deps=[T],
                    files=[f"{tid}.py"],
                    spec="Build on t1.",
                    acceptance=["pytest passes"],
                )
                self.hear(after, "orchestrator")
                self.hear(TaskStateChanged(task_id=tid, state="pending"), "orchestrator")
            if commands is not None:
                self.hear(commands, "orchestrator")
        self.feed(Started())  # what the journal says: the phase follows from it
        assert self.m.fold.run is not None and self.m.fold.run.phase == phase

    # plumbing

    def feed(self, event: Event) -> list[Action]:
        _, actions = decide(self.m, event)
        self.actions.extend(actions)
        for action in actions:
            if isinstance(action, PrepareWorkspace) and self.workspaces:  # done at once
                tid = action.task_id
                where = WORKTREE if tid == T else f"/work/{tid}"
                if action.create:
                    ready = WorkspaceReady(tid, f"autonoma/{tid}", where, self.base, created=True)
                    self.feed(ready)
                else:
                    self.feed(WorkspaceReady(tid))
            elif isinstance(action, PrepareCheckout) and self.checkouts:  # made at once
                self.feed(CheckoutReady(action.purpose, action.path, action.task_id))
        return actions

    def hear(self, message: AnyMessage, sender: str = "agent") -> list[Action]:
        return self.feed(Heard(envelope(message, sender)))

    def emitted(self, kind: type[Any]) -> list[Any]:
        return [
            a.message for a in self.actions if isinstance(a, Emit) and isinstance(a.message, kind)
        ]

    def since_mark(self) -> list[StartTurn | SubmitMerge]:
        return [a for a in self.actions[self.mark :] if isinstance(a, StartTurn | SubmitMerge)]

    def upcoming(self) -> list[StartTurn | SubmitMerge]:
        """What was started since the last turn began; time passes first if nothing was."""
        if not self.since_mark():
            self.feed(Tick())
        return self.since_mark()

    @property
    def task(self) -> Any:
        return self.m.fold.tasks[T]

    # turns

    def begin(self, *, spawn: bool = True) -> StartTurn:
        """The next turn is asked for and (with ``spawn``) runs."""
        starts = [a for a in self.upcoming() if isinstance(a, StartTurn)]
        assert len(starts) == 1, starts
        self.turn = turn = starts[0]
        self.last[turn.kind] = turn
        self.mark = len(self.actions)
        if spawn:
            self.run(turn)
        self.mark = len(self.actions)
        return turn

    def run(self, turn: StartTurn) -> None:
        self.pid = next(self.pids)
        self.feed(TurnSpawned(turn.agent, self.pid))
        role = "developer" if turn.kind == "develop" else turn.role
        starting = AgentTurnStarting(
            agent_id=turn.agent,
            role=role,
            session_id=turn.session_id,
            cwd=turn.cwd,
            argv=["claude", "-p", turn.prompt],
            resume=turn.resume,
            task_id=turn.task_id,
        )
        self.hear(starting)
        started = AgentSessionStarted(
            agent_id=turn.agent, session_id=turn.session_id, task_id=turn.task_id
        )
        self.hear(started)

    def play(self, step: Step) -> None:
        turn = self.turn
        assert turn is not None
        if isinstance(step, AgentTurnFinished):
            fields = {f: getattr(step, f) for f in step.__struct_fields__}
            fields.update(agent_id=turn.agent, session_id=turn.session_id, task_id=turn.task_id)
            self.hear(AgentTurnFinished(**fields))
        elif isinstance(step, AgentProcessExited):
            end = AgentProcessExited(
                agent_id=turn.agent,
                exit_code=step.exit_code,
                signal=step.signal,
                timed_out=step.timed_out,
                timeout=step.timeout,
                timeout_s=step.timeout_s,
                task_id=turn.task_id,
                pid=self.pid,
            )
            self.hear(end)
        elif isinstance(step, Checked):
            commit = [a for a in self.actions if isinstance(a, CommitForAgent)][-1]
            self.feed(WorkChecked(T, commit.agent, why=step.why, refused=commit.refused))
        elif isinstance(step, Refused):
            self.feed(SpawnRefused(turn.agent, step.error))
        elif isinstance(step, SchemaRefused):
            refused = SchemaRejected(
                agent_id=turn.agent, tool_use_id="toolu_01", reason=step.reason, task_id=T
            )
            self.hear(refused)
        elif isinstance(step, Again):
            self.begin()
        else:
            self.hear(step.message, GOVERNOR)


def reviewing(**kw: Any) -> Harness:
    """A task whose developer finished: QA's turn is next."""
    h = Harness("development", **kw)
    h.begin()
    for step in (SUCCESS, EXIT_0, Checked()):
        h.play(step)
    assert h.task.state == "review"
    return h


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    kind: Kind
    steps: tuple[Step, ...]
    state: str
    """The task's state after (for plan/decompose turns: the run's phase)."""
    reason: str
    """A fragment of the task's reason (plan/decompose: of the escalation), "" for none."""
    next: Next
    counted: bool
    """A failed attempt (developer), a failed review (QA) or a rejected answer (phases)."""
    says: str = ""
    """A fragment of the next turn's prompt."""
    spawn: bool = True
    max_retries: int = 2
    task_budget: float = 0.0
    attempts: int = field(default=0)
    """The developer's attempts after (0: 1, or 2 when counted)."""


ROWS = [
    # --- developer turns ---
    Row(
        "success", "develop", (SUCCESS, EXIT_0, Checked()), "review", "QA reviews", "review", False
    ),
    Row(
        "success, work committed for the agent, no summary",
        "develop",
        (result(text="All done, committed."), EXIT_0, Checked()),
        "review",
        "QA reviews",
        "review",
        False,
    ),
    Row(
        "failed (is_error)",
        "develop",
        (FAILED_500, EXIT_1),
        "running",
        "retry: the turn failed (success): API Error: 500",
        "resume",
        True,
        says="did not finish the task",
    ),
    Row(
        "failed, out of retries",
        "develop",
        (FAILED_500, EXIT_1),
        "escalated",
        "failed 1 times; last: the turn failed",
        "none",
        True,
        max_retries=0,
        attempts=1,
    ),
    Row(
        "idle timeout: resumed once, not counted",
        "develop",
        (IDLE,),
        "running",
        "resumed: the turn was stopped: no output for 300 s (idle timeout)",
        "resume",
        False,
        says="Your previous turn was stopped by Autonoma's idle timeout",
    ),
    Row(
        "idle timeout twice: counted",
        "develop",
        (IDLE, Again(), IDLE),
        "running",
        "retry: the turn was stopped again: no output for 300 s (idle timeout)",
        "resume",
        True,
        says="did not finish the task",
    ),
    Row(
        "wall timeout: resumed once, not counted",
        "develop",
        (WALL,),
        "running",
        "resumed: the turn was stopped: it ran 600 s (wall-clock timeout)",
        "resume",
        False,
        says="Your previous turn was stopped by Autonoma's wall-clock limit",
    ),
    Row(
        "wall timeout twice: counted",
        "develop",
        (WALL, Again(), WALL),
        "running",
        "retry: the turn was stopped again: it ran 600 s (wall-clock timeout)",
        "resume",
        True,
    ),
    Row(
        "wall timeout after its result: the result stands",
        "develop",
        (SUCCESS, WALL, Checked()),
        "review",
        "QA reviews",
        "review",
        False,
    ),
    Row(
        "max turns",
        "develop",
        (MAX_TURNS, EXIT_1),
        "running",
        "retry: the turn failed (error_max_turns): Reached maximum number of turns (1)",
        "resume",
        True,
    ),
    Row(
        "budget reached (claude's --max-budget-usd)",
        "develop",
        (BUDGET, EXIT_1),
        "running",
        "the turn failed (error_max_budget_usd): Reached maximum budget",
        "resume",
        True,
    ),
    Row(
        "budget reached (the governor's task budget)",
        "develop",
        (TASK_BUDGET, BUDGET, EXIT_1),
        "escalated",
        "task budget $1.00 reached ($1.20 spent)",
        "none",
        False,
    ),
    Row(
        "rate limit given up (429 after claude's retries)",
        "develop",
        (RATE_LIMITED, EXIT_1),
        "running",
        "",
        "resume",
        False,
        says="was interrupted before it finished",
    ),
    Row(
        "overloaded given up (529)",
        "develop",
        (OVERLOADED, EXIT_1),
        "running",
        "",
        "resume",
        False,
    ),
    Row(
        "schema rejection of the summary: the result text stands",
        "develop",
        (result(structured=None, text="I changed todo.py."), EXIT_0, Checked()),
        "review",
        "QA reviews",
        "review",
        False,
    ),
    Row(
        "permission denial that changed nothing",
        "develop",
        (DENIED, EXIT_0, NOTHING_COMMITTED),
        "running",
        "no change was committed on the task's branch"
        " (claude was refused: Write /work/t1/hello.txt)",
        "resume",
        True,
    ),
    Row(
        "session lost on resume",
        "develop",
        (RATE_LIMITED, EXIT_1, Again(), SESSION_LOST, EXIT_1),
        "running",
        "",
        "fresh",
        False,
    ),
    Row(
        "spawn failure (TurnRefused)",
        "develop",
        (Refused("no such role file: developer"),),
        "running",
        "retry: the turn could not start: no such role file",
        "fresh",
        True,
        says="could not start",
        spawn=False,
    ),
    Row(
        "killed from outside (signal, no result)",
        "develop",
        (KILLED,),
        "running",
        "",
        "resume",
        False,
        says="was interrupted before it finished",
    ),
    Row(
        "exited without a result (no signal)",
        "develop",
        (EXIT_1,),
        "running",
        "retry: claude ended without a result (exit code 1)",
        "resume",
        True,
    ),
    # --- review turns ---
    Row("approved", "review", (APPROVE, EXIT_0), "merging", "approved by qa-1", "merge", False),
    Row(
        "approved: merging at the result, before claude exits",
        "review",
        (APPROVE,),
        "merging",
        "approved by qa-1",
        "merge",
        False,
    ),
    Row(
        "changes requested",
        "review",
        (CHANGES, EXIT_0),
        "running",
        "retry: QA requested changes: add a test",
        "resume",
        True,
        says="QA requested changes on task t1",
    ),
    Row("failed (is_error)", "review", (FAILED_500, EXIT_1), "review", "", "review", True),
    Row(
        "idle timeout: reviewed again, not counted",
        "review",
        (IDLE,),
        "review",
        "QA reviews again: the turn was stopped: no output for 300 s",
        "review",
        False,
    ),
    Row(
        "idle timeout twice: counted", "review", (IDLE, Again(), IDLE), "review", "", "review", True
    ),
    Row(
        "wall timeout: reviewed again, not counted",
        "review",
        (WALL,),
        "review",
        "QA reviews again: the turn was stopped: it ran 600 s",
        "review",
        False,
    ),
    Row("max turns", "review", (MAX_TURNS, EXIT_1), "review", "", "review", True),
    Row("budget reached (claude)", "review", (BUDGET, EXIT_1), "review", "", "review", True),
    Row(
        "budget reached (the governor's task budget)",
        "review",
        (TASK_BUDGET, BUDGET, EXIT_1),
        "escalated",
        "task budget $1.00 reached",
        "none",
        False,
    ),
    Row("rate limit given up", "review", (RATE_LIMITED, EXIT_1), "review", "", "review", False),
    Row("no verdict", "review", (NO_VERDICT, EXIT_0), "review", "", "review", True),
    Row(
        "no verdict, out of retries",
        "review",
        (NO_VERDICT, EXIT_0),
        "escalated",
        "QA could not review it 1 times; last: QA gave no usable verdict: no structured output",
        "none",
        True,
        max_retries=0,
    ),
    Row("schema rejection", "review", (SCHEMA_GAVE_UP, EXIT_1), "review", "", "review", True),
    Row(
        "schema rejection by claude, its reason kept, out of retries",
        "review",
        (SchemaRefused(SCHEMA_REASON), SCHEMA_GAVE_UP, EXIT_1),
        "escalated",
        "claude rejected the verdict against the role's schema: Output does not match",
        "none",
        True,
        max_retries=0,
    ),
    Row("permission denial", "review", (DENIED, EXIT_0), "review", "", "review", True),
    Row(
        "spawn failure",
        "review",
        (Refused("no such role file: qa"),),
        "review",
        "",
        "review",
        True,
        spawn=False,
    ),
    Row("killed from outside", "review", (KILLED,), "review", "", "review", False),
    # --- planning and decomposition turns ---
    Row(
        "success",
        "plan",
        (result(structured=PLAN), EXIT_0),
        "decomposition",
        "",
        "decompose",
        False,
    ),
    Row("failed (is_error)", "plan", (FAILED_500, EXIT_1), "planning", "", "fresh", True),
    Row(
        "idle timeout: resumed once, not counted",
        "plan",
        (IDLE,),
        "planning",
        "",
        "resume",
        False,
        says="Your previous turn was stopped",
    ),
    Row(
        "idle timeout twice: counted", "plan", (IDLE, Again(), IDLE), "planning", "", "fresh", True
    ),
    Row("wall timeout", "plan", (WALL,), "planning", "", "resume", False, says="wall-clock limit"),
    Row("max turns", "plan", (MAX_TURNS, EXIT_1), "planning", "", "fresh", True),
    Row("budget reached (claude)", "plan", (BUDGET, EXIT_1), "planning", "", "fresh", True),
    Row("rate limit given up", "plan", (RATE_LIMITED, EXIT_1), "planning", "", "fresh", False),
    Row(
        "no structured output (schema rejection)",
        "plan",
        (result(text="Here is my plan: ..."), EXIT_0),
        "planning",
        "",
        "resume",
        True,
        says="Your plan could not be used",
    ),
    Row(
        "schema rejection by claude",
        "plan",
        (SCHEMA_GAVE_UP, EXIT_1),
        "planning",
        "",
        "fresh",
        True,
    ),
    Row(
        "schema rejection by claude, its reason kept, out of retries",
        "plan",
        (SchemaRefused(SCHEMA_REASON), SCHEMA_GAVE_UP, EXIT_1),
        "stopped",
        "the plan was rejected 1 times; last: claude rejected the plan against the role's schema:"
        " Output does not match required schema",
        "none",
        True,
        max_retries=0,
    ),
    Row(
        "rejected, out of retries",
        "plan",
        (result(text="no plan"), EXIT_0),
        "stopped",
        "the plan was rejected 1 times; last: no structured output",
        "none",
        True,
        max_retries=0,
    ),
    Row(
        "session lost on resume",
        "plan",
        (result(text="no plan"), EXIT_0, Again(), SESSION_LOST, EXIT_1),
        "planning",
        "",
        "fresh",
        True,
    ),
    Row(
        "spawn failure",
        "plan",
        (Refused("no such role file: ceo"),),
        "planning",
        "",
        "fresh",
        True,
        spawn=False,
    ),
    Row("killed from outside", "plan", (KILLED,), "planning", "", "fresh", False),
    Row(
        "success",
        "decompose",
        (result(structured=TASKS), EXIT_0),
        "development",
        "",
        "develop",
        False,
    ),
    Row(
        "an invalid task list",
        "decompose",
        (result(structured={"tasks": []}), EXIT_0),
        "decomposition",
        "",
        "resume",
        True,
        says="Your task list was rejected",
    ),
    Row("failed (is_error)", "decompose", (FAILED_500, EXIT_1), "decomposition", "", "fresh", True),
    Row(
        "rate limit given up",
        "decompose",
        (RATE_LIMITED, EXIT_1),
        "decomposition",
        "",
        "fresh",
        False,
    ),
    Row("killed from outside", "decompose", (KILLED,), "decomposition", "", "fresh", False),
]


def counter(h: Harness, kind: Kind) -> int:
    if kind == "develop":
        return h.task.attempts
    if kind == "review":  # a failed review, or the work sent back (the developer's attempt)
        return h.m.qa_failures.get(T, 0) + h.task.attempts
    return (h.m.plan if kind == "plan" else h.m.decompose).failures


def what_next(h: Harness, kind: Kind) -> tuple[Next, str]:
    """What runs next, and what its prompt says."""
    upcoming = h.upcoming()
    if any(isinstance(a, SubmitMerge) for a in upcoming):
        return "merge", ""
    if not upcoming:
        return "none", ""
    (start,) = upcoming
    assert isinstance(start, StartTurn)
    if start.kind == "review":
        return "review", start.prompt
    if start.kind != kind and kind in ("plan", "decompose"):
        return start.kind, start.prompt  # the next phase
    before = h.last.get(start.kind)
    same = before is not None and start.session_id == before.session_id
    return ("resume" if start.resume and same else "fresh"), start.prompt


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.kind}: {r.name}" for r in ROWS])
def test_how_a_turn_ended_decides_the_task_and_the_next_turn(row: Row) -> None:
    phase = {"plan": "planning", "decompose": "decomposition"}.get(row.kind, "development")
    if row.kind == "review":
        h = reviewing(max_retries=row.max_retries, task_budget=row.task_budget)
    else:
        h = Harness(phase, max_retries=row.max_retries, task_budget=row.task_budget)
    first = h.begin(spawn=row.spawn)
    assert first.kind == row.kind
    counted_before = counter(h, row.kind)
    for step in row.steps:
        h.play(step)

    if row.kind in ("develop", "review"):
        assert h.task.state == row.state
        assert row.reason in h.task.reason
        if row.kind == "develop":
            assert h.task.attempts == (row.attempts or (2 if row.counted else 1))
    else:
        assert h.m.fold.run is not None and h.m.fold.run.phase == row.state
        escalations = [e.reason for e in h.emitted(Escalation)]
        assert (row.reason in escalations[-1]) if row.reason else not escalations
    if row.kind != "develop" or row.state != "escalated":
        assert (counter(h, row.kind) > counted_before) == row.counted

    nxt, prompt = what_next(h, row.kind)
    assert nxt == row.next
    assert row.says in prompt
    if row.state == "escalated":
        assert [e for e in h.emitted(Escalation) if e.task_id == T]


# --- beside the table --------------------------------------------------------------------


def test_the_governors_hold_is_read_from_what_it_published_and_the_agent_shows_waiting() -> None:
    h = Harness("planning")
    h.begin()
    h.hear(SpawnsHeld(until=NOW + 30, delay=30.0, reason="API 429 seen by ceo"), GOVERNOR)
    for step in (RATE_LIMITED, EXIT_1):
        h.play(step)
    assert permit(h.m, None).wait == pytest.approx(30.0)
    assert what_next(h, "plan")[0] == "none"
    (waiting,) = h.emitted(AgentStateChanged)
    assert waiting.agent_id == CEO and waiting.state == "waiting"
    assert "held for 30.0 s" in waiting.detail
    h.m.now = NOW + 31
    assert what_next(h, "plan")[0] == "fresh"


def test_a_run_budget_reached_starts_nothing_new_and_finishes_the_run() -> None:
    h = Harness("planning", budget=1.0)
    h.begin()
    h.hear(CostReported(agent_id=CEO, usd=1.5), CEO)
    h.hear(BudgetReached(scope="run", limit_usd=1.0, spent_usd=1.5), GOVERNOR)
    for step in (RATE_LIMITED, EXIT_1):
        h.play(step)
    assert permit(h.m, None).run_budget_reached
    assert what_next(h, "plan")[0] == "none"
    (end,) = h.emitted(RunFinished)
    assert end.outcome == "failed" and "run budget $1.00 reached" in end.summary


def test_a_task_whose_budget_is_spent_is_escalated_before_its_next_turn() -> None:
    h = Harness("development", task_budget=1.0)
    h.begin()
    h.hear(CostReported(agent_id=DEV, usd=1.0, task_id=T), DEV)
    for step in (RATE_LIMITED, EXIT_1):
        h.play(step)
    assert permit(h.m, T).task_budget_left == 0.0
    assert what_next(h, "develop")[0] == "none"
    assert h.task.state == "escalated" and "its budget is spent" in h.task.reason


def test_an_agent_busy_or_gone_is_asked_again_later_and_nothing_fails() -> None:
    h = Harness("development")
    turn = h.begin(spawn=False)
    h.feed(TurnNotStarted(turn.agent))
    assert h.task.state == "running" and h.task.attempts == 1
    assert what_next(h, "develop")[0] == "fresh"


def test_the_plan_is_written_before_it_is_announced() -> None:
    h = Harness("planning")
    h.begin()
    h.play(result(structured=PLAN))
    h.play(EXIT_0)
    done = [
        a
        for a in h.actions
        if isinstance(a, WriteFile) or (isinstance(a, Emit) and isinstance(a.message, PlanWritten))
    ]
    assert [type(a).__name__ for a in done] == ["WriteFile", "Emit"]


def test_the_run_ends_after_merged_worktrees_are_removed() -> None:
    h = reviewing()
    h.begin()
    for step in (APPROVE, EXIT_0):
        h.play(step)
    h.hear(TaskMerged(task_id=T, commit="abc"), "merge_queue")
    (remove,) = [a for a in h.actions if isinstance(a, RemoveWorktrees)]
    assert remove.paths == (WORKTREE,) and not h.emitted(RunFinished)
    h.feed(WorktreesRemoved(remove.then))
    (end,) = h.emitted(RunFinished)
    assert end.outcome == "done" and "1 tasks: 1 merged" in end.summary


def test_work_left_uncommitted_is_committed_off_the_mailbox_and_journaled() -> None:
    h = Harness("development")
    turn = h.begin()
    h.play(SUCCESS)
    h.play(EXIT_0)
    (commit,) = [a for a in h.actions if isinstance(a, CommitForAgent)]
    assert (commit.worktree, commit.agent) == (WORKTREE, turn.agent)
    assert h.task.state == "running"  # nothing moves until the commit is checked
    assert what_next(h, "develop")[0] == "none"  # and no second turn starts meanwhile
    made = WorkCommittedForAgent(task_id=T, agent_id=turn.agent, commit="abc123", files=["todo.py"])
    h.feed(WorkChecked(T, turn.agent, journaled=made))
    (journaled,) = h.emitted(WorkCommittedForAgent)
    assert (journaled.commit, journaled.files) == ("abc123", ["todo.py"])
    assert h.task.state == "review"


def test_the_set_up_runs_off_the_mailbox_before_the_first_turn_and_failing_is_an_attempt() -> None:
    setup = "python -m pip install -e ."
    commands = ProjectCommands(
        setup_command=setup,
        test_command="pytest -q",
        setup_source="staff_engineer",
        test_source="staff_engineer",
        proposed_setup_command=setup,
        proposed_test_command="pytest -q",
    )
    h = Harness("development", commands=commands)
    (run,) = [a for a in h.actions if isinstance(a, RunSetup)]
    assert (run.task_id, run.command, run.worktree) == (T, setup, WORKTREE)
    assert not [a for a in h.actions if isinstance(a, StartTurn)]  # no turn before it
    assert h.task.state == "running" and not h.m.turns  # the developer is free meanwhile

    failed = SetupRan(task_id=T, command=setup, exit_code=1, output_tail="no such package")
    h.feed(SetupDone(failed))
    assert h.task.attempts == 2 and "the set-up command" in h.task.reason
    assert "no such package" in h.task.reason
    again = [a for a in h.actions if isinstance(a, RunSetup)]
    assert len(again) == 2  # run again before any turn

    ok = SetupRan(task_id=T, command=setup, exit_code=0, place="task", worktree=WORKTREE)
    h.feed(SetupDone(ok))
    assert h.emitted(SetupRan)[-1].ok
    (start,) = [a for a in h.actions if isinstance(a, StartTurn)]
    assert start.kind == "develop" and setup in start.prompt


INBOX = [
    # (what the inbox gave, the task's state after, journaled)
    (ResolveRequested(task_id=T, origin="user a"), "resolved", True),
    (HumanCommandRejected(path="/p/1-1.json.bad", reason="unsigned"), "escalated", True),
    # Only commands and rejections reach the journal from the inbox; anything else is not
    # a human's to send (the inbox refuses it first; decide does not act on it either).
    (TaskStateChanged(task_id=T, state="merged"), "escalated", False),
]


@pytest.mark.parametrize(("given", "state", "journaled"), INBOX, ids=lambda v: str(v)[:40])
def test_what_the_inbox_gives_is_journaled_and_only_a_command_acts(
    given: AnyMessage, state: str, journaled: bool
) -> None:
    h = Harness("development", max_retries=0)
    h.begin()
    h.hear(TaskStateChanged(task_id=T, state="escalated", reason="given up"), "orchestrator")
    actions = h.feed(InboxCommand(given))
    emitted = [a for a in actions if isinstance(a, Emit) and a.message == given]
    assert [a.durable for a in emitted] == ([True] if journaled else [])
    assert h.task.state == state


# --- throwaway clones: planning's and QA's ----------------------------------------------


def trace(actions: list[Action]) -> list[str]:
    """The clone work and the turns, in order, as a reader would list them."""
    said: list[str] = []
    for a in actions:
        if isinstance(a, PrepareCheckout):
            said.append(f"make {a.purpose} checkout {Path(a.path).name} of {a.rev}")
        elif isinstance(a, RemoveCheckout):
            said.append(f"remove {Path(a.path).name}")
        elif isinstance(a, RunSetup):
            said.append(f"set-up ({a.place}) in {Path(a.worktree).name}")
        elif isinstance(a, StartTurn) and a.ahead:
            said.append(f"{a.role} started ahead in {Path(a.cwd).name}")
        elif isinstance(a, StartTurn):
            said.append(f"{a.role} turn in {Path(a.cwd).name}")
        elif isinstance(a, MoveCheckout):
            said.append(f"move {Path(a.path).name} to {a.rev}")
        elif isinstance(a, GivePrompt):
            said.append(f"{a.agent} given its prompt")
        elif isinstance(a, StopTurns):
            said.append(f"stop {', '.join(a.agents)}")
        elif isinstance(a, SubmitMerge):
            said.append(f"merge {a.task_id}")
    return said


def test_the_planning_turns_run_in_a_scratch_clone_of_main_made_before_the_ceos_turn() -> None:
    h = Harness("planning", checkouts=False)
    (make,) = [a for a in h.actions if isinstance(a, PrepareCheckout)]
    assert trace(h.actions) == ["make plan checkout _plan of main"]
    assert (make.path, make.fresh) == (PLAN_DIR, False)  # kept: a resumed session's cwd
    assert make.files == (("requirements.md", b"A todo list."),)
    h.feed(Tick())
    assert len(trace(h.actions)) == 1  # asked once, and no turn before it is made
    h.feed(CheckoutReady("plan", PLAN_DIR))
    h.begin()
    h.play(result(structured=PLAN))
    h.play(EXIT_0)
    h.begin()
    h.play(result(structured=TASKS))
    h.play(EXIT_0)
    assert trace(h.actions) == [
        "make plan checkout _plan of main",
        "ceo turn in _plan",
        "staff_engineer turn in _plan",
        "remove _plan",  # once the tasks are defined
        "developer turn in t1",
    ]


def test_a_planning_checkout_that_cannot_be_made_stops_the_run_with_its_reason() -> None:
    h = Harness("planning", checkouts=False)
    h.feed(CheckoutReady("plan", PLAN_DIR, error="/repo: no branch main"))
    (end,) = h.emitted(RunFinished)
    assert end.outcome == "failed" and "no branch main" in end.summary
    assert not [a for a in h.actions if isinstance(a, StartTurn)]


@dataclass(frozen=True)
class ReviewRow:
    name: str
    setup: str
    """The project's set-up command ("" none)."""
    events: tuple[Event | Step, ...]
    """Played after the developer's work was checked (QA's turn is begun by `Again`)."""
    trace: tuple[str, ...]
    """What was done from the check on (see `trace`)."""
    state: str
    reason: str = ""


SETUP = "pip install -e ."
SET_UP = SetupRan(task_id=T, command=SETUP, exit_code=0, place="review", worktree=REVIEW_1)
NOT_SET_UP = SetupRan(
    task_id=T,
    command=SETUP,
    exit_code=2,
    output_tail="no pyproject",
    place="review",
    worktree=REVIEW_1,
)
MADE = CheckoutReady("review", REVIEW_1, T)

REVIEW_ROWS = [
    ReviewRow(
        "approved: QA ran in its checkout, removed after the verdict",
        "",
        (MADE, Again(), APPROVE, EXIT_0),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
            "merge t1",
            "remove t1-1",
        ),
        "merging",
    ),
    ReviewRow(
        "approved: merged from QA's result on, its checkout kept until claude exits",
        "",
        (MADE, Again(), APPROVE),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
            "merge t1",
        ),
        "merging",
    ),
    ReviewRow(
        "changes requested: nothing happens before claude exits",
        "",
        (MADE, Again(), CHANGES),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
    ),
    ReviewRow(
        "changes requested: removed; the next review gets a new checkout",
        "",
        (MADE, Again(), CHANGES, EXIT_0),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
            "remove t1-1",
            "developer turn in t1",
        ),
        "running",
        "QA requested changes",
    ),
    ReviewRow(
        "QA killed: removed, and made afresh for the review run again",
        "",
        (MADE, Again(), KILLED),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
        ),
        "review",
    ),
    ReviewRow(
        "with a set-up: it runs in the checkout before QA's turn",
        SETUP,
        (MADE, SetupDone(SET_UP), Again(), APPROVE, EXIT_0),
        (
            "make review checkout t1-1 of autonoma/t1",
            "set-up (review) in t1-1",
            "qa turn in t1-1",
            "merge t1",
            "remove t1-1",
        ),
        "merging",
    ),
    ReviewRow(
        "a set-up failing in a fresh checkout sends the work back, no QA turn",
        SETUP,
        (MADE, SetupDone(NOT_SET_UP)),
        (
            "make review checkout t1-1 of autonoma/t1",
            "set-up (review) in t1-1",
            "remove t1-1",
            "developer turn in t1",
        ),
        "running",
        "no pyproject",
    ),
    ReviewRow(
        "a checkout that cannot be made counts as a review QA could not do",
        "",
        (CheckoutReady("review", REVIEW_1, T, error="no commit"),),
        # Tried again (the task stays in review) until QA's failures pass max_retries.
        ("make review checkout t1-1 of autonoma/t1", "make review checkout t1-1 of autonoma/t1"),
        "review",
    ),
]


@pytest.mark.parametrize("row", REVIEW_ROWS, ids=[r.name for r in REVIEW_ROWS])
def test_qa_reviews_in_a_throwaway_checkout_of_the_branch(row: ReviewRow) -> None:
    commands = ProjectCommands(
        setup_command=row.setup,
        test_command="pytest -q",
        proposed_setup_command=row.setup,
        proposed_test_command="pytest -q",
    )
    h = Harness("development", checkouts=False, commands=commands)
    if row.setup:
        h.feed(SetupDone(SetupRan(task_id=T, command=SETUP, exit_code=0, worktree=WORKTREE)))
    h.begin()
    h.play(SUCCESS)
    h.play(EXIT_0)
    start = len(h.actions)
    h.play(Checked())
    for event in row.events:
        if isinstance(event, Again | AgentTurnFinished | AgentProcessExited):
            h.play(event)
        else:
            h.feed(event)
    h.feed(Tick())
    assert trace(h.actions[start:]) == list(row.trace)
    assert h.task.state == row.state
    assert row.reason in h.task.reason
    if "cannot be made" in row.name:
        assert h.m.qa_failures[T] == 1


# --- a human's pause, resume and stop (and the root's pause) ------------------------------

ORIGIN = "user alice (uid 1000), pid 42, tty none, host box"


@dataclass(frozen=True)
class Cmd:
    """A human's command, as the inbox gives it to the run."""

    message: AnyMessage


@dataclass(frozen=True)
class From:
    """A message another actor published (the root, the merge queue)."""

    sender: str
    message: AnyMessage


PAUSE = Cmd(PauseRequested(origin=ORIGIN))
RESUME = Cmd(ResumeRequested(origin=ORIGIN))
STOP = Cmd(StopRequested(origin=ORIGIN))
ROOT_PAUSED = From("root", WorkPaused(reason="crew restarted more than 1 times in 5s"))
ROOT_RESUMED = From("root", WorkResumed(reason=f"by {ORIGIN}"))
MERGED = From("merge_queue", TaskMerged(task_id=T, commit="abc"))
CONFLICT = From("merge_queue", MergeFailed(task_id=T, kind="conflict", files=["todo.py"]))
DEVELOPED = (SUCCESS, EXIT_0, Checked())
TERMINATED = exited(None, signal=15)


@dataclass(frozen=True)
class ControlRow:
    name: str
    at: Literal["developing", "merging"]
    """A developer's turn runs; or QA approved and the merge was submitted."""
    steps: tuple[Step | Cmd | From | StopRun, ...]
    state: str
    """The task's state after."""
    next: Next
    """What starts next (after time passes)."""
    outcome: str | None = None
    """The run's end, if it ended."""
    asks_root: bool = False
    """The root is asked to end its pause (`ResumeRoot`)."""
    stops: tuple[str, ...] = ()
    """The agents whose turns are stopped (`StopTurns`)."""


CONTROL_ROWS = [
    ControlRow(
        "a pause holds the next turn; the turn under way finishes and is handled",
        "developing",
        (PAUSE, *DEVELOPED),
        "review",
        "none",
    ),
    ControlRow(
        "resume: the held turn starts",
        "developing",
        (PAUSE, *DEVELOPED, RESUME),
        "review",
        "review",
    ),
    ControlRow(
        "the root's pause holds work; resume asks the root, nothing starts before it resumed",
        "developing",
        (ROOT_PAUSED, *DEVELOPED, RESUME),
        "review",
        "none",
        asks_root=True,
    ),
    ControlRow(
        "the root resumed: the held turn starts",
        "developing",
        (ROOT_PAUSED, *DEVELOPED, RESUME, ROOT_RESUMED),
        "review",
        "review",
        asks_root=True,
    ),
    ControlRow(
        "a human's resume ends the human's pause and the root's",
        "developing",
        (PAUSE, ROOT_PAUSED, *DEVELOPED, RESUME, ROOT_RESUMED),
        "review",
        "review",
        asks_root=True,
    ),
    ControlRow(
        "a pause lets the merge under way finish",
        "merging",
        (PAUSE, MERGED),
        "merged",
        "none",
        "done",
    ),
    ControlRow(
        "stop waits for the merge under way, which ends the run",
        "merging",
        (STOP, MERGED),
        "merged",
        "none",
        "done",
    ),
    ControlRow(
        "stop: a merge failing is left to the resumed run (no conflict merge now)",
        "merging",
        (STOP, CONFLICT),
        "merging",
        "none",
        "stopped",
    ),
    ControlRow(
        "stop with a turn under way: stopped, waited for",
        "developing",
        (STOP,),
        "running",
        "none",
        stops=(DEV,),
    ),
    ControlRow(
        "stop: the turn stopped, the run ends; the task stays running for the resumed run",
        "developing",
        (STOP, TERMINATED),
        "running",
        "none",
        "stopped",
        stops=(DEV,),
    ),
    ControlRow(
        "stop while paused",
        "developing",
        (PAUSE, STOP, TERMINATED),
        "running",
        "none",
        "stopped",
        stops=(DEV,),
    ),
    ControlRow(
        "Ctrl-C is the same stop",
        "merging",
        (StopRun(ORIGIN), CONFLICT),
        "merging",
        "none",
        "stopped",
    ),
]


@pytest.mark.parametrize("row", CONTROL_ROWS, ids=[r.name for r in CONTROL_ROWS])
def test_a_humans_pause_resume_and_stop(row: ControlRow) -> None:
    if row.at == "developing":
        h = Harness("development")
        h.begin()
    else:
        h = reviewing()
        h.begin()
        for step in (APPROVE, EXIT_0):
            h.play(step)
        assert [a for a in h.actions if isinstance(a, SubmitMerge)]
        h.mark = len(h.actions)
    for step in row.steps:
        if isinstance(step, Cmd):
            h.feed(InboxCommand(step.message))
        elif isinstance(step, From):
            h.hear(step.message, step.sender)
        elif isinstance(step, StopRun):
            h.feed(step)
        else:
            h.play(step)
        if isinstance(step, Cmd | StopRun):  # journaled durably, before anything else
            asked = step.message if isinstance(step, Cmd) else StopRequested(origin=ORIGIN)
            assert Emit(asked, durable=True) in h.actions

    assert h.task.state == row.state
    if row.outcome is None:
        assert not h.emitted(RunFinished)
    else:
        if not h.emitted(RunFinished):  # the run ends once merged worktrees are removed
            (remove,) = [a for a in h.actions if isinstance(a, RemoveWorktrees)]
            h.feed(WorktreesRemoved(remove.then))
        (end,) = h.emitted(RunFinished)
        assert end.outcome == row.outcome
        if row.outcome == "stopped":
            assert "resumes the run" in end.summary
    asked_root = [a.reason for a in h.actions if isinstance(a, ResumeRoot)]
    assert asked_root == ([f"by {ORIGIN}"] if row.asks_root else [])
    assert [a.agents for a in h.actions if isinstance(a, StopTurns)] == (
        [row.stops] if row.stops else []
    )
    assert not [a for a in h.actions if isinstance(a, ConflictMerge)]
    nxt, _ = what_next(h, "develop")
    assert nxt == row.next


def test_a_task_claimed_before_a_pause_stays_ready_and_its_turn_waits() -> None:
    # Its worktree is being made (off the mailbox) when the pause comes.
    h = Harness("development", workspaces=False)
    (prepare,) = [a for a in h.actions if isinstance(a, PrepareWorkspace)]
    assert prepare.create and h.task.state == "ready"
    h.feed(InboxCommand(PauseRequested(origin=ORIGIN)))
    h.feed(WorkspaceReady(T, "autonoma/t1", WORKTREE, "base", created=True))
    h.feed(Tick())
    assert not [a for a in h.actions if isinstance(a, StartTurn)]
    assert h.task.state == "ready" and h.task.worktree == WORKTREE and not h.m.preparing
    h.workspaces = True
    h.feed(InboxCommand(ResumeRequested(origin=ORIGIN)))
    (start,) = [a for a in h.actions if isinstance(a, StartTurn)]
    assert (start.kind, start.cwd, h.task.state) == ("develop", WORKTREE, "running")


def test_qa_approving_sends_the_task_to_merge_at_its_result_and_stays_busy_until_it_exits() -> None:
    h = reviewing()
    h.begin()
    h.play(APPROVE)
    assert h.task.state == "merging"
    assert [a.task_id for a in h.actions if isinstance(a, SubmitMerge)] == [T]
    assert "qa-1" in h.m.turns  # its process still runs: no new turn for it yet
    assert not [a for a in h.actions if isinstance(a, RemoveCheckout)]
    h.play(EXIT_0)
    assert "qa-1" not in h.m.turns
    assert len(h.emitted(ReviewVerdict)) == 1
    assert [a.task_id for a in h.actions if isinstance(a, SubmitMerge)] == [T]
    assert len([a for a in h.actions if isinstance(a, RemoveCheckout)]) == 1


def test_a_merge_heard_twice_is_said_once() -> None:
    # Submitted twice (a resumed run's merge of a task merged before it heard so): the
    # merge queue announces the same merge again; the task is merged once.
    h = reviewing()
    h.begin()
    for step in (APPROVE, EXIT_0):
        h.play(step)
    h.hear(MERGED.message, "merge_queue")
    h.hear(MERGED.message, "merge_queue")
    said = [m for m in h.emitted(TaskStateChanged) if m.state == "merged"]
    assert len(said) == 1 and h.task.state == "merged"
    assert len([a for a in h.actions if isinstance(a, RemoveWorktrees)]) == 1


@dataclass(frozen=True)
class RefusedRow:
    name: str
    refused: MergeFailed
    state: str
    """The task's state after."""
    submitted_again: bool
    """Handed to the merge queue again at once (no developer turn, no attempt counted)."""
    conflict_merge: bool
    """The integration head is merged into the branch first (`ConflictMerge`)."""


REFUSED_ROWS = [
    RefusedRow(
        "a conflict: merged into the branch first", CONFLICT.message, "merging", False, True
    ),
    RefusedRow(
        "the tests failed on the merged result: merged into the branch first",
        MergeFailed(task_id=T, kind="tests_failed", output="$ pytest\nexit 1"),
        "merging",
        False,
        True,
    ),
    RefusedRow(
        "no test command: escalated, nothing resubmitted",
        MergeFailed(task_id=T, kind="no_test_command"),
        "escalated",
        False,
        False,
    ),
    RefusedRow(
        "a git of the user's held autonoma/integration's lock: merged again, nobody's fault",
        MergeFailed(task_id=T, kind="integration_locked", output="integration.lock stayed there"),
        "merging",
        True,
        False,
    ),
]


@pytest.mark.parametrize("row", REFUSED_ROWS, ids=[r.name for r in REFUSED_ROWS])
def test_what_follows_a_merge_the_queue_refused(row: RefusedRow) -> None:
    h = reviewing()
    h.begin()
    for step in (APPROVE, EXIT_0):
        h.play(step)
    attempts = h.task.attempts
    h.mark = len(h.actions)
    h.hear(row.refused, "merge_queue")
    after = h.actions[h.mark :]
    assert h.task.state == row.state
    assert h.task.attempts == attempts  # no developer's attempt counted (yet)
    assert [a.task_id for a in after if isinstance(a, SubmitMerge)] == (
        [T] if row.submitted_again else []
    )
    assert bool([a for a in after if isinstance(a, ConflictMerge)]) is row.conflict_merge
    assert not [a for a in after if isinstance(a, StartTurn)]
    assert not h.emitted(TaskFeedback)  # the developer is told nothing
    assert (T in h.m.submitted) is (row.state == "merging")


def test_a_merge_announced_after_the_run_stopped_at_once_is_not_merged_again() -> None:
    # A second Ctrl-C stopped the run while the merge queue moved main: its `TaskMerged`
    # is journaled, but the orchestrator was gone before it could say the task merged.
    h = reviewing()
    h.begin()
    for step in (APPROVE, EXIT_0):
        h.play(step)
    assert h.task.state == "merging"
    journal = h.m.fold
    apply(journal, envelope(TaskMerged(task_id=T, commit="abc"), "merge_queue"))
    resumed = Machine(cfg=h.m.cfg, now=NOW, live=LIVE, new_session=lambda: "s9", fold=journal)
    _, actions = decide(resumed, Started())
    assert not [a for a in actions if isinstance(a, SubmitMerge)]  # not merged again
    said = [a.message for a in actions if isinstance(a, Emit)]
    assert TaskStateChanged(task_id=T, state="merged", reason="merged as the last run ended") in (
        said
    )
    assert resumed.fold.tasks[T].state == "merged"
    assert [a.paths for a in actions if isinstance(a, RemoveWorktrees)] == [(WORKTREE,)]


# --- QA started ahead (prestart_agents) ------------------------------------------------------


@dataclass(frozen=True)
class Ahead:
    """The QA turn asked ahead is spawned (its process waits for its prompt)."""


@dataclass(frozen=True)
class DevAgain:
    """The developer's next turn (asked for by the decisions so far) runs."""


@dataclass(frozen=True)
class ByQA:
    """A step of the QA turn started ahead (its result, its exit)."""

    step: AgentTurnFinished | AgentProcessExited


@dataclass(frozen=True)
class AheadRow:
    name: str
    events: tuple[Event | Step | Ahead | ByQA | DevAgain, ...]
    """Played from the developer's turn begun on."""
    trace: tuple[str, ...]
    state: str
    task_budget: float = 0.0
    gives: int = 0
    """`GivePrompt` actions."""


MOVED = CheckoutReady("review", REVIEW_1, T, moved=True)
CHANGED = CheckoutReady("review", REVIEW_1, T, moved=True, changed=True)
SPENT = FromGovernor(
    CostReported(agent_id=DEV, usd=0.5, session_usd=0.5, session_id="s1", task_id=T)
)

AHEAD_ROWS = [
    AheadRow(
        "at the developer's result a checkout is made and QA started in it; once the work "
        "is checked the checkout moves to the branch's head and QA gets its prompt",
        (SUCCESS, MADE, Ahead(), EXIT_0, Checked(), MOVED, PromptGiven(QA), ByQA(APPROVE)),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "qa-1 given its prompt",
            "merge t1",
        ),
        "merging",
        gives=1,
    ),
    AheadRow(
        "the branch changed since the checkout was made (work committed for the developer): "
        "QA started ahead saw another git status, so it is stopped and a fresh QA reviews",
        (SUCCESS, MADE, Ahead(), EXIT_0, Checked(), CHANGED, ByQA(TERMINATED), MADE),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "stop qa-1",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
    ),
    AheadRow(
        "no prompt before the checkout has moved",
        (SUCCESS, MADE, Ahead(), EXIT_0, Checked()),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
        ),
        "review",
    ),
    AheadRow(
        "the work is refused: QA started ahead is stopped (no failed review), its checkout "
        "removed at its exit, and the developer runs again",
        (SUCCESS, MADE, Ahead(), EXIT_0, NOTHING_COMMITTED, ByQA(TERMINATED)),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "stop qa-1",
            "remove t1-1",
            "developer turn in t1",
        ),
        "running",
    ),
    AheadRow(
        "the developer's next attempt ending well starts QA ahead again",
        (SUCCESS, MADE, Ahead(), EXIT_0, NOTHING_COMMITTED, ByQA(TERMINATED), DevAgain(), SUCCESS),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "stop qa-1",
            "remove t1-1",
            "developer turn in t1",
            "make review checkout t1-1 of autonoma/t1",
        ),
        "running",
    ),
    AheadRow(
        "a failed developer turn: nothing is started ahead",
        (FAILED_500, EXIT_1),
        ("developer turn in t1",),
        "running",
    ),
    AheadRow(
        "QA started ahead dies before its prompt: no failed review; the review makes a "
        "fresh checkout and starts QA as usual",
        (SUCCESS, MADE, Ahead(), ByQA(KILLED), EXIT_0, Checked(), MADE),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
    ),
    AheadRow(
        "QA started ahead fails before its prompt while its checkout moves: no failed review; "
        "the move's answer is ignored and QA starts as usual in a fresh checkout",
        (SUCCESS, MADE, Ahead(), EXIT_0, Checked(), ByQA(EXIT_1), MOVED, MADE),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
    ),
    AheadRow(
        "its prompt could not be given (the turn ended meanwhile): QA starts anew at its exit",
        (
            SUCCESS,
            MADE,
            Ahead(),
            EXIT_0,
            Checked(),
            MOVED,
            PromptNotGiven(QA, "gone"),
            ByQA(KILLED),
            MADE,
        ),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "qa-1 given its prompt",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
        gives=1,
    ),
    AheadRow(
        "a task budget spent since QA was started ahead: it is stopped, and QA starts anew "
        "with what is left",
        (SUCCESS, MADE, Ahead(), SPENT, EXIT_0, Checked(), MOVED, ByQA(TERMINATED), MADE),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "stop qa-1",
            "remove t1-1",
            "make review checkout t1-1 of autonoma/t1",
            "qa turn in t1-1",
        ),
        "review",
        task_budget=5.0,
    ),
    AheadRow(
        "a task budget nothing was spent of since: its prompt is given",
        (SUCCESS, SPENT, MADE, Ahead(), EXIT_0, Checked(), MOVED),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "move t1-1 to autonoma/t1",
            "qa-1 given its prompt",
        ),
        "review",
        task_budget=5.0,
        gives=1,
    ),
    AheadRow(
        "a stop while QA waits for its prompt stops it too",
        (SUCCESS, MADE, Ahead(), StopRun()),
        (
            "make review checkout t1-1 of autonoma/t1",
            "qa started ahead in t1-1",
            "stop developer-1, qa-1",
        ),
        "running",
    ),
]


@pytest.mark.parametrize("row", AHEAD_ROWS, ids=[r.name for r in AHEAD_ROWS])
def test_qa_is_started_ahead_and_given_its_prompt_when_the_work_is_checked(row: AheadRow) -> None:
    h = Harness("development", checkouts=False, prestart=True, task_budget=row.task_budget)
    h.begin()
    start = len(h.actions)
    qa: StartTurn | None = None
    qa_pid = 0
    for event in row.events:
        if isinstance(event, Ahead):
            (qa,) = [a for a in h.actions if isinstance(a, StartTurn) and a.ahead]
            assert (qa.prompt, qa.kind, qa.cwd, qa.task_id) == ("", "review", REVIEW_1, T)
            qa_pid = next(h.pids)
            h.feed(TurnSpawned(qa.agent, qa_pid))
        elif isinstance(event, ByQA):
            assert qa is not None
            (h.turn, h.pid), (developer, dev_pid) = (qa, qa_pid), (h.turn, h.pid)
            h.play(event.step)
            h.turn, h.pid = developer, dev_pid
        elif isinstance(event, DevAgain):
            again = [a for a in h.actions if isinstance(a, StartTurn) and a.kind == "develop"]
            h.turn = again[-1]
            h.run(again[-1])
        elif isinstance(event, AgentTurnFinished | AgentProcessExited | Checked | FromGovernor):
            h.play(event)
        else:
            h.feed(event)
    h.feed(Tick())
    assert trace(h.actions[start:]) == list(row.trace)
    assert h.task.state == row.state
    assert not h.m.qa_failures  # a turn started ahead never counts as a review
    made = [a for a in h.actions[start:] if isinstance(a, PrepareCheckout)]
    if made and row.events[0] == SUCCESS:
        assert made[0].bring_back == WORKTREE  # the developer's commits, into its checkout
    gives = [a for a in h.actions if isinstance(a, GivePrompt)]
    assert len(gives) == row.gives
    for give in gives:
        assert "review number 1" in give.prompt and T in give.prompt


def test_nothing_is_started_ahead_for_a_project_with_a_set_up_command() -> None:
    commands = ProjectCommands(
        setup_command=SETUP,
        test_command="pytest -q",
        proposed_setup_command=SETUP,
        proposed_test_command="pytest -q",
    )
    h = Harness("development", checkouts=False, commands=commands, prestart=True)
    h.feed(SetupDone(SetupRan(task_id=T, command=SETUP, exit_code=0, worktree=WORKTREE)))
    h.begin()
    start = len(h.actions)
    h.play(SUCCESS)
    h.feed(Tick())
    assert trace(h.actions[start:]) == []


def test_nothing_is_started_ahead_with_prestart_off() -> None:
    h = Harness("development", checkouts=False)
    h.begin()
    start = len(h.actions)
    h.play(SUCCESS)
    h.feed(Tick())
    assert trace(h.actions[start:]) == []
