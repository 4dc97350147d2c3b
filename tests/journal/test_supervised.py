"""The journal under a real supervisor: a crash restarts it on the same client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from autonoma.journal import reader
from autonoma.journal.schema import JournalError
from autonoma.journal.writer import JournalClient
from autonoma.protocol import ActorCrashed, ActorStarted, PhaseChanged
from autonoma.runtime.bus import Bus
from autonoma.runtime.supervisor import ChildSpec, Supervisor

from .test_writer import _FlakyJournal
from .testlib import wait_for


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


def test_restarted_by_its_supervisor(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    bus = Bus(run_id="run-1")
    client = JournalClient()
    bus.attach(client)
    spec = ChildSpec("journal", start=lambda: _FlakyJournal.start(db, client=client, batch_ms=2))
    root = Supervisor.start(bus, "root", [spec], strategy="rest_for_one", intensity=3, period=10)
    first = wait_for(lambda: client.actor_ref)  # the supervisor starts it in its thread
    bus.publish("orchestrator", PhaseChanged(phase="planning"), durable=True, timeout=5)

    _FlakyJournal.fail_next = True
    with pytest.raises(JournalError, match="disk full"):
        bus.publish("orchestrator", PhaseChanged(phase="lost"), durable=True, timeout=5)
    wait_for(lambda: client.actor_ref not in (None, first))

    after = bus.publish("orchestrator", PhaseChanged(phase="development"), durable=True, timeout=5)
    root.stop(timeout=10)

    journaled = list(reader.read(db))
    assert [e.seq for e in journaled] == list(range(1, len(journaled) + 1))
    assert after in journaled
    messages = [e.message for e in journaled]
    assert PhaseChanged(phase="lost") not in messages
    crashes = [m for m in messages if isinstance(m, ActorCrashed) and m.name == "journal"]
    restarts = [m for m in messages if isinstance(m, ActorStarted) and m.restart]
    assert len(crashes) == 1 and crashes[0].error_text == "disk full"
    assert [m.name for m in restarts] == ["journal"]
    state = reader.replay(db)
    assert state.actors["journal"].restarts == 1
    assert state.runs["run-1"].phase == "development"
