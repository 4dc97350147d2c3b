"""Reading the journal: filters, runs, replay, follow, and another process watching a run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

from autonoma.journal import reader
from autonoma.journal.fold import fold
from autonoma.journal.writer import Journal, JournalClient
from autonoma.protocol import (
    AgentText,
    CostReported,
    Envelope,
    PhaseChanged,
    RunStarted,
    TaskDefined,
    TaskStateChanged,
)

from .testlib import env, text, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=10)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def _sample() -> list[Envelope]:
    """Two runs, interleaved senders."""
    return [
        env(
            RunStarted(requirements="a.md", project=".", max_workers=2),
            run_id="a",
            sender="orch",
            ts=10.0,
        ),
        env(TaskDefined(task_id="t1", title="one"), run_id="a", sender="staff", ts=11.0),
        env(
            TaskStateChanged(task_id="t1", state="running"),
            run_id="a",
            sender="orch",
            recipient="dev-1",
            ts=12.0,
        ),
        env(
            CostReported(agent_id="dev-1", usd=0.5, task_id="t1"),
            run_id="a",
            sender="dev-1",
            ts=13.0,
        ),
        env(TaskStateChanged(task_id="t1", state="merged"), run_id="a", sender="orch", ts=14.0),
        env(
            RunStarted(requirements="b.md", project=".", max_workers=2),
            run_id="b",
            sender="orch",
            ts=20.0,
        ),
        env(PhaseChanged(phase="planning"), run_id="b", sender="orch", ts=21.0),
        env(CostReported(agent_id="ceo", usd=1.0), run_id="b", sender="ceo", ts=22.0),
    ]


def _write(db: Path, envelopes: list[Envelope]) -> None:
    client = Journal.open(db, batch_ms=1)
    for envelope in envelopes:
        client.append(envelope)
    client.stop()


def test_read_and_filters(db: Path) -> None:
    sample = _sample()
    _write(db, sample)
    everything = list(reader.read(db))
    assert [e.seq for e in everything] == list(range(1, 9))
    assert [e.message for e in everything] == [e.message for e in sample]
    assert [e.ts for e in everything] == [e.ts for e in sample]

    def seqs(**filters: object) -> list[int]:
        return [e.seq for e in reader.read(db, **filters)]  # type: ignore[arg-type]

    assert seqs(after_seq=6) == [7, 8]
    assert seqs(after_seq=2, until_seq=4) == [3, 4]
    assert seqs(run_id="b") == [6, 7, 8]
    assert seqs(sender_or_recipient="dev-1") == [3, 4]
    assert seqs(limit_last=3) == [6, 7, 8]
    assert seqs(run_id="a", limit_last=2) == [4, 5]
    assert seqs(limit_last=0) == []
    assert [r[0] for r in reader.rows(db, run_id="a", until_seq=2)] == [1, 2]
    assert reader.last_seq(db) == 8


def test_runs_and_latest_run(db: Path) -> None:
    _write(db, _sample())
    assert [r.to_dict() for r in reader.runs(db)] == [
        {
            "run_id": "a",
            "first_seq": 1,
            "last_seq": 5,
            "messages": 5,
            "first_ts": 10.0,
            "last_ts": 14.0,
        },
        {
            "run_id": "b",
            "first_seq": 6,
            "last_seq": 8,
            "messages": 3,
            "first_ts": 20.0,
            "last_ts": 22.0,
        },
    ]
    assert reader.latest_run(db) == "b"
    assert reader.run_ids(db) == ["a", "b"]


def test_replay_at_a_seq_and_for_a_run(db: Path) -> None:
    sample = _sample()
    _write(db, sample)
    journaled = list(reader.read(db))
    for at in range(0, 9):
        assert reader.replay(db, at_seq=at).to_dict() == fold(journaled[:at]).to_dict()
    at_3 = reader.replay(db, at_seq=3)
    assert (at_3.tasks["t1"].state, at_3.last_seq, at_3.usage.usd) == ("running", 3, 0.0)
    now = reader.replay(db)
    assert (now.tasks["t1"].state, now.current_run, now.usage.usd) == ("merged", "b", 1.5)
    run_a = reader.replay(db, run_id="a")
    assert (set(run_a.runs), run_a.usage.usd, run_a.last_seq) == ({"a"}, 0.5, 5)


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "state.db"
    assert list(reader.read(missing)) == []
    assert list(reader.rows(missing)) == []
    assert reader.last_seq(missing) == 0
    assert reader.runs(missing) == []
    assert reader.run_ids(missing) == []
    assert reader.latest_run(missing) is None
    assert reader.replay(missing).to_dict() == reader.replay(missing, at_seq=3).to_dict()
    assert reader.replay(missing).last_seq == 0
    assert not missing.parent.exists()  # reading never creates anything


def test_an_open_connection_can_be_passed(db: Path) -> None:
    _write(db, _sample())
    from autonoma.journal.schema import open_read

    conn = open_read(db)
    assert conn is not None
    assert reader.last_seq(conn) == 8
    assert len(list(reader.read(conn, run_id="b"))) == 3
    assert reader.replay(conn).last_seq == 8
    conn.close()


def test_follow_sees_new_rows_while_the_writer_writes(db: Path) -> None:
    stop = threading.Event()
    seen: list[tuple[int, float]] = []

    def watch() -> None:
        for envelope in reader.follow(db, interval=0.02, stop=stop):
            seen.append((envelope.seq, time.monotonic()))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()  # the journal does not exist yet: follow waits for it
    client = Journal.open(db, batch_ms=5)
    try:
        for n in range(1, 6):
            seq = client.append_durable(text(n), timeout=5)
            committed = time.monotonic()

            def arrival(seq: int = seq) -> list[float]:
                return [t for q, t in seen if q == seq]

            assert wait_for(arrival, timeout=2)[0] - committed < 0.5
    finally:
        stop.set()
        watcher.join(5)
        client.stop()
    assert [s for s, _ in seen] == [1, 2, 3, 4, 5]


def test_follow_filters_and_starts_after_a_seq(db: Path) -> None:
    _write(db, _sample())
    stop = threading.Event()
    got: list[int] = []
    for envelope in reader.follow(db, after_seq=2, run_id="a", interval=0.01, stop=stop):
        got.append(envelope.seq)
        if envelope.seq == 5:
            stop.set()
    assert got == [3, 4, 5]


_WATCHER = """
import sys, time
from autonoma.journal import reader
print("watching", flush=True)
for e in reader.follow(sys.argv[1], interval=0.05):
    print(e.seq, time.time(), e.message.text, flush=True)
    if e.seq >= int(sys.argv[2]):
        break
