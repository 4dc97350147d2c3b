"""State is a fold over messages: the one function behind status, logs, replay and recovery.

Pure: no I/O, no clock. `apply` adds one envelope to a `State` (mutating it in place
and returning it); `fold` folds many envelopes; `fold_rows` folds journal rows
``(seq, ts, run_id, sender, recipient, type, body)`` as the reader yields them, without
building envelopes. The two paths give the same state.

Speed matters (a long run has millions of messages), so:
- handlers are found by the ``type`` column in a dict and mutate the state in place;
- most messages are what agents say and do (`AgentText`, `AgentToolUse`,
  `AgentToolResult`), and the fold only needs to know which agent acted last and
  how; their bodies are not decoded while folding, only the agent id is read from
  the front of the JSON, and the last one per agent is decoded when someone asks
  (`Agent.last_action`). Their sender is almost always that agent: once a sender's
  body has named it, its next rows are only checked to start the same way (two
  string comparisons), so folding such a row adds about a fifth to reading it.

No words for people are made here: a record keeps its message (a refusal, a crash, the
budget reached) or the raw fields (who paused, the system's reason), and the views say
them with `autonoma.words`, the one place, as the live log and ``logs`` do. ``to_dict``
adds those words (``text``, ``summary``, ``pause_reason``) for JSON readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from autonoma.protocol import (
    MESSAGE_TYPES,
    ActorCrashed,
    ActorExited,
    ActorStarted,
    ActorStopped,
    AgentApiRetry,
    AgentProcessExited,
    AgentProcessStarted,
    AgentPromptGiven,
    AgentSessionStarted,
    AgentStateChanged,
    AgentStreamLine,
    AgentText,
    AgentToolResult,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    AnswerRejected,
    AnyMessage,
    BudgetReached,
    ConcurrencyChanged,
    CostReported,
    DeveloperReport,
    Envelope,
    Escalation,
    HoldLifted,
    HumanCommandRejected,
    LeftoversKilled,
    MainAdvanceFinished,
    MergeFailed,
    PauseRequested,
    PermissionDenied,
    PhaseChanged,
    PlanWritten,
    ProjectCommands,
    RefLockRemoved,
    ResolveRequested,
    ResumeRequested,
    RetryRequested,
    ReviewVerdict,
    RunFinished,
    RunStarted,
    SchemaRejected,
    SetupRan,
    SpawnsHeld,
    StopRequested,
    SupervisorGaveUp,
    TaskDefined,
    TaskFeedback,
    TaskMerged,
    TaskStateChanged,
    TaskWorkspace,
    WorkCommittedForAgent,
    WorkLeftOut,
    WorkPaused,
    WorkResumed,
)
from autonoma.words import budget_text, describe, pause_reason

Row = tuple[int, float, str, str, str, str, str]
"""A journal row: ``(seq, ts, run_id, sender, recipient, type, body)``."""


@dataclass(slots=True)
class Usage:
    """Money and tokens spent, summed from `CostReported` messages."""

    usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    turns: int = 0

    @property
    def tokens(self) -> int:
        """All tokens: input, output and cache."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_creation_tokens
        )

    def add(self, cost: CostReported) -> None:
        """Add one agent turn's cost."""
        self.usd += cost.usd
        self.input_tokens += cost.input_tokens
        self.output_tokens += cost.output_tokens
        self.cache_read_tokens += cost.cache_read_tokens
        self.cache_creation_tokens += cost.cache_creation_tokens
        self.turns += 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "usd": self.usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_creation_tokens": self.cache_creation_tokens,
            "tokens": self.tokens,
            "turns": self.turns,
        }


@dataclass(slots=True)
class Run:
    """One run: what it was asked, where it is, how it ended, what it cost."""

    run_id: str
    requirements: str = ""
    project: str = ""
    main: str = ""
    """The branch the run moves forward."""
    endpoint: str = ""
    """``api``, or the absolute path of the sim scenario it plays; "" when not recorded."""
    max_workers: int = 0
    sandbox: bool = False
    """Whether agents' Bash runs in claude's sandbox (as the last start said)."""
    phase: str = ""
    outcome: str | None = None
    """None while the run goes on (or if it died without a `RunFinished`)."""
    summary: str = ""
    started: float | None = None
    ended: float | None = None
    resumes: int = 0
    usage: Usage = field(default_factory=Usage)
    commands: ProjectCommands | None = None
    """The project's set-up and test commands, once the task list is accepted."""
    tests_seen: bool = False
    """A merge of this run ran tests that passed: "no tests collected" fails from now on."""
    interrupted: bool = False
    """No outcome and no process holds the run lock: it was killed (SIGKILL, a lost
    machine) before it could say so. Not journaled: set after the fold by
    `autonoma.project.mark_interrupted`, from the lock, for whoever shows the run."""

    @property
    def setup_command(self) -> str:
        """The set-up command every new worktree runs ("" for none)."""
        return self.commands.setup_command if self.commands is not None else ""

    @property
    def test_command(self) -> str:
        """The test command QA and the merge gate run ("" for none)."""
        return self.commands.test_command if self.commands is not None else ""

    @property
    def tests_opted_out(self) -> bool:
        """The user chose to merge without tests (``test_command = "none"``)."""
        return self.commands is not None and self.commands.tests_opted_out

    def commands_dict(self) -> dict[str, Any] | None:
        """The commands as JSON-ready data (None before the task list)."""
        c = self.commands
        if c is None:
            return None
        return {
            "setup_command": c.setup_command,
            "setup_source": c.setup_source,
            "test_command": c.test_command,
            "test_source": c.test_source,
            "tests_opted_out": c.tests_opted_out,
            "proposed_setup_command": c.proposed_setup_command,
            "proposed_test_command": c.proposed_test_command,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "run_id": self.run_id,
            "requirements": self.requirements,
            "project": self.project,
            "main": self.main,
            "endpoint": self.endpoint,
            "max_workers": self.max_workers,
            "sandbox": self.sandbox,
            "phase": self.phase,
            "outcome": self.outcome,
            "summary": self.summary,
            "started": self.started,
            "ended": self.ended,
            "resumes": self.resumes,
            "usage": self.usage.to_dict(),
            "commands": self.commands_dict(),
            "tests_seen": self.tests_seen,
            "interrupted": self.interrupted,
        }


