"""SIGKILL of a random ``claude`` of the run at random moments (1 to 3 per trial), as the
OOM killer would: the run goes on by itself.

A killed turn is not the work's fault: it runs again, resumed (`decide.MAX_INTERRUPTIONS`
kills of one task before that counts as a failure; 3 stay below). So every task merges
in the same run, nothing is escalated, and the run ends done with exit code 0. What the
killed claude had started (its tools' commands) dies with it within a few seconds.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma.workflow.decide import (
    MAX_INTERRUPTIONS,
)
from tests.chaos.chaoslib import (
    COMPANY,
    LENGTHS,
    Company,
    Reference,
    Trial,
    descendants,
    play_trials,
    poll,
    still_alive,
    trials,
)

KILLS = (1, 3)


def kill_a_claude(trial: Trial) -> bool:
    """SIGKILL one of the run's claude processes (chosen by the trial's generator); check
    that what it started dies with it. False when there was none to kill."""
    running = trial.claudes()
    if not running:
        return False
    victim = trial.rng.choice(running)
    below = descendants(victim.pid)
    try:
        os.kill(victim.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    trial.kills += 1
    trial.notes.append(f"killed a claude at row {len(trial.journal())}")
    poll(lambda: not still_alive(below), 5.0, 0.1)
    trial.check("orphans", [f"outlived its claude: {p.describe()}" for p in still_alive(below)])
    return True


def play(trial: Trial, ref: Reference) -> None:
    """Kill 1 to 3 claudes at random rows of the run; the run must end done by itself."""
    count = trial.rng.randint(*KILLS)
    rows = sorted(trial.moment(ref, 0.0, 0.9) for _ in range(count))
    active = trial.launch()
    for row in rows:
        # At that row, or as soon as a claude runs after it.
        if not trial.reach(active, row) or not trial.until(active, lambda: kill_a_claude(trial)):
            break
    trial.finish(trial.wait(active), ref.tree)
    if trial.starts != 1:
        trial.fail("run", f"{trial.starts} starts")


@pytest.mark.parametrize("long", LENGTHS)
def test_sigkill_of_a_random_claude_the_run_merges_everything_itself(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    assert KILLS[1] < MAX_INTERRUPTIONS  # else a task may rightly fail
    ref = uninterrupted(COMPANY)
    play_trials("SIGKILL claude", COMPANY, trials(long, 20), tmp_path, ref, play)
