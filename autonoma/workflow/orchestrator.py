"""The orchestrator: the run's state machine, rebuilt from the journal when it starts.

Its state is the fold of the run's messages (`autonoma.journal.fold.State`): it folds
the journal on start, then every message it publishes and every event it hears on
the bus. What it keeps besides is only what dies with the process anyway: the turns
in flight and the merges submitted. So a run killed at any moment continues where
it stopped: merged tasks stay merged, a task that was mid-turn resumes its claude
session in the same worktree, a task waiting for review or merge gets it.

The phases: planning (CEO, ``--json-schema``, saved as ``.autonoma/plan.json``),
decomposition (Staff Engineer; the DAG is validated and a bad one sent back with the
errors), development (ready tasks by critical path, at most ``max_workers`` at
once, never two touching the same files; each in its own worktree), review (QA),
the merge queue, then done. Failures are retried with their reason up to
``max_retries``; then the task is escalated and the rest goes on.

Nothing here blocks for long: turns run in their agents' processes, merges in the
merge queue; the end of each comes back as a message.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pygit2
import pykka

from autonoma.agents.agent import AgentBusy, TurnRefused, TurnRequest
from autonoma.agents.roles import RoleError, load_role
from autonoma.agents.turn import WRITE_LEFTOVER
from autonoma.config import Settings
from autonoma.hints import resume_command, start_command
from autonoma.journal import reader
from autonoma.journal.fold import State, Task, apply, fold_rows
from autonoma.project import Project
from autonoma.protocol import (
    ActorCrashed,
    AgentProcessExited,
    AgentSessionStarted,
    AgentStateChanged,
    AgentTurnFinished,
    AgentTurnStarting,
    AnswerRejected,
    AnyMessage,
    BudgetReached,
    CostReported,
    Envelope,
    Escalation,
    MergeFailed,
    PhaseChanged,
    PlanWritten,
    ProjectCommands,
    ResolveRequested,
    RetryRequested,
    ReviewVerdict,
    RunFinished,
    RunOutcome,
    RunStarted,
    SchemaRejected,
    SetupRan,
    TaskDefined,
    TaskFeedback,
    TaskMerged,
    TaskState,
    TaskStateChanged,
    TaskWorkspace,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.vcs import workspace
from autonoma.vcs.repo import remove_worktrees_under
from autonoma.vcs.workspace import VcsError
from autonoma.workflow import commands as project_commands
from autonoma.workflow import commits, inbox, prompts, scheduler
from autonoma.workflow.answers import AnswerError, developer_report, verdict_of
from autonoma.workflow.crew import (
    CEO,
    STAFF_ENGINEER,
    AgentRefs,
    developer_names,
    qa_names,
    role_of,
)
from autonoma.workflow.dag import TaskSpec, critical_path
from autonoma.workflow.governor import GOVERNOR, Permit, is_rate_limited
from autonoma.workflow.merge_queue import MergeRequest
from autonoma.workflow.plan import parse_plan, plan_dict, plan_json, plan_text
from autonoma.workflow.setup import SetupRunner, failure_reason

ORCHESTRATOR = "orchestrator"

TICK = 0.2
"""Seconds between looks at the inbox, the governor's hold and the clock."""

MAX_INTERRUPTIONS = 5
"""Turns of one task (or phase) killed from outside before that counts as a failure."""

TurnKind = Literal["plan", "decompose", "develop", "review"]

_DONE_STATES = frozenset({"merged", "resolved"})
_SLOT_STATES = frozenset({"running", "review"})


@dataclass(frozen=True)
class RunContext:
    """Everything the orchestrator needs to know about its run and its project."""

    bus: Bus
    settings: Settings
    run_id: str
    project: Project
    main: str
    """The branch ``main`` moves on: the user's branch when the run started."""
    requirements_path: Path
    requirements: str
    claude_md: str
    agents: AgentRefs
    governor: Callable[[], pykka.ActorRef[Any] | None]
    merge_queue: Callable[[], pykka.ActorRef[Any] | None]
    workers: int
    policy: Literal["critical_path", "fifo"] = "critical_path"
    durations: Mapping[str, float] | None = None
    """Known task durations (the makespan bench); None: unit weights."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The environment of the project's set-up commands (the agents' own)."""
    endpoint: str = ""
    """The model the run talks to, as `RunStarted.endpoint` records it."""

    @property
    def repo(self) -> Path:
        """The user's repository (its working-tree root)."""
        return self.project.root

    @property
    def logs(self) -> Path:
        """Where each turn's raw transcript goes."""
        return self.project.logs / self.run_id


@dataclass
class _Turn:
    """A turn in flight."""

    agent: str
    kind: TurnKind
    task_id: str | None
    session_id: str
    pid: int
    resume: bool = False
    prompt: str = ""
    finished: AgentTurnFinished | None = None
    rejected: str = ""
    """claude's reason when it rejected the turn's structured answer against the schema."""


@dataclass
class _Work:
    """What a task's next developer turn says, when it is not the first one."""

    prompt: str
    fresh: bool = False
    """Start a new session (the old one cannot be resumed)."""


@dataclass
class _Phase:
    """A planning or decomposition step: its session and its failures so far."""

    session: str = ""
    started: bool = False
    prompt: str = ""
    failures: int = 0


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Heard:
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class _SetupDone:
    """A task worktree's set-up ended (told from its worker thread)."""

    ran: SetupRan