class Activity:
    """An agent's last action (what it said, a tool it called, a tool's result).

    Made on demand from the stored row or envelope: the message is decoded only here.
    Its words are `autonoma.words.describe` of `message`.
    """

    __slots__ = ("_message", "seq", "ts", "type")

    def __init__(self, seq: int, ts: float, type: str, message: AnyMessage) -> None:
        self.seq = seq
        self.ts = ts
        self.type = type
        self._message = message

    @classmethod
    def of(cls, source: Row | Envelope) -> Activity:
        """The activity of a journal row or an envelope."""
        if isinstance(source, Envelope):
            message = source.message
            return cls(source.seq, source.ts, type(message).__name__, message)
        seq, ts, _run_id, _sender, _recipient, tag, body = source
        return cls(seq, ts, tag, _DECODERS[tag].decode(body))

    @property
    def message(self) -> AnyMessage:
        """The full message."""
        return self._message

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``summary``: the message's words (`autonoma.words`)."""
        return {"seq": self.seq, "ts": self.ts, "type": self.type, "summary": _said(self._message)}


def _said(message: AnyMessage) -> str:
    """The words of ``message`` for JSON readers: `autonoma.words`, the one place."""
    said = describe(message)
    return type(message).__name__ if said is None else said.text


@dataclass(slots=True)
class Agent:
    """An agent, as known from its state messages, its supervisor and its stream."""

    name: str
    role: str = ""
    state: str = ""
    """The last `AgentStateChanged` state; empty before the first one."""
    task_id: str | None = None
    detail: str = ""
    since: float = 0.0
    """When it entered ``state``."""
    restarts: int = 0
    crashes: int = 0
    last_error: str = ""
    usage: Usage = field(default_factory=Usage)
    session_id: str = ""
    """The claude session of its current (or last) turn: what ``--resume`` takes."""
    pid: int | None = None
    """The claude process of the turn running now; None between turns."""
    turns: int = 0
    failed_turns: int = 0
    api_retries: int = 0
    model: str = ""
    """The model of its current (or last) session: what claude reported in its
    ``system/init`` line, else (before it did) the ``--model`` asked for."""

    refusals: int = 0
    """Tool calls and structured answers claude refused it."""
    last_refusal: Refusal | None = None
    """The latest of them."""
    # The row or envelope of its last AgentText/AgentToolUse/AgentToolResult, kept
    # undecoded: `last_action` decodes it when asked. Not compared: a row and an
    # envelope of the same message are the same activity.
    last: Row | Envelope | None = field(default=None, repr=False, compare=False)

    @property
    def last_action(self) -> Activity | None:
        """Its last action, decoded now."""
        return None if self.last is None else Activity.of(self.last)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        action = self.last_action
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "task_id": self.task_id,
            "detail": self.detail,
            "since": self.since,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "last_error": self.last_error,
            "usage": self.usage.to_dict(),
            "session_id": self.session_id,
            "pid": self.pid,
            "turns": self.turns,
            "failed_turns": self.failed_turns,
            "api_retries": self.api_retries,
            "model": self.model,
            "refusals": self.refusals,
            "last_refusal": None if self.last_refusal is None else self.last_refusal.to_dict(),
            "last_action": None if action is None else action.to_dict(),
        }


