"""Chaos: a storm of 429s and 529s from the sim mid-development, with the crew's backoff.

The whole company runs (real ``claude`` against the in-process sim, as `autonoma start`
runs it: `bench/storm.py`'s `run_once`) on independent tasks that each write one file.
A few seconds after the first developer request, every request of every agent is
refused for the storm's length, 429 and 529 in turn. The run must complete by itself:
outcome done, no escalation, no task failed, every task merged once, and ``main``
holding every file as written; status says so. The requests refused during the storm
are counted, and with the crew's backoff they stay within one request per agent at
work when the storm began (it then waits frozen) plus one probe per window.

The short storm (~16 s) runs in ``make test``; the 2-minute one is ``chaos_long``
(``make chaos``). Each trial records a row of the ``storm`` table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from autonoma.protocol import Envelope, TaskMerged, TaskStateChanged, WorkPaused
from autonoma.workflow.backoff import CREW_WINDOW
from tests.benchlib import load_bench
from tests.chaos.chaoslib import record

MIXED = ("429", "529")
SHORT_TRIALS_AT_MOST = 10
LONG_TRIALS_AT_MOST = 5
"""A short storm trial takes about half a minute, a 2-minute one about three: more
trials than these (``TRIALS=40`` is for the kills) would ask for hours."""


def trials(default: int, at_most: int | None = None) -> int:
    """Trials per experiment: ``AUTONOMA_CHAOS_TRIALS`` (``make chaos TRIALS=N``), else
    ``default``; never more than ``at_most``."""
    raw = os.environ.get("AUTONOMA_CHAOS_TRIALS", "").strip()
    count = int(raw) if raw else default
    return max(1, count if at_most is None else min(count, at_most))


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("storm")


def files_on_main(root: Path) -> dict[str, str]:
    """Every file committed on ``main``, with what it holds."""
    names = subprocess.run(
        ["git", "-C", str(root), "ls-tree", "-r", "--name-only", "main"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "-C", str(root), "show", f"main:{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for name in names
    }


def outcome_shown(root: Path) -> str:
    """The current run's outcome as ``autonoma status --json`` in ``root`` shows it."""
    result = subprocess.run(
        [sys.executable, "-m", "autonoma", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    return str(state["runs"][state["current_run"]]["outcome"])


def during(envelopes: list[Envelope], kind: type) -> list[object]:
    return [e.message for e in envelopes if isinstance(e.message, kind)]


def play(bench: ModuleType, shape: object, tmp_path: Path, quiet: bool, trial: int) -> None:
    """One storm trial: the checks, then its row of the ``storm`` table."""
    before = bench.run_once("quiet", shape, False, True, tmp_path) if quiet else None
    run = bench.run_once("storm", shape, True, True, tmp_path)
    figures = bench.figures(run, before, shape)
    begin, end = bench.storm_of(run, shape)
    during_storm = [status for t, status, _ in run.requests if begin <= t < end]
    merged = Counter(m.task_id for m in during(run.envelopes, TaskMerged))
    tasks = [f"t{i}" for i in range(1, shape.tasks + 1)]
    expected = {"requirements.md": None, **{f"{t}.txt": f"{t}\n" for t in tasks}}
    tree = files_on_main(run.root)
    same_tree = set(tree) == set(expected) and all(
        tree[name] == text for name, text in expected.items() if text is not None
    )
    states = {m.state for m in during(run.envelopes, TaskStateChanged)}
    windows = figures.windows
    record(
        "storm",
        {
            "storm s": shape.storm,
            "faults": "/".join(shape.faults),
            "trial": trial + 1,
            "outcome": run.outcome,
            "escalations": figures.escalations,
            "identical tree": same_tree,
            "double merges": sum(1 for n in merged.values() if n > 1),
            "requests in storm": len(during_storm),
            "refused": figures.rejected,
            "429s": during_storm.count(429),
            "529s": during_storm.count(529),
            "windows": windows,
            "paused": len(during(run.envelopes, WorkPaused)),
            "lowest": figures.lowest,
            "resumed s": figures.resumed,
            "full speed s": figures.full_speed,
            "wall s": run.wall,
            "extra s": figures.extra,
        },
    )
    assert run.outcome == "done"
    assert figures.escalations == 0 and not states & {"failed", "escalated"}
    assert same_tree, f"main holds {tree}"
    assert merged == dict.fromkeys(tasks, 1), f"merged: {merged}"
    assert outcome_shown(run.root) == "done"
    # The storm hit development, and with the crew's backoff the requests it refused are
    # one per agent at work when it began (two if its retry beat its freezing), then one
    # probe per window.
    assert figures.rejected > 0
    assert windows >= 1
    assert figures.rejected <= 2 * (shape.workers + windows)
    # Work resumes within one window (and a probe's start-up) of the storm's end.
    assert figures.resumed is not None and figures.resumed <= 1.25 * CREW_WINDOW + 8.0


@pytest.mark.parametrize("trial", range(trials(1, SHORT_TRIALS_AT_MOST)))
def test_a_short_storm_of_429s_and_529s_mid_development_loses_nothing(
    bench: ModuleType, tmp_path: Path, trial: int
) -> None:
    shape = bench.Shape(tasks=4, workers=2, work=1.5, storm=16.0, lead=1.0, faults=MIXED)
    play(bench, shape, tmp_path, quiet=False, trial=trial)


@pytest.mark.chaos_long
@pytest.mark.timeout(900)
@pytest.mark.parametrize("trial", range(trials(1, LONG_TRIALS_AT_MOST)))
def test_a_two_minute_storm_mid_development_completes_with_no_escalation(
    bench: ModuleType, tmp_path: Path, trial: int
) -> None:
    shape = bench.Shape(tasks=6, workers=3, work=2.0, storm=120.0, lead=2.0, faults=MIXED)
    play(bench, shape, tmp_path, quiet=True, trial=trial)
