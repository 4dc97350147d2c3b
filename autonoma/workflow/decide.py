"""The orchestrator's decisions: one pure function of its state and an event.

In the spirit of OTP's ``gen_statem``: `decide` takes the state (`Machine`, in
`autonoma.workflow.machine`) and one `Event` (`autonoma.workflow.inputs`) and returns the
state and a list of `Action`s (`autonoma.workflow.actions`). The orchestrator actor only feeds
it events (bus messages, ticks, inbox commands, the results of the work it carried out)
and carries the actions out; nothing here does I/O, reads a clock or asks an actor. The
time and the agents alive now are inputs (`Machine.now`, `Machine.live`), set by the
actor before each call.

The state is the journal's fold (`autonoma.journal.fold.State`) plus what lives only in
memory and dies with the process anyway: the turns in flight, the merges submitted, the
git work under way, per-phase failures, interruptions, turns stopped for time. Every
message the machine emits is folded into its state at once (the actor publishes it
next), so a decision always sees the effects of the previous ones.

Like `autonoma.journal.fold.apply`, `decide` mutates the state in place and returns it:
the fold of a long run is too big to copy per event.

The governor's permit is a pure function too (`permit`): the governor publishes what it
decides (`SpawnsHeld`, `BudgetReached`), the fold keeps it (``held_until``, costs per task
and per run), and the budget caps come from the settings. So asking never blocks, and a
slow governor only delays when a hold becomes known, as a bus message always could.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from autonoma.journal.fold import Task, apply
from autonoma.protocol import (
    ActorCrashed,
    AgentApiRetry,
    AgentProcessExited,
    AgentStateChanged,
    AgentToolUse,
    AgentTurnFinished,
    AnswerRejected,
    AnyMessage,
    BudgetReached,
    ConcurrencyChanged,
    Envelope,
    Escalation,
    HoldLifted,
    HumanCommandRejected,
    MergeFailed,
    PauseRequested,
    PhaseChanged,
    PlanWritten,
    ProjectCommands,
    ResolveRequested,
    ResumeRequested,
    RetryRequested,
    ReviewVerdict,
    RunFinished,
    RunOutcome,
    SchemaRejected,
    SetupRan,
    SpawnsHeld,
    StopRequested,
    TaskDefined,
    TaskFeedback,
    TaskMerged,
    TaskState,
    TaskStateChanged,
    TaskWorkspace,
    WorkPaused,
    WorkResumed,
)
from autonoma.system import ROOT
from autonoma.vcs.workspace import INTEGRATION_BRANCH
from autonoma.words import asked_by, budget_text, short
from autonoma.workflow import commands as project_commands
from autonoma.workflow import prompts, scheduler
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
from autonoma.workflow.answers import AnswerError, developer_report, verdict_of
from autonoma.workflow.crew import CEO, STAFF_ENGINEER, developer_names, qa_names, role_of
from autonoma.workflow.dag import TaskSpec, critical_path
from autonoma.workflow.governor import GOVERNOR, RATE_LIMITED, Permit, is_rate_limited
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
    Config,
    Machine,
    Turn,
    TurnKind,
    Work,
    agents_allowed,
    agents_allowed_limit,
    next_concurrency,
    permit,
)
from autonoma.workflow.merge_queue import MergeRequest
from autonoma.workflow.plan import parse_plan, plan_dict, plan_json, plan_text
from autonoma.workflow.setup import failure_reason

ORCHESTRATOR = "orchestrator"

MAX_INTERRUPTIONS = 5
"""Turns of one task (or phase) killed from outside before that counts as a failure."""

_DONE_STATES = frozenset({"merged", "resolved"})
_SLOT_STATES = frozenset({"running", "review"})


# --- the function -----------------------------------------------------------------------


def decide(m: Machine, event: Event) -> tuple[Machine, list[Action]]:
    """The state after ``event`` and what to do (in order). Pure: ``m`` is changed in place."""
    out: list[Action] = []
    _Step(m, out).handle(event)
    return m, out


class _Step:
    """One call of `decide`: the machine and the actions decided so far."""

    def __init__(self, m: Machine, out: list[Action]) -> None:
        self.m = m
        self.out = out
        self.fold = m.fold
        self.cfg = m.cfg

    # --- dispatch ----------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        m = self.m
        if isinstance(event, Started):
            self._recover()
        elif isinstance(event, Heard):
            self._heard(event.envelope)
        elif isinstance(event, InboxCommand):
            self._command(event.message)
        elif isinstance(event, StopRun):
            self._stop(StopRequested(origin=event.origin), event.reason)
        elif isinstance(event, TurnSpawned):
            self._spawned(event)
        elif isinstance(event, TurnNotStarted):
            m.turns.pop(event.agent, None)
        elif isinstance(event, SpawnRefused):
            self._refused(event)
        elif isinstance(event, WorkspaceReady):
            self._workspace_ready(event)
        elif isinstance(event, WorkspaceFailed):
            m.preparing.pop(event.task_id, None)
            task = self.fold.tasks.get(event.task_id)
            if task is not None and not m.finished and task.state not in _DONE_STATES:
                self._escalate(task, f"could not make its worktree: {event.error}")
        elif isinstance(event, WorkChecked):
            self._work_checked(event)
        elif isinstance(event, ConflictMergeDone):
            self._conflict_merge_done(event)
        elif isinstance(event, CheckoutReady):
            self._checkout_ready(event)
        elif isinstance(event, MergeNotSubmitted):
            m.submitted.discard(event.task_id)
        elif isinstance(event, SetupDone):
            self._setup_done(event.ran)
        elif isinstance(event, WorktreesRemoved):
            self._emit(event.then, durable=True)
            return
        elif isinstance(event, PromptGiven):
            turn = m.turns.get(event.agent)
            if turn is not None and turn.giving:
                turn.giving = turn.waiting = False
                m.waiting.discard(event.agent)
        elif isinstance(event, PromptNotGiven):
            turn = m.turns.get(event.agent)
            if turn is not None and turn.giving:
                # It ended, or is stopped: its exit drops it, and QA starts anew.
                turn.giving, turn.unused = False, True
        if m.finished:
            return
        if m.stopping:
            self._maybe_stop()
        else:
            self._pump()

    def _command(self, message: AnyMessage) -> None:
        """A human's command from the inbox, or the inbox's word that a file was not one:
        journaled (durably: the human's record), then acted on."""
        m = self.m
        if isinstance(message, StopRequested):
            self._stop(message, "stopped by `autonoma stop`")
            return
        if not isinstance(
            message,
            RetryRequested
            | ResolveRequested
            | HumanCommandRejected
            | PauseRequested
            | ResumeRequested,
        ):
            return  # not a human's to send (the inbox refuses it first)
        self._emit(message, durable=True)
        if isinstance(message, ResumeRequested) and ROOT in m.paused_by and not m.finished:
            # The root's pause ends with its `WorkResumed`, once it restarted the subtree.
            self.out.append(ResumeRoot(f"by {message.origin or 'a human'}"))

    def _stop(self, asked: StopRequested, reason: str) -> None:
        """Stop gracefully: journaled; nothing new starts; the run ends in `_maybe_stop`."""
        m = self.m
        self._emit(asked, durable=True)
        if m.finished or m.stopping:
            return
        m.stopping, m.stop_reason = True, reason
        if m.turns:
            # Their ends change nothing now (the resumed run resumes them): waited for only.
            self.out.append(StopTurns(tuple(sorted(m.turns))))

    def _maybe_stop(self) -> None:
        """End a stopping run once its turns stopped, the merge queue answered what it
        was given (a merge is never cut in half) and the git work under way is done."""
        m = self.m
        if m.turns or m.submitted or m.preparing or m.checking or m.review_preparing:
            return
        self._maybe_finish()  # the last merge may have ended the run: it is done then
        self._finish("stopped", f"{m.stop_reason}; `{self.cfg.resume_command}` resumes the run")

    def _paused(self) -> bool:
        """New turns wait: a human paused the run, or the root did (the governor's hold
        is its own, in `permit`)."""
        return self.fold.human_pause or bool(self.m.paused_by - {GOVERNOR})

    def _heard(self, envelope: Envelope) -> None:
        m = self.m
        apply(self.fold, envelope)
        event = envelope.message
        self._pressure(envelope)
        if isinstance(event, AgentTurnFinished):
            turn = m.turns.get(event.agent_id)
            if turn is not None:
                turn.finished = event
                if turn.kind == "review" and not m.stopping:
                    self._approved_at_result(turn, event)
        elif isinstance(event, SchemaRejected):
            turn = m.turns.get(event.agent_id)
            if turn is not None:
                turn.rejected = event.reason
        elif isinstance(event, AgentProcessExited):
            turn = m.turns.get(event.agent_id)
            if turn is not None and (event.pid is None or event.pid == turn.pid):
                del m.turns[event.agent_id]
                self._review_over(turn)
                # A pre-started turn that never had its prompt did no work: nothing failed.
                if not m.stopping and not turn.decided and not turn.waiting:
                    self._turn_ended(turn, event)
        elif isinstance(event, ActorCrashed):
            turn = m.turns.pop(event.name, None)
            if turn is not None:
                self._review_over(turn)
            if turn is not None and not m.stopping and not turn.decided and not turn.waiting:
                self._turn_lost(
                    turn, f"{event.name} crashed: {event.error_type}: {event.error_text}"
                )
        elif isinstance(event, TaskMerged):
            m.submitted.discard(event.task_id)
            task = self.fold.tasks.get(event.task_id)
            if task is not None and task.state == "merged":
                return  # the same merge heard again (submitted twice): said once
            self._set(event.task_id, "merged", event.detail)
            if task is not None and task.worktree:
                m.retired.append(task.worktree)
        elif isinstance(event, MergeFailed):
            task = self.fold.tasks.get(event.task_id)
            if task is None or m.stopping:
                # Stopping: the task stays merging; the resumed run merges it again.
                m.submitted.discard(event.task_id)
            elif event.kind == "no_test_command":
                # Nothing can merge until a human names the tests (or opts out): not a retry.
                m.submitted.discard(event.task_id)
                self._escalate(task, project_commands.no_test_command(task.task_id))
            elif event.kind == "integration_locked":
                # A git of the user's held autonoma/integration: nothing moved and nothing
                # is the developer's to fix (no attempt counted): merged again, behind the
                # merges already queued.
                self._set(task.task_id, "merging", "autonoma/integration was locked; merging again")
                self._submit(task)
            else:
                # Still submitted until the conflict merge answers: nothing resubmits it.
                self.out.append(
                    ConflictMerge(
                        task.task_id, task.worktree, event.kind, event.output, task.branch
                    )
                )
        elif isinstance(event, WorkPaused):
            m.paused_by.add(envelope.sender)
        elif isinstance(event, WorkResumed):
            m.paused_by.discard(envelope.sender)
        elif isinstance(event, BudgetReached) and event.scope == "task" and event.task_id:
            task = self.fold.tasks.get(event.task_id)
            if task is not None and task.state not in _DONE_STATES | {"escalated"}:
                self._escalate(
                    task,
                    f"task budget ${event.limit_usd:.2f} reached (${event.spent_usd:.2f} spent)",
                )

    def _pressure(self, envelope: Envelope) -> None:
        """Adapt the agents allowed at once to what the API answers (`next_concurrency`).

        A storm (the governor's first new hold since a request went through) halves it,
        and one turn at a time goes (the probe, once per window) until a request of a
        witness goes through (a tool call or a turn that ended well): the storm is over,
        its hold lifted, and the held turns resume at once. Each request that goes
        through outside a storm adds one.
        """
        m = self.m
        event = envelope.message
        if not self.cfg.crew_backoff:
            return
        ceiling = self.cfg.workers
        limit = agents_allowed_limit(self.fold.concurrency, ceiling)
        if isinstance(event, SpawnsHeld) and envelope.sender == GOVERNOR:
            if event.level == m.storm_level:
                return  # the same storm, its hold lengthened
            new_storm = m.storm_level == 0
            m.storm_level = event.level
            lowered = next_concurrency(limit, ceiling, "storm")
            if new_storm and lowered != limit:
                # Once per storm: a failed probe only waits for the next window.
                reason = f"rate limited ({short(event.reason)})"
                self._emit(ConcurrencyChanged(limit=lowered, ceiling=ceiling, reason=reason))
        elif isinstance(event, AgentApiRetry) and event.error_status in RATE_LIMITED:
            m.witnesses.add(event.agent_id)  # its retry is sent after the limit was seen
            agent = event.agent_id
            m.due[agent] = m.now + event.retry_delay_ms / 1000.0
            if agent in m.turns and agent not in m.frozen and not m.stopping:
                # It waits out the storm frozen: its retry goes when the crew's turns it.
                m.frozen.append(agent)
                self.out.append(FreezeTurns((agent,), True))
            if m.probe == agent:
                m.probe = ""  # refused: the next probe goes after the next window
        elif isinstance(event, AgentProcessExited):
            m.witnesses.discard(event.agent_id)
            if event.agent_id in m.frozen:
                m.frozen.remove(event.agent_id)
            if m.probe == event.agent_id:
                m.probe, m.probed_at = "", 0.0
        elif isinstance(event, AgentToolUse) or (
            isinstance(event, AgentTurnFinished) and not event.is_error
        ):
            if m.storm_level > 0:
                if event.agent_id not in m.witnesses:
                    # Maybe sent before the storm; its next request is sent during it.
                    m.witnesses.add(event.agent_id)
                    return
                # The storm is over: its hold lifted, the held turns resume now.
                m.storm_level = 0
                m.witnesses.clear()
                if m.frozen:
                    self.out.append(FreezeTurns(tuple(m.frozen), False))
                    m.frozen.clear()
                m.probe, m.probed_at = "", 0.0
                if self.fold.held_until > m.now:
                    why = f"a request of {event.agent_id}'s went through"
                    self._emit(HoldLifted(reason=why))
            if limit < ceiling:
                raised = next_concurrency(limit, ceiling, "success")
                why = f"a request of {event.agent_id}'s went through"
                self._emit(ConcurrencyChanged(limit=raised, ceiling=ceiling, reason=why))

    # --- recovery ---------------------------------------------------------------------

    def _recover(self) -> None:
        """Turn what the journal says into what to do next."""
        m = self.m
        tasks = self.fold.tasks
        run = self.fold.run
        m.started_at = run.started if run is not None and run.started else m.now
        if self.fold.stopping:  # restarted while a stop was under way: it goes on
            m.stopping, m.stop_reason = True, f"stopped by {asked_by(self.fold.stopped_by)}"
        self._derive()
        if not permit(m, None).run_budget_reached:
            # A budget reached in an earlier session of the run, since raised.
            self.fold.budget = None
        for task in tasks.values():
            if task.state == "merging" and task.commit:
                # Its merge was announced (`TaskMerged`: main moved) but the last run
                # ended before it heard so (stopped at once, killed): merged, not again.
                self._set(task.task_id, "merged", "merged as the last run ended")
            if task.state == "merged" and task.worktree:
                m.retired.append(task.worktree)  # the last run stopped first
            if task.state == "running" and task.feedback:
                m.work[task.task_id] = Work(task.feedback)  # that turn never started
            elif task.state == "running":
                if task.session_started:
                    m.work[task.task_id] = Work(prompts.interrupted(task.task_id, task.prompt))
                else:
                    m.work[task.task_id] = Work("", fresh=True)
            elif task.state == "failed":  # stopped between a failure and what follows it
                self._state_after_failure(
                    task, task.reason, prompts.turn_failed(task.task_id, task.reason)
                )
        if tasks and run is not None:
            # The config may have changed since the task list was accepted (the user set
            # test_command after an escalation): it wins over the Staff Engineer's answer.
            before = run.commands or ProjectCommands()
            self._fix_commands(before.proposed_setup_command, before.proposed_test_command)
        if self.fold.plan is None:
            self._phase("planning")
        elif not tasks:
            self._phase("decomposition")
        else:
            self._phase("development")

    def _derive(self) -> None:
        """The DAG and its priorities, from the tasks as folded (they never change after)."""
        m = self.m
        m.specs = {
            t.task_id: TaskSpec(
                id=t.task_id,
                title=t.title,
                spec=t.spec,
                deps=list(t.deps),
                files=list(t.files),
                acceptance=list(t.acceptance),
            )
            for t in self.fold.tasks.values()
        }
        m.priority = critical_path(list(m.specs.values()), self.cfg.durations)

    # --- the pump: start whatever may start -------------------------------------------

    def _thaw_probe(self) -> None:
        """Once a window is over, thaw one frozen turn (the longest frozen): its retry is
        the crew's probe. One at a time, and only after a hold that began after the last
        probe (its refusal's) has ended."""
        m = self.m
        m.frozen = [agent for agent in m.frozen if agent in m.turns]  # a crash ends a turn
        if m.probe not in m.turns:
            m.probe = ""
        if not m.frozen or m.probe or self._paused() or GOVERNOR not in m.live:
            return
        held_until = self.fold.held_until
        if m.now < held_until or held_until <= m.probed_at:
            return
        # The one whose own retry is due first (claude's delays grow with its attempts);
        # the longest frozen among equals.
        probe = min(m.frozen, key=lambda agent: max(m.due.get(agent, 0.0), m.now))
        m.frozen.remove(probe)
        m.probe, m.probed_at = probe, m.now
        self.out.append(FreezeTurns((m.probe,), False))

    def _pump(self) -> None:
        self._human_requests()
        if self.cfg.crew_backoff:
            self._thaw_probe()
        phase = self.fold.run.phase if self.fold.run else ""
        if phase == "planning":
            self._start_phase_turn("plan")
        elif phase == "decomposition":
            self._start_phase_turn("decompose")
        elif phase == "development":
            self._develop()
        self._maybe_finish()

    def _permit(self, agent: str, task_id: str | None) -> Permit | None:
        """The governor's answer, or None when new work must wait. A pre-started turn
        makes no request until its prompt: it counts among the agents working from then."""
        m = self.m
        if self._paused():
            return None  # a human paused, or the root after a subtree kept crashing
        if GOVERNOR not in m.live:
            return None
        answer = permit(m, task_id)
        if answer.wait > 0:
            self._hold(agent, task_id, answer.wait)
            return None
        working = sum(1 for t in m.turns.values() if not t.waiting) + len(m.preparing)
        if self.cfg.crew_backoff and working >= agents_allowed(m):
            return None  # as many agents work as the storms allow: the next waits its turn
        if answer.run_budget_reached:
            return None
        return answer

    def _start_turn(
        self,
        agent: str,
        kind: TurnKind,
        role: str,
        prompt: str,
        *,
        session_id: str,
        resume: bool,
        cwd: str,
        task_id: str | None = None,
        budget: float | None = None,
        ahead: bool = False,
    ) -> None:
        self.m.turns[agent] = Turn(
            agent,
            kind,
            task_id,
            session_id,
            0,
            resume,
            prompt,
            waiting=ahead,
            cwd=cwd,
            budget=budget,
        )
        if self.m.storm_level > 0:
            self.m.witnesses.add(agent)  # the probe: its requests are sent during the storm
        session_usd = self.fold.session_usd.get(session_id, 0.0) if resume else 0.0
        self.out.append(
            StartTurn(
                agent,
                kind,
                role,
                prompt,
                session_id,
                resume,
                cwd,
                task_id,
                budget,
                session_usd,
                ahead,
            )
        )

    def _spawned(self, event: TurnSpawned) -> None:
        m = self.m
        turn = m.turns.get(event.agent)
        if turn is None:
            return
        turn.pid = event.pid
        m.waiting.discard(event.agent)
        if turn.kind == "develop" and turn.task_id is not None:
            m.work.pop(turn.task_id, None)
        elif turn.kind in ("plan", "decompose"):
            step = m.plan if turn.kind == "plan" else m.decompose
            step.session, step.started = turn.session_id, True

    def _refused(self, event: SpawnRefused) -> None:
        # Counted like a failed turn: a role file broken mid-run, a worktree deleted
        # under it, a prompt too long for one argument.
        turn = self.m.turns.pop(event.agent, None)
        if turn is None:
            return
        self._review_over(turn)
        if turn.waiting:
            return  # pre-started: QA starts as usual at the review (and fails there if so)
        why = f"the turn could not start: {event.error}"
        task = None if turn.task_id is None else self.fold.tasks.get(turn.task_id)
        if task is None:
            self._phase_turn_ended(turn, None, why)
        elif turn.kind == "develop":
            self._fail(task, why, prompts.turn_failed(task.task_id, why))
        else:
            self._review_ended(task, turn, None, why)

    def _hold(self, agent: str, task_id: str | None, wait: float) -> None:
        """Say that ``agent`` waits on the governor (once per wait)."""
        if agent in self.m.waiting:
            return
        self.m.waiting.add(agent)
        self._emit(
            AgentStateChanged(
                agent_id=agent,
                role=role_of(agent),
                state="waiting",
                task_id=task_id,
                detail=f"rate limited: new turns held for {wait:.1f} s",
            )
        )

    def _free(self, names: list[str]) -> str | None:
        m = self.m
        busy = set(m.turns) | {agent for agent, _ in m.preparing.values()}
        for name in names:
            if name not in busy and name in m.live:
                return name
        return None

    def _claim(self, names: list[str], task_id: str | None) -> tuple[str, Permit] | None:
        """A free agent among ``names`` and the governor's permit for it, or None: wait."""
        agent = self._free(names)
        if agent is None:
            return None
        answer = self._permit(agent, task_id)
        return None if answer is None else (agent, answer)

    # --- planning and decomposition ---------------------------------------------------

    def _start_phase_turn(self, kind: Literal["plan", "decompose"]) -> None:
        m = self.m
        agent = CEO if kind == "plan" else STAFF_ENGINEER
        if agent in m.turns or agent not in m.live or self._permit(agent, None) is None:
            return
        if not m.plan_dir:
            # The planning turns run in a scratch clone of main, never in the user's
            # repository: whatever they write (git log --output=...) stays there.
            if not m.plan_preparing:
                m.plan_preparing = True
                requirements = self.cfg.requirements.encode()
                self.out.append(
                    PrepareCheckout(
                        "plan",
                        str(self.cfg.plan_dir),
                        self.cfg.main,
                        fresh=False,
                        files=((self.cfg.requirements_name, requirements),),
                    )
                )
            return
        step = m.plan if kind == "plan" else m.decompose
        role = self.cfg.roles[agent]
        if step.prompt and step.started:
            prompt, resume, session = step.prompt, True, step.session
        else:
            session = self._uuid()
            if kind == "plan":
                prompt = prompts.ceo_prompt(role, self.cfg.requirements, self.cfg.claude_md)
            else:
                plan = parse_plan(self.fold.plan)
                prompt = prompts.staff_prompt(
                    role, self.cfg.requirements, plan_text(plan), self.cfg.claude_md
                )
            resume = False
        self._start_turn(
            agent, kind, agent, prompt, session_id=session, resume=resume, cwd=m.plan_dir
        )

    def _phase_turn_ended(self, turn: Turn, finished: AgentTurnFinished | None, why: str) -> None:
        m = self.m
        step = m.plan if turn.kind == "plan" else m.decompose
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
                    path = self.cfg.plan_path
                    self.out.append(WriteFile(str(path), plan_json(plan)))
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
        if step.failures > self.cfg.max_retries:
            reason = f"the {what} was rejected {step.failures} times; last: {'; '.join(errors)}"
            self._emit(Escalation(source=ORCHESTRATOR, reason=reason))
            phase = self.fold.run.phase if self.fold.run else ""
            self._finish("failed", f"stopped in {phase}: {reason}")
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
            self.cfg.setup_command, self.cfg.test_command, proposed_setup, proposed_test
        )
        run = self.fold.run
        if run is None or run.commands != chosen:
            self._emit(chosen, durable=True)

    def _commands(self) -> ProjectCommands:
        run = self.fold.run
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
        if self.m.plan_dir:
            self.out.append(RemoveCheckout(self.m.plan_dir))
            self.m.plan_dir = ""

    # --- development ------------------------------------------------------------------

    def _develop(self) -> None:
        m = self.m
        tasks = self.fold.tasks
        # Work already under way first: reviews, follow-ups, recoveries, merges.
        for task in list(tasks.values()):
            if task.state == "merging" and task.task_id not in m.submitted:
                self._submit(task)
        self._drop_unused()
        for task in list(tasks.values()):
            if task.state != "review":
                continue
            ahead = self._waiting_turn("review", task.task_id)
            if ahead is not None:
                if not self._give_review(task, ahead):
                    break
            elif not self._in_flight(task.task_id) and not self._start_review(task):
                break
        self._prestart_reviews()
        for task in list(tasks.values()):
            needs_turn = task.state == "running" and not self._in_flight(task.task_id)
            if needs_turn and not self._start_development(task):
                break
        self._schedule()

    def _in_flight(self, task_id: str) -> bool:
        m = self.m
        if task_id in m.preparing or task_id in m.checking or task_id in m.setting_up:
            return True
        if task_id in m.review_preparing:
            return True
        return any(t.task_id == task_id for t in m.turns.values())

    def _states(self) -> dict[str, str]:
        return {t.task_id: t.state for t in self.fold.tasks.values()}

    def _schedule(self) -> None:
        m = self.m
        states = self._states()
        specs = [m.specs[tid] for tid in states if tid in m.specs]
        ready = scheduler.ready(specs, states)
        for task_id in ready:
            if states[task_id] == "pending":
                self._set(task_id, "ready", "its dependencies are merged")
        # A task whose worktree is being made holds its slot already.
        candidates = [tid for tid in ready if tid not in m.preparing]
        busy = [tid for tid, s in states.items() if s in _SLOT_STATES or tid in m.preparing]
        slots = self.cfg.workers - len(busy)
        if slots <= 0 or not candidates:
            return
        chosen = scheduler.pick(
            candidates,
            m.specs,
            busy,
            slots,
            m.priority,
            policy=self.cfg.policy,
            reserved=scheduler.imminent(specs, states, m.priority),
        )
        for task_id in chosen:
            # Claimed before the task is marked running: one permit, asked once.
            claimed = self._claim(developer_names(self.cfg.workers), task_id)
            if claimed is None:
                return
            agent, answer = claimed
            task = self.fold.tasks[task_id]
            m.preparing[task_id] = (agent, answer.task_budget_left)
            self.out.append(PrepareWorkspace(task_id, task.worktree, create=True))

    def _start_development(self, task: Task) -> bool:
        m = self.m
        if task.task_id in m.setting_up:
            return True  # its first turn starts once the set-up has succeeded
        claimed = self._claim(developer_names(self.cfg.workers), task.task_id)
        if claimed is None:
            return False
        agent, answer = claimed
        if answer.task_budget_left is not None and answer.task_budget_left <= 0:
            self._escalate(task, "its budget is spent")
            return True
        m.preparing[task.task_id] = (agent, answer.task_budget_left)
        self.out.append(PrepareWorkspace(task.task_id, task.worktree, create=False))
        return True

    def _workspace_ready(self, event: WorkspaceReady) -> None:
        m = self.m
        reserved = m.preparing.pop(event.task_id, None)
        task = self.fold.tasks.get(event.task_id)
        if task is None or reserved is None or m.finished:
            return
        # A kept clone caught up with the integration head (`clones.catch_up`): said again.
        made = (task.worktree, task.base) != (event.worktree, event.base)
        if event.created and made:
            self._emit(
                TaskWorkspace(
                    task_id=task.task_id,
                    branch=event.branch,
                    worktree=event.worktree,
                    base=event.base,
                )
            )
        if m.stopping or self._paused():
            return  # paused since it was claimed: a ready task stays ready
        if task.state == "ready":
            self._set(task.task_id, "running", "", 1)
        if task.state != "running":
            return  # escalated or resolved meanwhile
        if self._setting_up(task):
            return  # the agent is free again; the turn starts after the set-up
        agent, budget = reserved
        work = m.work.get(task.task_id)
        role = self.cfg.roles["developer"]
        resume = bool(task.session_id) and task.session_started and not (work and work.fresh)
        if resume and work is not None and work.prompt:
            prompt, session = work.prompt, task.session_id
        else:
            resume = False
            session = self._uuid()
            feedback = work.prompt if work is not None else ""
            prompt = prompts.developer_prompt(
                role, task, self.cfg.claude_md, feedback, self._commands()
            )
        self._start_turn(
            agent,
            "develop",
            "developer",
            prompt,
            session_id=session,
            resume=resume,
            cwd=task.worktree,
            task_id=task.task_id,
            budget=budget,
        )

    def _setting_up(self, task: Task) -> bool:
        """Whether ``task``'s worktree (which exists) still waits for the project's set-up.

        The set-up runs once per worktree, before its first developer turn, off the
        mailbox (`RunSetup`, answered by `SetupDone`).
        """
        m = self.m
        if task.task_id in m.setting_up:
            return True
        command = self._commands().setup_command
        if not command or not task.worktree or task.setup_worktree == task.worktree:
            return False
        m.setting_up.add(task.task_id)
        self.out.append(RunSetup(task.task_id, command, task.worktree))
        return True

    def _setup_done(self, ran: SetupRan) -> None:
        """A task's set-up ended: journaled; a failure is a failed attempt of the task."""
        m = self.m
        if ran.task_id is not None:
            m.setting_up.discard(ran.task_id)
        if m.stopping or m.finished:
            return
        self._emit(ran)
        task = None if ran.task_id is None else self.fold.tasks.get(ran.task_id)
        if ran.place == "review":
            self._review_set_up(ran, task)
            return
        if ran.ok or task is None or task.state != "running":
            return  # the pump starts its first turn
        # Not _fail: no developer turn ran, so none is told anything; the set-up runs again.
        why = failure_reason(ran)
        attempt = max(task.attempts, 1)
        self._set(task.task_id, "failed", why, attempt)
        if attempt > self.cfg.max_retries:
            self._escalate(task, f"failed {attempt} times; last: {why}")
        else:
            self._set(task.task_id, "running", f"retry: {why}", attempt + 1)

    def _review_set_up(self, ran: SetupRan, task: Task | None) -> None:
        """The set-up in QA's checkout ended: QA may start; a failure sends the work back."""
        m = self.m
        if task is None or task.state != "review":
            return
        if m.review_dirs.get(task.task_id) != ran.worktree:
            return
        if ran.ok:
            m.review_set_up.add(ran.worktree)
            return
        # A fresh checkout of the branch cannot be set up: the developer's work to fix.
        self._drop_review(task.task_id)
        why = f"{failure_reason(ran)} (in a fresh checkout of the branch, before QA)"
        self._fail(task, why, prompts.turn_failed(task.task_id, why))

    def _checkout_ready(self, event: CheckoutReady) -> None:
        m = self.m
        if event.purpose == "plan":
            m.plan_preparing = False
            if event.error and not m.finished:
                reason = f"could not make the planning checkout: {event.error}"
                self._emit(Escalation(source=ORCHESTRATOR, reason=reason))
                self._finish("failed", f"stopped in planning: {reason}")
            elif not event.error:
                m.plan_dir = event.path
            return
        task_id = event.task_id or ""
        m.review_preparing.discard(task_id)
        task = self.fold.tasks.get(task_id)
        if event.moved:
            if m.review_dirs.get(task_id) != event.path:
                return  # dropped meanwhile (its pre-started QA ended): removed already
            if event.error:
                self._drop_review(task_id)  # the review makes a fresh one
                return
            m.review_stale.discard(event.path)
            waiting = self._waiting_turn("review", task_id)
            if event.changed and waiting is not None and not waiting.unused:
                # Its claude took the git status of the checkout when it started (it is in
                # its context): not the commits to review now. A fresh QA reviews them.
                waiting.unused = True
                self.out.append(StopTurns((waiting.agent,)))
            return
        ahead = task is not None and task.state == "running" and event.path in m.review_stale
        if task is None or not (task.state == "review" or ahead) or m.finished or m.stopping:
            m.review_stale.discard(event.path)
            if not event.error:
                self.out.append(RemoveCheckout(event.path))
            return
        if ahead and event.error:
            m.review_stale.discard(event.path)
            return  # made again when the review starts
        if event.error:
            failures = m.qa_failures[task_id] = m.qa_failures.get(task_id, 0) + 1
            why = f"could not make QA's checkout: {event.error}"
            if failures > self.cfg.max_retries:
                self._escalate(task, f"QA could not review it {failures} times; last: {why}")
            return
        m.review_dirs[task_id] = event.path

    def _review_over(self, turn: Turn) -> None:
        """A QA turn ended (however): its checkout goes; a next review gets a fresh one."""
        if turn.kind == "review" and turn.task_id is not None:
            if turn.decided:
                # Its task left review at the result: the checkout is the turn's own.
                if turn.checkout:
                    self.out.append(RemoveCheckout(turn.checkout))
                return
            self._drop_review(turn.task_id)

    def _approved_at_result(self, turn: Turn, finished: AgentTurnFinished) -> None:
        """QA's approval acts at its result line, not at its process's exit.

        claude takes a while to exit after its result (a tenth of a second or more, on
        every task of the critical path), and nothing the merge does depends on QA's
        process: it runs in its own checkout. So the task goes to the merge queue at
        once; the agent stays busy, and its checkout stays, until the process has
        exited. Anything else (a rejection, an error, no usable verdict) waits for the
        exit, as before: a rejection's next review must not find this checkout.
        """
        if finished.is_error or turn.task_id is None:
            return
        task = self.fold.tasks.get(turn.task_id)
        if task is None or task.state != "review":
            return
        try:
            verdict = verdict_of(finished, self._schema("qa"))
        except AnswerError:
            return
        if verdict.verdict != "approve":
            return
        turn.decided = True
        path = self.m.review_dirs.pop(task.task_id, None)
        if path is not None:
            self.m.review_set_up.discard(path)
            turn.checkout = path
        self._review_ended(task, turn, finished, "")

    def _drop_review(self, task_id: str) -> None:
        path = self.m.review_dirs.pop(task_id, None)
        if path is not None:
            self.m.review_set_up.discard(path)
            self.m.review_stale.discard(path)
            self.out.append(RemoveCheckout(path))

    def _start_review(self, task: Task) -> bool:
        """QA's turn on ``task``, once its checkout is made (and set up); False: no QA free."""
        m = self.m
        review = task.reviews + 1
        path = m.review_dirs.get(task.task_id)
        if path is None:
            # A fresh clone at the branch's head: nothing QA does there reaches the branch.
            m.review_preparing.add(task.task_id)
            where = str(self.cfg.review_dir(task.task_id, review))
            self.out.append(
                PrepareCheckout("review", where, task.branch, task.task_id, branch=task.branch)
            )
            return True
        if not self._review_checkout_ready(task, path):
            return True
        claimed = self._claim(qa_names(self.cfg.workers), task.task_id)
        if claimed is None:
            return False
        agent, answer = claimed
        prompt = prompts.qa_prompt(
            self.cfg.roles["qa"],
            task,
            INTEGRATION_BRANCH,
            review,
            self.cfg.claude_md,
            self._commands(),
        )
        self._start_turn(
            agent,
            "review",
            "qa",
            prompt,
            session_id=self._uuid(),
            resume=False,
            cwd=path,
            task_id=task.task_id,
            budget=answer.task_budget_left,
        )
        return True

    def _review_checkout_ready(self, task: Task, path: str) -> bool:
        """Whether QA's checkout at ``path`` is at the branch's head and set up; if not,
        what makes it so is asked for (once)."""
        m = self.m
        if path in m.review_stale:
            # Made ahead, at the developer's result: the branch has moved since.
            if task.task_id not in m.review_preparing:
                m.review_preparing.add(task.task_id)
                self.out.append(MoveCheckout(path, task.branch, task.task_id, task.branch))
            return False
        command = self._commands().setup_command
        if command and path not in m.review_set_up:
            if task.task_id not in m.setting_up:
                m.setting_up.add(task.task_id)
                self.out.append(RunSetup(task.task_id, command, path, place="review"))
            return False
        return True

    # --- QA started ahead ----------------------------------------------------------------

    def _waiting_turn(self, kind: TurnKind, task_id: str) -> Turn | None:
        """The pre-started turn of ``kind`` for ``task_id`` still waiting for its prompt."""
        for turn in self.m.turns.values():
            if turn.kind == kind and turn.task_id == task_id and turn.waiting:
                return turn
        return None

    def _ending_well(self, task_id: str) -> bool:
        """Whether ``task_id``'s developer turn gave its result without an error and its
        work goes (or is about to go) to QA: the moment to start QA ahead."""
        m = self.m
        if task_id in m.checking:
            return True
        return any(
            t.kind == "develop"
            and t.task_id == task_id
            and t.finished is not None
            and not t.finished.is_error
            for t in m.turns.values()
        )

    def _prestart_reviews(self) -> None:
        """QA's process starts while the developer's turn ends (its result given, the
        process exiting, its work checked): a checkout of the branch is made now, and
        moved to the branch's head once the work is checked (`MoveCheckout`); the prompt
        follows then (`_give_review`). Its start-up is then off the critical path."""
        m = self.m
        if not self.cfg.prestart or m.storm_level > 0:
            return
        if self._commands().setup_command:
            # The set-up runs in QA's checkout first and takes far longer than claude's
            # start-up: nothing to win, and a QA waiting through it could be stopped idle.
            return
        for task in list(self.fold.tasks.values()):
            task_id = task.task_id
            if task.state != "running" or not self._ending_well(task_id):
                continue
            if any(t.kind == "review" and t.task_id == task_id for t in m.turns.values()):
                continue
            if task_id in m.review_preparing:
                continue
            path = m.review_dirs.get(task_id)
            if path is None:
                where = str(self.cfg.review_dir(task_id, task.reviews + 1))
                tried = f"{where}#{task.attempts}"  # once per attempt of the task
                if not task.branch or tried in m.review_tried:
                    continue
                m.review_tried.add(tried)  # a failure waits for the review itself
                m.review_preparing.add(task_id)
                m.review_stale.add(where)
                # What the developer committed is brought back first: QA's claude takes
                # the checkout's git status into its context when it starts.
                self.out.append(
                    PrepareCheckout(
                        "review",
                        where,
                        task.branch,
                        task_id,
                        branch=task.branch,
                        bring_back=task.worktree,
                    )
                )
                continue
            if path not in m.review_stale:
                continue  # not made ahead: the review starts QA as usual
            agent = self._free(qa_names(self.cfg.workers))
            if agent is None or self._paused() or GOVERNOR not in m.live:
                return
            answer = permit(m, task_id)
            if answer.wait > 0 or answer.run_budget_reached:
                return
            self._start_turn(
                agent,
                "review",
                "qa",
                "",
                session_id=self._uuid(),
                resume=False,
                cwd=path,
                task_id=task_id,
                budget=answer.task_budget_left,
                ahead=True,
            )

    def _give_review(self, task: Task, turn: Turn) -> bool:
        """The pre-started QA turn of ``task`` (in review) gets its prompt once its
        checkout is at the branch's head and set up; False: wait (no permit)."""
        if turn.giving or turn.unused:
            return True
        if not self._review_checkout_ready(task, turn.cwd):
            return True
        answer = self._permit(turn.agent, task.task_id)
        if answer is None:
            return False
        if self.cfg.task_budget_usd > 0 and answer.task_budget_left != turn.budget:
            # Its --max-budget-usd is not what is left now: a QA started now gets it.
            turn.unused = True
            self.out.append(StopTurns((turn.agent,)))
            return True
        prompt = prompts.qa_prompt(
            self.cfg.roles["qa"],
            task,
            INTEGRATION_BRANCH,
            task.reviews + 1,
            self.cfg.claude_md,
            self._commands(),
        )
        turn.giving, turn.prompt = True, prompt
        self.out.append(GivePrompt(turn.agent, prompt))
        return True

    def _drop_unused(self) -> None:
        """Stop the pre-started QA turns no longer wanted (their task failed, was
        escalated, resolved or stopped): their exit removes their checkout."""
        m = self.m
        for turn in m.turns.values():
            if not turn.waiting or turn.unused or turn.giving or turn.task_id is None:
                continue
            task = self.fold.tasks.get(turn.task_id)
            wanted = task is not None and (
                task.state == "review"
                or (task.state == "running" and self._ending_well(task.task_id))
            )
            if not wanted:
                turn.unused = True
                self.out.append(StopTurns((turn.agent,)))

    def _submit(self, task: Task) -> None:
        commands = self._commands()
        run = self.fold.run
        self.out.append(
            SubmitMerge(
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
        )
        self.m.submitted.add(task.task_id)

    # --- the end of a turn -------------------------------------------------------------

    def _turn_ended(self, turn: Turn, exited: AgentProcessExited) -> None:
        m = self.m
        finished = turn.finished
        why = ""
        key = turn.task_id or turn.kind
        if exited.timed_out and (finished is None or finished.is_error):
            limit = prompts.timeout_reason(exited.timeout or "wall", exited.timeout_s)
            if key not in m.stopped:
                # Stopped for time the first time: resumed once, told so; not counted.
                m.stopped.add(key)
                self._resume_stopped(turn, exited, f"the turn was stopped: {limit}")
                return
            m.stopped.discard(key)
            why = f"the turn was stopped again: {limit}"
        elif finished is None:
            code = f"signal {exited.signal}" if exited.signal else f"exit code {exited.exit_code}"
            why = f"claude ended without a result ({code})"
        elif finished.is_error and not is_rate_limited(finished):
            detail = finished.result or "; ".join(finished.errors) or finished.terminal_reason
            why = f"the turn failed ({finished.subtype}): {detail}"
        if finished is not None and not finished.is_error:
            m.stopped.discard(key)  # a turn that ended well: the next stop resumes again
        if why and turn.rejected:
            # What claude said of the answer, not the error the turn ended with after it.
            what = _ANSWER[turn.kind]
            why = f"claude rejected the {what} against the role's schema: {turn.rejected}"
        if finished is None and exited.signal is not None and not exited.timed_out:
            # Killed from outside (its agent stopped, the crew restarted, an OOM kill):
            # not the work's fault, so the task resumes instead of failing.
            self._turn_lost(turn, f"claude was killed (signal {exited.signal})")
            return
        if turn.resume and finished is not None and session_lost(finished):
            self._session_lost(turn)
            return
        if turn.kind in ("plan", "decompose"):
            self._phase_turn_ended(turn, finished, why)
            return
        assert turn.task_id is not None
        task = self.fold.tasks.get(turn.task_id)
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

    def _resume_stopped(self, turn: Turn, exited: AgentProcessExited, why: str) -> None:
        """A turn stopped for time the first time: it runs again, told so, in its session.

        Not a failed attempt; a second stop (with no turn ending well in between) is.
        """
        m = self.m
        note = prompts.stopped(exited.timeout or "wall", exited.timeout_s, turn.task_id)
        if turn.kind in ("plan", "decompose"):
            step = m.plan if turn.kind == "plan" else m.decompose
            step.prompt = note  # step.started stays: the same session is resumed
            return
        task = None if turn.task_id is None else self.fold.tasks.get(turn.task_id)
        if task is None or task.state != ("running" if turn.kind == "develop" else "review"):
            return  # escalated or resolved while the turn ran
        if turn.kind == "develop":
            self._tell_next(task, note)  # resumes the session when claude reported it
            self._set(task.task_id, "running", f"resumed: {why}")
        else:
            self._set(task.task_id, "review", f"QA reviews again: {why}")

    def _turn_lost(self, turn: Turn, why: str) -> None:
        """The agent or its process died mid-turn: the turn runs again, resumed.

        Not a failed attempt, unless it keeps happening (`MAX_INTERRUPTIONS`).
        """
        m = self.m
        key = turn.task_id or turn.kind
        count = m.interruptions[key] = m.interruptions.get(key, 0) + 1
        task = None if turn.task_id is None else self.fold.tasks.get(turn.task_id)
        if count > MAX_INTERRUPTIONS:
            m.interruptions[key] = 0
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

    def _session_lost(self, turn: Turn) -> None:
        """claude kept no transcript of the session (killed too early): start a new one."""
        m = self.m
        if turn.kind in ("plan", "decompose"):
            step = m.plan if turn.kind == "plan" else m.decompose
            step.started = False
            return
        task = None if turn.task_id is None else self.fold.tasks.get(turn.task_id)
        if task is not None and turn.kind == "develop":
            self._again(task, turn, fresh=True)

    def _again(self, task: Task, turn: Turn, *, fresh: bool = False) -> None:
        """Ask the developer's turn again: resumed, or in a new session when it must be.

        Not the work's fault (a kill, a rate limit, a lost session), so not an attempt.
        A new session gets what the turn was asked as feedback, unless that was the
        first prompt itself.
        """
        m = self.m
        if not fresh and task.session_started and task.session_id == turn.session_id:
            m.work[task.task_id] = Work(prompts.interrupted(task.task_id, turn.prompt))
            return
        asked = prompts.asked_of(turn.prompt)
        first = prompts.developer_prompt(
            self.cfg.roles["developer"], task, self.cfg.claude_md, "", self._commands()
        )
        m.work[task.task_id] = Work("" if asked == first else asked, fresh=True)

    def _schema(self, role: str) -> dict[str, object] | None:
        """The role's schema: the rule for its answer (None: checked by its type alone)."""
        found = self.cfg.roles.get(role)
        return None if found is None else found.schema

    def _development_ended(self, task: Task, turn: Turn, why: str) -> None:
        if not why and turn.finished is not None:
            # What the developer says it did goes to QA (and to the record) first.
            report = developer_report(
                turn.finished, self._schema("developer"), task_id=task.task_id, agent_id=turn.agent
            )
            self._emit(report)
        if why:
            self._fail(task, why, prompts.turn_failed(task.task_id, why))
            return
        self.m.checking.add(task.task_id)
        refused = refusals(turn.finished)
        declared = tuple(task.files)
        self.out.append(
            CommitForAgent(task.task_id, turn.agent, task.worktree, task.branch, refused, declared)
        )

    def _work_checked(self, event: WorkChecked) -> None:
        m = self.m
        m.checking.discard(event.task_id)
        if m.finished:
            return
        if event.journaled is not None:
            self._emit(event.journaled)
        task = self.fold.tasks.get(event.task_id)
        if m.stopping or task is None or task.state != "running":
            return  # escalated (its budget) or resolved meanwhile; or stopping: resumed later
        if event.why:
            why = event.why
            if event.refused:
                why += f" (claude was refused: {', '.join(event.refused)})"
            self._fail(task, why, prompts.turn_failed(task.task_id, why))
            return
        self._set(task.task_id, "review", f"{event.agent} finished; QA reviews")

    def _review_ended(
        self, task: Task, turn: Turn, finished: AgentTurnFinished | None, why: str
    ) -> None:
        m = self.m
        verdict = None
        errors: list[str] = []
        if not why:
            try:
                verdict = verdict_of(finished, self._schema("qa"))
            except AnswerError as error:
                errors = error.errors
                why = f"QA gave no usable verdict: {'; '.join(errors)}"
        if verdict is None:
            failures = m.qa_failures[task.task_id] = m.qa_failures.get(task.task_id, 0) + 1
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
            if failures > self.cfg.max_retries:
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
            self._submit(self.fold.tasks[task.task_id])
        else:
            review = task.reviews
            first = reasons[0] if reasons else "no reason given"
            self._fail(
                task,
                f"QA requested changes: {first}",
                prompts.rejected(task.task_id, review, reasons),
            )

    def _conflict_merge_done(self, event: ConflictMergeDone) -> None:
        m = self.m
        m.submitted.discard(event.task_id)
        task = self.fold.tasks.get(event.task_id)
        if task is None or m.finished:
            return
        if event.error:
            self._fail(task, event.error, prompts.turn_failed(task.task_id, event.error))
        elif event.conflicts:
            self._fail(
                task,
                f"merge conflict in {', '.join(event.conflicts)}",
                prompts.conflicted(task.task_id, list(event.conflicts)),
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
        if attempt > self.cfg.max_retries:
            self._escalate(task, f"failed {attempt} times; last: {reason}")
            return
        self._tell_next(task, next_prompt)
        self._set(task.task_id, "running", f"retry: {reason}", attempt + 1)

    def _tell_next(self, task: Task, text: str) -> None:
        """The next developer turn says ``text`` (journaled: it survives a restart)."""
        self.m.work[task.task_id] = Work(text)
        self._emit(TaskFeedback(task_id=task.task_id, text=text))

    def _escalate(self, task: Task, reason: str) -> None:
        self._set(task.task_id, "escalated", reason)
        self._emit(
            Escalation(
                source=ORCHESTRATOR, reason=f"{task.task_id}: {reason}", task_id=task.task_id
            )
        )

    def _human_requests(self) -> None:
        m = self.m
        for task in list(self.fold.tasks.values()):
            if task.requested == "resolve" and task.state not in _DONE_STATES:
                self._set(task.task_id, "resolved", "resolved by a human")
                self.out.append(EnsureIntegration(self.cfg.main))
            elif task.requested == "retry" and task.state in ("escalated", "failed"):
                m.qa_failures.pop(task.task_id, None)
                if task.worktree:
                    self._tell_next(task, prompts.human_retry(task.task_id, task.notes))
                    self._set(task.task_id, "running", "sent back by a human", 1)
                else:
                    self._set(task.task_id, "pending", "sent back by a human", 1)
            elif task.requested:
                task.requested = ""

    # --- the end of the run -------------------------------------------------------------

    def _maybe_finish(self) -> None:
        m = self.m
        if m.turns or m.submitted or m.preparing or m.checking or m.review_preparing:
            return
        states = self._states()
        budget = bool(self.fold.budget)
        if not budget:  # past the budget, work under way stays where it is, to resume
            if self.fold.run is None or self.fold.run.phase != "development":
                return
            if any(s in ("running", "review", "merging") for s in states.values()):
                return
            if not scheduler.run_over(list(m.specs.values()), states, 0):
                return
        escalated = sorted(t for t, s in states.items() if s == "escalated")
        outcome: RunOutcome = "done" if not escalated and not budget else "failed"
        self._finish(outcome, self._summary(states, escalated))

    def _summary(self, states: Mapping[str, str], escalated: list[str]) -> str:
        m = self.m
        counts = {s: sum(1 for v in states.values() if v == s) for s in set(states.values())}
        parts = [f"{len(states)} tasks: {counts.get('merged', 0)} merged"]
        if counts.get("resolved"):
            parts.append(f"{counts['resolved']} resolved by hand")
        if escalated:
            why = ", ".join(f"{t} ({self.fold.tasks[t].reason})" for t in escalated)
            parts.append(f"{len(escalated)} escalated: {why}")
        waiting = scheduler.blocked_by_escalation(list(m.specs.values()), states)
        if waiting:
            parts.append(f"{len(waiting)} waiting on escalated tasks")
        retries = sum(1 for t in self.fold.tasks.values() for e in t.history if e.state == "failed")
        usage = self.fold.run.usage if self.fold.run else self.fold.usage
        elapsed = m.now - m.started_at
        text = "; ".join(parts) + f". {retries} retries, ${usage.usd:.2f}, {elapsed:.0f} s."
        if self.fold.budget is not None:
            text += (
                f" Stopped: {budget_text(self.fold.budget)}; raise budget_usd "
                "(AUTONOMA_BUDGET_USD), then "
                f"`{self.cfg.resume_command}` goes on."
            )
        return text

    def _finish(self, outcome: RunOutcome, summary: str) -> None:
        m = self.m
        if m.finished:
            return
        m.finished = True
        if outcome != "stopped":
            self._phase("done" if outcome == "done" else "stopped")
        end = RunFinished(outcome=outcome, summary=summary)
        if m.retired:
            # Merged tasks' worktrees go first (their branches stay): at the end of the
            # run, since removing one takes a good 0.1 s the critical path should not wait.
            paths, m.retired = tuple(m.retired), []
            self.out.append(RemoveWorktrees(paths, end))
        else:
            self._emit(end, durable=True)

    # --- publishing ------------------------------------------------------------------------

    def _phase(self, phase: str, durable: bool = False) -> None:
        run = self.fold.run
        if run is None or run.phase != phase:
            self._emit(PhaseChanged(phase=phase), durable=durable)

    def _set(self, task_id: str, state: TaskState, reason: str = "", attempt: int = 0) -> None:
        self._emit(TaskStateChanged(task_id=task_id, state=state, reason=reason, attempt=attempt))

    def _emit(self, message: AnyMessage, *, durable: bool = False) -> None:
        """Fold ``message`` now (the next decision sees it) and have it published."""
        envelope = Envelope(
            seq=0,
            ts=self.m.now,
            run_id=self.cfg.run_id,
            sender=ORCHESTRATOR,
            recipient="*",
            message=message,
        )
        apply(self.fold, envelope)
        self.out.append(Emit(message, durable))

    def _uuid(self) -> str:
        return self.m.new_session()


_ANSWER: dict[TurnKind, str] = {
    "plan": "plan",
    "decompose": "task list",
    "develop": "summary",
    "review": "verdict",
}
"""What each kind of turn answers with (its role's schema)."""


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def refusals(finished: AgentTurnFinished | None) -> tuple[str, ...]:
    """The tool calls claude refused in a turn, as ``Tool target`` (``permission_denials``)."""
    if finished is None:
        return ()
    said: list[str] = []
    for denial in finished.permission_denials:
        tool = str(denial.get("tool_name") or "a tool")
        given = denial.get("tool_input")
        target = ""
        if isinstance(given, dict):
            for key in ("file_path", "command", "path", "url"):
                if isinstance(given.get(key), str) and given[key]:
                    target = str(given[key]).splitlines()[0][:80]
                    break
        said.append(f"{tool} {target}".strip())
    return tuple(said)


def session_lost(finished: AgentTurnFinished) -> bool:
    """``--resume`` found no transcript of the session."""
    said = " ".join([finished.result, *finished.errors])
    return finished.is_error and "No conversation found" in said


__all__ = [
    "MAX_INTERRUPTIONS",
    "ORCHESTRATOR",
    "Action",
    "CheckoutReady",
    "CommitForAgent",
    "Config",
    "ConflictMerge",
    "ConflictMergeDone",
    "Emit",
    "EnsureIntegration",
    "Event",
    "FreezeTurns",
    "Heard",
    "InboxCommand",
    "Machine",
    "MergeNotSubmitted",
    "PrepareCheckout",
    "PrepareWorkspace",
    "RemoveCheckout",
    "RemoveWorktrees",
    "ResumeRoot",
    "RunSetup",
    "SetupDone",
    "SpawnRefused",
    "StartTurn",
    "Started",
    "StopRun",
    "StopTurns",
    "SubmitMerge",
    "Tick",
    "TurnNotStarted",
    "TurnSpawned",
    "WorkChecked",
    "WorkspaceFailed",
    "WorkspaceReady",
    "WorktreesRemoved",
    "WriteFile",
    "agents_allowed",
    "decide",
    "next_concurrency",
    "permit",
    "refusals",
    "session_lost",
]