@dataclass(slots=True)
class ActorInfo:
    """Any supervised actor (agents included), as its supervisor reported it."""

    name: str
    supervisor: str = ""
    kind: str = "worker"
    status: str = "running"
    """running, exited, crashed, shutdown or killed."""
    since: float = 0.0
    starts: int = 0
    restarts: int = 0
    crashes: int = 0
    last_error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "name": self.name,
            "supervisor": self.supervisor,
            "kind": self.kind,
            "status": self.status,
            "since": self.since,
            "starts": self.starts,
            "restarts": self.restarts,
            "crashes": self.crashes,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class Task:
    """A task of the DAG and where it stands."""

    task_id: str
    title: str = ""
    deps: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    state: str = "pending"
    attempts: int = 0
    reason: str = ""
    """Why it is in ``state`` (a QA verdict, a conflict, ...), as last reported."""
    agent: str | None = None
    """The agent that last worked on it."""
    since: float = 0.0
    usage: Usage = field(default_factory=Usage)
    spec: str = ""
    acceptance: list[str] = field(default_factory=list)
    branch: str = ""
    worktree: str = ""
    base: str = ""
    """The integration commit its branch was made from."""
    session_id: str = ""
    """Its developer's claude session: what a follow-up or a recovered turn resumes."""
    session_turns: int = 0
    """Developer turns started in that session (0: the next turn starts it)."""
    session_started: bool = False
    """claude reported that session (``system/init``): worth a ``--resume``.

    claude writes the session's transcript later than that, so a resume may still find
    nothing ("No conversation found"); the orchestrator then starts a new session.
    """
    prompt: str = field(default="", repr=False)
    """What its last developer turn was asked: an interrupted turn is asked again."""
    feedback: str = field(default="", repr=False)
    """What its next developer turn will be told (`TaskFeedback`), until that turn starts."""
    commit: str = ""
    """The integration commit that merged it."""
    history: list[TaskEvent] = field(default_factory=list)
    """Every state it went through, with why: what an escalation shows."""
    notes: list[str] = field(default_factory=list)
    """What humans added with ``autonoma retry --note``."""
    requested: str = ""
    """``retry`` or ``resolve`` when a human asked for it and the run has not acted yet."""
    requested_by: str = ""
    """Where the latest human request on it came from (its ``origin``); kept after."""
    reviews: int = 0
    """QA verdicts given on it so far."""
    test_command: str = ""
    """The command QA ran when it approved (the merge gate runs the project's own)."""
    left_out: list[str] = field(default_factory=list)
    """What Autonoma did not commit for its last developer turn (excluded or undeclared)."""
    left_out_more: int = 0
    """How many more paths were left out than ``left_out`` names."""
    setup_worktree: str = ""
    """The worktree in which the project's set-up last succeeded: set up when it is
    ``worktree``."""
    setups: list[SetupRecord] = field(default_factory=list)
    """Every set-up run for it (in its worktree and in the merge gate)."""

    report: Report | None = None
    """What its developer said at the end of the latest turn (`DeveloperReport`)."""
    verdicts: list[Verdict] = field(default_factory=list)
    """QA's verdicts on it, oldest first."""
    refusals: list[Refusal] = field(default_factory=list)
    """What claude refused its agents (permission denials, schema rejections)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "task_id": self.task_id,
            "title": self.title,
            "deps": list(self.deps),
            "files": list(self.files),
            "state": self.state,
            "attempts": self.attempts,
            "reason": self.reason,
            "agent": self.agent,
            "since": self.since,
            "usage": self.usage.to_dict(),
            "spec": self.spec,
            "acceptance": list(self.acceptance),
            "branch": self.branch,
            "worktree": self.worktree,
            "base": self.base,
            "session_id": self.session_id,
            "commit": self.commit,
            "history": [e.to_dict() for e in self.history],
            "notes": list(self.notes),
            "requested": self.requested,
            "requested_by": self.requested_by,
            "reviews": self.reviews,
            "test_command": self.test_command,
            "left_out": list(self.left_out),
            "left_out_more": self.left_out_more,
            "setup_worktree": self.setup_worktree,
            "setups": [e.to_dict() for e in self.setups],
            "report": None if self.report is None else self.report.to_dict(),
            "verdicts": [v.to_dict() for v in self.verdicts],
            "refusals": [r.to_dict() for r in self.refusals],
        }


@dataclass(slots=True)
class SetupRecord:
    """One run of the project's set-up command (`SetupRan`)."""

    seq: int
    ts: float
    command: str
    exit_code: int | None
    duration_s: float
    timed_out: bool
    place: str
    output_tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        """It ended with exit code 0 in time."""
        return self.exit_code == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "command": self.command,
            "exit_code": self.exit_code,
            "duration_s": self.duration_s,
            "timed_out": self.timed_out,
            "place": self.place,
            "ok": self.ok,
            "output_tail": self.output_tail,
        }


@dataclass(slots=True)
class Report:
    """A developer's report at the end of a turn (see `DeveloperReport`)."""

    seq: int
    agent: str
    summary: str
    changes: list[str] = field(default_factory=list)
    tests: str = ""
    left: list[str] = field(default_factory=list)
    structured: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "agent": self.agent,
            "summary": self.summary,
            "changes": list(self.changes),
            "tests": self.tests,
            "left": list(self.left),
            "structured": self.structured,
        }


@dataclass(slots=True)
class Verdict:
    """One of QA's verdicts on a task."""

    seq: int
    agent: str
    verdict: str
    reasons: list[str] = field(default_factory=list)
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "agent": self.agent,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "attempt": self.attempt,
        }


Refused = PermissionDenied | SchemaRejected | AnswerRejected
"""The messages that record a refusal."""


@dataclass(slots=True)
class Refusal:
    """Something claude refused an agent, or Autonoma refused an agent's answer.

    The message itself is kept; its words are `autonoma.words.describe` of it. ``kind``:
    ``permission`` (a tool call denied), ``schema`` (claude rejected the structured answer
    against the role's schema) or ``answer`` (Autonoma could not use it: `AnswerRejected`).
    """

    seq: int
    ts: float
    message: Refused

    @property
    def agent(self) -> str:
        """The agent refused (the role, for an answer of an agent not named)."""
        m = self.message
        return (m.agent_id or m.role) if isinstance(m, AnswerRejected) else m.agent_id

    @property
    def kind(self) -> str:
        """``permission``, ``schema`` or ``answer``."""
        m = self.message
        if isinstance(m, PermissionDenied):
            return "permission"
        return "schema" if isinstance(m, SchemaRejected) else "answer"

    @property
    def reason(self) -> str:
        """claude's reason (a denial, a schema error), or the answer's errors joined."""
        m = self.message
        return "; ".join(m.errors) if isinstance(m, AnswerRejected) else m.reason

    @property
    def tool(self) -> str:
        """The tool denied ("" for an answer)."""
        return self.message.tool if isinstance(self.message, PermissionDenied) else ""

    @property
    def task_id(self) -> str | None:
        """The task it happened on, if any."""
        return self.message.task_id

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``text``: its words (`autonoma.words`)."""
        m = self.message
        return {
            "seq": self.seq,
            "ts": self.ts,
            "agent": self.agent,
            "kind": self.kind,
            "tool": self.tool,
            "reason": self.reason,
            "what": m.what if isinstance(m, AnswerRejected) else "",
            "attempt": m.attempt if isinstance(m, AnswerRejected) else 0,
            "task_id": self.task_id,
            "text": _said(m),
        }


@dataclass(slots=True)
class TaskEvent:
    """One step of a task's history."""

    seq: int
    ts: float
    state: str
    """A task state, or ``refused`` (then ``refusal`` says what)."""
    reason: str = ""
    attempt: int = 0
    refusal: Refusal | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "state": self.state,
            "reason": self.reason,
            "attempt": self.attempt,
            "refusal": None if self.refusal is None else self.refusal.to_dict(),
        }


@dataclass(slots=True)
class EscalationRecord:
    """Something that needs a human, and why."""

    seq: int
    ts: float
    run_id: str
    source: str
    reason: str
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "run_id": self.run_id,
            "source": self.source,
            "reason": self.reason,
            "task_id": self.task_id,
        }


