"""The orchestrator: the actor that carries out the run's decisions.

What to do is decided by a pure function, `autonoma.workflow.decide.decide` (state +
event -> state + actions, in the spirit of OTP's ``gen_statem``); this actor only feeds
it events and carries the actions out. The events: the bus messages it listens to, a
tick every `TICK` seconds, the humans' commands from the inbox, and the results of the
work it carried out. The actions: publish a message, start an agent's turn, hand a task
to the merge queue, write the plan, and git work.

Git work (making a task's clone, the commit for the agent and bringing its branch back,
the conflict merge, QA's and planning's throwaway clones, removing clones) runs off the
mailbox, in `GitWorker`'s thread, one job at a time; each job
reports back as an event. So the mailbox never waits on git. Starting a turn is an ask
of the agent, which only spawns the process (milliseconds) and answers with its pid.

Its state is the fold of the run's messages (`autonoma.journal.fold.State`), folded from
the journal on start, plus what dies with the process anyway (turns in flight, merges
submitted, ...; see `autonoma.workflow.machine.Machine`). So a run killed at any moment
continues where it stopped: merged tasks stay merged, a task that was mid-turn resumes
its claude session in the same worktree, a task waiting for review or merge gets it.

The phases: planning (CEO, ``--json-schema``, saved as ``.autonoma/plan.json``),
decomposition (Staff Engineer; the DAG is validated and a bad one sent back with the
errors), development (ready tasks by critical path, at most ``max_workers`` at
once, never two touching the same files; each in its own worktree), review (QA),
the merge queue, then done. Failures are retried with their reason up to
``max_retries``; then the task is escalated and the rest goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pygit2
import pykka

from autonoma import inputfile
from autonoma.agents import process
from autonoma.agents.agent import AgentBusy, NotWaiting, TurnRefused, TurnRequest
from autonoma.agents.roles import load_role
from autonoma.agents.turn import WRITE_LEFTOVER
from autonoma.config import Settings
from autonoma.hints import resume_command, start_command
from autonoma.journal import reader
from autonoma.journal.fold import fold_rows
from autonoma.project import Project, secret_key
from autonoma.protocol import (
    ActorCrashed,
    AgentApiRetry,
    AgentProcessExited,
    AgentSessionStarted,
    AgentStateChanged,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    BudgetReached,
    CostReported,
    Envelope,
    LeftoversKilled,
    MergeFailed,
    RunStarted,
    SchemaRejected,
    SetupRan,
    SpawnsHeld,
    TaskMerged,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.actor import Actor
from autonoma.runtime.bus import Bus
from autonoma.vcs import clones, workspace
from autonoma.vcs.excludes import project_rules
from autonoma.vcs.repo import remove_worktrees_under
from autonoma.vcs.workspace import VcsError
from autonoma.workflow import commits, inbox
from autonoma.workflow.actions import (
    Action,
    CommitForAgent,
    ConflictMerge,
    Emit,
    EnsureIntegration,
    FreezeTurns,
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
from autonoma.workflow.confine import confinement_for
from autonoma.workflow.crew import CEO, STAFF_ENGINEER, AgentRefs, developer_names, qa_names
from autonoma.workflow.decide import (
    MAX_INTERRUPTIONS,
    ORCHESTRATOR,
    decide,
)
from autonoma.workflow.governor import GOVERNOR
from autonoma.workflow.inputs import (
    CheckoutReady,
    ConflictMergeDone,
    Event,
    Heard,
    InboxCommand,
    MergeNotSubmitted,
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
    WorkspaceFailed,
    WorkspaceReady,
    WorktreesRemoved,
)
from autonoma.workflow.machine import (
    PLAN_CHECKOUT,
    REVIEW_CHECKOUTS,
    Config,
    Machine,
)
from autonoma.workflow.setup import SetupRunner

TICK = 0.2
"""Seconds between looks at the inbox, the governor's hold and the clock."""


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
    resume_root: Callable[[str], None] | None = None
    """Ends the root supervisor's pause (`autonoma resume`); must not block."""

    @property
    def repo(self) -> Path:
        """The user's repository (its working-tree root)."""
        return self.project.root

    @property
    def clones(self) -> Path:
        """The run's clones: tasks', QA's and the planning turns'."""
        return self.project.clones / self.run_id

    @property
    def logs(self) -> Path:
        """Where each turn's raw transcript goes."""
        return self.project.logs / self.run_id


