"""The task DAG: what parse_tasks accepts, every problem it reports, and the graph measures."""

from __future__ import annotations

from typing import Any

import pytest

from autonoma.agents.roles import load_role
from autonoma.workflow.dag import (
    DagError,
    TaskSpec,
    critical_path,
    dependents,
    descendants,
    file_problem,
    lower_bound,
    parse_tasks,
    topological_order,
)


def task(tid: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "title": f"Do {tid}",
        "spec": f"Build {tid}.",
        "deps": list(deps),
        "files": [f"src/{tid}.py"],
        "acceptance": ["`pytest` passes"],
        **fields,
    }


def spec(tid: str, *deps: str) -> TaskSpec:
    return TaskSpec(id=tid, title=tid, spec=tid, deps=list(deps), files=[tid], acceptance=["ok"])


def with_commands(obj: object) -> object:
    """The answer as the packaged schema wants it: with the project's two commands."""
    if isinstance(obj, dict):
        return {"setup_command": "", "test_command": "pytest -q", **obj}
    return obj


def errors_of(obj: object) -> list[str]:
    with pytest.raises(DagError) as info:
        parse_tasks(with_commands(obj))
    return info.value.errors


# --- parse_tasks: valid answers -------------------------------------------------------


def test_valid_tasks_are_returned_in_definition_order() -> None:
    tasks = parse_tasks(with_commands({"tasks": [task("t2"), task("t1"), task("t3", "t1", "t2")]}))
    assert [t.id for t in tasks] == ["t2", "t1", "t3"]
    assert tasks[2] == TaskSpec(
        id="t3",
        title="Do t3",
        spec="Build t3.",
        deps=["t1", "t2"],
        files=["src/t3.py"],
        acceptance=["`pytest` passes"],
    )


def test_duplicate_deps_are_dropped_keeping_the_first() -> None:
    tasks = parse_tasks(
        with_commands({"tasks": [task("t1"), task("t2"), task("t3", "t2", "t1", "t2")]})
    )
    assert tasks[2].deps == ["t2", "t1"]


def test_fields_the_schema_does_not_name_are_refused_by_it() -> None:
    assert errors_of({"tasks": [task("t1", notes="x")]}) == ['tasks[0]: unexpected field "notes"']


def test_fields_a_project_schema_adds_are_left_for_others_to_read() -> None:
    schema = load_role("staff_engineer").schema
    assert schema is not None
    wider = {**schema, "properties": {**schema["properties"], "owner": {"type": "string"}}}
    answer = with_commands({"tasks": [task("t1")], "owner": "platform team"})
    assert parse_tasks(answer, wider) == parse_tasks(with_commands({"tasks": [task("t1")]}))


def test_the_role_schema_is_the_rule_for_ids() -> None:
    # claude checks the answer with this schema; Autonoma checks with the same one.
    assert errors_of({"tasks": [task("T-1")]}) == [
        'tasks[0].id: "T-1" does not match the pattern ^t[0-9]+$'
    ]


# --- parse_tasks: the shape of the answer ---------------------------------------------


def test_no_structured_output_is_an_error() -> None:
    assert errors_of(None) == ["no structured output: expected the task list as an object"]


def test_an_answer_that_is_not_an_object_is_an_error() -> None:
    assert errors_of([task("t1")]) == ["the task list: expected object, got array"]


def test_an_answer_without_tasks_is_an_error() -> None:
    assert errors_of({"task": []}) == [
        'the task list: unexpected field "task"',
        'the task list: missing field "tasks"',
    ]


def test_tasks_that_are_not_a_list_is_an_error() -> None:
    assert errors_of({"tasks": {"t1": task("t1")}}) == ["tasks: expected array, got object"]


def test_an_empty_task_list_is_an_error() -> None:
    assert errors_of({"tasks": []}) == ["tasks is empty: at least 1 item needed"]


# --- parse_tasks: one task ------------------------------------------------------------


def test_a_task_that_is_not_an_object_is_named_by_position() -> None:
    assert errors_of({"tasks": [task("t1"), "t2"]}) == ["tasks[1]: expected object, got string"]


def test_a_missing_field_is_named() -> None:
    item = task("t1")
    del item["files"]
    assert errors_of({"tasks": [item]}) == ['tasks[0]: missing field "files"']


def test_a_wrong_type_names_the_task_the_field_and_both_types() -> None:
    assert errors_of({"tasks": [task("t1", deps="t0")]}) == [
        "tasks[0].deps: expected array, got string"
    ]


def test_a_wrong_item_type_names_its_position() -> None:
    assert errors_of({"tasks": [task("t1", files=["a.py", None])]}) == [
        "tasks[0].files[1]: expected string, got null"
    ]