@dataclass(slots=True)
class RejectedCommand:
    """A file in the inbox that was not acted on (`HumanCommandRejected`)."""

    seq: int
    ts: float
    run_id: str
    path: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "run_id": self.run_id,
            "path": self.path,
            "reason": self.reason,
        }


Supervised = ActorCrashed | ActorStarted | ActorStopped | SupervisorGaveUp
"""The messages that record a crash, a restart, a kill or a supervisor giving up."""


@dataclass(slots=True)
class SupervisionEvent:
    """A crash, a restart, a kill or a supervisor giving up; its words are
    `autonoma.words.describe` of ``message``."""

    seq: int
    ts: float
    kind: str
    """crashed, restarted, killed or gave_up."""
    supervisor: str
    child: str
    error: str = ""
    """The crash (``Type: text``), or the last error of the child a supervisor gave up on."""
    message: Supervised | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``text``: its words (`autonoma.words`)."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "kind": self.kind,
            "supervisor": self.supervisor,
            "child": self.child,
            "error": self.error,
            "text": "" if self.message is None else _said(self.message),
        }


@dataclass(slots=True)
class State:
    """Everything known from the messages folded so far."""

    runs: dict[str, Run] = field(default_factory=dict)
    current_run: str | None = None
    """The run of the last `RunStarted`."""
    agents: dict[str, Agent] = field(default_factory=dict)
    actors: dict[str, ActorInfo] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    escalations: list[EscalationRecord] = field(default_factory=list)
    supervision: list[SupervisionEvent] = field(default_factory=list)
    paused: bool = False
    """No new agent turn starts: a human's pause (`human_pause`), or the system's
    (`work_pause`); `autonoma.words.pause_reason` says why."""
    human_pause: bool = False
    """A human's pause (``autonoma pause``) is in force."""
    paused_by: str = ""
    """The origin of the human's pause in force ("" for none, or not recorded)."""
    work_pause: str = ""
    """The reason of the system's pause in force (`WorkPaused`: the root supervisor's or
    the governor's, a subtree that kept crashing, a lasting rate limit; "" for none)."""
    stopping: bool = False
    """A stop was asked (``autonoma stop``, Ctrl-C): the run is ending."""
    stopped_by: str = ""
    """The origin of that stop ("" when not recorded)."""
    usage: Usage = field(default_factory=Usage)
    """Total cost and tokens."""
    session_usd: dict[str, float] = field(default_factory=dict)
    """claude's running total (``total_cost_usd``) of each session, as its last turn
    reported it: a resumed turn's cost is the change from this."""
    plan: dict[str, Any] | None = None
    """The CEO's accepted plan."""
    held_until: float = 0.0
    """No new agent turn starts before this time (epoch seconds): the governor's backoff."""
    hold_reason: str = ""
    concurrency: int | None = None
    """Agents allowed to work at once after rate limits (AIMD); None: the ceiling
    (``max_workers``). From `ConcurrencyChanged`."""
    concurrency_reason: str = ""
    budget: BudgetReached | None = None
    """The run's budget reached: why no new work starts (None: not reached)."""
    refusals: list[Refusal] = field(default_factory=list)
    """Every refusal, task or not (a plan or task list rejected, a tool denied), in order."""
    rejected_commands: list[RejectedCommand] = field(default_factory=list)
    """Files in the inbox that were not believed (forged, replayed, ...), in order."""
    last_seq: int = 0
    last_ts: float = 0.0
    unknown: int = 0
    """Rows of a message type this version does not know (written by a newer one)."""

    @property
    def run(self) -> Run | None:
        """The current run, if any."""
        return None if self.current_run is None else self.runs.get(self.current_run)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``json.dumps`` takes it as is): what ``status --json`` prints."""
        return {
            "last_seq": self.last_seq,
            "last_ts": self.last_ts,
            "current_run": self.current_run,
            "runs": {k: v.to_dict() for k, v in self.runs.items()},
            "paused": self.paused,
            "pause_reason": pause_reason(self.human_pause, self.paused_by, self.work_pause),
            "human_pause": self.human_pause,
            "paused_by": self.paused_by,
            "work_pause": self.work_pause,
            "stopping": self.stopping,
            "stopped_by": self.stopped_by,
            "plan": self.plan,
            "held_until": self.held_until,
            "concurrency": self.concurrency,
            "hold_reason": self.hold_reason,
            "budget": "" if self.budget is None else budget_text(self.budget),
            "usage": self.usage.to_dict(),
            "session_usd": dict(self.session_usd),
            "agents": {k: v.to_dict() for k, v in self.agents.items()},
            "actors": {k: v.to_dict() for k, v in self.actors.items()},
            "tasks": {k: v.to_dict() for k, v in self.tasks.items()},
            "escalations": [e.to_dict() for e in self.escalations],
            "supervision": [e.to_dict() for e in self.supervision],
            "refusals": [r.to_dict() for r in self.refusals],
            "rejected_commands": [r.to_dict() for r in self.rejected_commands],
            "unknown": self.unknown,
        }


# --- handlers: (state, seq, ts, run_id, message) -> None, mutating state ----------------

_ROOT, _JOURNAL = "root", "journal"
"""The root supervisor and its first child, as `autonoma.system` names them."""


def _run(state: State, run_id: str) -> Run:
    run = state.runs.get(run_id)
    if run is None:
        run = state.runs[run_id] = Run(run_id)
    return run


def _agent(state: State, name: str) -> Agent:
    agent = state.agents.get(name)
    if agent is None:
        # An agent is supervised under its own name: start from what its actor went through.
        actor = state.actors.get(name)
        agent = state.agents[name] = Agent(name)
        if actor is not None:
            agent.restarts, agent.crashes, agent.last_error = (
                actor.restarts,
                actor.crashes,
                actor.last_error,
            )
    return agent


def _task(state: State, task_id: str) -> Task:
    task = state.tasks.get(task_id)
    if task is None:
        task = state.tasks[task_id] = Task(task_id)
    return task


def _actor(state: State, name: str, supervisor: str) -> ActorInfo:
    actor = state.actors.get(name)
    if actor is None:
        actor = state.actors[name] = ActorInfo(name, supervisor)
    return actor


def _actor_started(state: State, seq: int, ts: float, run_id: str, m: ActorStarted) -> None:
    if m.name == _JOURNAL and m.supervisor == _ROOT and not m.restart:
        # The root starts the journal first, once per process: a new `autonoma start`.
        # A pause or a stop asked of an earlier process does not carry over.
        _clear_pauses(state)
    actor = _actor(state, m.name, m.supervisor)
    actor.supervisor, actor.kind, actor.status, actor.since = m.supervisor, m.kind, "running", ts
    actor.starts += 1
    if m.restart:
        actor.restarts += 1
        state.supervision.append(
            SupervisionEvent(seq, ts, "restarted", m.supervisor, m.name, message=m)
        )
        agent = state.agents.get(m.name)
        if agent is not None:
            agent.restarts += 1
    agent = state.agents.get(m.name)
    if agent is not None and agent.state == "dead":
        agent.state, agent.detail, agent.since, agent.pid = "idle", "restarted", ts, None


def _actor_exited(state: State, seq: int, ts: float, run_id: str, m: ActorExited) -> None:
    actor = _actor(state, m.name, m.supervisor)
    actor.status, actor.since = "exited" if m.reason == "normal" else "shutdown", ts
    _agent_gone(state, m.name, ts, actor.status)


def _agent_gone(state: State, name: str, ts: float, why: str) -> None:
    """An agent's actor ended: whatever its stream said last, it is dead now."""
    agent = state.agents.get(name)
    if agent is not None and agent.state != "dead":
        agent.state, agent.detail, agent.since, agent.pid = "dead", why, ts, None


