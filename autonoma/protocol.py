"""Every message that Autonoma's actors exchange, and the envelope the journal stores.

Each message is a frozen ``msgspec.Struct`` tagged with its class name in the field
``type``, so one decoder reads any of them back from the journal. Add new messages
here, and only here; `MESSAGE_TYPES` lists them all for decoding.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Message(
    msgspec.Struct, tag=True, tag_field="type", frozen=True, kw_only=True, omit_defaults=True
):
    """Base of every message; the tag is the class name."""


# --- the supervisor tree (sender: the supervisor that saw it) ---------------------

ChildKind = Literal["worker", "supervisor"]


class ActorStarted(Message, frozen=True):
    """A child actor started (first start, or a restart when ``restart`` is true)."""

    name: str
    supervisor: str
    urn: str
    kind: ChildKind = "worker"
    restart: bool = False


class ActorExited(Message, frozen=True):
    """A child ended on its own without an error (``normal``) or with ``shutdown``."""

    name: str
    supervisor: str
    reason: Literal["normal", "shutdown"]


class ActorCrashed(Message, frozen=True):
    """A child raised: in a handler, or while starting (``during_start``)."""

    name: str
    supervisor: str
    error_type: str
    error_text: str
    during_start: bool = False


class ActorStopped(Message, frozen=True):
    """The supervisor ended a child: asked to stop (``shutdown``) or killed."""

    name: str
    supervisor: str
    how: Literal["shutdown", "killed"]


class SupervisorGaveUp(Message, frozen=True):
    """Restarts went above the intensity: the supervisor stops its children and exits."""

    name: str
    restarts: int
    intensity: int
    period: float
    child: str
    error: str = ""


class Escalation(Message, frozen=True):
    """Something needs a human: a subtree gave up, or a task exhausted its retries."""

    source: str
    reason: str
    task_id: str | None = None


class WorkPaused(Message, frozen=True):
    """No new work starts until `WorkResumed`."""

    reason: str


class WorkResumed(Message, frozen=True):
    """New work may start again."""

    reason: str


# --- the run -------------------------------------------------------------------

RunOutcome = Literal["done", "failed", "stopped"]


class RunStarted(Message, frozen=True):
    """A run began (or was resumed) for a requirements file."""

    requirements: str
    project: str
    max_workers: int
    resumed: bool = False
    main: str = ""
    """The branch the run moves forward: the one checked out when it first started."""
    endpoint: str = ""
    """The model it talks to: ``api`` (the real one), or the absolute path of the sim
    scenario it plays (``--scenario``). Empty in journals older than this field."""
    sandbox: bool = False
    """Whether agents' Bash ran in claude's sandbox (the ``sandbox`` setting). False in
    journals older than this field: the sandbox was off by default then."""


class RunFinished(Message, frozen=True):
    """A run ended; ``summary`` is the one-paragraph account shown to the user."""

    outcome: RunOutcome
    summary: str = ""


class PhaseChanged(Message, frozen=True):
    """The run moved to a phase: planning, decomposition, development, done, ..."""

    phase: str


# --- tasks ---------------------------------------------------------------------


class PlanWritten(Message, frozen=True):
    """The CEO's plan, accepted and saved to ``path`` (``.autonoma/plan.json``)."""

    plan: dict[str, Any]
    path: str = ""


class TaskDefined(Message, frozen=True):
    """A task of the DAG, as the Staff Engineer defined it (and as a resumed run reads it)."""

    task_id: str
    title: str
    deps: list[str] = []
    files: list[str] = []
    spec: str = ""
    acceptance: list[str] = []


TaskState = Literal[
    "pending", "ready", "running", "review", "merging", "merged", "failed", "escalated", "resolved"
]


class TaskStateChanged(Message, frozen=True):
    """A task moved to a state; ``reason`` says why (a QA verdict, a conflict, ...)."""

    task_id: str
    state: TaskState
    reason: str = ""
    attempt: int = 0


class TaskWorkspace(Message, frozen=True):
    """A task's branch and worktree, made from the integration head ``base`` (a commit id)."""

    task_id: str
    branch: str
    worktree: str
    base: str


class TaskFeedback(Message, frozen=True):
    """What the task's next developer turn will be told (why the work came back).

    Journaled so that a run stopped before that turn still tells it.
    """

    task_id: str
    text: str


