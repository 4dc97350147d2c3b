"""bench/makespan.py's DAG and scenario: the shape the measurement relies on (no claude)."""

from __future__ import annotations

from types import ModuleType

import pytest

from autonoma.sim import Scenario, loads_scenario
from autonoma.workflow.dag import critical_path, lower_bound, parse_tasks, topological_order
from autonoma.workflow.plan import parse_plan
from tests.benchlib import load_bench, request


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("makespan")


@pytest.fixture(scope="module")
def scenario(bench: ModuleType) -> Scenario:
    return loads_scenario(bench.scenario_toml(bench.make_dag()))


def structured_output(scenario: Scenario, role: str) -> object:
    found = scenario.find(request(role, None))
    assert found is not None, role
    (call,) = [t for step in found[1].steps for t in step.tools if t.name == "StructuredOutput"]
    return call.input


def test_the_dag_is_the_same_for_a_seed_and_differs_across_seeds(bench: ModuleType) -> None:
    assert bench.make_dag(7) == bench.make_dag(7)
    assert bench.make_dag(7) != bench.make_dag(8)


@pytest.mark.parametrize("seed", [1, 2, 3, 7, 11, 42])
def test_the_dag_has_the_shape_the_bench_needs(bench: ModuleType, seed: int) -> None:
    dag = bench.make_dag(seed)
    ids = [f"t{i}" for i in range(1, bench.TASKS + 1)]
    assert dag.ids == ids
    assert topological_order(dag.tasks) == ids  # defined in a topological order
    assert all(task.files == [f"{task.id}.txt"] for task in dag.tasks)
    assert all(2.0 <= d <= 8.0 for d in dag.durations.values())
    # The spine (the last five tasks, a chain) is the critical path and binds the bound.
    spine = ids[-bench.SPINE :]
    assert [t.deps for t in dag.tasks[-bench.SPINE :]] == [[], *[[t] for t in spine[:-1]]]
    lengths = critical_path(dag.tasks, dag.durations)
    head = spine[0]
    assert lengths[head] == max(lengths.values())
    assert lengths[head] == sum(dag.durations[t] for t in spine)
    bound = lower_bound(dag.tasks, dag.durations, bench.WORKERS)
    assert bound == lengths[head] > sum(dag.durations.values()) / bench.WORKERS
    # Critical-path-first reaches the bound with no overhead; first-in-first-out cannot.
    assert bench.ideal_makespan(dag, "critical_path") == bound
    assert bench.ideal_makespan(dag, "fifo") >= 1.15 * bound


def test_scale_multiplies_every_duration(bench: ModuleType) -> None:
    one, three = bench.make_dag(7), bench.make_dag(7, scale=3.0)
    assert one.tasks == three.tasks
    assert three.durations == {t: 3.0 * d for t, d in one.durations.items()}


def test_the_ideal_schedule_on_a_tiny_dag(bench: ModuleType) -> None:
    from autonoma.workflow.dag import TaskSpec

    def spec(tid: str, deps: list[str]) -> TaskSpec:
        return TaskSpec(id=tid, title=tid, spec=tid, deps=deps, files=[tid], acceptance=[tid])

    # Two workers; the long chain a -> b is defined last.
    tasks = [spec("x", []), spec("y", []), spec("a", []), spec("b", ["a"])]
    dag = bench.Dag(tasks, {"x": 2.0, "y": 2.0, "a": 3.0, "b": 3.0})
    assert bench.ideal_makespan(dag, "critical_path", workers=2) == 6.0
    assert bench.ideal_makespan(dag, "fifo", workers=2) == 8.0


def test_the_scenario_answers_every_role_with_the_dag(
    bench: ModuleType, scenario: Scenario
) -> None:
    dag = bench.make_dag()
    parse_plan(structured_output(scenario, "ceo"))
    assert parse_tasks(structured_output(scenario, "staff_engineer")) == dag.tasks
    verdict = structured_output(scenario, "qa")
    assert isinstance(verdict, dict)
    assert verdict["verdict"] == "approve" and verdict["test_command"] == "true"


def test_each_developer_works_its_duration_then_commits_its_file(
    bench: ModuleType, scenario: Scenario
) -> None:
    dag = bench.make_dag()
    for task in dag.tasks:
        found = scenario.find(request("developer", task.id))
        assert found is not None
        rule = found[1]
        assert rule.name == f"developer {task.id}"
        first, last = rule.steps
        assert first.latency == dag.durations[task.id]
        (bash,) = first.tools
        assert bash.name == "Bash"
        assert "git commit" in bash.input["command"] and "{task}.txt" in bash.input["command"]
        (summary,) = last.tools  # the role's summary at once: no request to ask for it
        assert last.latency == 0 and summary.name == "StructuredOutput"