@dataclass(frozen=True, slots=True)
class _Tick:
    pass


@dataclass(frozen=True, slots=True)
class _Heard:
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class _Done:
    """A git job's result, back in the mailbox."""

    event: Event


@dataclass(frozen=True, slots=True)
class _SetupDone:
    """A task worktree's set-up ended (told from its worker thread)."""

    ran: SetupRan


@dataclass(frozen=True, slots=True)
class _JobCrashed:
    """A git job raised something unexpected: the actor crashes like it used to."""

    error: BaseException


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
    SpawnsHeld,
    SchemaRejected,
    SetupRan,
    AgentToolUse,  # the model answered: a storm's probe went through (decide's AIMD)
    AgentApiRetry,  # a request refused: its agent waits frozen (decide's crew backoff)
)

_ROLES = (CEO, STAFF_ENGINEER, "developer", "qa")


class GitWorker:
    """Runs git jobs one at a time in its own thread; each result goes to ``report``.

    A job returns the event to report (or None). An unexpected exception is reported
    as `_JobCrashed`, so the orchestrator fails as if it had run the job itself.
    """

    def __init__(self, report: Callable[[object], None]) -> None:
        self._report = report
        self._jobs: queue.SimpleQueue[Callable[[], Event | None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="orchestrator-git", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Event | None]) -> None:
        """Queue ``job``; never blocks."""
        self._jobs.put(job)

    def stop(self) -> None:
        """Let the jobs queued so far finish, then end the thread (does not wait)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                event = job()
            except Exception as error:  # handed to the actor, which fails
                self._report(_JobCrashed(error))
                continue
            if event is not None:
                self._report(_Done(event))


class Orchestrator(Actor):
    """The run's state machine's shell (see the module docstring)."""

    def __init__(self, ctx: RunContext, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.ctx = ctx
        self.bus = ctx.bus
        self.settings = ctx.settings
        self.clock = clock
        self.machine: Machine | None = None
        self._git: GitWorker | None = None
        self._taker: inbox.Taker | None = None
        # Set-up commands run in their own worker threads, never in this mailbox.
        self._setups = SetupRunner(
            ctx.env, ctx.settings.test_timeout, confinement_for(ctx.settings, ctx.project)
        )
        self._names = [CEO, STAFF_ENGINEER, *developer_names(ctx.workers), *qa_names(ctx.workers)]

    # --- life cycle -----------------------------------------------------------------

    def on_start(self) -> None:
        ref = self.actor_ref

        def forward(envelope: Envelope) -> None:
            if envelope.sender != ORCHESTRATOR and isinstance(envelope.message, _HEARD):
                ref.tell(_Heard(envelope))

        def report(message: object) -> None:
            with contextlib.suppress(pykka.ActorDeadError):  # stopped meanwhile
                ref.tell(message)

        self.listen(self.bus, forward)
        ctx = self.ctx
        resumed = reader.last_seq(ctx.project.state_db) > 0 and any(
            True for _ in reader.rows(ctx.project.state_db, run_id=ctx.run_id, limit_last=1)
        )
        # Durable: every message published before it is committed too, so the rows
        # read next are the whole run so far.
        self.bus.publish(
            ORCHESTRATOR,
            RunStarted(
                requirements=str(ctx.requirements_path),
                project=str(ctx.repo),
                max_workers=ctx.workers,
                resumed=resumed,
                main=ctx.main,
                endpoint=ctx.endpoint,
                sandbox=ctx.settings.sandbox,
            ),
            durable=True,
        )
        # What an earlier run left working in the agents' folders (its autonoma died
        # before it could end them) must not work beside the turns about to start.
        left = process.kill_leftovers(ctx.project.dir)
        if left:
            self.bus.publish(
                ORCHESTRATOR,
                LeftoversKilled(pids=[x.pid for x in left], commands=[x.command for x in left]),
                durable=True,
            )
        # And its turns' temp folders (claude's sandbox sockets and scratch): no turn runs
        # yet; an agent whose turn comes makes its own anew, the others' stayed for good.
        shutil.rmtree(ctx.project.tmp / ctx.run_id, ignore_errors=True)
        # And the locks of its branches git held as it was killed: each move would fail.
        workspace.remove_stale_ref_locks(ctx.repo)
        fold = fold_rows(reader.rows(ctx.project.state_db, run_id=ctx.run_id))
        run = fold.run
        resume = (
            resume_command(run)
            if run is not None
            else start_command(str(ctx.requirements_path), ctx.endpoint)
        )
        config = Config(
            run_id=ctx.run_id,
            repo=ctx.repo,
            plan_path=ctx.project.plan,
            requirements=ctx.requirements,
            claude_md=ctx.claude_md,
            roles={name: load_role(name, ctx.repo) for name in _ROLES},
            workers=ctx.workers,
            max_retries=self.settings.max_retries,
            crew_backoff=self.settings.crew_backoff,
            # A cluster's agents start on their node when their prompt is shipped with
            # the clone (autonoma/cluster/link.py): nothing to start ahead there.
            prestart=self.settings.prestart_agents and not self.settings.cluster,
            setup_command=self.settings.setup_command,
            test_command=self.settings.test_command,
            budget_usd=self.settings.budget_usd,
            task_budget_usd=self.settings.task_budget_usd,
            main=ctx.main,
            resume_command=resume,
            policy=ctx.policy,
            durations=ctx.durations,
            clones=ctx.clones,
            requirements_name=_requirements_name(ctx),
        )
        self.machine = Machine(cfg=config, fold=fold)
        self._inbox()  # the key exists before any agent turn starts
        self._git = GitWorker(report)
        self._feed(Started())
        threading.Thread(target=self._tick_loop, name="orchestrator-tick", daemon=True).start()
        ref.tell(_Tick())

    def on_stop(self) -> None:
        self._setups.stop()
        if self._git is not None:
            self._git.stop()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._setups.stop()
        if self._git is not None:
            self._git.stop()

    def on_kill(self) -> None:
        self._setups.stop()

    def _tick_loop(self) -> None:
        ref = self.actor_ref
        # Ends with the actor, however it ends: a dead actor refuses the tell.
        while True:
            time.sleep(TICK)
            try:
                ref.tell(_Tick())
            except pykka.ActorDeadError:
                return

    def stop_run(self, reason: str = "interrupted (Ctrl-C)", origin: str = "") -> None:
        """Stop gracefully (Ctrl-C): nothing new starts, the merges under way finish, then
        the run is journaled as stopped; the agents are stopped next."""
        self._feed(StopRun(origin or inbox.origin(), reason))

    # --- messages -------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Heard):
            self._feed(Heard(message.envelope))
        elif isinstance(message, _Tick):
            for item in self._inbox().take():
                self._feed(InboxCommand(item.message))
                self._inbox().done(item)
            self._feed(Tick())
        elif isinstance(message, _Done):
            self._feed(message.event)
        elif isinstance(message, _SetupDone):
            if message.ran.task_id is not None:
                self._setups.forget(message.ran.task_id)
            self._feed(SetupDone(message.ran))
        elif isinstance(message, _JobCrashed):
            raise message.error
        return None

    def _inbox(self) -> inbox.Taker:
        """The run's end of the inbox, with the project's key (made on the first call)."""
        if self._taker is None:
            project = self.ctx.project
            self._taker = inbox.Taker(
                project.inbox, secret_key(project), self.ctx.run_id, project.keys / "inbox-taken"
            )
        return self._taker

    def _feed(self, event: Event) -> None:
        """Decide on ``event``, carry the actions out, and decide on what they report."""
        machine = self.machine
        assert machine is not None
        events: deque[Event] = deque([event])
        while events:
            machine.now = self.clock()
            machine.live = self._live()
            _, actions = decide(machine, events.popleft())
            for action in actions:
                answer = self._carry_out(action)
                if answer is not None:
                    events.append(answer)

    def _live(self) -> frozenset[str]:
        live = {name for name in self._names if self.ctx.agents.get(name) is not None}
        if self.ctx.governor() is not None:
            live.add(GOVERNOR)
        return frozenset(live)

    # --- actions ----------------------------------------------------------------------

    def _carry_out(self, action: Action) -> Event | None:
        """Do ``action``; what it answers at once (a turn's start), or None."""
        if isinstance(action, Emit):
            self.bus.publish(ORCHESTRATOR, action.message, durable=action.durable)
        elif isinstance(action, StartTurn):
            return self._start_turn(action)
        elif isinstance(action, GivePrompt):
            return self._give_prompt(action)
        elif isinstance(action, SubmitMerge):
            merge_queue = self.ctx.merge_queue()
            if merge_queue is None:
                return MergeNotSubmitted(action.task_id)
            merge_queue.tell(action.request)
        elif isinstance(action, RunSetup):
            self._run_setup(action)
        elif isinstance(action, WriteFile):
            Path(action.path).write_bytes(action.data)
        elif isinstance(action, ResumeRoot):
            if self.ctx.resume_root is not None:
                self.ctx.resume_root(action.reason)
        elif isinstance(action, FreezeTurns):
            for name in action.agents:
                ref = self.ctx.agents.get(name)
                if ref is not None:
                    ref.proxy().freeze_turn(action.frozen)  # not waited for
        elif isinstance(action, StopTurns):
            for name in action.agents:
                ref = self.ctx.agents.get(name)
                if ref is not None:
                    # A proxy call not waited for: the mailbox never blocks on an agent.
                    ref.proxy().stop_turn()
        else:
            assert self._git is not None
            self._git.submit(self._git_job(action))
        return None

    def _start_turn(self, action: StartTurn) -> Event:
        ref = self.ctx.agents.get(action.agent)
        if ref is None:
            return TurnNotStarted(action.agent)
        request = TurnRequest(
            role=action.role,
            prompt=None if action.ahead else action.prompt,
            session_id=action.session_id,
            cwd=Path(action.cwd),
            resume=action.resume,
            task_id=action.task_id,
            # One transcript per session: a resumed turn appends to it.
            transcript=self.ctx.logs / f"{action.agent}-{action.session_id}.log",
            budget_usd=action.budget_usd,
            session_usd=action.session_usd,
            setup_command=self._setup_command(),
        )
        try:
            pid: int = ref.proxy().run_turn(request).get(timeout=30)
        except (AgentBusy, pykka.ActorDeadError):
            return TurnNotStarted(action.agent)
        except TurnRefused as refused:
            return SpawnRefused(action.agent, str(refused))
        return TurnSpawned(action.agent, pid)

    def _setup_command(self) -> str:
        """The run's set-up command as chosen so far ("" for none)."""
        run = None if self.machine is None else self.machine.fold.run
        return "" if run is None or run.commands is None else run.commands.setup_command

    def _give_prompt(self, action: GivePrompt) -> Event:
        ref = self.ctx.agents.get(action.agent)
        if ref is None:
            return PromptNotGiven(action.agent, "the agent is gone")
        try:
            ref.proxy().give_prompt(action.prompt).get(timeout=30)
        except (NotWaiting, TurnRefused, pykka.ActorDeadError) as error:
            return PromptNotGiven(action.agent, str(error))
        return PromptGiven(action.agent)

    def _run_setup(self, action: RunSetup) -> None:
        ref = self.actor_ref

        def report(ran: SetupRan) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_SetupDone(ran))

        self._setups.start(
            action.task_id, action.command, Path(action.worktree), report, action.place
        )

    def _git_job(self, action: Action) -> Callable[[], Event | None]:
        """The git work of ``action``, to run in the worker's thread."""
        repo, ctx = self.ctx.repo, self.ctx
        if isinstance(action, PrepareWorkspace):
            return lambda: _prepare(repo, ctx.project.clones, ctx.run_id, action)
        if isinstance(action, CommitForAgent):
            return lambda: _commit_for_agent(repo, action)
        if isinstance(action, ConflictMerge):
            return lambda: _conflict_merge(repo, action)
        if isinstance(action, EnsureIntegration):
            return lambda: _ensure_integration(repo, action)
        if isinstance(action, RemoveWorktrees):
            return lambda: _remove_worktrees(repo, ctx.clones, action)
        if isinstance(action, PrepareCheckout):
            return lambda: _prepare_checkout(repo, action)
        if isinstance(action, MoveCheckout):
            return lambda: _move_checkout(repo, ctx.clones, action)
        if isinstance(action, RemoveCheckout):
            return lambda: _remove_checkout(ctx.clones, action)
        raise TypeError(f"not an action: {action!r}")