class DeveloperReport(Message, frozen=True):
    """What a developer said at the end of a turn on a task: what changed, how it was
    tested, what is left.

    ``structured`` is false when claude gave no structured answer: ``summary`` is then
    the turn's result text and the lists are empty.
    """

    task_id: str
    agent_id: str
    summary: str
    changes: list[str] = []
    tests: str = ""
    left: list[str] = []
    structured: bool = False


class AnswerRejected(Message, frozen=True):
    """Autonoma could not use an agent's structured answer (a plan, a task list, a verdict).

    ``errors`` are one line each, naming the field; they go back to the agent.
    """

    role: str
    what: str
    errors: list[str]
    attempt: int = 1
    agent_id: str = ""
    task_id: str | None = None


class WorkCommittedForAgent(Message, frozen=True):
    """A turn ended with uncommitted changes in the worktree: Autonoma committed them.

    Only changes to tracked files and the task's declared files are taken, never what
    the project's exclude list matches; ``left_out`` names what stayed uncommitted.
    """

    task_id: str
    agent_id: str
    commit: str
    files: list[str] = []
    left_out: list[str] = []
    """Paths left uncommitted in the worktree (a folder once, as ``node_modules/``)."""
    left_out_more: int = 0
    """How many more were left out than ``left_out`` names (it is bounded)."""


class WorkLeftOut(Message, frozen=True):
    """A turn ended with files Autonoma did not commit for the agent, and nothing else to commit.

    Excluded (caches, virtual environments, secrets: ``.autonoma/exclude``) or new files
    the task does not declare; they stay in the worktree, uncommitted.
    """

    task_id: str
    agent_id: str
    left_out: list[str]
    left_out_more: int = 0


class ReviewVerdict(Message, frozen=True):
    """QA's verdict on one attempt of a task."""

    task_id: str
    agent_id: str
    verdict: Literal["approve", "changes_requested"]
    reasons: list[str] = []
    test_command: str = ""
    test_output_summary: str = ""
    attempt: int = 0


MergeFailure = Literal[
    "conflict", "tests_failed", "setup_failed", "no_test_command", "integration_locked"
]


class MergeFailed(Message, frozen=True):
    """An approved branch did not merge.

    ``kind``: it conflicted, the merged result's tests failed, the project's set-up
    command failed in the check worktree, or the project has no test command (and the
    user did not opt out of tests), so nothing may be merged. ``integration_locked``: the
    result was green, but a git of the user's held ``autonoma/integration``'s lock longer
    than the merge queue waits (``output`` says which file): nothing moved, and the task
    is merged again (no attempt of its developer's is counted).
    """

    task_id: str
    kind: MergeFailure
    files: list[str] = []
    output: str = ""


TestsOutcome = Literal["", "passed", "no_tests", "opted_out"]


class TaskMerged(Message, frozen=True):
    """A task's branch is merged onto the integration branch and its tests passed there.

    ``main_moved`` is false when ``main`` could not be moved safely (``detail`` says why).
    """

    task_id: str
    commit: str
    main_moved: bool = True
    detail: str = ""
    tests: TestsOutcome = ""
    """What the merge gate's test run said: ``passed``, ``no_tests`` (none collected
    yet), ``opted_out`` (``test_command = "none"``); empty in journals older than it."""


CommandSource = Literal["", "config", "staff_engineer"]


class ProjectCommands(Message, frozen=True):
    """The project's set-up and test commands, fixed when the task list is accepted.

    An empty ``test_command`` runs no tests: by the user's choice when
    ``tests_opted_out`` (``test_command = "none"``), else merging is refused. The
    ``proposed_*`` fields keep the Staff Engineer's answer, so that a config changed
    later can be applied to a resumed run.
    """

    setup_command: str = ""
    test_command: str = ""
    tests_opted_out: bool = False
    setup_source: CommandSource = ""
    """Where the set-up command came from (empty: nobody gave one)."""
    test_source: CommandSource = ""
    proposed_setup_command: str = ""
    proposed_test_command: str = ""


SetupPlace = Literal["task", "merge_gate", "review", "node"]
"""Where a set-up ran: a task's clone, the merge gate, QA's review checkout, or a task's
clone on a cluster's node (`autonoma.cluster`)."""


class SetupRan(Message, frozen=True):
    """The project's set-up command ran in a worktree: a task's, or the merge gate's."""

    task_id: str | None
    command: str
    exit_code: int | None = None
    duration_s: float = 0.0
    output_tail: str = ""
    timed_out: bool = False
    place: SetupPlace = "task"
    worktree: str = ""

    @property
    def ok(self) -> bool:
        """It ended with exit code 0 in time."""
        return self.exit_code == 0 and not self.timed_out