def _actor_crashed(state: State, seq: int, ts: float, run_id: str, m: ActorCrashed) -> None:
    error = f"{m.error_type}: {m.error_text}" if m.error_text else m.error_type
    actor = _actor(state, m.name, m.supervisor)
    actor.status, actor.since, actor.last_error = "crashed", ts, error
    actor.crashes += 1
    state.supervision.append(
        SupervisionEvent(seq, ts, "crashed", m.supervisor, m.name, error, message=m)
    )
    agent = state.agents.get(m.name)
    if agent is not None:
        agent.crashes += 1
        agent.last_error = error
    _agent_gone(state, m.name, ts, f"crashed: {error}")


def _actor_stopped(state: State, seq: int, ts: float, run_id: str, m: ActorStopped) -> None:
    actor = _actor(state, m.name, m.supervisor)
    actor.status, actor.since = m.how, ts
    _agent_gone(state, m.name, ts, "stopped" if m.how == "shutdown" else "killed")
    if m.how == "killed":
        state.supervision.append(
            SupervisionEvent(seq, ts, "killed", m.supervisor, m.name, message=m)
        )


def _supervisor_gave_up(
    state: State, seq: int, ts: float, run_id: str, m: SupervisorGaveUp
) -> None:
    state.supervision.append(SupervisionEvent(seq, ts, "gave_up", m.name, m.child, m.error, m))


def _escalation(state: State, seq: int, ts: float, run_id: str, m: Escalation) -> None:
    state.escalations.append(EscalationRecord(seq, ts, run_id, m.source, m.reason, m.task_id))


def _pause_changed(state: State) -> None:
    """`State.paused` from the human's and the system's pauses."""
    state.paused = state.human_pause or bool(state.work_pause)


def _clear_pauses(state: State) -> None:
    state.paused_by = state.work_pause = state.stopped_by = ""
    state.stopping = state.human_pause = False
    _pause_changed(state)


def _work_paused(state: State, seq: int, ts: float, run_id: str, m: WorkPaused) -> None:
    state.work_pause = m.reason
    _pause_changed(state)


def _work_resumed(state: State, seq: int, ts: float, run_id: str, m: WorkResumed) -> None:
    state.work_pause = ""
    _pause_changed(state)


def _ended(state: State, run_id: str) -> bool:
    run = state.runs.get(run_id)
    return run is not None and run.outcome is not None


def _pause_requested(state: State, seq: int, ts: float, run_id: str, m: PauseRequested) -> None:
    if not _ended(state, run_id):  # a command that came as the run ended changes nothing
        state.human_pause, state.paused_by = True, m.origin
        _pause_changed(state)


def _resume_requested(state: State, seq: int, ts: float, run_id: str, m: ResumeRequested) -> None:
    # The root's pause ends with its own `WorkResumed`, when the run has restarted what
    # it stopped; the governor's when the limit lifts.
    state.human_pause, state.paused_by = False, ""
    _pause_changed(state)


def _stop_requested(state: State, seq: int, ts: float, run_id: str, m: StopRequested) -> None:
    if not _ended(state, run_id):
        state.stopping, state.stopped_by = True, m.origin


def _run_started(state: State, seq: int, ts: float, run_id: str, m: RunStarted) -> None:
    run = _run(state, run_id)
    if m.resumed and run.started is not None:
        run.resumes += 1
    if run.started is None:
        run.started = ts
    run.requirements, run.project, run.max_workers = m.requirements, m.project, m.max_workers
    run.main = m.main or run.main
    run.endpoint = m.endpoint or run.endpoint
    run.sandbox = m.sandbox
    run.outcome, run.summary, run.ended = None, "", None
    state.current_run = run_id
    state.concurrency = None  # each start begins at the ceiling; storms lower it again


def _run_finished(state: State, seq: int, ts: float, run_id: str, m: RunFinished) -> None:
    run = _run(state, run_id)
    run.outcome, run.summary, run.ended = m.outcome, m.summary, ts
    _clear_pauses(state)  # an ended run is neither paused nor stopping


