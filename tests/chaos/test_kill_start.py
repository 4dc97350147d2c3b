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

from tests.chaos.chaoslib import (
    COMPANY,
    LENGTHS,
    Company,
    Reference,
    Trial,
    kill_group,
    play_trials,
    trials,
)


def play(trial: Trial, ref: Reference) -> None:
    """Kill the run once (one trial in three: twice), then resume it to the end.

    The first kill comes at a random row of the run's journal (one in eight: at a
    random instant of its first 3 seconds, before it journals anything); a second
    one, soon after the resumed run journaled its first rows again."""
    times = 2 if trial.rng.random() < 1 / 3 else 1
    for n in range(times):
        active = trial.launch()
        if n == 0 and trial.rng.random() < 1 / 8:
            moment = trial.rng.uniform(0.2, 3.0)
            hit = not trial.ends_within(active, moment)
            where = f"{moment:.1f} s after the start"
        else:
            done = len(trial.journal())
            row = trial.moment(ref) if n == 0 else done + trial.rng.randint(1, ref.rows // 3)
            hit = trial.reach(active, row)
            where = f"row {row}"
        if not hit:
            trial.notes.append(f"ended before the kill at {where}")
            trial.finish(trial.wait(active), ref.tree)
            return
        kill_group(active)
        trial.kills += 1
        trial.notes.append(f"killed at {where}")
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