class RetryRequested(Message, frozen=True):
    """A human sends an escalated task back to work, with added context in ``note``.

    ``origin`` says who gave the command and where (user, uid, pid, tty, host), as the
    command line that sent it saw itself; "" in journals older than the field.
    """

    task_id: str
    note: str = ""
    origin: str = ""


class ResolveRequested(Message, frozen=True):
    """A human finished an escalated task by hand: its dependents may run (``origin``: as
    in `RetryRequested`)."""

    task_id: str
    note: str = ""
    origin: str = ""


class PauseRequested(Message, frozen=True):
    """A human paused the active run (``autonoma pause``): no new agent turn starts until
    `ResumeRequested`; turns under way finish and merges go on (``origin``: as in
    `RetryRequested`)."""

    origin: str = ""


class ResumeRequested(Message, frozen=True):
    """A human resumed the active run (``autonoma resume``): new work starts again, after
    a human's pause or a root supervisor's pause (a subtree that kept crashing)."""

    origin: str = ""


class StopRequested(Message, frozen=True):
    """A human stopped the active run (``autonoma stop``, or Ctrl-C in its terminal): no
    new work, the merge in flight finishes, turns are stopped, and the run ends journaled
    as stopped; the next ``autonoma start`` resumes it."""

    origin: str = ""


class HumanCommandRejected(Message, frozen=True):
    """A file in the inbox was not acted on: unsigned, badly signed, replayed, for another
    run, not a regular file of the run's user, too big, or one of too many. ``path`` is
    where it was set aside (``<name>.bad``), or the inbox when many were."""

    path: str
    reason: str


# --- the governor ----------------------------------------------------------------


class SpawnsHeld(Message, frozen=True):
    """An agent saw a rate limit: no new agent turn starts before ``until`` (epoch seconds)."""

    until: float
    delay: float
    reason: str
    level: int = 1


class BudgetReached(Message, frozen=True):
    """A budget cap in USD is reached: no new work starts (for the run, or for the task)."""

    scope: Literal["run", "task"]
    limit_usd: float
    spent_usd: float
    task_id: str | None = None


# --- agents --------------------------------------------------------------------

AgentState = Literal["starting", "working", "waiting", "idle", "dead"]


class AgentStateChanged(Message, frozen=True):
    """An agent's state as known from its process and its stream."""

    agent_id: str
    role: str
    state: AgentState
    task_id: str | None = None
    detail: str = ""


class AgentText(Message, frozen=True):
    """Text an agent's model said."""

    agent_id: str
    text: str
    task_id: str | None = None


class AgentToolUse(Message, frozen=True):
    """A tool call an agent's model made."""

    agent_id: str
    tool_use_id: str
    tool: str
    input: dict[str, Any] = {}
    task_id: str | None = None


class AgentToolResult(Message, frozen=True):
    """What a tool call returned to the agent's model."""

    agent_id: str
    tool_use_id: str
    content: str
    is_error: bool = False
    task_id: str | None = None


class AgentTurnStarting(Message, frozen=True):
    """A claude turn is about to be spawned; journaled (durably) before the spawn.

    ``session_id`` is chosen by Autonoma: ``--session-id`` for a first turn,
    ``--resume`` when ``resume`` is true (a follow-up turn, or after a crash).
    """

    agent_id: str
    role: str
    session_id: str
    cwd: str
    argv: list[str]
    resume: bool = False
    task_id: str | None = None
    model: str = ""
    """The ``--model`` asked for (an alias or an id); claude's answer is in
    `AgentSessionStarted.model`."""
    waits_for_prompt: bool = False
    """Pre-started: the process starts before its prompt is known (``--input-format
    stream-json``, no prompt argument); `AgentPromptGiven` gives it, or the process is
    stopped unused."""


class AgentProcessStarted(Message, frozen=True):
    """The claude process of a turn is running (its own session and process group)."""

    agent_id: str
    pid: int
    task_id: str | None = None


class AgentSessionStarted(Message, frozen=True):
    """claude's ``system/init`` line: the session as the CLI sees it."""

    agent_id: str
    session_id: str
    model: str = ""
    cwd: str = ""
    tools: list[str] = []
    permission_mode: str = ""
    claude_version: str = ""
    task_id: str | None = None