def test_a_task_without_a_usable_id_is_named_by_position() -> None:
    assert errors_of({"tasks": [task("t1"), task(" ")]}) == ["tasks[1].id is empty"]


def test_a_task_whose_id_is_not_a_string_is_named_by_position() -> None:
    assert errors_of({"tasks": [task(1)]}) == ["tasks[0].id: expected string, got number"]  # type: ignore[arg-type]


def test_empty_title_and_spec_are_errors() -> None:
    assert errors_of({"tasks": [task("t1", title="", spec="\n")]}) == [
        "tasks[0].title is empty",
        "tasks[0].spec is empty",
    ]


def test_an_empty_acceptance_list_is_an_error() -> None:
    assert errors_of({"tasks": [task("t1", acceptance=[])]}) == [
        "tasks[0].acceptance is empty: at least 1 item needed"
    ]


def test_an_empty_file_list_is_an_error() -> None:
    # The schema asks for at least one file, and the scheduler keeps tasks apart by them.
    assert errors_of({"tasks": [task("t1", files=[])]}) == [
        "tasks[0].files is empty: at least 1 item needed"
    ]


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("../../etc/passwd", 'a ".." component leaves the worktree'),
        ("src/../../x", 'a ".." component leaves the worktree'),
        ("..", 'a ".." component leaves the worktree'),
        ("src\\..\\..\\x", 'a ".." component leaves the worktree'),
        ("/etc/shadow", "an absolute path"),
        ("C:\\Windows\\x", "an absolute path"),
        ("~/.ssh/id_rsa", "a path in a home folder"),
        (".git/hooks/pre-commit", "points into .git"),
        ("vendor/lib/.git/config", "points into .git"),
        (".autonoma/inbox/x.json", "points into .autonoma"),
        (".autonoma", "points into .autonoma"),
        # inside the worktree: fine
        (".gitignore", None),
        ("a..b/c.py", None),
        ("docs/.github/workflows/ci.yml", None),
        ("src/autonoma.py", None),
        ("~notes.txt", None),
    ],
)
def test_files_outside_the_worktree_are_refused(path: str, problem: str | None) -> None:
    assert file_problem(path) == problem
    answer = with_commands({"tasks": [task("t1"), task("t2", files=["ok.py", path])]})
    if problem is None:
        assert parse_tasks(answer)[1].files == ["ok.py", path]
    else:
        assert errors_of(answer) == [f'task t2: file "{path}" is refused: {problem}']


def test_refused_files_are_reported_with_the_other_problems() -> None:
    # A wrong shape elsewhere: the file's problem is still in the same list.
    assert errors_of({"tasks": [task("t1", title=""), task("t2", files=["/etc/shadow"])]}) == [
        "tasks[0].title is empty",
        'task t2: file "/etc/shadow" is refused: an absolute path',
    ]


# --- parse_tasks: the graph -----------------------------------------------------------


def test_duplicate_ids_are_an_error() -> None:
    assert errors_of({"tasks": [task("t1"), task("t2"), task("t1")]}) == [
        "tasks[2].id: duplicate id t1 (tasks[0] has it too)"
    ]


def test_an_unknown_dep_is_an_error() -> None:
    assert errors_of({"tasks": [task("t1"), task("t4", "t1", "t9")]}) == [
        "t4 depends on t9, which is not a task"
    ]


def test_a_task_depending_on_itself_is_an_error() -> None:
    assert errors_of({"tasks": [task("t1"), task("t3", "t1", "t3")]}) == ["t3 depends on itself"]


def test_a_cycle_is_named_from_its_earliest_task() -> None:
    tasks = [task("t1"), task("t2", "t1", "t3"), task("t3", "t2")]
    assert errors_of({"tasks": tasks}) == ["cycle: t2 -> t3 -> t2 (each task depends on the next)"]


def test_a_long_cycle_is_named_in_dependency_order() -> None:
    tasks = [task("t1", "t3"), task("t2", "t1"), task("t3", "t2")]
    assert errors_of({"tasks": tasks}) == [
        "cycle: t1 -> t3 -> t2 -> t1 (each task depends on the next)"
    ]


def test_separate_cycles_are_each_named() -> None:
    tasks = [task("t1", "t2"), task("t2", "t1"), task("t3", "t4"), task("t4", "t3")]
    assert errors_of({"tasks": tasks}) == [
        "cycle: t1 -> t2 -> t1 (each task depends on the next)",
        "cycle: t3 -> t4 -> t3 (each task depends on the next)",
    ]


