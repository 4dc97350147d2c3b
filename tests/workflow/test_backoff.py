"""The governor's core: the shared rate-limit backoff and the cost budget."""

from __future__ import annotations

import random

import pytest

from autonoma.workflow.backoff import Backoff, Budget


def steady(base: float = 2.0, cap: float = 120.0, pause_after: float = 300.0) -> Backoff:
    """A backoff without jitter, so delays are exact."""
    return Backoff(base=base, cap=cap, jitter=0.0, pause_after=pause_after)


# --- Backoff: delays ------------------------------------------------------------------


def test_a_backoff_starts_free() -> None:
    assert Backoff().held(100.0) == 0.0


def test_the_first_hit_holds_for_base_seconds() -> None:
    backoff = steady(base=2.0)
    assert backoff.hit(100.0) == 102.0
    assert backoff.held(100.0) == 2.0


def test_each_storm_after_the_last_one_ended_doubles_the_delay() -> None:
    backoff = steady(base=2.0)
    assert backoff.hit(0.0) == 2.0
    assert backoff.hit(2.0) == 6.0
    assert backoff.hit(6.0) == 14.0


def test_the_delay_stops_at_the_cap() -> None:
    backoff = steady(base=2.0, cap=5.0)
    now = 0.0
    for _ in range(5):
        now = backoff.hit(now)
    assert backoff.hit(now) == now + 5.0


def test_the_hold_is_at_least_the_retry_after() -> None:
    assert steady(base=2.0).hit(10.0, retry_after=30.0) == 40.0


def test_a_shorter_retry_after_does_not_shorten_the_delay() -> None:
    assert steady(base=2.0).hit(10.0, retry_after=0.5) == 12.0


def test_jitter_keeps_the_delay_within_its_fraction() -> None:
    for seed in range(50):
        backoff = Backoff(base=4.0, jitter=0.25, rng=random.Random(seed))
        assert 3.0 <= backoff.hit(0.0) <= 5.0


def test_the_same_seed_gives_the_same_delays() -> None:
    first = Backoff(rng=random.Random(7))
    second = Backoff(rng=random.Random(7))
    assert [first.hit(t * 1000.0) for t in range(3)] == [second.hit(t * 1000.0) for t in range(3)]


def test_the_hold_ends_by_itself() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    assert backoff.held(1.5) == 0.5
    assert backoff.held(2.0) == 0.0
    assert backoff.held(50.0) == 0.0


# --- Backoff: a storm seen by many agents ---------------------------------------------


def test_hits_during_a_hold_do_not_raise_the_level() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    for _ in range(10):
        backoff.hit(0.5)
    assert backoff.level == 1
    assert backoff.held(0.5) == 1.5


def test_a_hit_during_a_hold_lengthens_it_only_by_its_retry_after() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    assert backoff.hit(1.0, retry_after=10.0) == 11.0
    assert backoff.level == 1


def test_the_first_hit_after_a_hold_ended_raises_the_level() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    backoff.hit(1.0)
    backoff.hit(2.0)
    assert backoff.level == 2


def test_a_success_brings_the_next_delay_back_to_base() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    backoff.hit(2.0)
    backoff.success(10.0)
    assert backoff.level == 0
    assert backoff.hit(10.0) == 12.0


def test_a_success_does_not_end_the_current_hold() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    backoff.success(1.0)
    assert backoff.held(1.0) == 1.0


def test_a_hit_after_a_success_during_a_hold_starts_a_new_count() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    backoff.hit(2.0)
    backoff.success(3.0)
    backoff.hit(3.5)
    assert backoff.level == 1


# --- Backoff: long limits -------------------------------------------------------------


def test_a_short_hold_is_not_a_long_limit() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0)
    assert not backoff.long_limit(0.0)


def test_a_retry_after_beyond_pause_after_is_a_long_limit() -> None:
    backoff = steady(pause_after=300.0)
    backoff.hit(0.0, retry_after=301.0)
    assert backoff.long_limit(0.0)


def test_a_long_limit_stays_one_until_the_hold_ends() -> None:
    backoff = steady(pause_after=300.0)
    backoff.hit(0.0, retry_after=400.0)
    assert backoff.long_limit(399.0)
    assert not backoff.long_limit(400.0)


def test_the_fifth_storm_in_a_row_is_a_long_limit() -> None:
    backoff = steady(base=1.0)
    now = 0.0
    for _ in range(4):
        now = backoff.hit(now)
        assert not backoff.long_limit(now - 0.5)
    now = backoff.hit(now)
    assert backoff.long_limit(now - 0.5)


def test_storms_in_a_row_stay_a_long_limit_between_holds_until_a_success() -> None:
    backoff = steady(base=1.0, cap=4.0)
    now = 0.0
    for _ in range(5):
        now = backoff.hit(now)
    assert backoff.held(now + 1.0) == 0.0
    assert backoff.long_limit(now + 1.0)  # between two windows: still paused
    backoff.success(now + 2.0)
    assert not backoff.long_limit(now + 2.0)