# --- git jobs (run in the worker's thread) ---------------------------------------------


def _requirements_name(ctx: RunContext) -> str:
    """The requirements file's path in the planning checkout: as in the repository, if
    it is inside it, else its name."""
    path = ctx.requirements_path.absolute()
    try:
        return str(path.relative_to(ctx.repo.absolute()))
    except ValueError:
        return path.name or "requirements.md"


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _prepare(repo: Path, clones_dir: Path, run_id: str, action: PrepareWorkspace) -> Event:
    """Make the task's clone when it is new or gone; drop claude's Write leftovers."""
    created = action.create or not (action.worktree and Path(action.worktree).is_dir())
    branch = path = base = ""
    if created:
        try:
            base = workspace.head_of(repo, workspace.INTEGRATION_BRANCH)
            branch, made = clones.create_clone(repo, clones_dir, action.task_id, base, run=run_id)
            # A clone kept from before (a resumed run) whose agent never worked starts
            # from the integration head of now.
            clones.catch_up(repo, made, branch, base)
        except VcsError as error:
            return WorkspaceFailed(action.task_id, str(error))
        except (OSError, pygit2.GitError) as error:
            return WorkspaceFailed(action.task_id, _one_line(error))
        path = str(made)
    # A claude killed mid-Write (a crash, a restart) leaves its temp file behind.
    with contextlib.suppress(VcsError, OSError):
        workspace.remove_untracked(Path(path or action.worktree), WRITE_LEFTOVER)
    return WorkspaceReady(action.task_id, branch, path, base, created)


