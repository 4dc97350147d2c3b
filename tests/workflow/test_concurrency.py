"""One backoff for the whole crew, as tables: the AIMD rule, and what `decide` starts.

The first table is the pure rule (`next_concurrency`). The second plays a storm into
the pure `decide` with four developers on four independent tasks: what the bus says
(the governor's `SpawnsHeld`, claude's result and exit lines, a tool call once the API
answers again) and checks what a user sees: the turns that start (how many at once),
the `ConcurrencyChanged` rows journaled, and the fold's `concurrency` that status shows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from autonoma.agents.roles import load_role
from autonoma.journal.fold import State, apply
from autonoma.protocol import (
    AgentApiRetry,
    AgentProcessExited,
    AgentSessionStarted,
    AgentToolUse,
    AgentTurnFinished,
    AgentTurnStarting,
    AnyMessage,
    ConcurrencyChanged,
    Envelope,
    HoldLifted,
    PlanWritten,
    RunStarted,
    SpawnsHeld,
    TaskDefined,
    TaskStateChanged,
)
from autonoma.report import state_text
from autonoma.views import run_lines
from autonoma.workflow.actions import (
    Emit,
    FreezeTurns,
    PrepareWorkspace,
    StartTurn,
)
from autonoma.workflow.crew import CEO, STAFF_ENGINEER, developer_names, qa_names
from autonoma.workflow.decide import (
    decide,
)
from autonoma.workflow.governor import GOVERNOR
from autonoma.workflow.inputs import (
    Event,
    Heard,
    Started,
    Tick,
    TurnSpawned,
    WorkspaceReady,
)
from autonoma.workflow.machine import (
    Config,
    Machine,
    next_concurrency,
)

RUN = "run-1"
NOW = 1_000_000.0
WORKERS = 4
TASKS = [f"t{i}" for i in range(1, WORKERS + 1)]

# --- the rule ------------------------------------------------------------------------

AIMD = [
    # limit, ceiling, pressure, next
    (4, 4, "storm", 2),
    (2, 4, "storm", 1),
    (1, 4, "storm", 1),  # never below one: the probe
    (5, 5, "storm", 2),
    (7, 4, "storm", 2),  # a ceiling lowered since (a resumed run with fewer workers)
    (1, 4, "success", 2),
    (3, 4, "success", 4),
    (4, 4, "success", 4),  # never above the ceiling (max_workers)
    (9, 4, "success", 4),
    (1, 1, "storm", 1),
    (1, 1, "success", 1),
]


@pytest.mark.parametrize(("limit", "ceiling", "pressure", "expected"), AIMD)
def test_aimd_halves_after_a_storm_and_adds_one_per_success(
    limit: int, ceiling: int, pressure: str, expected: int
) -> None:
    assert next_concurrency(limit, ceiling, pressure) == expected  # type: ignore[arg-type]


# --- the crew in a storm ------------------------------------------------------------------


SEQ = itertools.count(1)


def envelope(message: AnyMessage, sender: str) -> Envelope:
    return Envelope(
        seq=next(SEQ), ts=NOW, run_id=RUN, sender=sender, recipient="*", message=message
    )


class Crew:
    """Four developers on four independent tasks; git work is answered at once."""

    def __init__(self, *, crew_backoff: bool = True) -> None:
        roles = {name: load_role(name) for name in (CEO, STAFF_ENGINEER, "developer", "qa")}
        config = Config(
            run_id=RUN,
            repo=Path("/repo"),
            plan_path=Path("/repo/.autonoma/plan.json"),
            requirements="A todo list.",
            claude_md="",
            roles=roles,
            workers=WORKERS,
            max_retries=2,
            clones=Path("/repo/.autonoma/clones") / RUN,
            crew_backoff=crew_backoff,
        )
        live = frozenset(
            {CEO, STAFF_ENGINEER, GOVERNOR, *developer_names(WORKERS), *qa_names(WORKERS)}
        )
        ids = itertools.count(1)
        self.m = Machine(cfg=config, now=NOW, live=live, new_session=lambda: f"s{next(ids)}")
        self.emitted: list[AnyMessage] = []
        self.journal: list[Envelope] = []
        """Every row as the journal would hold it (what the bus said, what decide emitted)."""
        self.running: dict[str, StartTurn] = {}
        self.started: list[StartTurn] = []
        self.freezes: list[tuple[tuple[str, ...], bool]] = []
        """Every `FreezeTurns` decided: (agents, frozen)."""
        self.pids = itertools.count(100)
        self.hear(RunStarted(requirements="r.md", project="/repo", max_workers=WORKERS))
        self.hear(PlanWritten(plan={"summary": "s", "milestones": []}, path="/p.json"))
        for task in TASKS:
            self.hear(
                TaskDefined(task_id=task, title=task, deps=[], files=[f"{task}.py"], spec="Do.")
            )
            self.hear(TaskStateChanged(task_id=task, state="pending"))
        self.feed(Started())

    def feed(self, event: Event) -> None:
        _, actions = decide(self.m, event)
        for action in actions:
            if isinstance(action, Emit):
                self.emitted.append(action.message)
                self.journal.append(envelope(action.message, "orchestrator"))
            elif isinstance(action, PrepareWorkspace):
                worktree = f"/work/{action.task_id}"
                self.feed(
                    WorkspaceReady(
                        action.task_id, f"autonoma/{action.task_id}", worktree, "b", created=True
                    )
                )
            elif isinstance(action, StartTurn):
                self._spawn(action)
            elif isinstance(action, FreezeTurns):
                self.freezes.append((action.agents, action.frozen))

    def hear(self, message: AnyMessage, sender: str = "orchestrator") -> None:
        heard = envelope(message, sender)
        self.journal.append(heard)
        self.feed(Heard(heard))

    def _spawn(self, turn: StartTurn) -> None:
        self.started.append(turn)
        self.running[turn.agent] = turn
        pid = next(self.pids)
        self.feed(TurnSpawned(turn.agent, pid))
        self.hear(
            AgentTurnStarting(
                agent_id=turn.agent,
                role="developer",
                session_id=turn.session_id,
                cwd=turn.cwd,
                argv=["claude"],
                resume=turn.resume,
                task_id=turn.task_id,
            ),
            turn.agent,
        )
        self.hear(
            AgentSessionStarted(
                agent_id=turn.agent, session_id=turn.session_id, task_id=turn.task_id
            ),
            turn.agent,
        )

    def end(self, agent: str, status: int | None) -> None:
        """The agent's turn ends: rate limited (``status``), or well (None)."""
        turn = self.running.pop(agent)
        finished = AgentTurnFinished(
            agent_id=agent,
            session_id=turn.session_id,
            subtype="success",
            is_error=status is not None,
            result="API Error: Request rejected" if status else "Done.",
            api_error_status=status,
            task_id=turn.task_id,
        )
        self.hear(finished, agent)
        pid = 100 + self.started.index(turn)
        code = 1 if status else 0
        self.hear(
            AgentProcessExited(agent_id=agent, exit_code=code, task_id=turn.task_id, pid=pid),
            agent,
        )

    def storm(self, level: int, until: float) -> None:
        self.hear(
            SpawnsHeld(until=until, delay=until - self.m.now, reason="429", level=level), GOVERNOR
        )

    def tick(self, at: float) -> None:
        self.m.now = at
        self.feed(Tick())

    def limits(self) -> list[int]:
        return [e.limit for e in self.emitted if isinstance(e, ConcurrencyChanged)]