def test_every_task_of_an_entangled_group_appears_in_a_named_cycle() -> None:
    tasks = [task("t1", "t2"), task("t2", "t1", "t3"), task("t3", "t2")]
    assert errors_of({"tasks": tasks}) == [
        "cycle: t1 -> t2 -> t1 (each task depends on the next)",
        "cycle: t2 -> t3 -> t2 (each task depends on the next)",
    ]


def test_a_long_chain_is_checked_without_recursion_limits() -> None:
    tasks = [task("t0")] + [task(f"t{i}", f"t{i - 1}") for i in range(1, 5000)]
    assert len(parse_tasks(with_commands({"tasks": tasks}))) == 5000


def test_every_problem_is_reported_at_once() -> None:
    item = task("t3", "t9")
    del item["spec"]
    tasks = [task("t1", "t2"), task("t2", "t1"), item, task("t1"), task("t5", acceptance=[])]
    assert errors_of({"tasks": tasks}) == [
        'tasks[2]: missing field "spec"',
        "tasks[4].acceptance is empty: at least 1 item needed",
        "tasks[3].id: duplicate id t1 (tasks[0] has it too)",
        "t3 depends on t9, which is not a task",
        "cycle: t1 -> t2 -> t1 (each task depends on the next)",
    ]


def test_the_error_message_is_one_line_joining_every_problem() -> None:
    assert str(DagError(["t1 depends on itself", "t2 depends on itself"])) == (
        "t1 depends on itself; t2 depends on itself"
    )


# --- graph measures -------------------------------------------------------------------


def test_topological_order_puts_deps_first() -> None:
    tasks = [spec("t3", "t2"), spec("t2", "t1"), spec("t1")]
    assert topological_order(tasks) == ["t1", "t2", "t3"]


def test_topological_order_keeps_definition_order_among_ready_tasks() -> None:
    # Once t1 is placed, t4 is ready and was defined before t3, which was ready earlier.
    tasks = [spec("t4", "t1"), spec("t1"), spec("t3"), spec("t2", "t1")]
    assert topological_order(tasks) == ["t1", "t4", "t3", "t2"]


def test_topological_order_rejects_a_cycle() -> None:
    with pytest.raises(DagError, match=r"cycle: t1 -> t2 -> t1"):
        topological_order([spec("t1", "t2"), spec("t2", "t1")])


def test_topological_order_rejects_an_unknown_dep() -> None:
    with pytest.raises(DagError, match="t1 depends on t0, which is not a task"):
        topological_order([spec("t1", "t0")])


def test_critical_path_counts_the_longest_chain_below_each_task() -> None:
    # t1 -> {t2 -> t4, t3}: t1 heads a chain of three.
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t1"), spec("t4", "t2")]
    assert critical_path(tasks) == {"t1": 3.0, "t2": 2.0, "t3": 1.0, "t4": 1.0}


def test_critical_path_weighs_tasks_by_their_durations() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t1")]
    durations = {"t1": 1.0, "t2": 2.0, "t3": 5.0}
    assert critical_path(tasks, durations) == {"t1": 6.0, "t2": 2.0, "t3": 5.0}


def test_critical_path_counts_a_task_without_a_duration_as_one() -> None:
    assert critical_path([spec("t1"), spec("t2", "t1")], {"t2": 4.0}) == {"t1": 5.0, "t2": 4.0}


def test_lower_bound_is_the_longest_path_when_workers_are_plenty() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t1")]
    assert lower_bound(tasks, None, workers=5) == 2.0


def test_lower_bound_is_the_work_per_worker_when_workers_are_few() -> None:
    tasks = [spec(f"t{i}") for i in range(6)]
    assert lower_bound(tasks, None, workers=2) == 3.0


def test_lower_bound_of_no_tasks_is_zero() -> None:
    assert lower_bound([], None, workers=1) == 0.0


def test_lower_bound_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers"):
        lower_bound([spec("t1")], None, workers=0)


def test_dependents_lists_direct_dependents_of_every_task() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t2", "t1")]
    assert dependents(tasks) == {"t1": ["t2", "t3"], "t2": ["t3"], "t3": []}


def test_descendants_are_every_task_below_not_the_task_itself() -> None:
    tasks = [spec("t1"), spec("t2", "t1"), spec("t3", "t2"), spec("t4")]
    assert descendants(tasks, "t1") == {"t2", "t3"}
    assert descendants(tasks, "t4") == set()


def test_descendants_of_an_unknown_task_is_an_error() -> None:
    with pytest.raises(KeyError):
        descendants([spec("t1")], "t9")


def test_a_task_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        spec("t1").id = "t2"  # type: ignore[misc]
