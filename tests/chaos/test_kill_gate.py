"""SIGKILL of the merge gate's test process (the project's test command, which sleeps a
little so that it can be hit) while a merge is under way.

The tests did not pass, so nothing moves: the gate says so (`MergeFailed`,
``tests_failed``), the task goes back to its developer as a failed attempt (the policy:
``max_retries`` of them before an escalation; one kill stays below), is approved again
and merges on the next try. Nothing is merged twice, the sandbox around the test
command dies with it, and no worktree is left.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma.protocol import MergeFailed
from tests.chaos.chaoslib import (
    COMPANY,
    LENGTHS,
    Company,
    Proc,
    Reference,
    Trial,
    play_trials,
    poll,
    still_alive,
    trials,
)


def play(trial: Trial, ref: Reference) -> None:
    """Start the run, kill the gate's tests of a random merge, let the run end."""
    active = trial.launch()
    k = trial.rng.randrange(COMPANY.tasks)
    victims: list[Proc] = []

    def hit() -> bool:
        if trial.merging() <= k:
            return False
        found = trial.gate_tests()
        if found:
            victims.append(found[0])
        return bool(found)

    if trial.until(active, hit):
        # Early in its sleep: found late on a busy machine, it may be near its end.
        time.sleep(trial.rng.uniform(0, COMPANY.gate_sleep * 0.3))
        try:
            os.kill(victims[0].pid, signal.SIGKILL)
            trial.kills += 1
            trial.notes.append(f"killed the tests of merge {k + 1}")
        except ProcessLookupError:
            trial.notes.append(f"the tests of merge {k + 1} ended first")
        if not poll(lambda: not still_alive(victims), 5.0, 0.1):
            trial.fail("orphans", f"the gate's tests survived: {victims[0].describe()}")
    code = trial.wait(active)
    trial.finish(code, ref.tree)
    failed = [e.message for e in trial.journal() if isinstance(e.message, MergeFailed)]
    if trial.kills and not any(m.kind == "tests_failed" for m in failed):
        trial.fail("run", "the killed tests were not journaled as failed")
    if trial.starts != 1:
        trial.fail("run", f"{trial.starts} starts")


@pytest.mark.parametrize("long", LENGTHS)
def test_sigkill_of_the_merge_gates_tests_fails_that_merge_and_the_task_merges_later(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    ref = uninterrupted(COMPANY)
    play_trials("SIGKILL gate tests", COMPANY, trials(long, 5), tmp_path, ref, play)
