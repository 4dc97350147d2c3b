"""The root of the tree with its journal: every start, crash and restart is journaled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from autonoma import system
from autonoma.config import Settings
from autonoma.journal import reader
from autonoma.protocol import ActorCrashed, ActorStarted, ActorStopped, Escalation, WorkPaused
from autonoma.runtime.actor import Actor
from autonoma.runtime.supervisor import ChildSpec
from tests.conftest import run_autonoma
from tests.journal.testlib import wait_for


class Worker(Actor):
    """Crashes when told to."""

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("worker lost its mind")
        return message


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


def journaled(db: Path) -> list[Any]:
    return [e.message for e in reader.read(db)]


def restarted(message: Any) -> bool:
    return isinstance(message, ActorStarted) and message.restart


def crash_count(db: Path) -> int:
    return sum(isinstance(m, ActorCrashed) for m in journaled(db))


def worker_spec(name: str = "worker") -> ChildSpec:
    return ChildSpec(name, start=Worker.start)


def test_crashes_and_restarts_are_journaled_and_shown(
    git_repo: Path, clean_env: dict[str, str]
) -> None:
    assert run_autonoma("init", cwd=git_repo, env=clean_env).returncode == 0
    db = git_repo / ".autonoma" / "state.db"
    running = system.start(db, Settings(restart_intensity=5, restart_period=60), run_id="run-7")
    running.start_child(worker_spec())
    first = running.root.proxy().child_ref("worker").get(timeout=5)
    first.tell("crash")
    # The restart is journaled: wait for it through the journal itself.
    wait_for(lambda: any(restarted(m) for m in journaled(db)))
    running.stop(timeout=10)

    messages = [e.message for e in reader.read(db)]
    assert [e.run_id for e in reader.read(db)] == ["run-7"] * len(messages)
    crashed = [m for m in messages if isinstance(m, ActorCrashed)]
    assert [(m.name, m.error_type, m.error_text) for m in crashed] == [
        ("worker", "RuntimeError", "worker lost its mind")
    ]
    status = run_autonoma("status", "--json", cwd=git_repo, env=clean_env)
    state = json.loads(status.stdout)
    assert state["actors"]["worker"]["restarts"] == 1
    assert state["actors"]["worker"]["last_error"] == "RuntimeError: worker lost its mind"
    # Stopping the system journals the worker's stop; the journal stops last.
    stops = [m.name for m in journaled(db) if isinstance(m, ActorStopped)]
    assert stops[0] == "worker"


def test_too_many_crashes_pause_work_instead_of_killing_the_program(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    running = system.start(db, Settings(restart_intensity=1, restart_period=3600))
    running.start_child(worker_spec())
    for crashes in (1, 2):
        ref = wait_for(lambda: running.root.proxy().child_ref("worker").get(timeout=5))
        ref.tell("crash")
        wait_for(lambda n=crashes: crash_count(db) >= n)
    wait_for(running.paused)
    running.stop(timeout=10)
    state = reader.replay(db)
    assert state.paused
    assert state.to_dict()["pause_reason"] == state.work_pause and "worker" in state.work_pause
    messages = [e.message for e in reader.read(db)]
    assert any(isinstance(m, Escalation) and m.source == "worker" for m in messages)
    assert sum(isinstance(m, WorkPaused) for m in messages) == 1


def test_a_journal_that_cannot_open_fails_the_start_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    db.write_text("not a database\n" * 100)
    with pytest.raises(system.StartError) as caught:
        system.start(db, Settings())
    assert str(caught.value).startswith("journal failed to start")
    assert str(db) in str(caught.value)


def test_the_journal_records_its_own_stop_last(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    running = system.start(db, Settings(), run_id="r1")
    running.start_child(worker_spec())
    running.stop(timeout=10)
    messages = journaled(db)
    assert messages[-1] == ActorStopped(name="journal", supervisor="root", how="shutdown")
    assert messages.count(messages[-1]) == 1
    # So status, after the run, no longer shows the journal running.
    assert reader.replay(db).actors["journal"].status == "shutdown"