class AgentApiRetry(Message, frozen=True):
    """claude's ``system/api_retry`` line: it is retrying an API error itself."""

    agent_id: str
    attempt: int
    max_retries: int
    retry_delay_ms: float
    error_status: int | None = None
    error: str = ""
    task_id: str | None = None


class AgentTurnFinished(Message, frozen=True):
    """claude's ``result`` line. A turn failed when ``is_error`` (never read ``subtype`` alone)."""

    agent_id: str
    session_id: str
    subtype: str
    is_error: bool
    result: str = ""
    api_error_status: int | None = None
    api_error: str | None = None
    terminal_reason: str = ""
    errors: list[str] = []
    num_turns: int = 0
    duration_ms: float = 0.0
    total_cost_usd: float = 0.0
    structured_output: Any = None
    permission_denials: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    task_id: str | None = None


class AgentStreamLine(Message, frozen=True):
    """A line claude printed that is not a known stream-json event, kept as it was.

    ``kind`` is ``not_json`` (a crash message, a warning) or ``unknown`` (a JSON line
    of a type this version does not decode).
    """

    agent_id: str
    kind: Literal["not_json", "unknown"]
    text: str
    task_id: str | None = None


class PermissionDenied(Message, frozen=True):
    """claude refused an agent a tool call (its ``permission_denials``), with its reason.

    ``reason`` is the error claude returned to the model for that call.
    """

    agent_id: str
    tool: str
    tool_use_id: str = ""
    input: dict[str, Any] = {}
    reason: str = ""
    task_id: str | None = None


class SchemaRejected(Message, frozen=True):
    """claude refused an agent's structured answer against the role's ``--json-schema``.

    ``reason`` is claude's own error text (the StructuredOutput call's tool result).
    """

    agent_id: str
    tool_use_id: str
    reason: str
    task_id: str | None = None


class AgentProcessExited(Message, frozen=True):
    """The claude process of a turn ended: its exit code, or the signal that ended it.

    ``timed_out`` when Autonoma stopped it for time; ``timeout`` says which limit:
    ``"idle"`` (no output line for ``timeout_s`` seconds) or ``"wall"`` (the turn ran
    ``timeout_s`` seconds in all).
    """

    agent_id: str
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    task_id: str | None = None
    pid: int | None = None
    timeout: Literal["", "idle", "wall"] = ""
    timeout_s: float = 0.0
    """The limit that stopped it, in seconds (0 when it was not stopped for time)."""


class CostReported(Message, frozen=True):
    """Cost and tokens of one finished agent turn, from claude's ``result`` line.

    ``usd`` is what this turn cost: the change in claude's running total of the
    session (``total_cost_usd``, which a ``--resume``d turn reports including the
    earlier turns) since the session's previous turn; ``session_usd`` is that
    running total. The token counts are claude's ``usage``, which is per turn already.
    """

    agent_id: str
    usd: float
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    task_id: str | None = None
    session_usd: float = 0.0
    session_id: str = ""


class ConcurrencyChanged(Message, frozen=True):
    """How many agents may work at once changed (adaptive concurrency, AIMD).

    ``limit`` drops by half (never below 1) after a storm of rate limits and climbs by
    one per request that goes through (a tool call, a turn that ended well), up to
    ``ceiling`` (the ``max_workers`` setting).
    """

    limit: int
    ceiling: int
    reason: str


class LeftoversKilled(Message, frozen=True):
    """Processes left working in the project's agents' folders by an earlier run whose
    ``autonoma`` died were killed before this run (re)started (docs/sandbox.md)."""

    pids: list[int] = msgspec.field(default_factory=list)
    commands: list[str] = msgspec.field(default_factory=list)
    """Each one's command line (cut at 200 characters), in the order of ``pids``."""


class RefLockRemoved(Message, frozen=True):
    """The lock on the branch the run moves (``refs/heads/<main>.lock``), left by a git
    killed as it moved it (an earlier Autonoma SIGKILLed as its merge queue moved
    ``main``), was removed before the run (re)started: every later move would have
    failed. Removed only when stale (`autonoma.vcs.workspace.lock_is_stale`). Also the
    merge queue's, mid-run, for a lock on ``autonoma/integration`` older than
    `autonoma.vcs.workspace.STALE_LOCK_AGE` (only Autonoma moves that branch)."""

    path: str
    branch: str = ""
    age_s: float = 0.0
    """How old it was (seconds since it was written)."""
    ours: bool = False
    """It named a commit of the integration branch: Autonoma's own move of the branch."""