def test_five_agents_reporting_one_storm_are_not_a_long_limit() -> None:
    backoff = steady(base=1.0)
    for _ in range(5):
        backoff.hit(0.0)
    assert not backoff.long_limit(0.0)


def test_a_success_ends_the_run_of_storms() -> None:
    backoff = steady(base=1.0)
    now = 0.0
    for _ in range(4):
        now = backoff.hit(now)
    backoff.success(now)
    now = backoff.hit(now)
    assert not backoff.long_limit(now - 0.5)


def test_a_later_short_hold_is_not_long_because_an_earlier_one_was() -> None:
    backoff = steady(base=2.0)
    backoff.hit(0.0, retry_after=400.0)
    backoff.success(500.0)
    backoff.hit(500.0)
    assert not backoff.long_limit(500.0)


def test_backoff_rejects_a_jitter_of_one_or_more() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.0)


# --- Budget ---------------------------------------------------------------------------


def test_a_budget_adds_up_what_the_run_spent() -> None:
    budget = Budget(run_usd=0.0, task_usd=0.0)
    budget.add(None, 0.5)
    budget.add("t1", 0.25)
    assert budget.spent() == 0.75


def test_a_budget_adds_up_what_each_task_spent() -> None:
    budget = Budget(run_usd=0.0, task_usd=0.0)
    budget.add("t1", 0.25)
    budget.add("t2", 1.0)
    budget.add("t1", 0.5)
    assert budget.spent_on("t1") == 0.75
    assert budget.spent_on("t9") == 0.0


def test_a_zero_cap_is_never_reached() -> None:
    budget = Budget(run_usd=0.0, task_usd=0.0)
    budget.add("t1", 1000.0)
    assert not budget.run_reached()
    assert not budget.task_reached("t1")


def test_the_run_cap_is_reached_at_its_amount() -> None:
    budget = Budget(run_usd=1.0, task_usd=0.0)
    budget.add(None, 0.5)
    assert not budget.run_reached()
    budget.add("t1", 0.5)
    assert budget.run_reached()


def test_the_task_cap_is_reached_per_task() -> None:
    budget = Budget(run_usd=0.0, task_usd=1.0)
    budget.add("t1", 1.0)
    assert budget.task_reached("t1")
    assert not budget.task_reached("t2")


def test_a_cap_is_reached_despite_float_rounding() -> None:
    budget = Budget(run_usd=0.8, task_usd=0.8)
    budget.add("t1", 0.7)
    budget.add("t1", 0.1)
    assert budget.run_reached()
    assert budget.task_reached("t1")


def test_task_remaining_is_what_the_task_may_still_spend() -> None:
    budget = Budget(run_usd=0.0, task_usd=2.0)
    budget.add("t1", 0.5)
    assert budget.task_remaining("t1") == 1.5
    assert budget.task_remaining("t2") == 2.0


def test_task_remaining_never_goes_below_zero() -> None:
    budget = Budget(run_usd=0.0, task_usd=1.0)
    budget.add("t1", 3.0)
    assert budget.task_remaining("t1") == 0.0


def test_task_remaining_is_none_without_a_task_cap() -> None:
    assert Budget(run_usd=5.0, task_usd=0.0).task_remaining("t1") is None


def test_a_negative_cost_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Budget(run_usd=0.0, task_usd=0.0).add("t1", -1.0)


def test_a_negative_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Budget(run_usd=-1.0, task_usd=0.0)


# --- Backoff: the run's windows ----------------------------------------------------------

RUN_WINDOWS = [
    # crew_backoff, the holds of eight storms in a row (no jitter)
    (True, [2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]),  # one probe per window: capped short
    (False, [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0]),  # each agent on its own
]


@pytest.mark.parametrize(("crew_backoff", "holds"), RUN_WINDOWS)
def test_the_crews_windows_stop_growing_at_a_few_seconds(
    crew_backoff: bool, holds: list[float]
) -> None:
    backoff = Backoff.for_run(crew_backoff, jitter=0.0)
    now, seen = 0.0, []
    for _ in holds:
        until = backoff.hit(now)  # the probe (or a turn) is refused when the hold ends
        seen.append(until - now)
        now = until
    assert seen == holds


def test_a_crew_window_still_waits_as_long_as_the_server_asks() -> None:
    backoff = Backoff.for_run(True, jitter=0.0)
    assert backoff.hit(0.0, retry_after=60.0) == 60.0


def test_a_lifted_hold_ends_now_and_the_next_storm_starts_at_the_base() -> None:
    backoff = Backoff.for_run(True, jitter=0.0)
    now = 0.0
    for _ in range(3):
        now = backoff.hit(now)
    assert backoff.held(now - 1.0) == 1.0
    backoff.lift(now - 1.0)
    assert backoff.held(now - 1.0) == 0.0 and backoff.level == 0
    assert backoff.hit(now) == now + 2.0  # a new storm, at once