@dataclass(frozen=True)
class StormRow:
    name: str
    crew_backoff: bool
    probe_fails: bool
    at_once_after_hold: int
    """Turns that start when the hold lifts (before any answer from the API)."""
    at_once_after_probe: int
    """Turns at once once the probe went through."""
    limits: tuple[int, ...]
    """The `ConcurrencyChanged` limits journaled, in order."""


STORM_ROWS = [
    # Halved once per storm; the probe's answer is a request through: one more.
    StormRow("one probe, then half the crew and one more", True, False, 1, 3, (2, 3)),
    StormRow("a failed probe waits for the next window", True, True, 1, 3, (2, 3)),
    StormRow("crew_backoff off: everyone resumes at once", False, False, 4, 4, ()),
]


@pytest.mark.parametrize("row", STORM_ROWS, ids=lambda r: r.name)
def test_a_storm_lets_one_probe_through_and_fewer_agents_work_after_it(row: StormRow) -> None:
    crew = Crew(crew_backoff=row.crew_backoff)
    assert len(crew.running) == WORKERS  # the ceiling before any storm
    crew.storm(1, NOW + 10)
    for agent in sorted(crew.running):
        crew.end(agent, 429)  # each gave up after its one capped retry
    assert not crew.running
    crew.tick(NOW + 5)
    assert not crew.running  # the hold
    before = len(crew.started)
    crew.tick(NOW + 11)
    assert len(crew.running) == row.at_once_after_hold
    resumed = crew.started[before:]
    assert all(turn.resume for turn in resumed)  # the same sessions, resumed
    crew.tick(NOW + 12)
    assert len(crew.running) == row.at_once_after_hold  # nothing more until the probe answers
    if row.probe_fails:
        (probe,) = crew.running
        crew.storm(2, NOW + 30)
        crew.end(probe, 429)
        crew.tick(NOW + 20)
        assert not crew.running  # the second window: nobody
        crew.tick(NOW + 31)
        assert len(crew.running) == 1  # one probe per window
    probe = sorted(crew.running)[0]
    crew.hear(AgentToolUse(agent_id=probe, tool_use_id="toolu_1", tool="Write", input={}), probe)
    crew.tick(crew.m.now + 1)
    assert len(crew.running) == row.at_once_after_probe
    assert tuple(crew.limits()) == row.limits


