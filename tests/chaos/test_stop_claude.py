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

IDLE = 6.0
"""The idle timeout of the trials: longer than any quiet moment of a turn here (the
sim's latencies are below a second) even on a loaded machine."""

COMPANY = Company(settings=(("AUTONOMA_TURN_IDLE_TIMEOUT", str(IDLE)),))


def stop_a_claude(trial: Trial) -> Proc | None:
    """SIGSTOP one of the run's claude processes; None when none runs."""
    running = trial.claudes()
    if not running:
        return None
    victim = trial.rng.choice(running)
    try:
        os.kill(victim.pid, signal.SIGSTOP)
    except ProcessLookupError:
        return None
    return victim


def play(trial: Trial, ref: Reference) -> None:
    """Stop one claude at a random moment; it must be gone after the idle timeout and
    the run end done by itself."""
    active = trial.launch()
    moment = trial.rng.uniform(0.5, 0.8 * ref.seconds)
    stopped: list[Proc] = []

    def stop_one() -> bool:
        victim = stop_a_claude(trial)
        stopped.extend([victim] if victim else [])
        return victim is not None

    if not trial.ends_within(active, moment):
        trial.until(active, stop_one)
    if stopped:
        trial.kills += 1
        trial.notes.append(f"stopped a claude at {trial.seconds:.1f} s")
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


@pytest.mark.parametrize("long", LENGTHS)
def test_sigstop_of_a_claude_past_the_idle_timeout_is_stopped_and_retried(
    tmp_path: Path, uninterrupted: Callable[[Company], Reference], long: bool
) -> None:
    ref = uninterrupted(COMPANY)
    play_trials("SIGSTOP claude", COMPANY, trials(long, 6), tmp_path, ref, play, slack=IDLE)
