"""SIGKILL of the whole ``autonoma start`` (its process group) at a random moment, once or
twice, then ``autonoma start`` again to the end.

After each kill, once the process is gone: no process of the run survives (claude, what
its tools or the merge gate started) and ``status`` says the run is interrupted. At the
end: main's tree is the uninterrupted run's, no task merged twice, no worktree left,
``status`` says done, and no start ran past its bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.chaoslib import LENGTHS, Company, Reference, Trial, kill_group, play_trials, trials

COMPANY = Company()


def play(trial: Trial, ref: Reference) -> None:
    """Kill the run once (one trial in three: twice), then resume it to the end."""
    times = 2 if trial.rng.random() < 1 / 3 else 1
    for _ in range(times):
        active = trial.launch()
        moment = trial.rng.uniform(0.2, 0.9 * ref.seconds)
        if trial.ends_within(active, moment):
            trial.notes.append(f"ended before the kill at {moment:.1f} s")
            trial.finish(active.returncode, ref.tree)
            return
        kill_group(active)
        trial.kills += 1
        trial.notes.append(f"killed at {moment:.1f} s")
        trial.check_owner_gone(status=trial.expected_status())
        if trial.outcome() == "done":
            trial.notes.append("after its end")  # killed while it wound down
            trial.finish(0, ref.tree)
            return
    trial.finish(trial.wait(trial.launch()), ref.tree)


@pytest.mark.parametrize("long", LENGTHS)
def test_sigkill_of_the_whole_start_then_resume(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    ref = uninterrupted(COMPANY)
    play_trials("SIGKILL start", COMPANY, trials(long, 20), tmp_path, ref, play)