def test_turns_that_go_through_climb_back_one_by_one_to_the_ceiling() -> None:
    crew = Crew()
    crew.storm(1, NOW + 10)
    for agent in sorted(crew.running):
        crew.end(agent, 429)
    crew.tick(NOW + 11)
    seen = []
    for _ in range(3):
        agent = sorted(crew.running)[0]
        crew.end(agent, None)  # went through: its work is checked next
        seen.append((crew.m.fold.concurrency, len(crew.running)))
    assert crew.limits() == [2, 3, 4]
    # None: the ceiling again; the tasks whose turn went through are being checked.
    assert seen == [(3, 3), (None, 2), (None, 1)]
    assert crew.m.fold.concurrency is None


def test_status_and_the_dashboard_show_the_agents_allowed_at_once() -> None:
    crew = Crew()
    crew.storm(1, NOW + 10)
    state = State()
    for row in crew.journal:  # status and the dashboard fold the journal
        apply(state, row)
    assert state.concurrency == 2
    shown = state_text(state)
    assert "Agents at once: 2 of 4 (lowered after rate limits)" in shown
    lines = [text for text, _ in run_lines(state, live=False)]
    assert "agents at once: 2 of 4 (lowered after rate limits)" in lines


# --- what ends a storm ------------------------------------------------------------------


@dataclass(frozen=True)
class EndRow:
    name: str
    answers: str
    """Who the API answers: ``probe`` (the turn started when the hold ended) or
    ``running`` (a turn that was at work when the storm began; ``running twice``: it
    was answered once already during the storm)."""
    retried: bool
    """The answer is to claude's own retry of a 429 it saw (an ``api_retry`` line)."""
    ends: bool
    """The storm is over: the held turns start at once."""
    lifts: bool
    """A hold was in force: `HoldLifted` is journaled (status no longer shows it)."""


END_ROWS = [
    EndRow("the probe's request goes through, its window not over", "probe", True, True, True),
    EndRow("the probe's first request goes through", "probe", False, True, False),
    EndRow("a running turn's retry of its 429 goes through", "running", True, True, True),
    # Its request may have been sent before the storm: it says nothing of the storm's end.
    EndRow("a running turn answered, no 429 seen", "running", False, False, False),
    # Its second answer is to a request sent after the first one: during the storm.
    EndRow("a running turn answered twice during the storm", "running twice", False, True, True),
]


def api_retry(agent: str, task_id: str | None) -> AgentApiRetry:
    return AgentApiRetry(
        agent_id=agent,
        attempt=1,
        max_retries=1,
        retry_delay_ms=1000.0,
        error_status=429,
        task_id=task_id,
    )


@pytest.mark.parametrize("row", END_ROWS, ids=lambda r: r.name)
def test_a_request_of_a_witness_ends_the_storm_and_the_held_turns_start_at_once(
    row: EndRow,
) -> None:
    crew = Crew()
    crew.storm(1, NOW + 10)
    agents = sorted(crew.running)
    if row.answers == "probe":
        for agent in agents:
            crew.end(agent, 429)
        crew.tick(NOW + 11)
        (agent,) = crew.running
        if row.retried:  # its first request was refused: a new window, until NOW + 16
            crew.hear(api_retry(agent, crew.running[agent].task_id), agent)
            crew.storm(2, NOW + 16)
        crew.m.now = NOW + 12.5
    else:
        agent = agents[0]
        for other in agents[1:]:
            crew.end(other, 429)
        crew.m.now = NOW + 2.0
        if row.retried:
            crew.hear(api_retry(agent, crew.running[agent].task_id), agent)
        if row.answers == "running twice":
            crew.hear(AgentToolUse(agent_id=agent, tool_use_id="toolu_0", tool="Bash", input={}))
    before = len(crew.started)
    # The answer, heard within the hold; no tick follows: what starts, starts now.
    crew.hear(AgentToolUse(agent_id=agent, tool_use_id="toolu_1", tool="Write", input={}), agent)
    started = crew.started[before:]
    lifted = [m for m in crew.emitted if isinstance(m, HoldLifted)]
    assert len(lifted) == row.lifts
    state = State()
    for envelope_ in crew.journal:  # what status folds
        apply(state, envelope_)
    assert ("Governor: spawns held" in state_text(state)) is (not row.lifts)
    if row.ends:
        assert crew.m.storm_level == 0
        assert tuple(crew.limits()) == (2, 3)  # halved, then one more: this request
        assert len(crew.running) == 3 and len(started) == 2
        assert all(turn.resume for turn in started)  # the held sessions, resumed
    else:
        assert crew.m.storm_level == 1
        assert tuple(crew.limits()) == (2,)  # not raised by an answer from before
        assert started == [] and list(crew.running) == [agent]
        crew.tick(NOW + 11)
        assert list(crew.running) == [agent]  # the hold ended: it is the one at work


