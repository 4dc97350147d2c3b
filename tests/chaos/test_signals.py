"""SIGINT, SIGTERM and SIGHUP to ``autonoma start`` at random moments, every other trial
aimed at a merge (once the journal shows a task ``merging``: the gate's tests run), then
``autonoma start`` again to the end.

Each stops the run as Ctrl-C does: the stop is journaled, the merge under way is
finished or cleanly abandoned (never merged twice), the exit code is 130 (0 when the
stop came as the last merge ended the run), ``status`` says stopped (or done), and no
process of the run survives. The resumed run then ends as an uninterrupted one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.chaoslib import COMPANY, LENGTHS, Company, Reference, Trial, play_trials, trials

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_CODES = {"stopped": 130, "done": 0}


def play(trial: Trial, ref: Reference) -> None:
    """One signal (by the trial's number), at a random row from the first (even trials:
    the short one too) or at a merge (odd ones); then check how the run stopped, and
    resume it."""
    signum = SIGNALS[trial.index % len(SIGNALS)]
    active = trial.launch()
    if trial.index % 2 == 1:
        k = trial.rng.randrange(trial.company.tasks)
        hit = trial.until(active, lambda: trial.merging() > k)
        time.sleep(trial.rng.uniform(0, trial.company.gate_sleep))
        where = f"merge {k + 1}"
    else:
        # From the first row on: a signal before the actors run is held until they do.
        row = trial.moment(ref)
        hit = trial.reach(active, row)
        where = f"row {row}"
    if hit and active.poll() is None:
        os.kill(active.pid, signum)
        trial.kills += 1
        trial.notes.append(f"{signum.name} at {where}")
    else:
        trial.notes.append(f"ended before {signum.name} at {where}")
    code = trial.wait(active)
    if code is None:
        return  # stuck
    outcome = trial.outcome()
    if trial.expected_status() is None:
        trial.notes.append(f"before the run started: exit {code}")
    elif outcome not in EXIT_CODES or code != EXIT_CODES[outcome]:
        trial.fail("run", f"{signum.name}: exit {code}, outcome {outcome}: {trial.log()[-400:]}")
    trial.check_owner_gone(status=trial.expected_status())
    if outcome != "done":
        code = trial.wait(trial.launch())
    trial.finish(code, ref.tree)


@pytest.mark.parametrize("long", LENGTHS)
def test_sigint_sigterm_sighup_stop_cleanly_and_the_run_resumes(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    ref = uninterrupted(COMPANY)
    play_trials("SIGINT/TERM/HUP", COMPANY, trials(long, 9), tmp_path, ref, play)