_HEARD = (
    CostReported,
    AgentTurnStarting,
    AgentSessionStarted,
    AgentStateChanged,
    AgentTurnFinished,
    AgentProcessExited,
    ActorCrashed,
    TaskMerged,
    MergeFailed,
    WorkPaused,
    WorkResumed,
    BudgetReached,
    SchemaRejected,
    SetupRan,
)


class Orchestrator(Actor):
    """The run's state machine (see the module docstring)."""

    def __init__(self, ctx: RunContext, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.ctx = ctx
        self.bus = ctx.bus
        self.settings = ctx.settings
        self.clock = clock
        self.state = State()
        self._turns: dict[str, _Turn] = {}
        self._work: dict[str, _Work] = {}
        self._qa_failures: dict[str, int] = {}
        self._submitted: set[str] = set()
        self._plan = _Phase()
        self._decompose = _Phase()
        self._specs: dict[str, TaskSpec] = {}
        self._priority: dict[str, float] = {}
        self._paused_by: set[str] = set()
        self._interruptions: dict[str, int] = {}
        self._stopped: set[str] = set()
        """Tasks (or phases) whose last turn was stopped for time and resumed once."""
        self._waiting: set[str] = set()
        self._retired: list[Path] = []
        self._stopping = False
        self._finished = False
        self._started_at = 0.0
        # Set-up commands run in worker threads, never in this mailbox.
        self._setups = SetupRunner(ctx.env, ctx.settings.test_timeout)

    # --- life cycle -----------------------------------------------------------------

    def on_start(self) -> None:
        ref = self.actor_ref

        def forward(envelope: Envelope) -> None:
            if envelope.sender != ORCHESTRATOR and isinstance(envelope.message, _HEARD):
                ref.tell(_Heard(envelope))

        self.listen(self.bus, forward)
        resumed = reader.last_seq(self.ctx.project.state_db) > 0 and any(
            True
            for _ in reader.rows(self.ctx.project.state_db, run_id=self.ctx.run_id, limit_last=1)
        )
        # Durable: every message published before it is committed too, so the rows
        # read next are the whole run so far.
        self._emit(
            RunStarted(
                requirements=str(self.ctx.requirements_path),
                project=str(self.ctx.repo),
                max_workers=self.ctx.workers,
                resumed=resumed,
                main=self.ctx.main,
                endpoint=self.ctx.endpoint,
            ),
            durable=True,
            fold=False,
        )
        self.state = fold_rows(reader.rows(self.ctx.project.state_db, run_id=self.ctx.run_id))
        run = self.state.run
        self._started_at = run.started if run is not None and run.started else self.clock()
        self._recover()
        threading.Thread(target=self._tick_loop, name="orchestrator-tick", daemon=True).start()
        ref.tell(_Tick())

    def _tick_loop(self) -> None:
        ref = self.actor_ref
        # Ends with the actor, however it ends: a dead actor refuses the tell.
        while True:
            time.sleep(TICK)
            try:
                ref.tell(_Tick())
            except pykka.ActorDeadError:
                return

    def on_stop(self) -> None:
        self._setups.stop()

    def on_failure(self, *_: Any) -> None:
        self._setups.stop()

    def on_kill(self) -> None:
        self._setups.stop()

    def stop_run(self, reason: str = "stopped by the user") -> None:
        """Start no more work and record the run as stopped; the agents are stopped next."""
        if self._finished:
            return
        self._stopping = True
        self._finish("stopped", f"{reason}; `{self._resume_command()}` resumes the run")

    def _resume_command(self) -> str:
        run = self.state.run
        if run is not None:
            return resume_command(run)
        return start_command(str(self.ctx.requirements_path), self.ctx.endpoint)

    # --- messages -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Heard):
            self._heard(message.envelope)
        elif isinstance(message, _SetupDone):
            self._setup_done(message.ran)
        if not self._stopping and not self._finished:
            self._pump()
        return None

    def _remove_retired(self) -> None:
        """Merged tasks' worktrees go (their branches stay).

        At the end of the run: removing one takes a good 0.1 s, which the critical path
        should not wait for after each merge.
        """
        while self._retired:
            with contextlib.suppress(OSError, pygit2.GitError):
                remove_worktrees_under(self.ctx.repo, self._retired.pop())

    def _heard(self, envelope: Envelope) -> None:
        apply(self.state, envelope)
        event = envelope.message
        if isinstance(event, AgentTurnFinished):
            turn = self._turns.get(event.agent_id)
            if turn is not None:
                turn.finished = event
        elif isinstance(event, SchemaRejected):
            turn = self._turns.get(event.agent_id)
            if turn is not None:
                turn.rejected = event.reason
        elif isinstance(event, AgentProcessExited):
            turn = self._turns.get(event.agent_id)
            if turn is not None and (event.pid is None or event.pid == turn.pid):
                del self._turns[event.agent_id]
                if not self._stopping:
                    self._turn_ended(turn, event)
        elif isinstance(event, ActorCrashed):
            turn = self._turns.pop(event.name, None)
            if turn is not None and not self._stopping:
                self._turn_lost(
                    turn, f"{event.name} crashed: {event.error_type}: {event.error_text}"
                )
        elif isinstance(event, TaskMerged):
            self._submitted.discard(event.task_id)
            self._set(event.task_id, "merged", event.detail)
            task = self.state.tasks.get(event.task_id)
            if task is not None and task.worktree:
                self._retired.append(Path(task.worktree))
        elif isinstance(event, MergeFailed):
            self._submitted.discard(event.task_id)
            self._merge_failed(event)
        elif isinstance(event, WorkPaused):
            self._paused_by.add(envelope.sender)
        elif isinstance(event, WorkResumed):
            self._paused_by.discard(envelope.sender)
        elif isinstance(event, BudgetReached) and event.scope == "task" and event.task_id:
            task = self.state.tasks.get(event.task_id)
            if task is not None and task.state not in _DONE_STATES | {"escalated"}:
                self._escalate(
                    task,
                    f"task budget ${event.limit_usd:.2f} reached (${event.spent_usd:.2f} spent)",
                )

    # --- recovery -------------------------------------------------------------------

    def _recover(self) -> None:
        """Turn what the journal says into what to do next."""
        tasks = self.state.tasks
        self._derive()
        governor = self.ctx.governor()
        if (
            governor is not None
            and not governor.proxy().permit(None).get(timeout=10).run_budget_reached
        ):
            # A budget reached in an earlier session of the run, since raised.
            self.state.budget = ""
        for task in tasks.values():
            if task.state == "merged" and task.worktree and Path(task.worktree).exists():
                self._retired.append(Path(task.worktree))  # the last run stopped first
            if task.state == "running" and task.feedback:
                self._work[task.task_id] = _Work(task.feedback)  # that turn never started
            elif task.state == "running":
                if task.session_started:
                    self._work[task.task_id] = _Work(prompts.interrupted(task.task_id, task.prompt))
                else:
                    self._work[task.task_id] = _Work("", fresh=True)
            elif task.state == "failed":  # stopped between a failure and what follows it
                self._state_after_failure(
                    task, task.reason, prompts.turn_failed(task.task_id, task.reason)
                )
        run = self.state.run
        if tasks and run is not None:
            # The config may have changed since the task list was accepted (the user set
            # test_command after an escalation): it wins over the Staff Engineer's answer.
            before = run.commands or ProjectCommands()
            self._fix_commands(before.proposed_setup_command, before.proposed_test_command)
        if self.state.plan is None:
            self._phase("planning")
        elif not tasks:
            self._phase("decomposition")
        else:
            self._phase("development")

    def _derive(self) -> None:
        """The DAG and its priorities, from the tasks as folded (they never change after)."""
        self._specs = {
            t.task_id: TaskSpec(
                id=t.task_id,
                title=t.title,
                spec=t.spec,
                deps=list(t.deps),
                files=list(t.files),
                acceptance=list(t.acceptance),
            )
            for t in self.state.tasks.values()
        }
        self._priority = critical_path(list(self._specs.values()), self.ctx.durations)

    # --- the pump: start whatever may start -------------------------------------------

    def _pump(self) -> None:
        self._take_inbox()
        self._human_requests()
        phase = self.state.run.phase if self.state.run else ""
        if phase == "planning":
            self._start_phase_turn("plan")
        elif phase == "decomposition":
            self._start_phase_turn("decompose")
        elif phase == "development":
            self._develop()
        self._maybe_finish()

    def _permit(self, agent: str, task_id: str | None) -> Permit | None:
        """The governor's answer, or None when new work must wait."""
        if self._paused_by - {GOVERNOR}:
            return None  # the root paused new work after an escalation
        governor = self.ctx.governor()
        if governor is None:
            return None
        permit: Permit = governor.proxy().permit(task_id).get(timeout=10)
        if permit.wait > 0:
            self._hold(agent, task_id, permit.wait)
            return None
        if permit.run_budget_reached:
            return None
        return permit

    def _start_turn(
        self,
        agent: str,
        kind: TurnKind,
        role: str,
        prompt: str,
        *,
        session_id: str,
        resume: bool,
        cwd: Path,
        task_id: str | None = None,
        budget: float | None = None,
    ) -> bool:
        ref = self.ctx.agents.get(agent)
        if ref is None:
            return False
        request = TurnRequest(
            role=role,
            prompt=prompt,
            session_id=session_id,
            cwd=cwd,
            resume=resume,
            task_id=task_id,
            # One transcript per session: a resumed turn appends to it.
            transcript=self.ctx.logs / f"{agent}-{session_id}.log",
            budget_usd=budget,
            # claude's running total of a resumed session: the turn's cost counts from it.
            session_usd=self.state.session_usd.get(session_id, 0.0) if resume else 0.0,
        )
        try:
            pid: int = ref.proxy().run_turn(request).get(timeout=30)
        except (AgentBusy, pykka.ActorDeadError):
            return False
        except TurnRefused as refused:
            # Counted like a failed turn: a role file broken mid-run, a worktree
            # deleted under it, a prompt too long for one argument.
            why = f"the turn could not start: {refused}"
            turn = _Turn(agent, kind, task_id, session_id, 0, resume, prompt)
            task = None if task_id is None else self.state.tasks.get(task_id)
            if task is None:
                self._phase_turn_ended(turn, None, why)
            elif kind == "develop":
                self._fail(task, why, prompts.turn_failed(task.task_id, why))
            else:
                self._review_ended(task, turn, None, why)
            return True
        self._turns[agent] = _Turn(agent, kind, task_id, session_id, pid, resume, prompt)
        self._waiting.discard(agent)
        return True

    def _hold(self, agent: str, task_id: str | None, wait: float) -> None:
        """Say that ``agent`` waits on the governor (once per wait)."""
        if agent in self._waiting:
            return
        self._waiting.add(agent)
        role = role_of(agent)
        self._emit(
            AgentStateChanged(
                agent_id=agent,
                role=role,
                state="waiting",
                task_id=task_id,
                detail=f"rate limited: new turns held for {wait:.1f} s",
            )
        )

    def _free(self, names: list[str]) -> str | None:
        busy = set(self._turns)
        for name in names:
            if name not in busy and self.ctx.agents.get(name) is not None:
                return name
        return None

    # --- planning and decomposition ---------------------------------------------------

    def _start_phase_turn(self, kind: Literal["plan", "decompose"]) -> None:
        agent = CEO if kind == "plan" else STAFF_ENGINEER
        if agent in self._turns or self._permit(agent, None) is None:
            return
        step = self._plan if kind == "plan" else self._decompose
        role = load_role(agent, self.ctx.repo)
        if step.prompt and step.started:
            prompt, resume, session = step.prompt, True, step.session
        else:
            session = str(uuid.uuid4())
            if kind == "plan":
                prompt = prompts.ceo_prompt(role, self.ctx.requirements, self.ctx.claude_md)
            else:
                plan = parse_plan(self.state.plan)
                prompt = prompts.staff_prompt(
                    role, self.ctx.requirements, plan_text(plan), self.ctx.claude_md
                )
            resume = False
        if self._start_turn(
            agent, kind, agent, prompt, session_id=session, resume=resume, cwd=self.ctx.repo
        ):
            step.session, step.started = session, True

    def _phase_turn_ended(self, turn: _Turn, finished: AgentTurnFinished | None, why: str) -> None:
        step = self._plan if turn.kind == "plan" else self._decompose
        if finished is not None and is_rate_limited(finished):
            return  # the governor holds spawns; the same turn is tried again after
        if why:
            errors = [why]
        else:
            assert finished is not None
            schema = self._schema(turn.agent)
            try:
                if turn.kind == "plan":
                    plan = parse_plan(finished.structured_output, schema)
                    path = self.ctx.project.plan
                    path.write_bytes(plan_json(plan))
                    self._emit(PlanWritten(plan=plan_dict(plan), path=str(path)), durable=True)
                    self._phase("decomposition")
                else:
                    specs, setup, test = project_commands.parse_task_answer(
                        finished.structured_output, schema
                    )
                    self._fix_commands(setup, test)
                    self._define_tasks(specs)
                return
            except AnswerError as error:
                errors = list(error.errors)
        step.failures += 1
        what = _ANSWER[turn.kind]
        if not why:
            self._emit(
                AnswerRejected(
                    role=role_of(turn.agent),
                    what=what,
                    errors=errors,
                    attempt=step.failures,
                    agent_id=turn.agent,
                )
            )
        if step.failures > self.settings.max_retries:
            reason = f"the {what} was rejected {step.failures} times; last: {'; '.join(errors)}"
            self._emit(Escalation(source=ORCHESTRATOR, reason=reason))
            self._finish(
                "failed", f"stopped in {self.state.run.phase if self.state.run else ''}: {reason}"
            )
            return
        if why:
            step.started, step.prompt = False, ""  # a fresh session: the turn itself failed
        else:
            step.prompt = (
                prompts.plan_rejected(errors)
                if turn.kind == "plan"
                else prompts.tasks_rejected(errors)
            )

    def _fix_commands(self, proposed_setup: str, proposed_test: str) -> None:
        """Journal the project's commands: the config's, else the Staff Engineer's."""
        chosen = project_commands.choose(
            self.settings.setup_command, self.settings.test_command, proposed_setup, proposed_test
        )
        run = self.state.run
        if run is None or run.commands != chosen:
            self._emit(chosen, durable=True)

    def _commands(self) -> ProjectCommands:
        run = self.state.run
        return run.commands if run is not None and run.commands is not None else ProjectCommands()

    def _define_tasks(self, specs: list[TaskSpec]) -> None:
        for spec in specs:
            self._emit(
                TaskDefined(
                    task_id=spec.id,
                    title=spec.title,
                    deps=list(spec.deps),
                    files=list(spec.files),
                    spec=spec.spec,
                    acceptance=list(spec.acceptance),
                )
            )
            self._emit(TaskStateChanged(task_id=spec.id, state="pending"))
        self._derive()
        self._phase("development", durable=True)

    # --- development ------------------------------------------------------------------

    def _develop(self) -> None:
        tasks = self.state.tasks
        # Work already under way first: reviews, follow-ups, recoveries, merges.
        for task in list(tasks.values()):
            if task.state == "merging" and task.task_id not in self._submitted:
                self._submit(task)
        for task in list(tasks.values()):
            in_review = task.state == "review" and not self._in_flight(task.task_id)
            if in_review and not self._start_review(task):
                break
        for task in list(tasks.values()):
            needs_turn = task.state == "running" and not self._in_flight(task.task_id)
            if needs_turn and not self._start_development(task):
                break
        self._schedule()

    def _in_flight(self, task_id: str) -> bool:
        return any(t.task_id == task_id for t in self._turns.values())

    def _states(self) -> dict[str, str]:
        return {t.task_id: t.state for t in self.state.tasks.values()}

    def _schedule(self) -> None:
        states = self._states()
        specs = [self._specs[tid] for tid in states if tid in self._specs]
        candidates = scheduler.ready(specs, states)
        for task_id in candidates:
            if states[task_id] == "pending":
                self._set(task_id, "ready", "its dependencies are merged")
        busy = [tid for tid, s in states.items() if s in _SLOT_STATES]
        slots = self.ctx.workers - len(busy)
        if slots <= 0 or not candidates:
            return
        chosen = scheduler.pick(
            candidates,
            self._specs,
            busy,
            slots,
            self._priority,
            policy=self.ctx.policy,
            reserved=scheduler.imminent(specs, states, self._priority),
        )
        for task_id in chosen:
            # Claimed before the task is marked running: one permit, asked once.
            claimed = self._claim(developer_names(self.ctx.workers), task_id)
            if claimed is None:
                return
            task = self.state.tasks[task_id]
            if not self._prepare_workspace(task):
                continue
            self._set(task_id, "running", "", 1)
            if not self._start_development(task, claimed):
                return

    def _prepare_workspace(self, task: Task) -> bool:
        try:
            base = workspace.head_of(self.ctx.repo, workspace.INTEGRATION_BRANCH)
            branch, path = workspace.create_worktree(
                self.ctx.repo, self.ctx.project.worktrees, task.task_id, base, run=self.ctx.run_id
            )
        except VcsError as error:
            self._escalate(task, f"could not make its worktree: {error}")
            return False
        if task.worktree != str(path):
            self._emit(
                TaskWorkspace(task_id=task.task_id, branch=branch, worktree=str(path), base=base)
            )
        return True

    def _claim(self, names: list[str], task_id: str | None) -> tuple[str, Permit] | None:
        """A free agent among ``names`` and the governor's permit for it, or None: wait."""
        agent = self._free(names)
        if agent is None:
            return None
        permit = self._permit(agent, task_id)
        return None if permit is None else (agent, permit)

    def _start_development(self, task: Task, claimed: tuple[str, Permit] | None = None) -> bool:
        if self._setting_up(task):
            return True  # its first turn starts once the set-up has succeeded
        claimed = claimed or self._claim(developer_names(self.ctx.workers), task.task_id)
        if claimed is None:
            return False
        agent, permit = claimed
        if permit.task_budget_left is not None and permit.task_budget_left <= 0:
            self._escalate(task, "its budget is spent")
            return True
        if not Path(task.worktree).is_dir() and not self._prepare_workspace(task):
            return True  # deleted under us and not re-made: escalated
        # A claude killed mid-Write (a crash, a restart) leaves its temp file behind.
        with contextlib.suppress(VcsError, OSError):
            workspace.remove_untracked(Path(task.worktree), WRITE_LEFTOVER)
        work = self._work.get(task.task_id)
        role = load_role("developer", self.ctx.repo)
        resume = bool(task.session_id) and task.session_started and not (work and work.fresh)
        if resume and work is not None and work.prompt:
            prompt, session = work.prompt, task.session_id
        else:
            resume = False
            session = str(uuid.uuid4())
            feedback = work.prompt if work is not None else ""
            prompt = prompts.developer_prompt(
                role, task, self.ctx.claude_md, feedback, self._commands()
            )
        started = self._start_turn(
            agent,
            "develop",
            "developer",
            prompt,
            session_id=session,
            resume=resume,
            cwd=Path(task.worktree),
            task_id=task.task_id,
            budget=permit.task_budget_left,
        )
        if started:
            self._work.pop(task.task_id, None)
        return started

    def _setting_up(self, task: Task) -> bool:
        """Whether ``task``'s worktree still waits for the project's set-up (started here).

        The set-up runs once per worktree, before its first developer turn, in a worker
        thread that tells `_SetupDone`.
        """
        command = self._commands().setup_command
        if not command or not task.worktree or task.setup_worktree == task.worktree:
            return False
        worktree = Path(task.worktree)
        if not worktree.is_dir():
            return False  # re-made by _start_development first
        ref = self.actor_ref

        def report(ran: SetupRan) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_SetupDone(ran))

        self._setups.start(task.task_id, command, worktree, report)
        return True

    def _setup_done(self, ran: SetupRan) -> None:
        """A task's set-up ended: journaled; a failure is a failed attempt of the task."""
        if ran.task_id is not None:
            self._setups.forget(ran.task_id)
        if self._stopping or self._finished:
            return
        self._emit(ran)
        task = None if ran.task_id is None else self.state.tasks.get(ran.task_id)
        if ran.ok or task is None or task.state != "running":
            return  # the pump starts its first turn
        # Not _fail: no developer turn ran, so none is told anything; the set-up runs again.
        why = failure_reason(ran)
        attempt = max(task.attempts, 1)
        self._set(task.task_id, "failed", why, attempt)
        if attempt > self.settings.max_retries:
            self._escalate(task, f"failed {attempt} times; last: {why}")
        else:
            self._set(task.task_id, "running", f"retry: {why}", attempt + 1)

    def _start_review(self, task: Task) -> bool:
        claimed = self._claim(qa_names(self.ctx.workers), task.task_id)
        if claimed is None:
            return False
        agent, permit = claimed
        review = task.reviews + 1
        role = load_role("qa", self.ctx.repo)
        base_ref = workspace.INTEGRATION_BRANCH
        prompt = prompts.qa_prompt(
            role, task, base_ref, review, self.ctx.claude_md, self._commands()
        )
        started = self._start_turn(
            agent,
            "review",
            "qa",
            prompt,
            session_id=str(uuid.uuid4()),
            resume=False,
            cwd=Path(task.worktree),
            task_id=task.task_id,
            budget=permit.task_budget_left,
        )
        return started

    def _submit(self, task: Task) -> None:
        queue = self.ctx.merge_queue()
        if queue is None:
            return
        commands = self._commands()
        run = self.state.run
        queue.tell(
            MergeRequest(
                task.task_id,
                task.branch,
                task.title,
                commands.test_command,
                setup_command=commands.setup_command,
                tests_opted_out=commands.tests_opted_out,
                tests_seen=run is not None and run.tests_seen,
            )
        )
        self._submitted.add(task.task_id)

    # --- the end of a turn -------------------------------------------------------------

    def _turn_ended(self, turn: _Turn, exited: AgentProcessExited) -> None:
        finished = turn.finished
        why = ""
        key = turn.task_id or turn.kind
        if exited.timed_out and (finished is None or finished.is_error):
            limit = prompts.timeout_reason(exited.timeout or "wall", exited.timeout_s)
            if key not in self._stopped:
                self._stopped.add(key)
                self._resume_stopped(turn, exited, f"the turn was stopped: {limit}")
                return
            self._stopped.discard(key)
            why = f"the turn was stopped again: {limit}"
        elif finished is None:
            code = f"signal {exited.signal}" if exited.signal else f"exit code {exited.exit_code}"
            why = f"claude ended without a result ({code})"
        elif finished.is_error and not is_rate_limited(finished):
            detail = finished.result or "; ".join(finished.errors) or finished.terminal_reason
            why = f"the turn failed ({finished.subtype}): {detail}"
        if finished is not None and not finished.is_error:
            self._stopped.discard(key)  # a turn that ended well: the next stop resumes again

        if why and turn.rejected:
            # What claude said of the answer, not the error the turn ended with after it.
            what = _ANSWER[turn.kind]
            why = f"claude rejected the {what} against the role's schema: {turn.rejected}"
        if finished is None and exited.signal is not None and not exited.timed_out:
            # Killed from outside (its agent stopped, the crew restarted, an OOM kill):
            # not the work's fault, so the task resumes instead of failing.
            self._turn_lost(turn, f"claude was killed (signal {exited.signal})")
            return
        if turn.resume and finished is not None and _session_lost(finished):
            self._session_lost(turn)
            return
        if turn.kind in ("plan", "decompose"):
            self._phase_turn_ended(turn, finished, why)
            return
        assert turn.task_id is not None
        task = self.state.tasks.get(turn.task_id)
        expected = "running" if turn.kind == "develop" else "review"
        if task is None or task.state != expected:
            return  # escalated (its budget), or resolved by a human, while the turn ran
        if finished is not None and is_rate_limited(finished):
            # Not the task's fault: the same turn runs again once the governor allows.
            if turn.kind == "develop":
                self._again(task, turn)
            return
        if turn.kind == "develop":
            self._development_ended(task, turn, why)
        else:
            self._review_ended(task, turn, finished, why)

    def _resume_stopped(self, turn: _Turn, exited: AgentProcessExited, why: str) -> None:
        """A turn stopped for time the first time: it runs again, told so, in its session.

        Not a failed attempt; a second stop (with no turn ending well in between) is.
        """
        note = prompts.stopped(exited.timeout or "wall", exited.timeout_s, turn.task_id)
        if turn.kind in ("plan", "decompose"):
            step = self._plan if turn.kind == "plan" else self._decompose
            step.prompt = note  # step.started stays: the same session is resumed
            return
        task = None if turn.task_id is None else self.state.tasks.get(turn.task_id)
        if task is None or task.state != ("running" if turn.kind == "develop" else "review"):
            return  # escalated or resolved while the turn ran
        if turn.kind == "develop":
            self._tell_next(task, note)  # resumes the session when claude reported it
            self._set(task.task_id, "running", f"resumed: {why}")
        else:
            self._set(task.task_id, "review", f"QA reviews again: {why}")

    def _turn_lost(self, turn: _Turn, why: str) -> None:
        """The agent or its process died mid-turn: the turn runs again, resumed.

        Not a failed attempt, unless it keeps happening (`MAX_INTERRUPTIONS`).
        """
        key = turn.task_id or turn.kind
        count = self._interruptions[key] = self._interruptions.get(key, 0) + 1
        task = None if turn.task_id is None else self.state.tasks.get(turn.task_id)
        if count > MAX_INTERRUPTIONS:
            self._interruptions[key] = 0
            if task is not None:
                self._fail(
                    task,
                    f"interrupted {count} times; last: {why}",
                    prompts.interrupted(task.task_id, task.prompt),
                )
            else:
                self._phase_turn_ended(turn, None, why)
            return
        if task is not None and turn.kind == "develop":
            self._again(task, turn)

    def _session_lost(self, turn: _Turn) -> None:
        """claude kept no transcript of the session (killed too early): start a new one."""
        if turn.kind in ("plan", "decompose"):
            step = self._plan if turn.kind == "plan" else self._decompose
            step.started = False
            return
        task = None if turn.task_id is None else self.state.tasks.get(turn.task_id)
        if task is not None and turn.kind == "develop":
            self._again(task, turn, fresh=True)

    def _again(self, task: Task, turn: _Turn, *, fresh: bool = False) -> None:
        """Ask the developer's turn again: resumed, or in a new session when it must be.

        Not the work's fault (a kill, a rate limit, a lost session), so not an attempt.
        A new session gets what the turn was asked as feedback, unless that was the
        first prompt itself.
        """
        if not fresh and task.session_started and task.session_id == turn.session_id:
            self._work[task.task_id] = _Work(prompts.interrupted(task.task_id, turn.prompt))
            return
        asked = prompts.asked_of(turn.prompt)
        first = prompts.developer_prompt(
            load_role("developer", self.ctx.repo), task, self.ctx.claude_md, "", self._commands()
        )
        self._work[task.task_id] = _Work("" if asked == first else asked, fresh=True)

    def _schema(self, role: str) -> dict[str, Any] | None:
        """The role's schema, the rule for its answer (a project may override the role).

        None when its file broke mid-run: the answer is then checked by its type alone.
        """
        try:
            return load_role(role, self.ctx.repo).schema
        except RoleError:
            return None

    def _development_ended(self, task: Task, turn: _Turn, why: str) -> None:
        if not why and turn.finished is not None:
            # What the developer says it did goes to QA (and to the record) first.
            schema = self._schema("developer")
            self._emit(
                developer_report(turn.finished, schema, task_id=task.task_id, agent_id=turn.agent)
            )
        if why:
            self._fail(task, why, prompts.turn_failed(task.task_id, why))
            return
        worktree = Path(task.worktree)
        try:
            committed = workspace.commit_all(
                worktree, f"{task.task_id}: work {turn.agent} left uncommitted", task.files
            )
        except VcsError as error:
            self._fail(task, str(error), prompts.turn_failed(task.task_id, str(error)))
            return
        journaled = commits.for_agent(task.task_id, turn.agent, committed)
        if journaled is not None:
            self._emit(journaled)
        integration = workspace.head_of(self.ctx.repo, workspace.INTEGRATION_BRANCH)
        head = workspace.head_of(self.ctx.repo, task.branch)
        why = ""
        if not workspace.branch_changes(self.ctx.repo, integration, task.branch):
            why = "no change was committed on the task's branch"
        else:
            marked = workspace.conflict_marker_files(self.ctx.repo, integration, head)
            if marked:
                why = f"conflict markers were committed in {', '.join(marked)}"
        if why:
            self._fail(task, why, prompts.turn_failed(task.task_id, why))
            return
        self._set(task.task_id, "review", f"{turn.agent} finished; QA reviews")

    def _review_ended(
        self, task: Task, turn: _Turn, finished: AgentTurnFinished | None, why: str
    ) -> None:
        verdict = None
        errors: list[str] = []
        if not why:
            try:
                verdict = verdict_of(finished, self._schema("qa"))
            except AnswerError as error:
                errors = error.errors
                why = f"QA gave no usable verdict: {'; '.join(errors)}"
        if verdict is None:
            failures = self._qa_failures[task.task_id] = self._qa_failures.get(task.task_id, 0) + 1
            if errors:
                self._emit(
                    AnswerRejected(
                        role="qa",
                        what="verdict",
                        errors=errors,
                        attempt=failures,
                        agent_id=turn.agent,
                        task_id=task.task_id,
                    )
                )
            if failures > self.settings.max_retries:
                self._escalate(task, f"QA could not review it {failures} times; last: {why}")
            return  # the task stays in review: QA runs again
        reasons = list(verdict.reasons)
        self._emit(
            ReviewVerdict(
                task_id=task.task_id,
                agent_id=turn.agent,
                verdict=verdict.verdict,
                reasons=reasons,
                test_command=verdict.test_command,
                test_output_summary=verdict.test_output_summary,
                attempt=task.reviews + 1,
            )
        )
        if verdict.verdict == "approve":
            self._set(task.task_id, "merging", f"approved by {turn.agent}")
            self._submit(self.state.tasks[task.task_id])
        else:
            review = task.reviews
            first = reasons[0] if reasons else "no reason given"
            self._fail(
                task,
                f"QA requested changes: {first}",
                prompts.rejected(task.task_id, review, reasons),
            )

    def _merge_failed(self, event: MergeFailed) -> None:
        task = self.state.tasks.get(event.task_id)
        if task is None:
            return
        if event.kind == "no_test_command":
            # Nothing can merge until a human names the tests (or opts out): not a retry.
            self._escalate(task, project_commands.no_test_command(task.task_id))
            return
        integration = workspace.head_of(self.ctx.repo, workspace.INTEGRATION_BRANCH)
        try:
            conflicts = workspace.start_conflict_merge(Path(task.worktree), integration)
        except VcsError as error:
            self._fail(task, str(error), prompts.turn_failed(task.task_id, str(error)))
            return
        if conflicts:
            self._fail(
                task,
                f"merge conflict in {', '.join(conflicts)}",
                prompts.conflicted(task.task_id, conflicts),
            )
        elif event.kind == "tests_failed":
            self._fail(
                task,
                "the tests failed on the merged result",
                prompts.tests_failed(task.task_id, self._commands().test_command, event.output),
            )
        elif event.kind == "setup_failed":
            command = self._commands().setup_command
            self._fail(
                task,
                f"the set-up command failed on the merged result: {_last_line(event.output)}",
                prompts.setup_failed(task.task_id, command, event.output),
            )
        else:
            # The integration head merged cleanly into the branch now: merge again.
            self._set(task.task_id, "merging", "merged the new integration head; merging again")
            self._submit(task)

    # --- failures, escalation, human commands --------------------------------------------

    def _fail(self, task: Task, reason: str, next_prompt: str) -> None:
        self._set(task.task_id, "failed", reason, max(task.attempts, 1))
        self._state_after_failure(task, reason, next_prompt)

    def _state_after_failure(self, task: Task, reason: str, next_prompt: str) -> None:
        """Retry with the reason attached, or escalate past ``max_retries``."""
        attempt = max(task.attempts, 1)
        if attempt > self.settings.max_retries:
            self._escalate(task, f"failed {attempt} times; last: {reason}")
            return
        self._tell_next(task, next_prompt)
        self._set(task.task_id, "running", f"retry: {reason}", attempt + 1)

    def _tell_next(self, task: Task, text: str) -> None:
        """The next developer turn says ``text`` (journaled: it survives a restart)."""
        self._work[task.task_id] = _Work(text)
        self._emit(TaskFeedback(task_id=task.task_id, text=text))

    def _escalate(self, task: Task, reason: str) -> None:
        self._set(task.task_id, "escalated", reason)
        self._emit(
            Escalation(
                source=ORCHESTRATOR, reason=f"{task.task_id}: {reason}", task_id=task.task_id
            )
        )

    def _take_inbox(self) -> None:
        for path, message in inbox.take(self.ctx.project.inbox):
            if isinstance(message, RetryRequested | ResolveRequested):
                self._emit(message, durable=True)
            inbox.done(path)

    def _human_requests(self) -> None:
        for task in list(self.state.tasks.values()):
            if task.requested == "resolve" and task.state not in _DONE_STATES:
                self._set(task.task_id, "resolved", "resolved by a human")
                with contextlib.suppress(VcsError):
                    workspace.ensure_integration(self.ctx.repo, self.ctx.main)
            elif task.requested == "retry" and task.state in ("escalated", "failed"):
                self._qa_failures.pop(task.task_id, None)
                if task.worktree:
                    self._tell_next(task, prompts.human_retry(task.task_id, task.notes))
                    self._set(task.task_id, "running", "sent back by a human", 1)
                else:
                    self._set(task.task_id, "pending", "sent back by a human", 1)
            elif task.requested:
                task.requested = ""

    # --- the end of the run -------------------------------------------------------------

    def _maybe_finish(self) -> None:
        if self._turns or self._submitted:
            return
        states = self._states()
        budget = bool(self.state.budget)
        if not budget:  # past the budget, work under way stays where it is, to resume
            if self.state.run is None or self.state.run.phase != "development":
                return
            if any(s in ("running", "review", "merging") for s in states.values()):
                return
            if not scheduler.run_over(list(self._specs.values()), states, 0):
                return
        escalated = sorted(t for t, s in states.items() if s == "escalated")
        outcome: RunOutcome = "done" if not escalated and not budget else "failed"
        self._finish(outcome, self._summary(states, escalated))

    def _summary(self, states: Mapping[str, str], escalated: list[str]) -> str:
        counts = {s: sum(1 for v in states.values() if v == s) for s in set(states.values())}
        parts = [f"{len(states)} tasks: {counts.get('merged', 0)} merged"]
        if counts.get("resolved"):
            parts.append(f"{counts['resolved']} resolved by hand")
        if escalated:
            why = ", ".join(f"{t} ({self.state.tasks[t].reason})" for t in escalated)
            parts.append(f"{len(escalated)} escalated: {why}")
        waiting = scheduler.blocked_by_escalation(list(self._specs.values()), states)
        if waiting:
            parts.append(f"{len(waiting)} waiting on escalated tasks")
        retries = sum(
            1 for t in self.state.tasks.values() for e in t.history if e.state == "failed"
        )
        usage = self.state.run.usage if self.state.run else self.state.usage
        elapsed = self.clock() - self._started_at
        text = "; ".join(parts) + f". {retries} retries, ${usage.usd:.2f}, {elapsed:.0f} s."
        if self.state.budget:
            text += (
                f" Stopped: {self.state.budget}; raise budget_usd (AUTONOMA_BUDGET_USD), then "
                f"`{self._resume_command()}` goes on."
            )
        return text

    def _finish(self, outcome: RunOutcome, summary: str) -> None:
        if self._finished:
            return
        self._finished = True
        self._remove_retired()
        if outcome != "stopped":
            self._phase("done" if outcome == "done" else "stopped")
        self._emit(RunFinished(outcome=outcome, summary=summary), durable=True)

    # --- publishing ------------------------------------------------------------------------

    def _phase(self, phase: str, durable: bool = False) -> None:
        run = self.state.run
        if run is None or run.phase != phase:
            self._emit(PhaseChanged(phase=phase), durable=durable)

    def _set(self, task_id: str, state: TaskState, reason: str = "", attempt: int = 0) -> None:
        self._emit(TaskStateChanged(task_id=task_id, state=state, reason=reason, attempt=attempt))

    def _emit(self, message: AnyMessage, *, durable: bool = False, fold: bool = True) -> None:
        envelope = self.bus.publish(ORCHESTRATOR, message, durable=durable)
        if fold:
            apply(self.state, envelope)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


_ANSWER: dict[TurnKind, str] = {
    "plan": "plan",
    "decompose": "task list",
    "develop": "summary",
    "review": "verdict",
}
"""What each kind of turn answers with (its role's schema)."""


def _session_lost(finished: AgentTurnFinished) -> bool:
    """``--resume`` found no transcript of the session."""
    said = " ".join([finished.result, *finished.errors])
    return finished.is_error and "No conversation found" in said


__all__ = ["ORCHESTRATOR", "Orchestrator", "RunContext"]
