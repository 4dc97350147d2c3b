"""The scheduler: file overlap, which tasks are ready, which start now, and when the run is over."""

from __future__ import annotations

import pytest

from autonoma.workflow.dag import TaskSpec
from autonoma.workflow.scheduler import (
    blocked_by_escalation,
    files_overlap,
    imminent,
    pick,
    ready,
    run_over,
)


def spec(tid: str, *deps: str, files: list[str] | None = None) -> TaskSpec:
    return TaskSpec(
        id=tid,
        title=tid,
        spec=tid,
        deps=list(deps),
        files=files if files is not None else [f"{tid}.py"],
        acceptance=["ok"],
    )


def by_id(*tasks: TaskSpec) -> dict[str, TaskSpec]:
    return {task.id: task for task in tasks}


# --- files_overlap --------------------------------------------------------------------


def test_the_same_path_overlaps() -> None:
    assert files_overlap(["todo/cli.py"], ["todo/cli.py"])


def test_different_files_do_not_overlap() -> None:
    assert not files_overlap(["todo/cli.py", "README.md"], ["todo/store.py"])


def test_a_leading_dot_slash_is_ignored() -> None:
    assert files_overlap(["./todo/cli.py"], ["todo/cli.py"])


def test_a_leading_slash_and_repeated_slashes_are_ignored() -> None:
    assert files_overlap(["/todo//cli.py"], ["todo/cli.py"])


def test_a_folder_with_a_trailing_slash_overlaps_the_paths_under_it() -> None:
    assert files_overlap(["todo/"], ["todo/cli.py"])


def test_a_folder_without_a_trailing_slash_overlaps_the_paths_under_it() -> None:
    assert files_overlap(["todo/cli.py"], ["todo"])


def test_a_name_that_only_starts_like_a_folder_does_not_overlap_it() -> None:
    assert not files_overlap(["todo"], ["todolist.py"])


def test_dot_dot_is_resolved_within_the_path() -> None:
    assert files_overlap(["src/../todo/cli.py"], ["todo/cli.py"])


def test_backslashes_are_ordinary_characters() -> None:
    assert not files_overlap(["todo\\cli.py"], ["todo/cli.py"])
    assert files_overlap(["todo\\cli.py"], ["todo\\cli.py"])


def test_the_repository_root_overlaps_everything() -> None:
    assert files_overlap(["."], ["todo/cli.py"])


def test_nothing_overlaps_an_empty_list() -> None:
    assert not files_overlap([], ["todo/cli.py"])


# --- ready ----------------------------------------------------------------------------


def test_a_task_without_deps_is_ready() -> None:
    assert ready([spec("t1")], {"t1": "pending"}) == ["t1"]


def test_a_task_missing_from_the_states_counts_as_pending() -> None:
    assert ready([spec("t1")], {}) == ["t1"]


def test_a_task_is_ready_once_every_dep_is_merged_or_resolved() -> None:
    tasks = [spec("t1"), spec("t2"), spec("t3", "t1", "t2")]
    states = {"t1": "merged", "t2": "resolved", "t3": "pending"}
    assert ready(tasks, states) == ["t3"]


@pytest.mark.parametrize(
    "dep_state", ["pending", "running", "review", "merging", "failed", "escalated"]
)
def test_a_task_is_not_ready_while_a_dep_is_not_done(dep_state: str) -> None:
    tasks = [spec("t1"), spec("t2", "t1")]
    assert "t2" not in ready(tasks, {"t1": dep_state, "t2": "pending"})


@pytest.mark.parametrize(
    "state", ["running", "review", "merging", "merged", "failed", "escalated", "resolved"]
)
def test_a_task_that_left_the_waiting_states_is_not_ready(state: str) -> None:
    assert ready([spec("t1")], {"t1": state}) == []


def test_a_task_already_marked_ready_is_still_listed() -> None:
    assert ready([spec("t1")], {"t1": "ready"}) == ["t1"]


