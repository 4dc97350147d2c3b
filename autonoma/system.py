"""The running system: the root supervisor, the journal under it, and the bus they share.

``root (rest_for_one)`` starts the journal first, so everything started after it is
journaled; a journal crash restarts it and every child started after it. The other
children of DESIGN.md's tree (gateway, governor, orchestrator, crew) are added by the
parts that own them, through `System.start_child`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from autonoma.config import Settings
from autonoma.journal.writer import Journal, JournalClient
from autonoma.protocol import ActorStopped
from autonoma.runtime.actor import StartFailed, spawn
from autonoma.runtime.bus import Bus
from autonoma.runtime.supervisor import ChildSpec, Supervisor


class StartError(Exception):
    """The system could not start; the message names the child and why."""


ROOT = "root"
JOURNAL = "journal"


@dataclass
class System:
    """Handles on a started system."""

    bus: Bus
    journal: JournalClient
    root: pykka.ActorRef[Any]

    def start_child(self, spec: ChildSpec) -> str:
        """Start ``spec`` under the root, after the children already there; its URN."""
        urn: str = self.root.proxy().start_child(spec).get()
        return urn

    def paused(self) -> bool:
        """Whether the root has paused new work after an escalation."""
        paused: bool = self.root.proxy().is_paused().get()
        return paused

    def stop(self, timeout: float | None = None) -> None:
        """Stop every child in reverse start order, the journal last (so it records that)."""
        self.root.stop(block=True, timeout=timeout)


def start(db: Path, settings: Settings, run_id: str = "") -> System:
    """Start the root supervisor with the journal on ``db`` as its first child."""
    bus = Bus(run_id=run_id)
    client = JournalClient()
    bus.attach(client)
    journal = ChildSpec(
        JOURNAL,
        start=lambda: Journal.start(
            db,
            client=client,
            batch_size=settings.journal_batch_size,
            batch_ms=settings.journal_batch_ms,
            farewell=lambda: bus.stamp(
                ROOT, ActorStopped(name=JOURNAL, supervisor=ROOT, how="shutdown")
            ),
        ),
    )
    link = spawn(
        lambda: Supervisor.start(
            bus,
            ROOT,
            [journal],
            strategy="rest_for_one",
            intensity=settings.restart_intensity,
            period=settings.restart_period,
            root=True,
        ),
        ROOT,
    )
    try:
        link.ping()
    except StartFailed as failure:
        # e.g. "journal failed to start: JournalError: <file>: not an Autonoma journal"
        raise StartError(failure.reason.error_text) from None
    return System(bus=bus, journal=client, root=link.ref)
