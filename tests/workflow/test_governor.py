"""The governor actor: rate limits seen on the bus hold new spawns back, a long one pauses
the run until it lifts, and costs past a cap are announced once.

The actor runs for real (pykka) on a real bus; only its clock is injected, so a
five-minute limit passes in no time. Every check goes through what a user of the
governor sees: the messages it publishes and the `Permit` it answers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from autonoma.config import Settings
from autonoma.protocol import (
    AgentApiRetry,
    AgentToolUse,
    AgentTurnFinished,
    BudgetReached,
    CostReported,
    Envelope,
    HoldLifted,
    SpawnsHeld,
    WorkPaused,
    WorkResumed,
)
from autonoma.runtime.bus import Bus
from autonoma.workflow.backoff import Backoff
from autonoma.workflow.governor import GOVERNOR, Governor, Permit

T0 = 1_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    bus: Bus
    clock: Clock
    governor: Any
    seen: list[Envelope] = field(default_factory=list)

    def published(self, kind: type) -> list[Any]:
        """What the governor published of ``kind`` so far."""
        return [
            e.message for e in self.seen if e.sender == GOVERNOR and isinstance(e.message, kind)
        ]

    def permit(self, task_id: str | None = None) -> Permit:
        # An ask: answered after every envelope told to the governor before it.
        permit: Permit = self.governor.proxy().permit(task_id).get(timeout=10)
        return permit


@contextlib.contextmanager
def running_governor(
    settings: Settings | None = None, pause_after: float = 30.0
) -> Iterator[Setup]:
    """A governor on a fresh bus, without jitter, its clock at ``T0``; stopped after."""
    bus = Bus(run_id="r1")
    clock = Clock()
    setup = Setup(bus, clock, None)
    bus.subscribe(setup.seen.append)
    setup.governor = Governor.start(
        bus,
        settings or Settings(),
        clock=clock,
        backoff=Backoff(base=2.0, cap=120.0, jitter=0.0, pause_after=pause_after),
    )
    try:
        yield setup
    finally:
        setup.governor.stop()


@pytest.fixture
def gov() -> Iterator[Setup]:
    with running_governor() as setup:
        yield setup


@pytest.fixture
def budgeted() -> Iterator[Setup]:
    with running_governor(Settings(budget_usd=1.0, task_budget_usd=0.5)) as setup:
        yield setup


def api_retry(status: int | None, delay_s: float, agent: str = "developer-1") -> AgentApiRetry:
    return AgentApiRetry(
        agent_id=agent,
        attempt=1,
        max_retries=10,
        retry_delay_ms=delay_s * 1000.0,
        error_status=status,
        task_id="t1",
    )


def finished(is_error: bool = False, status: int | None = None) -> AgentTurnFinished:
    return AgentTurnFinished(
        agent_id="developer-1",
        session_id="s1",
        subtype="success",
        is_error=is_error,
        api_error_status=status,
        task_id="t1",
    )


def test_a_free_governor_permits_at_once(gov: Setup) -> None:
    assert gov.permit("t1") == Permit(wait=0.0, run_budget_reached=False, task_budget_left=None)
    assert gov.seen == []


def test_a_429_holds_new_spawns_for_everyone_until_the_hold_ends(gov: Setup) -> None:
    gov.bus.publish("developer-1", api_retry(429, delay_s=5.0))

    assert gov.permit().wait == pytest.approx(5.0)
    (held,) = gov.published(SpawnsHeld)
    assert held.until == pytest.approx(T0 + 5.0) and held.level == 1
    assert "developer-1 saw 429" in held.reason
    gov.clock.now = T0 + 4.0
    assert gov.permit("t2").wait == pytest.approx(1.0)
    gov.clock.now = T0 + 5.0
    assert gov.permit("t2").wait == 0.0
    # A short hold is not a pause: nothing to resume.
    assert gov.published(WorkPaused) == [] and gov.published(WorkResumed) == []


def test_more_hits_of_the_same_storm_lengthen_the_hold_only_when_they_ask_for_more(
    gov: Setup,
) -> None:
    gov.bus.publish("developer-1", api_retry(429, delay_s=1.0))  # the base: 2 s
    gov.bus.publish("developer-2", api_retry(529, delay_s=1.0))  # no longer: no new hold
    gov.clock.now = T0 + 1.0
    gov.bus.publish("developer-2", api_retry(529, delay_s=3.0))  # to T0 + 4

    assert gov.permit().wait == pytest.approx(3.0)
    holds = gov.published(SpawnsHeld)
    assert [h.until for h in holds] == [pytest.approx(T0 + 2.0), pytest.approx(T0 + 4.0)]
    assert {h.level for h in holds} == {1}


def test_other_errors_and_successes_hold_nothing(gov: Setup) -> None:
    gov.bus.publish("developer-1", api_retry(500, delay_s=10.0))
    gov.bus.publish("developer-1", api_retry(None, delay_s=10.0))  # a dropped stream
    gov.bus.publish("developer-1", finished())
    gov.bus.publish("developer-1", finished(is_error=True, status=400))

    assert gov.permit().wait == 0.0
    assert gov.published(SpawnsHeld) == []


def test_a_turn_that_gave_up_on_a_rate_limit_holds_spawns(gov: Setup) -> None:
    gov.bus.publish("developer-1", finished(is_error=True, status=529))

    assert gov.permit().wait == pytest.approx(2.0)
    (held,) = gov.published(SpawnsHeld)
    assert "gave up on 529" in held.reason


def test_a_long_limit_pauses_the_run_which_resumes_by_itself_when_it_lifts(gov: Setup) -> None:
    # A usage limit: claude says to come back in 5 minutes (pause_after is 30 s here).
    gov.bus.publish("developer-1", api_retry(429, delay_s=300.0))

    assert gov.permit().wait == pytest.approx(300.0)
    (paused,) = gov.published(WorkPaused)
    assert "resumes by itself" in paused.reason
    # More hits while paused: no second pause.
    gov.clock.now = T0 + 100.0
    gov.bus.publish("developer-2", api_retry(429, delay_s=60.0))
    assert gov.permit().wait == pytest.approx(200.0)
    assert len(gov.published(WorkPaused)) == 1
    assert gov.published(WorkResumed) == []

    gov.clock.now = T0 + 300.5
    assert gov.permit().wait == 0.0
    (resumed,) = gov.published(WorkResumed)
    assert "lifted" in resumed.reason
    assert gov.permit().wait == 0.0
    assert len(gov.published(WorkResumed)) == 1  # said once


@pytest.mark.parametrize("went_through", ["tool call", "turn"])
def test_the_fifth_storm_in_a_row_pauses_until_a_request_goes_through(went_through: str) -> None:
    with running_governor(pause_after=1000.0) as gov:  # 32 s, the fifth hold, is not long
        for _ in range(4):
            gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
            gov.clock.now += gov.permit().wait  # this storm ends; the next is one level up
        assert gov.published(WorkPaused) == []
        gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
        assert gov.permit().wait == pytest.approx(32.0)
        assert [h.level for h in gov.published(SpawnsHeld)] == [1, 2, 3, 4, 5]
        (paused,) = gov.published(WorkPaused)
        assert "5 storms in a row" in paused.reason and "resumes by itself" in paused.reason
        # Its hold ends, the probe is refused again: still the same pause, said once.
        gov.clock.now += 32.0
        assert gov.permit().wait == 0.0
        gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
        assert gov.permit().wait > 0
        assert len(gov.published(WorkPaused)) == 1 and gov.published(WorkResumed) == []
        # A request goes through: the run resumes, and the next storm starts at the base.
        if went_through == "tool call":
            gov.bus.publish(
                "developer-1",
                AgentToolUse(agent_id="developer-1", tool_use_id="toolu_1", tool="Write", input={}),
            )
        else:
            gov.bus.publish("developer-1", finished())
        gov.permit()
        assert len(gov.published(WorkResumed)) == 1
        gov.clock.now += 64.0  # the sixth storm's hold over
        gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
        assert gov.permit().wait == pytest.approx(2.0)
        assert len(gov.published(WorkPaused)) == 1


def test_a_success_starts_the_next_storm_at_the_base_again(gov: Setup) -> None:
    gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
    gov.clock.now += gov.permit().wait
    gov.bus.publish("developer-1", finished())
    gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))

    assert gov.permit().wait == pytest.approx(2.0)
    assert [h.level for h in gov.published(SpawnsHeld)] == [1, 1]


def test_costs_past_the_caps_are_announced_once_and_the_permit_says_so(budgeted: Setup) -> None:
    gov = budgeted
    gov.bus.publish("developer-1", CostReported(agent_id="developer-1", usd=0.3, task_id="t1"))
    permit = gov.permit("t1")
    assert permit.task_budget_left == pytest.approx(0.2)
    assert not permit.run_budget_reached
    assert gov.published(BudgetReached) == []

    gov.bus.publish("developer-1", CostReported(agent_id="developer-1", usd=0.3, task_id="t1"))
    gov.bus.publish("developer-1", CostReported(agent_id="developer-1", usd=0.1, task_id="t1"))
    permit = gov.permit("t1")
    assert permit.task_budget_left == 0.0 and not permit.run_budget_reached
    (task_cap,) = gov.published(BudgetReached)
    assert (task_cap.scope, task_cap.task_id) == ("task", "t1")
    assert task_cap.limit_usd == 0.5 and task_cap.spent_usd == pytest.approx(0.6)
    assert gov.permit("t2").task_budget_left == pytest.approx(0.5)

    # Planning costs count towards the run's cap too (no task).
    gov.bus.publish("ceo", CostReported(agent_id="ceo", usd=0.3))
    permit = gov.permit("t2")
    assert permit.run_budget_reached
    run_caps = [b for b in gov.published(BudgetReached) if b.scope == "run"]
    assert len(run_caps) == 1
    assert run_caps[0].limit_usd == 1.0 and run_caps[0].spent_usd == pytest.approx(1.0)
    gov.bus.publish("ceo", CostReported(agent_id="ceo", usd=0.3))
    assert gov.permit().run_budget_reached
    assert len(gov.published(BudgetReached)) == 2  # each cap announced once


def test_a_resumed_run_starts_from_what_it_spent() -> None:
    bus = Bus(run_id="r1")
    seen: list[Envelope] = []
    bus.subscribe(seen.append)
    governor = Governor.start(
        bus, Settings(budget_usd=1.0, task_budget_usd=0.5), spent={"t1": 0.4, None: 0.5}
    )
    try:
        permit: Permit = governor.proxy().permit("t1").get(timeout=10)
        assert permit.task_budget_left == pytest.approx(0.1)
        assert not permit.run_budget_reached
        bus.publish("developer-1", CostReported(agent_id="developer-1", usd=0.1, task_id="t1"))
        permit = governor.proxy().permit("t1").get(timeout=10)
        assert permit.run_budget_reached and permit.task_budget_left == 0.0
        scopes = sorted(e.message.scope for e in seen if isinstance(e.message, BudgetReached))
        assert scopes == ["run", "task"]
    finally:
        governor.stop()


def test_a_stopped_governor_stops_listening(gov: Setup) -> None:
    gov.governor.stop()
    # Publishing after the stop reaches no dead mailbox (no error) and holds nothing.
    gov.bus.publish("developer-1", api_retry(429, delay_s=5.0))
    assert gov.published(SpawnsHeld) == []


@pytest.mark.parametrize(("crew_backoff", "longest"), [(True, 5.0), (False, 120.0 * 1.25)])
def test_with_the_crews_backoff_the_windows_between_probes_stay_short(
    crew_backoff: bool, longest: float
) -> None:
    bus = Bus(run_id="r1")
    seen: list[Envelope] = []
    bus.subscribe(seen.append)
    clock = Clock()
    governor = Governor.start(bus, Settings(crew_backoff=crew_backoff), clock=clock)
    try:
        for _ in range(8):  # a long storm: each probe refused as its window ends
            bus.publish("developer-1", finished(is_error=True, status=429))
            clock.now += governor.proxy().permit().get(timeout=10).wait
    finally:
        governor.stop()
    delays = [e.message.delay for e in seen if isinstance(e.message, SpawnsHeld)]
    assert len(delays) == 8
    # The crew's windows: 2 s, 4 s, then 4 s at most (with a quarter of jitter).
    assert max(delays) <= longest
    assert (max(delays) > 5.0) is not crew_backoff


def test_a_lifted_hold_lets_the_next_rate_limit_hold_spawns_at_once(gov: Setup) -> None:
    gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))
    gov.clock.now += gov.permit().wait
    gov.bus.publish("developer-1", api_retry(429, delay_s=0.0))  # the probe: level 2, 4 s
    assert gov.permit().wait == pytest.approx(4.0)
    gov.clock.now += 1.0
    gov.bus.publish("orchestrator", HoldLifted(reason="a request of developer-1's went through"))
    assert gov.permit().wait == 0.0
    gov.clock.now += 0.5
    gov.bus.publish("developer-2", api_retry(529, delay_s=0.0))  # a new storm, held now
    assert gov.permit().wait == pytest.approx(2.0)
    assert [h.level for h in gov.published(SpawnsHeld)] == [1, 2, 1]


@pytest.mark.parametrize(
    ("crew_backoff", "attempt", "held"),
    [
        (True, 1, 32.0),  # claude's first retry waits what the server asked: honoured
        (True, 5, 4.0),  # a later one grew on its own: the crew thaws it after a window
        (False, 5, 32.0),  # without the crew's backoff claude's own delay is the hold
    ],
)
def test_claudes_own_growing_delays_do_not_lengthen_the_crews_windows(
    crew_backoff: bool, attempt: int, held: float
) -> None:
    with running_governor(Settings(crew_backoff=crew_backoff)) as gov:
        retry = AgentApiRetry(
            agent_id="developer-1",
            attempt=attempt,
            max_retries=8,
            retry_delay_ms=32_000.0,
            error_status=429,
            task_id="t1",
        )
        gov.bus.publish("developer-1", retry)
        assert gov.permit().wait == pytest.approx(held)