def test_ready_tasks_come_in_definition_order() -> None:
    tasks = [spec("t3"), spec("t1"), spec("t2")]
    assert ready(tasks, {}) == ["t3", "t1", "t2"]


# --- pick -----------------------------------------------------------------------------


def test_pick_takes_the_highest_priority_first() -> None:
    tasks = by_id(spec("t1"), spec("t2"), spec("t3"))
    chosen = pick(["t1", "t2", "t3"], tasks, [], 2, {"t1": 1.0, "t2": 3.0, "t3": 2.0})
    assert chosen == ["t2", "t3"]


def test_pick_breaks_priority_ties_in_candidate_order() -> None:
    tasks = by_id(spec("t1"), spec("t2"), spec("t3"))
    chosen = pick(["t3", "t1", "t2"], tasks, [], 3, {"t1": 2.0, "t2": 2.0, "t3": 2.0})
    assert chosen == ["t3", "t1", "t2"]


def test_pick_fifo_takes_candidates_in_order_whatever_their_priority() -> None:
    tasks = by_id(spec("t1"), spec("t2"), spec("t3"))
    chosen = pick(["t1", "t2", "t3"], tasks, [], 2, {"t3": 9.0}, policy="fifo")
    assert chosen == ["t1", "t2"]


def test_pick_takes_no_more_than_the_free_slots() -> None:
    tasks = by_id(spec("t1"), spec("t2"))
    assert pick(["t1", "t2"], tasks, [], 1, {}) == ["t1"]


def test_pick_takes_nothing_without_a_free_slot() -> None:
    assert pick(["t1"], by_id(spec("t1")), [], 0, {}) == []


def test_pick_skips_a_task_touching_a_file_of_a_running_task() -> None:
    tasks = by_id(spec("t1", files=["a.py"]), spec("t2", files=["a.py"]), spec("t3"))
    assert pick(["t2", "t3"], tasks, ["t1"], 2, {}) == ["t3"]


def test_pick_skips_a_task_touching_a_file_of_a_task_it_chose() -> None:
    tasks = by_id(spec("t1", files=["src/"]), spec("t2", files=["src/b.py"]), spec("t3"))
    assert pick(["t1", "t2", "t3"], tasks, [], 3, {}) == ["t1", "t3"]


def test_a_skipped_task_lets_a_later_one_take_its_slot() -> None:
    tasks = by_id(
        spec("t1", files=["a.py"]), spec("t2", files=["a.py"]), spec("t3", files=["c.py"])
    )
    priority = {"t1": 3.0, "t2": 2.0, "t3": 1.0}
    assert pick(["t1", "t2", "t3"], tasks, [], 2, priority) == ["t1", "t3"]


def test_pick_never_starts_a_task_that_is_already_running() -> None:
    assert pick(["t1"], by_id(spec("t1")), ["t1"], 1, {}) == []


def test_pick_takes_a_candidate_listed_twice_once() -> None:
    tasks = by_id(spec("t1"), spec("t2"))
    assert pick(["t1", "t1", "t2"], tasks, [], 2, {}) == ["t1", "t2"]


def test_pick_rejects_an_unknown_policy() -> None:
    with pytest.raises(ValueError, match="policy"):
        pick(["t1"], by_id(spec("t1")), [], 1, {}, policy="random")  # type: ignore[arg-type]


# --- blocked_by_escalation ------------------------------------------------------------


def test_tasks_below_an_escalated_task_are_blocked() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t2"), spec("t4")]
    states = {"t1": "escalated", "t2": "pending", "t3": "pending", "t4": "pending"}
    assert blocked_by_escalation(tasks, states) == {"t2", "t3"}


def test_nothing_is_blocked_without_an_escalation() -> None:
    tasks = [spec("t1"), spec("t2", "t1")]
    assert blocked_by_escalation(tasks, {"t1": "failed", "t2": "pending"}) == set()


