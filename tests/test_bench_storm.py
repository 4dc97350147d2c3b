"""bench/storm.py: its scenario (no claude), and a tiny run of it with the real claude.

The tiny run is the end-to-end test of the crew's backoff: a 429 storm of a few
seconds mid-development, with the backoff on and off. With it, the run completes with
no escalation, and the 429s the sim served are bounded by one request per agent at the
storm's start (it then waits frozen) plus one probe per backoff window.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from autonoma.config import Settings
from autonoma.protocol import Envelope, SpawnsHeld
from autonoma.sim import loads_scenario
from autonoma.workflow.backoff import CREW_WINDOW
from autonoma.workflow.dag import parse_tasks
from tests.benchlib import load_bench

RETRIES = Settings().agent_api_retries  # the default


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("storm")


def test_the_scenario_has_independent_tasks_and_the_storm_windows(bench: ModuleType) -> None:
    shape = bench.Shape(tasks=3, workers=2, work=1.5, storm=4.0, lead=2.0)
    quiet = loads_scenario(bench.scenario_toml(shape, False))
    assert quiet.windows == ()
    stormy = loads_scenario(bench.scenario_toml(shape, True))
    (window,) = stormy.windows
    assert (window.start, window.end, window.fault.kind) == (2.0, 6.0, "429")
    assert window.since == "developer"  # counted from development's first request
    assert window.role is None  # every request of every agent
    (se,) = [r for r in stormy.rules if r.role == "staff_engineer"]
    tasks = parse_tasks(se.steps[0].tools[0].input)
    assert [t.id for t in tasks] == ["t1", "t2", "t3"] and all(not t.deps for t in tasks)
    developers = [r for r in stormy.rules if r.role == "developer"]
    assert [r.steps[0].latency for r in developers] == [1.5, 1.5, 1.5]


def test_a_mixed_storm_answers_429_and_529_in_turn(bench: ModuleType) -> None:
    shape = bench.Shape(storm=12.0, lead=1.0, faults=("429", "529"))
    windows = loads_scenario(bench.scenario_toml(shape, True)).windows
    assert [(w.start, w.end, w.fault.kind) for w in windows] == [
        (1.0, 6.0, "429"),
        (6.0, 11.0, "529"),
        (11.0, 13.0, "429"),
    ]


def test_a_storm_mid_development_completes_and_its_requests_are_bounded(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shape = bench.Shape(tasks=3, workers=2, work=1.0, storm=4.0, lead=0.5)
    quiet, results = bench.bench(shape, tmp_path)
    with capsys.disabled():
        print("\n" + bench.table(quiet, results, shape))
    assert quiet.outcome == "done"
    backoff, baseline = results["backoff"], results["baseline"]
    for figures in (backoff, baseline):
        assert figures.outcome == "done" and figures.escalations == 0
        assert figures.rejected > 0, "the storm missed the run"
    # One refused request per agent working when it began (it then waits frozen; two if
    # its own retry went before it was frozen), then one probe per window.
    assert backoff.windows >= 1
    assert backoff.rejected <= 2 * (shape.workers + backoff.windows)
    assert backoff.lowest is not None and backoff.lowest < shape.workers
    assert baseline.lowest is None  # off: today's behaviour, nothing adapted
    assert backoff.claude_retries == RETRIES  # as claude reports them (CLAUDE_CODE_MAX_RETRIES)
    assert baseline.claude_retries is not None and baseline.claude_retries > RETRIES
    # Work resumes within one window (and the probe's start-up) of the storm's end.
    assert backoff.resumed is not None and backoff.resumed <= 1.25 * CREW_WINDOW + 5.0


def test_a_window_is_a_new_hold_not_a_lengthened_one(bench: ModuleType) -> None:
    def held(ts: float, until: float, level: int) -> Envelope:
        message = SpawnsHeld(until=until, delay=until - ts, reason="429", level=level)
        return Envelope(seq=1, ts=ts, run_id="r", sender="governor", recipient="*", message=message)

    rows = [
        held(0.0, 2.0, 1),
        held(1.0, 3.0, 1),  # lengthened by a retry-after: the same window
        held(3.5, 7.5, 2),
        held(8.0, 12.0, 3),
        held(20.0, 22.0, 1),  # a later storm, back at the base
        held(22.5, 24.5, 1),  # the level was reset by a request that went through
    ]
    assert bench.backoff_windows(rows) == 5