"""


def test_another_process_sees_new_rows_within_a_fraction_of_a_second(db: Path) -> None:
    count = 8
    client = Journal.open(db, batch_ms=20)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    watcher = subprocess.Popen(
        [sys.executable, "-c", _WATCHER, str(db), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=ROOT,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "watching"
        committed: dict[int, float] = {}
        for n in range(1, count + 1):
            seq = client.append_durable(text(n), timeout=5)
            committed[seq] = time.time()
            time.sleep(0.05)  # a run writes in bursts; space them to time each one
        out, _ = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        client.stop()
    lines = [line.split() for line in out.splitlines()]
    assert [int(seq) for seq, _, _ in lines] == list(range(1, count + 1))
    assert [t for _, _, t in lines] == [f"m{n}" for n in range(1, count + 1)]
    delays = [float(ts) - committed[int(seq)] for seq, ts, _ in lines]
    assert max(delays) < 0.5, delays


def test_a_client_that_was_never_started(db: Path) -> None:
    client = JournalClient()
    client.append(text(1))  # kept until a journal attaches
    Journal.start(db, client=client, batch_ms=1)
    assert client.append_durable(text(2), timeout=5) == 2
    client.stop()
    assert [e.message for e in reader.read(db)] == [
        AgentText(agent_id="dev-1", text=f"m{n}") for n in (1, 2)
    ]


def test_reading_while_the_journal_is_being_created(tmp_path: Path) -> None:
    # A reader that looks while the writer creates the file sees it empty or whole.
    for attempt in range(30):
        path = tmp_path / f"{attempt}.db"
        errors: list[Exception] = []
        stop = threading.Event()

        def poll(
            path: Path = path, errors: list[Exception] = errors, stop: threading.Event = stop
        ) -> None:
            while not stop.is_set():
                try:
                    reader.last_seq(path)
                    reader.replay(path)
                except Exception as exc:
                    errors.append(exc)
                    return

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            client = Journal.open(path, batch_ms=1)
            client.append_durable(text(1), timeout=5)
            client.stop()
        finally:
            stop.set()
            poller.join(5)
        assert errors == []