def test_an_escalated_task_below_another_is_not_counted_as_blocked() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t2")]
    states = {"t1": "escalated", "t2": "escalated", "t3": "pending"}
    assert blocked_by_escalation(tasks, states) == {"t3"}


def test_a_resolved_escalation_blocks_nothing() -> None:
    tasks = [spec("t1"), spec("t2", "t1")]
    assert blocked_by_escalation(tasks, {"t1": "resolved", "t2": "pending"}) == set()


def test_a_merged_task_is_not_blocked_and_does_not_pass_the_block_on() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t2")]
    states = {"t1": "escalated", "t2": "merged", "t3": "pending"}
    assert blocked_by_escalation(tasks, states) == set()


# --- run_over -------------------------------------------------------------------------


def test_the_run_is_over_when_every_task_is_merged_or_resolved() -> None:
    tasks = [spec("t1"), spec("t2", "t1")]
    assert run_over(tasks, {"t1": "merged", "t2": "resolved"}, busy_count=0)


def test_the_run_is_not_over_while_a_task_runs() -> None:
    tasks = [spec("t1"), spec("t2", "t1")]
    assert not run_over(tasks, {"t1": "merged", "t2": "merged"}, busy_count=1)


def test_the_run_is_over_when_the_rest_waits_on_escalated_tasks() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3")]
    states = {"t1": "escalated", "t2": "pending", "t3": "merged"}
    assert run_over(tasks, states, busy_count=0)


def test_the_run_is_not_over_while_a_task_can_still_become_ready() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3")]
    states = {"t1": "escalated", "t2": "pending", "t3": "pending"}
    assert not run_over(tasks, states, busy_count=0)


@pytest.mark.parametrize("state", ["review", "merging", "failed"])
def test_the_run_is_not_over_while_a_task_is_under_way(state: str) -> None:
    assert not run_over([spec("t1")], {"t1": state}, busy_count=0)


def test_a_run_without_tasks_is_over() -> None:
    assert run_over([], {}, busy_count=0)


# --- a worker kept for the critical path's next task --------------------------------------


def test_a_merge_makes_imminent_the_top_priority_of_what_it_will_make_ready() -> None:
    tasks = [spec("a"), spec("b", "a"), spec("c", "a"), spec("d", "a", "x"), spec("x")]
    states = {"a": "merging", "b": "pending", "c": "pending", "d": "pending", "x": "running"}
    priority = {"a": 9.0, "b": 5.0, "c": 8.0, "d": 7.0, "x": 1.0}
    # d also waits on x, which is still running: only b and c count.
    assert imminent(tasks, states, priority) == [8.0]


def test_nothing_is_imminent_without_a_merge_under_way() -> None:
    tasks = [spec("a"), spec("b", "a")]
    assert imminent(tasks, {"a": "review", "b": "pending"}, {"a": 2.0, "b": 1.0}) == []


def test_a_lower_priority_task_leaves_the_last_slot_to_an_imminent_one() -> None:
    tasks = by_id(spec("low"), spec("mid"))
    priority = {"low": 1.0, "mid": 5.0}
    chosen = pick(["low", "mid"], tasks, [], 2, priority, reserved=[3.0])
    assert chosen == ["mid"]


def test_an_imminent_task_that_ranks_lower_holds_nothing_back() -> None:
    tasks = by_id(spec("low"), spec("mid"))
    priority = {"low": 4.0, "mid": 5.0}
    assert pick(["low", "mid"], tasks, [], 2, priority, reserved=[3.0]) == ["mid", "low"]


def test_fifo_keeps_no_slot_for_what_is_about_to_be_ready() -> None:
    tasks = by_id(spec("low"), spec("mid"))
    priority = {"low": 1.0, "mid": 5.0}
    chosen = pick(["low", "mid"], tasks, [], 2, priority, policy="fifo", reserved=[9.0])
    assert chosen == ["low", "mid"]