class MainAdvanceFinished(Message, frozen=True):
    """A move of the branch the run moves (``main``) that a kill interrupted, after the
    user's working tree and index were updated to a merged result and before the branch
    was, was finished as the run (re)started: the branch now points at ``commit``, the
    commit of the integration branch those files are exactly
    (`autonoma.vcs.workspace.interrupted_advance`)."""

    branch: str
    commit: str


class AgentPromptGiven(Message, frozen=True):
    """A pre-started turn (`AgentTurnStarting.waits_for_prompt`) is given its prompt;
    journaled (durably) before it is written to claude's stdin. From here on the turn
    is the turn it would have been had it started with this prompt."""

    agent_id: str
    role: str
    session_id: str
    prompt: str
    task_id: str | None = None


class HoldLifted(Message, frozen=True):
    """The hold on new agents (`SpawnsHeld`) ends before its window does: a request that
    was sent during the storm went through (the probe's, or an agent's own retry of a
    429/529), so the storm is over and the held turns resume (``crew_backoff``)."""

    reason: str


MESSAGE_TYPES: tuple[type[Message], ...] = (
    ActorStarted,
    ActorExited,
    ActorCrashed,
    ActorStopped,
    SupervisorGaveUp,
    Escalation,
    WorkPaused,
    WorkResumed,
    RunStarted,
    RunFinished,
    PhaseChanged,
    PlanWritten,
    TaskDefined,
    TaskStateChanged,
    TaskWorkspace,
    TaskFeedback,
    DeveloperReport,
    AnswerRejected,
    WorkCommittedForAgent,
    WorkLeftOut,
    ReviewVerdict,
    MergeFailed,
    TaskMerged,
    ProjectCommands,
    SetupRan,
    RetryRequested,
    ResolveRequested,
    PauseRequested,
    ResumeRequested,
    StopRequested,
    HumanCommandRejected,
    SpawnsHeld,
    BudgetReached,
    AgentStateChanged,
    AgentText,
    AgentToolUse,
    AgentToolResult,
    AgentTurnStarting,
    AgentProcessStarted,
    AgentSessionStarted,
    AgentApiRetry,
    AgentTurnFinished,
    AgentStreamLine,
    PermissionDenied,
    SchemaRejected,
    AgentProcessExited,
    CostReported,
    ConcurrencyChanged,
    LeftoversKilled,
    RefLockRemoved,
    MainAdvanceFinished,
    AgentPromptGiven,
    HoldLifted,
)

AnyMessage = (
    ActorStarted
    | ActorExited
    | ActorCrashed
    | ActorStopped
    | SupervisorGaveUp
    | Escalation
    | WorkPaused
    | WorkResumed
    | RunStarted
    | RunFinished
    | PhaseChanged
    | PlanWritten
    | TaskDefined
    | TaskStateChanged
    | TaskWorkspace
    | TaskFeedback
    | DeveloperReport
    | AnswerRejected
    | WorkCommittedForAgent
    | WorkLeftOut
    | ReviewVerdict
    | MergeFailed
    | TaskMerged
    | ProjectCommands
    | SetupRan
    | RetryRequested
    | ResolveRequested
    | PauseRequested
    | ResumeRequested
    | StopRequested
    | HumanCommandRejected
    | SpawnsHeld
    | BudgetReached
    | AgentStateChanged
    | AgentText
    | AgentToolUse
    | AgentToolResult
    | AgentTurnStarting
    | AgentProcessStarted
    | AgentSessionStarted
    | AgentApiRetry
    | AgentTurnFinished
    | AgentStreamLine
    | PermissionDenied
    | SchemaRejected
    | AgentProcessExited
    | CostReported
    | ConcurrencyChanged
    | LeftoversKilled
    | RefLockRemoved
    | MainAdvanceFinished
    | AgentPromptGiven
    | HoldLifted
)


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """A message as journaled: ``seq`` is global and gap-free, ``ts`` is UTC epoch seconds.

    ``seq`` is 0 until the journal assigns it.
    """

    seq: int
    ts: float
    run_id: str
    sender: str
    recipient: str
    message: AnyMessage


def message_tag(message: Message) -> str:
    """The ``type`` tag of a message (its class name)."""
    return type(message).__name__


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyMessage)


def encode_message(message: Message) -> bytes:
    """The message as JSON, tag included: what the journal stores."""
    return _encoder.encode(message)


def decode_message(body: bytes | str) -> AnyMessage:
    """Read back a message that `encode_message` wrote."""
    message: AnyMessage = _decoder.decode(body)
    return message