def _is_clone(repo: Path, worktree: Path) -> bool:
    # Runs journaled before per-task clones worked in worktrees of the user's repository
    # (their commits are there already). Told by where the folder is, never by what is
    # in it: an agent can replace its clone's .git by a file naming the user's.
    return not worktree.absolute().is_relative_to(Project(repo).worktrees.absolute())


def _bring_back(repo: Path, worktree: Path, branch: str) -> None:
    """The clone's task branch into the user's repository (`clones.fetch_branch`)."""
    if branch and _is_clone(repo, worktree):
        clones.fetch_branch(repo, worktree, branch)


def _commit_for_agent(repo: Path, action: CommitForAgent) -> Event:
    """Commit what the developer left uncommitted, bring the branch back, say why it is
    not reviewable."""
    worktree = Path(action.worktree)
    try:
        if _is_clone(repo, worktree):
            # Autonoma's own git work in the clone runs outside the sandbox: only in
            # the clone it made, never through a link the agent put there.
            clones.verify_clone(worktree, action.branch)
        committed = workspace.commit_all(
            worktree,
            f"{action.task_id}: work {action.agent} left uncommitted",
            action.declared,
            rules=project_rules(repo),
        )
        _bring_back(repo, worktree, action.branch)
    except (VcsError, inputfile.InputFileError) as error:
        return WorkChecked(action.task_id, action.agent, why=str(error), refused=action.refused)
    except (OSError, pygit2.GitError) as error:
        why = f"{worktree}: {_one_line(error)}"
        return WorkChecked(action.task_id, action.agent, why=why, refused=action.refused)
    journaled = commits.for_agent(action.task_id, action.agent, committed)
    integration = workspace.head_of(repo, workspace.INTEGRATION_BRANCH)
    head = workspace.head_of(repo, action.branch)
    why = ""
    if not workspace.branch_changes(repo, integration, action.branch):
        why = "no change was committed on the task's branch"
    else:
        marked = workspace.conflict_marker_files(repo, integration, head)
        if marked:
            why = f"conflict markers were committed in {', '.join(marked)}"
    return WorkChecked(action.task_id, action.agent, journaled, why, action.refused)