# --- refused turns wait frozen ---------------------------------------------------------


def refuse(crew: Crew, agent: str) -> None:
    """claude's ``api_retry`` line: its request was refused with a 429."""
    crew.hear(api_retry(agent, crew.running[agent].task_id), agent)


@pytest.mark.parametrize(("crew_backoff", "frozen"), [(True, True), (False, False)])
def test_a_refused_agent_waits_frozen_instead_of_retrying(crew_backoff: bool, frozen: bool) -> None:
    crew = Crew(crew_backoff=crew_backoff)
    refuse(crew, "developer-1")
    assert crew.freezes == ([(("developer-1",), True)] if frozen else [])
    refuse(crew, "developer-1")  # frozen already: nothing more
    assert len(crew.freezes) == (1 if frozen else 0)


def test_one_frozen_agent_probes_per_window_and_all_thaw_when_it_gets_through() -> None:
    crew = Crew()
    agents = sorted(crew.running)
    for agent in agents:
        refuse(crew, agent)
    crew.storm(1, NOW + 10)
    assert crew.freezes == [((agent,), True) for agent in agents]
    del crew.freezes[:]
    crew.tick(NOW + 5)
    assert crew.freezes == []  # the window
    crew.tick(NOW + 11)
    assert crew.freezes == [(("developer-1",), False)]  # the longest frozen: the probe
    crew.tick(NOW + 12)
    assert len(crew.freezes) == 1  # one probe at a time
    refuse(crew, "developer-1")  # the probe refused: frozen again, before the new hold
    crew.tick(NOW + 12.5)
    assert crew.freezes[1:] == [(("developer-1",), True)]  # no second probe meanwhile
    crew.storm(2, NOW + 16)
    crew.tick(NOW + 15)
    assert len(crew.freezes) == 2
    crew.tick(NOW + 17)
    assert crew.freezes[2:] == [(("developer-2",), False)]  # the next probe, in turn
    # Its request goes through: the storm is over, every frozen turn thaws at once.
    crew.m.now = NOW + 17.5
    tool = AgentToolUse(agent_id="developer-2", tool_use_id="toolu_1", tool="Bash", input={})
    crew.hear(tool, "developer-2")
    assert crew.freezes[3:] == [(("developer-3", "developer-4", "developer-1"), False)]
    assert crew.m.storm_level == 0 and [m for m in crew.emitted if isinstance(m, HoldLifted)] == []
    assert len(crew.started) == WORKERS  # no turn started again: the same ones go on


def test_a_probe_whose_turn_ended_lets_the_next_frozen_one_probe() -> None:
    crew = Crew()
    for agent in sorted(crew.running):
        refuse(crew, agent)
    crew.storm(1, NOW + 10)
    del crew.freezes[:]
    crew.tick(NOW + 11)
    assert crew.freezes == [(("developer-1",), False)]
    crew.end("developer-1", 429)  # its last retry refused: its turn gave up
    crew.tick(NOW + 11.5)
    assert crew.freezes[1:] == [(("developer-2",), False)]


def test_the_probe_is_the_frozen_agent_whose_own_retry_is_due_first() -> None:
    crew = Crew()
    # claude's own delays grow with its attempts: a thawed agent waits them out first.
    delays = {"developer-1": 32.0, "developer-2": 1.0, "developer-3": 16.0, "developer-4": 8.0}
    for agent, delay in delays.items():
        retry = AgentApiRetry(
            agent_id=agent,
            attempt=5,
            max_retries=8,
            retry_delay_ms=delay * 1000.0,
            error_status=429,
            task_id=crew.running[agent].task_id,
        )
        crew.hear(retry, agent)
    crew.storm(1, NOW + 10)
    del crew.freezes[:]
    crew.tick(NOW + 11)
    assert crew.freezes == [(("developer-2",), False)]  # due already, and frozen first
