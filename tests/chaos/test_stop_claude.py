"""SIGSTOP of a random ``claude`` for longer than the turn's idle timeout (never continued).

The stopped turn writes nothing, so after ``turn_idle_timeout`` seconds Autonoma stops
its process group (journaled: `AgentProcessExited` with ``timeout="idle"``) and runs the
turn again, resumed and told so (a first stop for time is not a failed attempt). The
task merges in the same run, nothing is escalated, and no stopped process survives.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from autonoma.protocol import AgentProcessExited
from tests.chaos.chaoslib import (
    COMPANY,
    IDLE,
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


def stop_a_claude(trial: Trial) -> Proc | None:
    """SIGSTOP one of the run's claude processes, between tool calls or during one (a
    stopped claude waits on no tool: its silence is idle time); None when none runs."""
    running = trial.claudes()
    if not running:
        return None
    victim = trial.rng.choice(running)
    try:
        os.kill(victim.pid, signal.SIGSTOP)
    except ProcessLookupError:
        return None
    if trial.tool_running(victim.pid):
        trial.notes.append("stopped during a tool")
    return victim


def play(trial: Trial, ref: Reference) -> None:
    """Stop one claude at a random row of the run; it must be gone after the idle timeout and
    the run end done by itself."""
    active = trial.launch()
    row = trial.moment(ref, 0.0, 0.8)
    stopped: list[Proc] = []

    def stop_one() -> bool:
        victim = stop_a_claude(trial)
        stopped.extend([victim] if victim else [])
        return victim is not None

    if trial.reach(active, row):
        trial.until(active, stop_one)
    if stopped:
        trial.kills += 1
        trial.notes.append(f"stopped a claude at row {row} or after")
        if not poll(lambda: not still_alive(stopped), IDLE + 20, 0.1):
            trial.fail("orphans", f"still there: {still_alive(stopped)[0].describe()}")
    trial.finish(trial.wait(active), ref.tree)
    idle = [
        e
        for e in trial.journal()
        if isinstance(e.message, AgentProcessExited) and e.message.timeout == "idle"
    ]
    if stopped and not idle:
        trial.fail("run", "no turn was stopped for its idle timeout")
    if trial.starts != 1:
        trial.fail("run", f"{trial.starts} starts")


# Long only: a trial lasts the idle timeout and the grace period more (25 s), too much
# for `make test`.
@pytest.mark.parametrize("long", LENGTHS[1:])
def test_sigstop_of_a_claude_past_the_idle_timeout_is_stopped_and_retried(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    ref = uninterrupted(COMPANY)
    play_trials("SIGSTOP claude", COMPANY, trials(long, 4), tmp_path, ref, play, slack=IDLE)