def _conflict_merge(repo: Path, action: ConflictMerge) -> Event:
    """Merge the integration head into the task's clone; the files left in conflict.

    The clone sees the integration commit through its alternates. A merge that commits
    at once moves the clone's branch: it is brought back before the merge is retried.
    """
    worktree = Path(action.worktree)
    try:
        if _is_clone(repo, worktree):
            clones.verify_clone(worktree, action.branch)
        integration = workspace.head_of(repo, workspace.INTEGRATION_BRANCH)
        if _is_clone(repo, worktree):
            clones.set_local_ref(worktree, workspace.INTEGRATION_BRANCH, integration)
        conflicts = workspace.start_conflict_merge(worktree, integration)
        if not conflicts:
            _bring_back(repo, worktree, action.branch)
    except VcsError as error:
        return ConflictMergeDone(action.task_id, action.kind, action.output, error=str(error))
    except (OSError, pygit2.GitError) as error:
        why = f"{worktree}: {_one_line(error)}"
        return ConflictMergeDone(action.task_id, action.kind, action.output, error=why)
    return ConflictMergeDone(action.task_id, action.kind, action.output, tuple(conflicts))


def _ensure_integration(repo: Path, action: EnsureIntegration) -> None:
    with contextlib.suppress(VcsError):
        workspace.ensure_integration(repo, action.main)


