"""The gateway's snapshot of a run whose process is gone says it is interrupted."""

from __future__ import annotations

from pathlib import Path

from autonoma import protocol as p
from autonoma.config import Settings
from autonoma.desktop.snapshots import Snapshots
from autonoma.journal.writer import Journal
from autonoma.runtime.bus import Bus


def journal_a_run(db: Path) -> None:
    """A run that started and never said how it ended (SIGKILLed)."""
    client = Journal.open(db)
    bus = Bus(run_id="run-1")
    bus.attach(client)
    bus.publish("orchestrator", p.RunStarted(requirements="r.md", project="/p", max_workers=1))
    bus.publish("orchestrator", p.PhaseChanged(phase="development"))
    client.stop()


def test_a_run_whose_process_is_gone_is_interrupted_in_the_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    journal_a_run(db)
    alive = [True]
    snapshots = Snapshots(db, Settings(), alive=lambda: alive[0])
    try:
        going = snapshots.take(None, None)
        alive[0] = False
        gone = snapshots.take(None, None)
    finally:
        snapshots.close()
    assert going.state["runs"]["run-1"]["interrupted"] is False
    assert going.view.run[0] == ("run run-1: development", "info")
    assert gone.state["runs"]["run-1"]["interrupted"] is True
    assert gone.view.run[0] == ("run run-1: interrupted (its process is gone)", "bad")