def _phase_changed(state: State, seq: int, ts: float, run_id: str, m: PhaseChanged) -> None:
    _run(state, run_id).phase = m.phase


def _task_defined(state: State, seq: int, ts: float, run_id: str, m: TaskDefined) -> None:
    task = _task(state, m.task_id)
    task.title, task.deps, task.files = m.title, list(m.deps), list(m.files)
    task.spec, task.acceptance = m.spec, list(m.acceptance)
    if not task.since:
        task.since = ts


def _task_state_changed(
    state: State, seq: int, ts: float, run_id: str, m: TaskStateChanged
) -> None:
    task = _task(state, m.task_id)
    if task.state == "merged" and m.state == "merged":
        # One merge said again (a run resumed after it merged but before it heard so, in
        # journals older than the fix): counted once, its first time kept.
        return
    task.state, task.reason, task.since = m.state, m.reason, ts
    if m.attempt:
        # A human's retry starts the count again from 1.
        task.attempts = m.attempt
    task.history.append(TaskEvent(seq, ts, m.state, m.reason, m.attempt))
    task.requested = ""
    if m.state == "running":
        # A new attempt: what an earlier turn left out no longer describes the worktree.
        task.left_out, task.left_out_more = [], 0


def _plan_written(state: State, seq: int, ts: float, run_id: str, m: PlanWritten) -> None:
    state.plan = m.plan


def _task_feedback(state: State, seq: int, ts: float, run_id: str, m: TaskFeedback) -> None:
    _task(state, m.task_id).feedback = m.text


def _task_workspace(state: State, seq: int, ts: float, run_id: str, m: TaskWorkspace) -> None:
    task = _task(state, m.task_id)
    task.branch, task.worktree, task.base = m.branch, m.worktree, m.base


def _work_committed(
    state: State, seq: int, ts: float, run_id: str, m: WorkCommittedForAgent
) -> None:
    task = _task(state, m.task_id)
    task.left_out, task.left_out_more = list(m.left_out), m.left_out_more


def _work_left_out(state: State, seq: int, ts: float, run_id: str, m: WorkLeftOut) -> None:
    task = _task(state, m.task_id)
    task.left_out, task.left_out_more = list(m.left_out), m.left_out_more


def _review_verdict(state: State, seq: int, ts: float, run_id: str, m: ReviewVerdict) -> None:
    task = _task(state, m.task_id)
    task.reviews += 1
    task.verdicts.append(Verdict(seq, m.agent_id, m.verdict, list(m.reasons), m.attempt))
    if m.verdict == "approve":
        task.test_command = m.test_command


def _developer_report(state: State, seq: int, ts: float, run_id: str, m: DeveloperReport) -> None:
    _task(state, m.task_id).report = Report(
        seq, m.agent_id, m.summary, list(m.changes), m.tests, list(m.left), m.structured
    )


def _refused(state: State, refusal: Refusal) -> None:
    """Record a refusal on the run, its agent and its task (whose history shows it)."""
    state.refusals.append(refusal)
    if refusal.agent:
        agent = _agent(state, refusal.agent)
        agent.refusals += 1
        agent.last_refusal = refusal
    if refusal.task_id is not None:
        task = _task(state, refusal.task_id)
        task.refusals.append(refusal)
        # In the history beside the states, so an escalation shows what was refused.
        event = TaskEvent(refusal.seq, refusal.ts, "refused", refusal.reason, refusal=refusal)
        task.history.append(event)


def _permission_denied(state: State, seq: int, ts: float, run_id: str, m: PermissionDenied) -> None:
    _refused(state, Refusal(seq, ts, m))


def _schema_rejected(state: State, seq: int, ts: float, run_id: str, m: SchemaRejected) -> None:
    _refused(state, Refusal(seq, ts, m))


def _answer_rejected(state: State, seq: int, ts: float, run_id: str, m: AnswerRejected) -> None:
    _refused(state, Refusal(seq, ts, m))


def _merge_failed(state: State, seq: int, ts: float, run_id: str, m: MergeFailed) -> None:
    _task(state, m.task_id)


def _task_merged(state: State, seq: int, ts: float, run_id: str, m: TaskMerged) -> None:
    _task(state, m.task_id).commit = m.commit
    if m.tests == "passed":
        _run(state, run_id).tests_seen = True


def _project_commands(state: State, seq: int, ts: float, run_id: str, m: ProjectCommands) -> None:
    _run(state, run_id).commands = m


def _setup_ran(state: State, seq: int, ts: float, run_id: str, m: SetupRan) -> None:
    if m.task_id is None:
        return
    task = _task(state, m.task_id)
    record = SetupRecord(
        seq, ts, m.command, m.exit_code, m.duration_s, m.timed_out, m.place, m.output_tail
    )
    task.setups.append(record)
    if m.place == "task" and record.ok:
        task.setup_worktree = m.worktree


def _retry_requested(state: State, seq: int, ts: float, run_id: str, m: RetryRequested) -> None:
    task = _task(state, m.task_id)
    task.requested, task.requested_by = "retry", m.origin
    if m.note:
        task.notes.append(m.note)


def _resolve_requested(state: State, seq: int, ts: float, run_id: str, m: ResolveRequested) -> None:
    task = _task(state, m.task_id)
    task.requested, task.requested_by = "resolve", m.origin
    if m.note:
        task.notes.append(m.note)


def _human_command_rejected(
    state: State, seq: int, ts: float, run_id: str, m: HumanCommandRejected
) -> None:
    state.rejected_commands.append(RejectedCommand(seq, ts, run_id, m.path, m.reason))


def _spawns_held(state: State, seq: int, ts: float, run_id: str, m: SpawnsHeld) -> None:
    state.held_until, state.hold_reason = max(state.held_until, m.until), m.reason


def _concurrency_changed(
    state: State, seq: int, ts: float, run_id: str, m: ConcurrencyChanged
) -> None:
    state.concurrency = None if m.limit >= m.ceiling else m.limit
    state.concurrency_reason = m.reason