def _prepare_checkout(repo: Path, action: PrepareCheckout) -> Event:
    """Make QA's or planning's throwaway clone; write the files it needs."""
    path = Path(action.path)
    try:
        if action.bring_back:
            clones.verify_clone(Path(action.bring_back), action.branch)
            _bring_back(repo, Path(action.bring_back), action.branch)
        clones.make_checkout(
            repo, path, action.rev, branch=action.branch or None, fresh=action.fresh
        )
        for name, data in action.files:
            target = path / name
            if ".." in Path(name).parts or Path(name).is_absolute():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink():
                target.unlink()
            # Never through a link the checkout holds: only into the checkout itself.
            if target.resolve().is_relative_to(path.resolve()):
                target.write_bytes(data)
    except VcsError as error:
        return CheckoutReady(action.purpose, action.path, action.task_id, str(error))
    except (OSError, pygit2.GitError) as error:
        return CheckoutReady(action.purpose, action.path, action.task_id, _one_line(error))
    return CheckoutReady(action.purpose, str(path), action.task_id)


def _move_checkout(repo: Path, run_clones: Path, action: MoveCheckout) -> Event:
    """Move QA's checkout made ahead to the head of the branch it reviews."""
    path = Path(action.path)
    done = CheckoutReady("review", action.path, action.task_id, moved=True)
    if not path.absolute().is_relative_to(run_clones.absolute()):
        return dataclasses.replace(done, error=f"{path}: not a checkout of this run")
    try:
        changed = clones.move_checkout(repo, path, action.rev, branch=action.branch)
    except VcsError as error:
        return dataclasses.replace(done, error=str(error))
    except (OSError, pygit2.GitError) as error:
        return dataclasses.replace(done, error=_one_line(error))
    return dataclasses.replace(done, changed=changed)


def _remove_checkout(run_clones: Path, action: RemoveCheckout) -> None:
    path = Path(action.path)
    if path.absolute().is_relative_to(run_clones.absolute()):
        with contextlib.suppress(OSError):
            clones.remove_clone(path)


def _remove_worktrees(repo: Path, run_clones: Path, action: RemoveWorktrees) -> Event:
    """Merged tasks' clones go (their branches stay), and QA's and planning's leftovers;
    then the run may end."""
    for path in action.paths:
        where = Path(path)
        if not where.exists():
            continue
        if _is_clone(repo, where):
            with contextlib.suppress(OSError):
                clones.remove_clone(where)
        else:
            with contextlib.suppress(OSError, pygit2.GitError):
                remove_worktrees_under(repo, where)
    for leftover in (PLAN_CHECKOUT, REVIEW_CHECKOUTS):
        with contextlib.suppress(OSError):
            clones.remove_clone(run_clones / leftover)
    with contextlib.suppress(OSError):
        run_clones.rmdir()  # only when nothing is left in it
    return WorktreesRemoved(action.then)


__all__ = ["MAX_INTERRUPTIONS", "ORCHESTRATOR", "TICK", "GitWorker", "Orchestrator", "RunContext"]
