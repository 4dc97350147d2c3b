"""bench/tui.py at a tiny size: its scenario, its delay arithmetic, and the bench itself
(on a recorded journal, and end to end with the real claude: one agent, one step)."""

from __future__ import annotations

from types import ModuleType

import pytest

from autonoma.sim import loads_scenario
from autonoma.workflow.dag import parse_tasks
from tests.benchlib import load_bench, request
from tests.tui.conftest import DATA


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("tui")


def test_every_developer_streams_its_steps_then_commits(bench: ModuleType) -> None:
    scenario = loads_scenario(bench.scenario_toml(agents=3, steps=4, latency=0.1))
    found = scenario.find(request("staff_engineer", None))
    assert found is not None
    (call,) = found[1].steps[0].tools
    tasks = parse_tasks(call.input)
    assert [t.id for t in tasks] == ["t1", "t2", "t3"]
    assert all(not t.deps for t in tasks)  # all at once
    for task in tasks:
        match = scenario.find(request("developer", task.id))
        assert match is not None
        steps = match[1].steps
        assert len(steps) == 4 + 2
        for step in steps[:4]:
            assert step.text and step.latency == 0.1
            assert [t.name for t in step.tools] == ["Read", "Bash"]
        (commit,) = steps[4].tools
        assert "git commit" in commit.input["command"]
        (summary,) = steps[5].tools  # closes with the role's summary, as a model does
        assert summary.name == "StructuredOutput" and summary.input["summary"]
    qa = scenario.find(request("qa", "t2"))
    assert qa is not None and qa[1].steps[0].tools[0].input["verdict"] == "approve"


@pytest.mark.parametrize(
    ("commits", "shown", "expected"),
    [
        # Each row: the first screen whose head reaches it.
        ({1: 10.0, 2: 10.1, 3: 10.2}, [(10.3, 2), (10.6, 3)], [0.3, 0.2, 0.4]),
        # A row never shown is left out; screens out of order are put in order.
        ({1: 0.0, 5: 1.0}, [(2.0, 4), (0.5, 1)], [0.5]),
        # A head that went back (never, live) does not hide a later one.
        ({3: 0.0}, [(1.0, 3), (2.0, 2)], [1.0]),
        ({}, [(1.0, 1)], []),
    ],
)
def test_delays_pair_each_commit_with_the_first_screen_showing_it(
    bench: ModuleType,
    commits: dict[int, float],
    shown: list[tuple[float, int]],
    expected: list[float],
) -> None:
    assert bench.delays(commits, shown) == pytest.approx(expected)


def test_the_bench_on_a_recorded_journal(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--journal", str(DATA / "demo.db"), "--speed", "20", "--chunk", "50"]) == 0
    out = capsys.readouterr().out
    assert "x fold alone" in out and out.count("/s") == 3
    assert "commit -> screen" in out and "median" in out and "(456 rows)" in out


def test_the_bench_end_to_end_at_a_tiny_size(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bench.main(["--agents", "1", "--steps", "1", "--latency", "0", "--speed", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("done, 1/1 merged") == 2, out
    assert "on a terminal during the run" in out
    assert "with / without a dashboard" in out and "the dashboard process itself" in out