def _agent_prompt_given(
    state: State, seq: int, ts: float, run_id: str, m: AgentPromptGiven
) -> None:
    # What `AgentTurnStarting`'s last argument says of a turn started with its prompt.
    if m.task_id is not None and m.role == "developer":
        task = _task(state, m.task_id)
        if task.session_id == m.session_id:
            task.prompt = m.prompt


def _hold_lifted(state: State, seq: int, ts: float, run_id: str, m: HoldLifted) -> None:
    # The storm is over before the hold's window: new agents may start from now on.
    state.held_until = min(state.held_until, ts)


def _ref_lock_removed(state: State, seq: int, ts: float, run_id: str, m: RefLockRemoved) -> None:
    # A file of git's was removed before the run (re)started: no state depends on it;
    # the journal row is the record.
    return None


def _main_advance_finished(
    state: State, seq: int, ts: float, run_id: str, m: MainAdvanceFinished
) -> None:
    # The user's branch was moved to a commit the run had merged already: no state
    # depends on where it points; the journal row is the record.
    return None


def _leftovers_killed(state: State, seq: int, ts: float, run_id: str, m: LeftoversKilled) -> None:
    # What an earlier run left running was killed: nothing of the state depends on it
    # (the turns it belonged to already ended in the fold); the journal row is the record.
    return None


def _budget_reached(state: State, seq: int, ts: float, run_id: str, m: BudgetReached) -> None:
    if m.scope == "run":
        state.budget = m


def _agent_state_changed(
    state: State, seq: int, ts: float, run_id: str, m: AgentStateChanged
) -> None:
    agent = _agent(state, m.agent_id)
    if agent.state != m.state:
        agent.since = ts
    agent.role, agent.state, agent.task_id, agent.detail = m.role, m.state, m.task_id, m.detail
    if m.task_id is not None:
        _task(state, m.task_id).agent = m.agent_id


def _cost_reported(state: State, seq: int, ts: float, run_id: str, m: CostReported) -> None:
    _agent(state, m.agent_id).usage.add(m)
    if m.task_id is not None:
        _task(state, m.task_id).usage.add(m)
    _run(state, run_id).usage.add(m)
    state.usage.add(m)


def _agent_turn_starting(
    state: State, seq: int, ts: float, run_id: str, m: AgentTurnStarting
) -> None:
    agent = _agent(state, m.agent_id)
    agent.role, agent.session_id, agent.task_id = m.role, m.session_id, m.task_id
    agent.model = m.model or _asked_model(m.argv)
    if m.task_id is not None and m.role == "developer":
        task = _task(state, m.task_id)
        if task.session_id != m.session_id:
            task.session_id, task.session_turns, task.session_started = m.session_id, 0, False
        task.session_turns += 1
        # A pre-started turn's prompt comes in its `AgentPromptGiven`.
        task.prompt = "" if m.waits_for_prompt or not m.argv else m.argv[-1]
        task.feedback = ""


def _asked_model(argv: list[str]) -> str:
    """The ``--model`` of an argv (journals written before `AgentTurnStarting.model`)."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        if arg == "--model":
            return argv[i + 1]
    return ""


def _agent_process_started(
    state: State, seq: int, ts: float, run_id: str, m: AgentProcessStarted
) -> None:
    _agent(state, m.agent_id).pid = m.pid


def _agent_session_started(
    state: State, seq: int, ts: float, run_id: str, m: AgentSessionStarted
) -> None:
    agent = _agent(state, m.agent_id)
    agent.session_id = m.session_id
    if m.model:
        agent.model = m.model
    if m.task_id is not None:
        task = state.tasks.get(m.task_id)
        if task is not None and task.session_id == m.session_id:
            task.session_started = True


def _agent_api_retry(state: State, seq: int, ts: float, run_id: str, m: AgentApiRetry) -> None:
    _agent(state, m.agent_id).api_retries += 1


def _agent_turn_finished(
    state: State, seq: int, ts: float, run_id: str, m: AgentTurnFinished
) -> None:
    agent = _agent(state, m.agent_id)
    agent.turns += 1
    if m.session_id:
        # The highest seen: a turn that ended before claude counted anything (a resume
        # that found no session) reports 0, which must not make the next turn count twice.
        known = state.session_usd.get(m.session_id, 0.0)
        state.session_usd[m.session_id] = max(known, m.total_cost_usd)
    if m.is_error:
        agent.failed_turns += 1
        agent.last_error = m.result or m.api_error or m.terminal_reason or m.subtype


def _agent_process_exited(
    state: State, seq: int, ts: float, run_id: str, m: AgentProcessExited
) -> None:
    _agent(state, m.agent_id).pid = None


_Handler = Callable[[State, int, float, str, Any], None]

_HANDLERS: dict[str, _Handler] = {
    "ActorStarted": _actor_started,
    "ActorExited": _actor_exited,
    "ActorCrashed": _actor_crashed,
    "ActorStopped": _actor_stopped,
    "SupervisorGaveUp": _supervisor_gave_up,
    "Escalation": _escalation,
    "WorkPaused": _work_paused,
    "WorkResumed": _work_resumed,
    "RunStarted": _run_started,
    "RunFinished": _run_finished,
    "PhaseChanged": _phase_changed,
    "TaskDefined": _task_defined,
    "TaskStateChanged": _task_state_changed,
    "PlanWritten": _plan_written,
    "TaskWorkspace": _task_workspace,
    "TaskFeedback": _task_feedback,
    "WorkCommittedForAgent": _work_committed,
    "WorkLeftOut": _work_left_out,
    "ReviewVerdict": _review_verdict,
    "MergeFailed": _merge_failed,
    "DeveloperReport": _developer_report,
    "AnswerRejected": _answer_rejected,
    "PermissionDenied": _permission_denied,
    "SchemaRejected": _schema_rejected,
    "TaskMerged": _task_merged,
    "ProjectCommands": _project_commands,
    "SetupRan": _setup_ran,
    "RetryRequested": _retry_requested,
    "ResolveRequested": _resolve_requested,
    "PauseRequested": _pause_requested,
    "ResumeRequested": _resume_requested,
    "StopRequested": _stop_requested,
    "HumanCommandRejected": _human_command_rejected,
    "SpawnsHeld": _spawns_held,
    "BudgetReached": _budget_reached,
    "AgentStateChanged": _agent_state_changed,
    "CostReported": _cost_reported,
    "AgentTurnStarting": _agent_turn_starting,
    "AgentProcessStarted": _agent_process_started,
    "AgentSessionStarted": _agent_session_started,
    "AgentApiRetry": _agent_api_retry,
    "AgentTurnFinished": _agent_turn_finished,
    "AgentProcessExited": _agent_process_exited,
    "ConcurrencyChanged": _concurrency_changed,
    "LeftoversKilled": _leftovers_killed,
    "RefLockRemoved": _ref_lock_removed,
    "MainAdvanceFinished": _main_advance_finished,
    "AgentPromptGiven": _agent_prompt_given,
    "HoldLifted": _hold_lifted,
}

# Messages that only make an agent's last action. The encoder writes the tag, then the
# fields in declaration order, and `agent_id` is declared first in all three; so the
# agent is read straight from the front of the body. Anything else (an id with an
# escape, a body written differently) falls back to decoding.
_ACTIVITY: dict[str, str] = {
    cls.__name__: f'{{"type":"{cls.__name__}","agent_id":"'
    for cls in (AgentText, AgentToolUse, AgentToolResult, AgentStreamLine)
}

_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    cls.__name__: msgspec.json.Decoder(cls) for cls in MESSAGE_TYPES
}

HANDLED_TYPES = frozenset(_HANDLERS) | frozenset(_ACTIVITY)
"""Every message type the fold understands (all of `autonoma.protocol.MESSAGE_TYPES`)."""


def _agent_id_of(tag: str, prefix: str, body: str) -> str:
    if body.startswith(prefix):
        start = len(prefix)
        end = body.find('"', start)
        if end >= 0:
            agent_id = body[start:end]
            if "\\" not in agent_id:
                return agent_id
    agent_id = _DECODERS[tag].decode(body).agent_id
    assert isinstance(agent_id, str)
    return agent_id


# --- the fold ------------------------------------------------------------------------


def apply(state: State, envelope: Envelope) -> State:
    """Fold one envelope into ``state`` (in place); returns ``state``."""
    message = envelope.message
    if isinstance(message, AgentText | AgentToolUse | AgentToolResult | AgentStreamLine):
        _agent(state, message.agent_id).last = envelope
    else:
        _HANDLERS[type(message).__name__](
            state, envelope.seq, envelope.ts, envelope.run_id, message
        )
    state.last_seq, state.last_ts = envelope.seq, envelope.ts
    return state


def fold(envelopes: Iterable[Envelope], state: State | None = None) -> State:
    """Fold ``envelopes`` in order into ``state`` (a new `State` if None); returns it."""
    if state is None:
        state = State()
    for envelope in envelopes:
        apply(state, envelope)
    return state


def apply_row(state: State, row: Row) -> State:
    """Fold one journal row into ``state`` (in place); returns ``state``."""
    return fold_rows((row,), state)


def fold_rows(rows: Iterable[Row], state: State | None = None) -> State:
    """Fold journal rows ``(seq, ts, run_id, sender, recipient, type, body)`` in seq order.

    Same result as `fold` over the same messages as envelopes, faster. Rows of a type
    this version does not know are counted in `State.unknown` and skipped. Raises
    `ValueError` (naming the seq) for a body that does not decode.
    """
    if state is None:
        state = State()
    handlers = _HANDLERS
    decoders = _DECODERS
    # Most rows are an agent's activity, and their sender is that agent: per type, the
    # sender's expected body start and its `Agent`, so that such a row costs two string
    # comparisons and one attribute store (the body says who acted: it is checked).
    by_sender: dict[str, dict[str, tuple[str, str, Agent]]] = {tag: {} for tag in _ACTIVITY}
    activity = by_sender.get
    row: Row | None = None
    try:
        for row in rows:
            senders = activity(row[5])
            if senders is not None:
                known = senders.get(row[3])
                # start <= body < end: the body starts with start (see `_activity_row`),
                # without the cost of a call to `str.startswith`.
                if known is not None and known[0] <= row[6] < known[1]:
                    known[2].last = row
                else:
                    _activity_row(state, senders, row)
                continue
            seq, ts, run_id, _sender, _recipient, tag, body = row
            handler = handlers.get(tag)
            if handler is None:
                state.unknown += 1
                continue
            handler(state, seq, ts, run_id, decoders[tag].decode(body))
    except msgspec.DecodeError as exc:
        assert row is not None
        raise ValueError(f"seq {row[0]}: cannot read the {row[5]} message: {exc}") from exc
    if row is not None:
        state.last_seq, state.last_ts = row[0], row[1]
    return state


def _activity_row(state: State, senders: dict[str, tuple[str, str, Agent]], row: Row) -> None:
    """An activity row whose agent is not (yet) known by its sender: read the agent from
    the body, and remember the sender if it is that agent."""
    sender, tag, body = row[3], row[5], row[6]
    prefix = _ACTIVITY[tag]
    agent_id = _agent_id_of(tag, prefix, body)
    agent = _agent(state, agent_id)
    agent.last = row
    if agent_id == sender and '"' not in sender and "\\" not in sender:
        # The body of this sender's next rows starts with exactly ``start`` when it
        # names the same agent (`_agent_id_of` reads the id up to the first quote).
        # ``end`` is ``start`` with its last character (a quote) one higher: a string
        # is >= start and < end exactly when it starts with start.
        start = prefix + sender + '"'
        senders[sender] = (start, start[:-1] + "#", agent)
